"""How a threshold is found offline: the threshold that sends a share of prompts to the strong model
(RouteLLM's ``calibrate_threshold``; on the bundled sample prompts by default, whose win rates the
shipped routers record), and the threshold or cost weight that meets a cost target among many
models. Routers without recorded win rates are scored on the sample prompts once: the win rates are
kept in ``$ROUTELLM_FAST_CACHE/calibration/`` (keyed by the router's fingerprint and the prompts), so
a ``--config`` router is calibrated once, not on every run. A threshold that sends almost every
calibration prompt to one model gets a :class:`~routellm_fast.errors.ThresholdWarning`
(:func:`threshold_advice`)."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checks import check_share
from ..formats.tables import read_prompts
from ..paths import SAMPLE_PROMPTS, conversion_cache_dir
from .rule import CostWeight, check_scores, choose_models, cost_order

if TYPE_CHECKING:
    from ..routers import Router

__all__ = [
    "EXTREME_SHARE",
    "ROUTELLM_THRESHOLDS",
    "calibrate_models",
    "calibrate_threshold",
    "calibration_cache_file",
    "known_win_rates",
    "prompts_digest",
    "recorded_win_rates",
    "sample_prompts_digest",
    "sample_win_rates",
    "share_threshold",
    "strong_share",
    "threshold_advice",
    "win_rates_on",
]

logger = logging.getLogger("routellm_fast")

#: A threshold that sends more than ``1 - EXTREME_SHARE`` or less than ``EXTREME_SHARE`` of the
#: calibration prompts to the strong model is probably meant for another router: it is warned about.
EXTREME_SHARE = 0.01
#: Thresholds RouteLLM's documentation gives, with the share of strong calls each was calibrated for
#: (on Chatbot Arena, for RouteLLM's own router): its README's ``router-mf-0.11593`` is 50%.
ROUTELLM_THRESHOLDS = {("mf", 0.11593): 0.5}


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


def prompts_digest(prompts: Sequence[str]) -> str:
    """A digest of a list of prompts (their text and order), naming their calibration in the cache."""
    digest = hashlib.sha256()
    for prompt in prompts:
        data = prompt.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def calibration_cache_file(router: Any, digest: str | None = None) -> Path | None:
    """Where ``router``'s win rates on a list of prompts (``digest``, :func:`prompts_digest`; default
    the bundled sample prompts) are kept between runs: a file named by the router's fingerprint (a
    digest of its weights or arena, model pair and embedder: what its answers depend on, whatever
    config named them), its score of one probe prompt (so that a change in how it computes is a new
    key) and the prompts, in ``$ROUTELLM_FAST_CACHE/calibration/``; None for a router whose answers
    are not repeatable."""
    fingerprint = getattr(router, "fingerprint", None)
    if not fingerprint:
        return None
    digest = sample_prompts_digest() if digest is None else digest
    return conversion_cache_dir("calibration") / f"{fingerprint}-{_probe_digest(router)}-{digest[:16]}.npy"


#: Scored once per router to key its calibration: a fingerprint names the router's weights and
#: embedder by name, and this catches a change in how they compute (a new embedder build, a new core).
_PROBE = "Calibration probe: explain why the sky is blue, then prove that 17 is prime."


def _probe_digest(router: Any) -> str:
    kept = getattr(router, "_calibration_probe", None)
    if kept is None:
        score = np.asarray(router.score([_PROBE]), dtype=np.float64)
        kept = hashlib.blake2b(score.tobytes(), digest_size=6).hexdigest()
        router._calibration_probe = kept
    return kept


def _read_cached(path: Path, n: int) -> np.ndarray | None:
    try:
        rates = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if rates.shape != (n,) or rates.dtype != np.float64 or not np.isfinite(rates).all():
        return None  # not what this cache writes: score again
    return rates


def _write_cached(path: Path, rates: np.ndarray) -> None:
    """Atomically: a reader sees the whole file or none (a file of its own, renamed into place)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, rates)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:  # a read-only cache: calibrate again next time
        logger.warning("could not keep the calibration in %s: %s", path, exc)


def known_win_rates(router: Any) -> np.ndarray | None:
    """``router``'s win rates on the bundled sample prompts when they need no scoring: recorded with
    its files, kept from an earlier call, or in the calibration cache; else None."""
    rates = recorded_win_rates(router)
    if rates is not None:
        return rates
    kept = getattr(router, "_sample_win_rates", None)
    if kept is not None:
        return kept
    path = calibration_cache_file(router)
    if path is None or not path.is_file():
        return None
    rates = _read_cached(path, len(read_prompts()))
    if rates is not None:
        router._sample_win_rates = rates
    return rates


def sample_win_rates(router: Router, *, overwrite: bool = False) -> np.ndarray:
    """``router``'s win rates on the bundled sample prompts (``data/sample_prompts.jsonl``, what
    ``calibrate`` uses by default): recorded ones when the router has them (:func:`recorded_win_rates`),
    else scored once, kept on the router and in the calibration cache (:func:`calibration_cache_file`)
    for the next run. ``overwrite`` scores again (the recorded ones stay)."""
    rates = recorded_win_rates(router) if overwrite else known_win_rates(router)
    if rates is not None:
        return rates
    rates = np.asarray(router.score(read_prompts()), dtype=np.float64)
    path = calibration_cache_file(router)
    if path is not None:  # repeatable: keep them
        router._sample_win_rates = rates  # type: ignore[attr-defined]
        _write_cached(path, rates)
    return rates


def win_rates_on(router: Router, prompts: Sequence[str] | None, *, overwrite: bool = False) -> np.ndarray:
    """``router``'s win rates on ``prompts`` (None: the bundled sample prompts, :func:`sample_win_rates`),
    scored once and kept in the calibration cache for the next run; ``overwrite`` scores again."""
    if prompts is None:
        return sample_win_rates(router, overwrite=overwrite)
    prompts = list(prompts)
    path = calibration_cache_file(router, prompts_digest(prompts))
    if path is not None and not overwrite and path.is_file():
        rates = _read_cached(path, len(prompts))
        if rates is not None:
            return rates
    rates = np.asarray(router.score(prompts), dtype=np.float64)
    if path is not None:
        _write_cached(path, rates)
    return rates


def strong_share(win_rates: Any, threshold: float) -> float:
    """The share of prompts with these win rates that ``threshold`` sends to the strong model."""
    rates = np.asarray(win_rates, dtype=np.float64)
    return float(np.mean(rates >= threshold)) if rates.size else math.nan


def threshold_advice(name: str, win_rates: Any, threshold: float) -> str | None:
    """What to tell a user whose ``threshold`` sends more than 99% or less than 1% of router
    ``name``'s calibration prompts (``win_rates``) to the strong model, or None when it does not.
    Exactly 0 and 1 (always strong, always weak) are taken as meant. The message names the share
    probably meant (RouteLLM's, when the threshold is one its documentation calibrated; else 50%),
    its threshold for this router and ``calibrate``."""
    if threshold in (0.0, 1.0):
        return None
    rates = np.asarray(win_rates, dtype=np.float64)
    share = strong_share(rates, threshold)
    if not (share > 1.0 - EXTREME_SHARE or share < EXTREME_SHARE):
        return None
    documented = ROUTELLM_THRESHOLDS.get((name, round(float(threshold), 5)))
    meant = 0.5 if documented is None else documented
    why = (f"RouteLLM's {threshold:g} is for {meant:.0%} strong calls with RouteLLM's own {name} router; "
           if documented is not None else "")
    suggested = round(share_threshold(rates, meant), 5)
    return (f"threshold {threshold:g} sends {share:.1%} of the {rates.size} calibration prompts to the strong model "
            f"with router {name}: thresholds belong to one router ({why}win rates have each router's own scale). "
            f"For {meant:.0%} strong calls use {suggested} (model router-{name}-{suggested}, or "
            f"router-{name}-{meant * 100:g}%); `routellm-fast calibrate --strong-model-pct P --router {name}` "
            "gives the threshold for any share")


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

