"""Thresholds that keep their meaning: a threshold that sends almost every calibration prompt to one
model is warned about once per router and threshold, naming the threshold for the share probably
meant; a share of strong calls can be asked for instead (``router-mf-50%``)."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast.decision.calibration import (
    ROUTELLM_THRESHOLDS,
    sample_win_rates,
    share_threshold,
    strong_share,
    threshold_advice,
)
from routellm_fast.decision.router_names import (
    StrongShare,
    check_route,
    parse_model_name,
    parse_threshold,
)
from routellm_fast.errors import RoutingError, ThresholdWarning

from tests.helpers import STRONG, WEAK

PROMPT = "Prove that there are infinitely many primes."


@pytest.fixture(scope="module")
def ctl():
    """The shipped mf and sw_ranking on the static embedder (microseconds per prompt), and random."""
    return rf.Controller(["mf", "sw_ranking", "random"], STRONG, WEAK, embedder="static")


def test_share_names_parse():
    assert parse_model_name("router-mf-50%") == ("mf", StrongShare(0.5))
    assert parse_model_name("router-sw_ranking-12.5%") == ("sw_ranking", StrongShare(0.125))
    assert parse_threshold("0%") == StrongShare(0.0) and parse_threshold("100%") == StrongShare(1.0)
    assert parse_threshold("0.3") == 0.3 and str(StrongShare(0.5)) == "50%"
    for bad in ("router-mf-150%", "router-mf--5%", "router-mf-x%", "router-mf-%", "router-mf-nan%"):
        with pytest.raises(RoutingError, match="must be a percentage of strong-model calls between 0% and 100%"):
            parse_model_name(bad)
    check_route(["mf"], "mf", StrongShare(0.5))
    with pytest.raises(RoutingError, match=r"^Threshold abc must be a float\.$"):  # RouteLLM's message
        parse_model_name("router-mf-abc")


def test_advice_names_the_threshold_for_the_share_meant():
    rates = np.linspace(0.55, 0.65, 1001)
    assert strong_share(rates, 0.6) == pytest.approx(0.5, abs=1e-3)
    assert threshold_advice("mf", rates, 0.6) is None  # an ordinary threshold
    assert threshold_advice("mf", rates, 0.0) is None and threshold_advice("mf", rates, 1.0) is None  # meant
    message = threshold_advice("sw_ranking", rates, 0.3)
    assert "threshold 0.3 sends 100.0% of the 1001 calibration prompts to the strong model" in message
    assert "For 50% strong calls use 0.6 (model router-sw_ranking-0.6, or router-sw_ranking-50%)" in message
    assert "routellm-fast calibrate --strong-model-pct P --router sw_ranking" in message and "\n" not in message
    assert "sends 0.0%" in threshold_advice("mf", rates, 0.9)
    # RouteLLM's documented threshold: the share it was calibrated for (its README: 50%).
    assert ROUTELLM_THRESHOLDS[("mf", 0.11593)] == 0.5
    assert "RouteLLM's 0.11593 is for 50% strong calls with RouteLLM's own mf router" in threshold_advice(
        "mf", rates, 0.11593)


def test_a_routellm_threshold_is_warned_about_once_per_router_and_threshold(ctl, caplog):
    """RouteLLM's documented router-mf-0.11593 sends every prompt to the strong model with the
    shipped mf: the user is told so, once, in the log and as a warning."""
    expected = round(share_threshold(sample_win_rates(ctl.routers["mf"]), 0.5), 5)
    with caplog.at_level(logging.WARNING, logger="routellm_fast"), pytest.warns(ThresholdWarning) as caught:
        for _ in range(3):
            assert ctl.route(PROMPT, "mf", 0.11593) == STRONG
        ctl.decide("hi", "mf", 0.11593)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "threshold 0.11593 sends 100.0% of the 805 calibration prompts" in message
    assert f"For 50% strong calls use {expected} (model router-mf-{expected}, or router-mf-50%)" in message
    assert [r.getMessage() for r in caplog.records if r.name == "routellm_fast"] == [message]
    with pytest.warns(ThresholdWarning, match="router sw_ranking"):  # another router: its own warning
        ctl.route(PROMPT, "sw_ranking", 0.11593)
    with pytest.warns(ThresholdWarning, match="threshold 0.999 sends 0.0%"):  # another threshold
        ctl.route(PROMPT, "mf", 0.999)


def test_ordinary_thresholds_and_the_random_router_are_not_warned_about(ctl):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ctl.route(PROMPT, "mf", ctl.share_threshold("mf", 0.3))
        ctl.route(PROMPT, "mf", 0.0)  # always strong, meant
        ctl.route(PROMPT, "mf", 1.0)  # always weak, meant
        ctl.route(PROMPT, "random", 0.999)


def test_a_share_routes_at_the_calibrated_threshold(ctl):
    mf = ctl.routers["mf"]
    for pct in (0.1, 0.5, 0.9):
        expected = share_threshold(sample_win_rates(mf), pct)
        assert ctl.share_threshold("mf", pct) == expected
        decision = ctl.decide(PROMPT, "mf", StrongShare(pct), count=False)
        assert decision.threshold == expected
        assert decision.model == (STRONG if mf.calculate_strong_win_rate(PROMPT) >= expected else WEAK)
    assert ctl.share_threshold("random", 0.3) == pytest.approx(0.7)  # uniform win rates
    thresholds = ctl.calibrated_thresholds("mf")
    assert list(thresholds) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert thresholds[0.5] == round(ctl.share_threshold("mf", 0.5), 5)
    assert all(a > b for a, b in zip(thresholds.values(), list(thresholds.values())[1:]))


def test_a_share_in_a_model_name_goes_through_completion(ctl, echo_llm):
    remote = rf.Controller(["mf"], STRONG, WEAK, embedder="static", api_base=echo_llm.url)
    threshold = remote.share_threshold("mf", 0.5)
    win = remote.routers["mf"].calculate_strong_win_rate(PROMPT)
    response = remote.chat.completions.create(model="router-mf-50%", messages=[{"role": "user", "content": PROMPT}])
    remote.upstream.close()  # its connection to echo_llm, not left to the garbage collector
    assert response.model == (STRONG if win >= threshold else WEAK)
    many = rf.Controller(["mf"], STRONG, WEAK, embedder="static", models={STRONG: 10.0, WEAK: 1.0})
    with pytest.raises(RoutingError, match="Share 50% is for two models"):
        many.decide(PROMPT, "mf", StrongShare(0.5))
