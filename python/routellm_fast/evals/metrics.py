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
    "EvalResult",
    "MethodMetrics",
    "RoutingCurve",
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


def quantile_thresholds(win_rates: np.ndarray, num_results: int) -> np.ndarray:
    """``pd.qcut(win_rates, num_results, retbins=True)[1]``: linear-interpolated quantiles at
    0, 1/n, ..., 1, with duplicate edges dropped (where pandas raises)."""
    levels = np.linspace(0, 1, num_results + 1)
    # pandas (>= 2.2) rounds levels that are not exact in binary up by one ulp; so do we, to agree
    # with it to the last bit
    inexact = num_results * levels != np.arange(num_results + 1)
    levels[inexact] = np.nextafter(levels[inexact], 1)
    return np.unique(np.quantile(win_rates, levels))


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
    return MethodMetrics(cpt, auc, (auc - weak_auc) / (strong_auc - weak_auc))


def evaluate_win_rates(
    benchmark: Benchmark, win_rates: Mapping[str, np.ndarray | Sequence[np.ndarray]], num_results: int = 10
) -> EvalResult:
    """RouteLLM's metrics from win rates: per method one array ``[len(benchmark)]``, or a list of
    arrays (runs of a random router, averaged as RouteLLM averages them)."""
    if num_results < 1:
        raise ValueError(f"num_results must be >= 1, got {num_results}")
    strong, weak = benchmark.model_score(benchmark.strong_model), benchmark.model_score(benchmark.weak_model)
    if strong == weak:
        raise ValueError(f"{benchmark.name}: both models score {strong}, so there is no quality gap to recover")
    curves: dict[str, RoutingCurve] = {}
    for method, value in win_rates.items():
        runs = [value] if isinstance(value, np.ndarray) and value.ndim == 1 else list(value)
        checked = [_check_win_rates(r, len(benchmark), method) for r in runs]
        if not checked:
            raise ValueError(f"{method}: no win rates given")
        per_run = [routing_curve(benchmark, r, num_results) for r in checked]
        curves[method] = per_run[0] if len(per_run) == 1 else _averaged_curve(per_run)
    metrics = {m: curve_metrics(c, strong, weak) for m, c in curves.items()}
    order = sorted(metrics, key=lambda m: -metrics[m].apgr)
    optimal = [(float(p), benchmark.optimal_score(p / 100)) for p in range(0, 101, 10)]
    return EvalResult(benchmark.name, benchmark.describe(), benchmark.strong_model, benchmark.weak_model, strong, weak,
                      {m: curves[m] for m in order}, {m: metrics[m] for m in order}, optimal)


def _check_win_rates(values: Any, n: int, method: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise ValueError(f"{method}: expected {n} win rates, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{method}: win rates contain NaN or inf")
    return array
