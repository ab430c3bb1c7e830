"""Calibration refuses NaN and infinite scores with a clear error: a threshold calibrated on them
would be NaN, and ``router-<name>-nan`` would be advertised as a model no request could use."""

from __future__ import annotations

import math

import numpy as np
import pytest
from routellm_fast.decision.calibration import calibrate_models, share_threshold


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_share_threshold_refuses_non_finite_win_rates(bad):
    rates = [0.2, 0.4, bad, 0.9]
    with pytest.raises(ValueError, match=r"win rates must be finite to calibrate on: 1 of 4 are NaN or infinite "
                                         r"\(the first, at 2, is"):
        share_threshold(rates, 0.5)
    assert share_threshold([0.2, 0.4, 0.6, 0.9], 0.5) == pytest.approx(0.5)


def test_share_threshold_refuses_what_is_not_numbers():
    with pytest.raises(ValueError, match="win rates must be numbers"):
        share_threshold(["high", "low"], 0.5)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_calibrate_models_refuses_non_finite_scores(bad):
    scores = np.zeros((4, 3))
    scores[1, 2] = bad
    with pytest.raises(ValueError, match="scores must be finite to calibrate on"):
        calibrate_models(scores, [1.0, 2.0, 3.0], 2.0)
    assert calibrate_models(np.zeros((4, 3)), [1.0, 2.0, 3.0], 3.0) == 0.0
