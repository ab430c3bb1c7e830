"""RouteLLM's evaluation metrics (``routellm/evals/evaluate.py``): routing curves over quantile
thresholds, CPT, AUC and APGR.

``num_results`` quantile thresholds of the win rates (``pd.qcut(..., retbins=True)``); at each
threshold the share of strong-model calls and the score, the last threshold strict (``>``) so that
it calls the strong model for no prompt; the random router's runs averaged per strong-call share;
then CPT(20/50/80%): the strong-call percentage reaching that share of the strong-weak quality gap,
by linear interpolation; AUC by the trapezoid rule; APGR, the area between the curve and the weak
model's line over the area between the two models' lines.

Two deliberate differences, each where RouteLLM has no answer or a wrong one: duplicate quantile
edges are dropped (``pd.qcut`` raises on them), and MT Bench's optimal-router curve is computed over
the decontaminated questions (RouteLLM's mixes all 80 questions' judgements with the decontaminated
count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .benchmarks import Benchmark

__all__ = [
    "CPT_LEVELS",
    "Bootstrap",
    "EvalResult",
    "MethodMetrics",
    "RoutingCurve",
    "bootstrap_apgr",
    "bootstrap_indices",
    "curve_metrics",
    "evaluate_win_rates",
    "quantile_thresholds",
    "routing_curve",
]

#: Shares of the quality gap the CPT metrics are taken at.
CPT_LEVELS = (0.2, 0.5, 0.8)


@dataclass(frozen=True)
class RoutingCurve:
    """Strong-call percentage and score at each threshold, sorted by strong-call percentage."""

    thresholds: np.ndarray
    strong_percentage: np.ndarray
    score: np.ndarray


@dataclass(frozen=True)
class MethodMetrics:
    cpt: dict[float, float]  # share of the quality gap -> % strong calls needed
    auc: float
    apgr: float


@dataclass
class EvalResult:
    """Everything RouteLLM's evaluation reports for one benchmark."""

    benchmark: str
    description: str
    strong_model: str
    weak_model: str
    strong_score: float
    weak_score: float
    curves: dict[str, RoutingCurve]
    metrics: dict[str, MethodMetrics]
    optimal: list[tuple[float, float]] = field(default_factory=list)  # (% strong calls, score)
    #: APGR of the optimal router's curve (``optimal``), by the same trapezoid rule.
    oracle_apgr: float = float("nan")
    #: Bootstrap intervals and the paired test against the baseline (None: not asked for).
    bootstrap: Bootstrap | None = None
    #: Lines the report prints under the table (how the baseline was fitted, ...).
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Bootstrap:
    """Bootstrap 95% intervals of APGR: ``resamples`` resamples of the evaluated items, drawn with
    replacement (:func:`bootstrap_indices` from ``seed``), every method's APGR computed on each
    resample exactly as on the full set (:func:`bootstrap_apgr`); percentile intervals (2.5%, 97.5%).

    The paired test uses the same resamples for every method: per resample the APGR of a method
    minus that of ``baseline``; ``paired[method]`` is (difference on the full set, 2.5%, 97.5%);
    the method beats the baseline beyond noise when the low end is above 0."""

    resamples: int
    seed: int
    apgr: dict[str, tuple[float, float]]
    baseline: str | None = None
    paired: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    #: Resamples in which both models score the same (APGR undefined; left out of the intervals).
    no_gap: int = 0
    #: Every method's APGR on each resample (NaN where undefined): any two methods can be paired.
    values: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def excludes_zero(self, method: str) -> bool:
        """Whether the 95% interval of ``method`` minus the baseline lies wholly above or below 0."""
        _, low, high = self.paired[method]
        return low > 0 or high < 0

    def paired_interval(self, method: str, reference: str) -> tuple[float, float]:
        """The 95% interval of ``method``'s APGR minus ``reference``'s over the same resamples."""
        return _percentile_interval(self.values[method] - self.values[reference])


def quantile_thresholds(win_rates: np.ndarray, num_results: int) -> np.ndarray:
    """``pd.qcut(win_rates, num_results, retbins=True)[1]``: linear-interpolated quantiles at
    0, 1/n, ..., 1, with duplicate edges dropped (where pandas raises)."""
    return np.unique(np.quantile(win_rates, _quantile_levels(num_results)))


def _quantile_levels(num_results: int) -> np.ndarray:
    levels = np.linspace(0, 1, num_results + 1)
    # pandas (>= 2.2) rounds levels that are not exact in binary up by one ulp; so do we, to agree
    # with it to the last bit
    inexact = num_results * levels != np.arange(num_results + 1)
    levels[inexact] = np.nextafter(levels[inexact], 1)
    return levels


def routing_curve(benchmark: Benchmark, win_rates: np.ndarray, num_results: int) -> RoutingCurve:
    """Score and strong-call share at each quantile threshold (the last one strict)."""
    thresholds = quantile_thresholds(win_rates, num_results)
    pct, score = [], []
    for i, threshold in enumerate(thresholds):
        strong = win_rates > threshold if i == len(thresholds) - 1 else win_rates >= threshold
        pct.append(np.count_nonzero(strong) / len(win_rates) * 100)
        score.append(benchmark.routed_score(strong))
    order = np.argsort(pct, kind="stable")
    return RoutingCurve(thresholds[order], np.array(pct)[order], np.array(score)[order])


def _averaged_curve(curves: list[RoutingCurve]) -> RoutingCurve:
    """RouteLLM's random router: rows of all runs grouped by strong-call percentage, averaged."""
    pct = np.concatenate([c.strong_percentage for c in curves])
    keys, group = np.unique(pct, return_inverse=True)
    counts = np.bincount(group)

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=values) / counts

    return RoutingCurve(mean(np.concatenate([c.thresholds for c in curves])), keys,
                        mean(np.concatenate([c.score for c in curves])))


def curve_metrics(curve: RoutingCurve, strong_score: float, weak_score: float) -> MethodMetrics:
    """CPT at 20/50/80% of the quality gap, AUC and APGR of one curve (RouteLLM's formulas)."""
    x = curve.strong_percentage / 100
    cpt = {level: float(np.interp(level * (strong_score - weak_score) + weak_score, curve.score, curve.strong_percentage))
           for level in CPT_LEVELS}
    auc = float(np.trapezoid(curve.score, x))
    weak_auc = float(np.trapezoid(np.full(len(x), weak_score), x))
    strong_auc = float(np.trapezoid(np.full(len(x), strong_score), x))
    # one point (every win rate the same): the curve spans no strong-call range, so APGR is undefined
    apgr = (auc - weak_auc) / (strong_auc - weak_auc) if strong_auc != weak_auc else float("nan")
    return MethodMetrics(cpt, auc, apgr)


def evaluate_win_rates(
    benchmark: Benchmark, win_rates: Mapping[str, np.ndarray | Sequence[np.ndarray]], num_results: int = 10, *,
    bootstrap: int = 0, seed: int = 0, baseline: str | None = None,
) -> EvalResult:
    """RouteLLM's metrics from win rates: per method one array ``[len(benchmark)]``, or a list of
    arrays (runs of a random router, averaged as RouteLLM averages them).

    ``bootstrap`` > 0: that many resamples of the items (from ``seed``) give every method's 95%
    APGR interval and, when ``baseline`` names one of the methods, the paired difference of every
    other method against it (:class:`Bootstrap`)."""
    if num_results < 1:
        raise ValueError(f"num_results must be >= 1, got {num_results}")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0:
        raise ValueError(f"bootstrap must be a whole number of resamples >= 0, got {bootstrap!r}")
    if baseline is not None and baseline not in win_rates:
        raise ValueError(f"baseline {baseline!r} is not one of the methods evaluated ({', '.join(win_rates)})")
    strong, weak = benchmark.model_score(benchmark.strong_model), benchmark.model_score(benchmark.weak_model)
    if strong == weak:
        raise ValueError(f"{benchmark.name}: both models score {strong}, so there is no quality gap to recover")
    curves: dict[str, RoutingCurve] = {}
    checked_runs: dict[str, list[np.ndarray]] = {}
    for method, value in win_rates.items():
        runs = [value] if isinstance(value, np.ndarray) and value.ndim == 1 else list(value)
        checked = [_check_win_rates(r, len(benchmark), method) for r in runs]
        if not checked:
            raise ValueError(f"{method}: no win rates given")
        checked_runs[method] = checked
        per_run = [routing_curve(benchmark, r, num_results) for r in checked]
        curves[method] = per_run[0] if len(per_run) == 1 else _averaged_curve(per_run)
    metrics = {m: curve_metrics(c, strong, weak) for m, c in curves.items()}
    order = sorted(metrics, key=lambda m: -metrics[m].apgr)
    optimal = [(float(p), benchmark.optimal_score(p / 100)) for p in range(0, 101, 10)]
    pct, score = (np.array(v) for v in zip(*optimal))
    oracle = curve_metrics(RoutingCurve(pct, pct, score), strong, weak).apgr
    result = EvalResult(benchmark.name, benchmark.describe(), benchmark.strong_model, benchmark.weak_model, strong,
                        weak, {m: curves[m] for m in order}, {m: metrics[m] for m in order}, optimal, oracle)
    if bootstrap:
        result.bootstrap = _bootstrap(benchmark, {m: checked_runs[m] for m in order}, metrics, num_results,
                                      bootstrap, seed, baseline)
    return result


def _check_win_rates(values: Any, n: int, method: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise ValueError(f"{method}: expected {n} win rates, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{method}: win rates contain NaN or inf")
    return array


# -- bootstrap


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """The items of each bootstrap resample, ``[resamples, n]``: ``n`` draws with replacement from
    ``range(n)`` per resample, ``np.random.default_rng(seed).integers(0, n, (resamples, n))``."""
    if n < 1 or resamples < 1:
        raise ValueError(f"need at least one item and one resample, got n={n}, resamples={resamples}")
    return np.random.default_rng(seed).integers(0, n, (resamples, n))


def bootstrap_apgr(
    benchmark: Benchmark, win_rates: np.ndarray | Sequence[np.ndarray], indices: np.ndarray, num_results: int = 10
) -> np.ndarray:
    """APGR on each resample ``indices[b]`` (rows of item indices, :func:`bootstrap_indices`),
    computed as :func:`evaluate_win_rates` computes it on the benchmark made of those items (the same
    quantile thresholds of the resample's win rates, the last strict, duplicates dropped; runs of a
    random router averaged per strong-call share): float64 ``[len(indices)]``, NaN where both models
    score the same on a resample.

    Vectorised: a resample is a count per item; each run's items are sorted once, so the resample's
    sorted win rates, the items at or above a threshold and their score gains are prefix sums."""
    runs = [win_rates] if isinstance(win_rates, np.ndarray) and win_rates.ndim == 1 else list(win_rates)
    n = len(benchmark)
    runs = [_check_win_rates(r, n, "bootstrap") for r in runs]
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[1] != n or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices must be integer rows of {n} item indices, got {indices.dtype} {indices.shape}")
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"indices must lie in [0, {n})")
    levels = _quantile_levels(num_results)
    gain = benchmark.strong_scores - benchmark.weak_scores
    sorted_runs = []
    for r in runs:
        order = np.argsort(r, kind="stable")
        sorted_runs.append((order, r[order], gain[order]))
    out = np.empty(len(indices))
    chunk = max(1, 4_000_000 // (n * len(runs)))  # bounds the memory of one step
    for start in range(0, len(indices), chunk):
        idx = indices[start:start + chunk]
        out[start:start + len(idx)] = _apgr_of_resamples(benchmark, sorted_runs, idx, levels)
    return out


def _apgr_of_resamples(benchmark: Benchmark, sorted_runs: list, idx: np.ndarray, levels: np.ndarray) -> np.ndarray:
    c, n = idx.shape
    rows = np.arange(c)[:, None]
    counts = np.bincount((rows * n + idx).ravel(), minlength=c * n).reshape(c, n).astype(np.int32)
    weak_total = counts @ benchmark.weak_scores
    strong = counts @ benchmark.strong_scores / n * benchmark.scale
    weak = weak_total / n * benchmark.scale
    pcts, scores, valid = [], [], []
    for order, values, gains in sorted_runs:
        k = counts[:, order]  # multiplicity of each item, in this run's win-rate order
        resample = np.repeat(np.tile(values, c), k.ravel()).reshape(c, n)  # each resample's sorted win rates
        q = np.sort(np.quantile(resample, levels, axis=1).T, axis=1)  # [c, thresholds], as np.unique sorts
        keep = np.ones(q.shape, dtype=bool)
        keep[:, :-1] = q[:, :-1] != q[:, 1:]  # duplicate edges dropped (np.unique)
        below = np.zeros((c, n + 1), dtype=np.int64)
        np.cumsum(k, axis=1, out=below[:, 1:])
        gain_below = np.zeros((c, n + 1))
        np.cumsum(k * gains, axis=1, out=gain_below[:, 1:])
        # items >= each threshold, the last strictly above it
        cut = np.searchsorted(values, q, side="left")
        cut[:, -1] = np.searchsorted(values, q[:, -1], side="right")
        called = n - np.take_along_axis(below, cut, axis=1)
        gained = gain_below[:, -1:] - np.take_along_axis(gain_below, cut, axis=1)
        pcts.append(called)
        scores.append((weak_total[:, None] + gained) / n * benchmark.scale)
        valid.append(keep)
    called, score, keep = (np.concatenate(v, axis=1) for v in (pcts, scores, valid))
    # Points of all runs grouped by strong calls and averaged (one run: nested sets, so equal counts
    # are equal points); dropped edges take no part.
    p = called.shape[1]
    key = np.where(keep, called, n + 1)
    order = np.argsort(key, axis=1, kind="stable")
    key, score, keep = (np.take_along_axis(a, order, axis=1) for a in (key, score, keep))
    start = np.ones(key.shape, dtype=bool)
    start[:, 1:] = key[:, 1:] != key[:, :-1]
    group = (rows * p + np.cumsum(start, axis=1) - 1).ravel()
    total = np.bincount(group, weights=np.where(keep, score, 0.0).ravel(), minlength=c * p).reshape(c, p)
    members = np.bincount(group, weights=keep.ravel(), minlength=c * p).reshape(c, p)
    group_key = np.zeros(c * p)
    group_key[group] = key.ravel()
    used = members > 0  # a prefix of each row
    last = used.sum(axis=1) - 1
    x = np.where(used, group_key.reshape(c, p) / n * 100, 0.0)
    y = np.where(used, total / np.maximum(members, 1), 0.0)
    # groups past the last point repeat it: zero width, no area
    x = np.where(used, x, np.take_along_axis(x, last[:, None], axis=1)) / 100
    y = np.where(used, y, np.take_along_axis(y, last[:, None], axis=1))
    auc = np.trapezoid(y, x, axis=1)
    weak_auc = np.trapezoid(np.broadcast_to(weak[:, None], x.shape), x, axis=1)
    strong_auc = np.trapezoid(np.broadcast_to(strong[:, None], x.shape), x, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        apgr = (auc - weak_auc) / (strong_auc - weak_auc)
    return np.where(strong != weak, apgr, np.nan)


def _bootstrap(benchmark: Benchmark, runs: Mapping[str, list[np.ndarray]], metrics: Mapping[str, MethodMetrics],
               num_results: int, resamples: int, seed: int, baseline: str | None) -> Bootstrap:
    indices = bootstrap_indices(len(benchmark), resamples, seed)
    values = {m: bootstrap_apgr(benchmark, r, indices, num_results) for m, r in runs.items()}
    no_gap = int(((benchmark.strong_scores - benchmark.weak_scores)[indices].sum(axis=1) == 0).sum())

    paired = {}
    if baseline is not None:
        for m in runs:
            if m != baseline:
                paired[m] = (metrics[m].apgr - metrics[baseline].apgr,
                             *_percentile_interval(values[m] - values[baseline]))
    return Bootstrap(resamples, seed, {m: _percentile_interval(v) for m, v in values.items()}, baseline, paired,
                     no_gap, values)


def _percentile_interval(v: np.ndarray) -> tuple[float, float]:
    v = v[np.isfinite(v)]  # resamples without a quality gap (or a curve of one point) have none
    if not len(v):
        return (float("nan"), float("nan"))
    low, high = np.percentile(v, [2.5, 97.5])
    return float(low), float(high)
