"""How a threshold is found offline: the threshold that sends a share of prompts to the strong model
(RouteLLM's ``calibrate_threshold``; on the bundled sample prompts by default, whose win rates the
shipped routers record), and the threshold or cost weight that meets a cost target among many
models."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checks import check_share
from ..formats.tables import read_prompts
from ..paths import SAMPLE_PROMPTS
from .rule import CostWeight, check_scores, choose_models, cost_order

if TYPE_CHECKING:
    from ..routers import Router

__all__ = [
    "calibrate_models",
    "calibrate_threshold",
    "recorded_win_rates",
    "sample_prompts_digest",
    "sample_win_rates",
    "share_threshold",
]


def share_threshold(win_rates: Any, strong_model_pct: float) -> float:
    """The threshold that sends ``strong_model_pct`` of prompts with these win rates to the strong
    model: their ``1 - strong_model_pct`` quantile, linearly interpolated (RouteLLM's
    ``calibrate_threshold``, which takes it with pandas). Any share in [0, 1]."""
    pct = check_share(strong_model_pct)
    rates = _finite(win_rates, "win rates")
    if rates.size == 0:
        raise ValueError("no prompts to calibrate on")
    return float(np.quantile(rates, 1.0 - pct))


def _finite(values: Any, what: str) -> np.ndarray:
    """``values`` as float64, refused when one is NaN or infinite: a threshold calibrated on them
    would be NaN (a ``router-<name>-nan`` no request could use)."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be numbers to calibrate on: {exc}") from None
    bad = np.flatnonzero(~np.isfinite(array.reshape(-1)))
    if bad.size:
        raise ValueError(f"{what} must be finite to calibrate on: {bad.size} of {array.size} are NaN or infinite "
                         f"(the first, at {int(bad[0])}, is {array.reshape(-1)[bad[0]]})")
    return array


def calibrate_threshold(router: Router, prompts: Sequence[str] | None, strong_model_pct: float) -> float:
    """The threshold that sends ``strong_model_pct`` of ``prompts`` to the strong model (see
    :func:`share_threshold`). ``prompts=None`` means the bundled sample prompts
    (:func:`sample_win_rates`: the win rates recorded with a shipped router, so that ``route
    --strong-model-pct`` and ``calibrate`` give one answer)."""
    check_share(strong_model_pct)
    if prompts is None:
        return share_threshold(sample_win_rates(router), strong_model_pct)
    return share_threshold(router.score(list(prompts)), strong_model_pct)


@lru_cache(maxsize=1)
def sample_prompts_digest() -> str:
    """sha256 of the bundled sample prompts file, which a recorded calibration names."""
    return hashlib.sha256(SAMPLE_PROMPTS.read_bytes()).hexdigest()


def recorded_win_rates(router: Any) -> np.ndarray | None:
    """The win rates on the bundled sample prompts recorded with ``router``'s files (its
    ``calibration``; the shipped routers have one), when they are for these prompts and the
    router's model pair; else None."""
    calibration = getattr(router, "calibration", None)
    if not isinstance(calibration, Mapping) or calibration.get("prompts_sha256") != sample_prompts_digest():
        return None
    pair = calibration.get("pair") or {}
    # A router that scores one pair (mf, sw_ranking) must score the recorded one; a classifier
    # (bert) was trained for its pair and has no other.
    if hasattr(router, "strong_model") and (pair.get("strong"), pair.get("weak")) != (router.strong_model, router.weak_model):
        return None
    return np.asarray(calibration["win_rates"], dtype=np.float64)


def sample_win_rates(router: Router) -> np.ndarray:
    """``router``'s win rates on the bundled sample prompts (``data/sample_prompts.jsonl``, what
    ``calibrate`` uses by default): recorded ones when the router has them (:func:`recorded_win_rates`),
    else scored once and kept on the router."""
    rates = recorded_win_rates(router)
    if rates is not None:
        return rates
    cached = getattr(router, "_sample_win_rates", None)
    if cached is None:
        cached = np.asarray(router.score(read_prompts()), dtype=np.float64)
        if getattr(router, "fingerprint", None):  # repeatable: keep them
            router._sample_win_rates = cached  # type: ignore[attr-defined]
    return cached


def calibrate_models(scores: Any, costs: Any, target_cost: float, rule: str = "threshold",
                     iterations: int = 60) -> float | CostWeight:
    """The threshold (``rule="threshold"``) or cost weight (``rule="cost"``) whose choices on these
    prompts' ``scores`` cost at most ``target_cost`` on average (per prompt, in the units of
    ``costs``), spending as much of it as the rule allows: the N-model counterpart of
    :func:`calibrate_threshold`. Raises ValueError when even the cheapest choices cost more."""
    scores = check_scores(_finite(scores, "scores"))
    costs, _ = cost_order(costs, scores.shape[1])
    if not math.isfinite(target_cost) or target_cost < 0:
        raise ValueError(f"target_cost must be a finite number >= 0, got {target_cost!r}")
    if rule == "threshold":
        make, lo, hi = (lambda x: x), 0.0, 1.0  # spending falls as t rises
    elif rule == "cost":
        make, lo, hi = CostWeight, 0.0, 1.0  # spending falls as lambda rises
        while costs[choose_models(scores, costs, CostWeight(hi))].mean() > target_cost and hi < 1e12:
            hi *= 2
    else:
        raise ValueError(f"rule must be 'threshold' or 'cost', got {rule!r}")

    def spend(x: float) -> float:
        return float(costs[choose_models(scores, costs, make(x))].mean())

    if spend(hi) > target_cost:
        raise ValueError(f"even the cheapest choices cost {spend(hi):.6g} per prompt on average, above {target_cost}")
    if spend(lo) <= target_cost:
        return make(lo)
    for _ in range(iterations):  # invariant: spend(lo) > target >= spend(hi)
        mid = 0.5 * (lo + hi)
        if spend(mid) > target_cost:
            lo = mid
        else:
            hi = mid
    return make(hi)

