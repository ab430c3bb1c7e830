"""The routing rule: from win rates (two models) or per-model scores (many models) to a model.

* :func:`is_strong` / :func:`choose` is the rule every router, the controller and the server apply:
  the strong model when its win rate is at least the threshold (RouteLLM's ``route``).
* Many models with their costs (:func:`choose_models`): from per-model scores on one logit scale
  (``router.score_models``) to the model each prompt goes to, by the threshold rule generalised to N
  models (two models: RouteLLM's rule) or a cost-aware rule (``router-<router>-cost-<lambda>``,
  :class:`CostWeight`).

How a threshold is found is apart: :mod:`.calibration` (a share of strong-model calls, a cost
target) and :mod:`.online` (a sliding window).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..checks import check_threshold
from ..errors import RoutingError

__all__ = [
    "CostWeight",
    "Decision",
    "ModelPair",
    "check_models",
    "check_scores",
    "choose",
    "choose_models",
    "cost_order",
    "is_strong",
]


class RoutedPair(Protocol):
    strong: str
    weak: str


@dataclass
class ModelPair:
    """The two models routed between (RouteLLM's ``ModelPair``)."""

    strong: str
    weak: str


@dataclass(frozen=True)
class CostWeight:
    """The cost-aware rule among many models with weight ``value`` = lambda >= 0 (model name
    ``router-<router>-cost-<lambda>``): each prompt goes to the model maximising its predicted win
    rate against the best candidate minus lambda times its cost relative to the dearest candidate."""

    value: float

    def __str__(self) -> str:
        return f"cost-{self.value:g}"


@dataclass(frozen=True)
class Decision:
    """One routing decision: the model chosen, by which router, at which threshold, from which win
    rate. Among many models (``scores`` set: per-model scores on one logit scale), ``win_rate`` is
    the chosen model's predicted win rate against the best-scored candidate and ``strong`` whether it
    is the dearest candidate."""

    model: str
    router: str
    threshold: float | CostWeight
    win_rate: float
    strong: bool
    scores: Mapping[str, float] | None = None


def is_strong(win_rate: float, threshold: float) -> bool:
    """The routing rule: the strong model when its win rate is at least ``threshold``."""
    return win_rate >= threshold


def choose(win_rate: float, threshold: float, pair: RoutedPair) -> str:
    """The model :func:`is_strong` picks from ``pair``."""
    return pair.strong if is_strong(win_rate, threshold) else pair.weak


# -- many models with their costs


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow warnings at +-inf


def cost_order(costs: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    costs = np.asarray(costs, dtype=np.float64)
    if costs.shape != (k,):
        raise ValueError(f"need one cost per model: {k} models, got costs of shape {costs.shape}")
    if not (np.isfinite(costs).all() and (costs >= 0).all()):
        raise ValueError(f"costs must be finite and >= 0, got {costs.tolist()}")
    return costs, np.argsort(costs, kind="stable")  # equal costs keep the given order


def check_scores(scores: Any) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"scores must be [prompts, models] with at least one model, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return scores


def choose_models(scores: Any, costs: Any, rule: float | CostWeight) -> np.ndarray:
    """The model index each prompt goes to, from per-model ``scores`` ``[n, k]`` on one logit scale
    (model a beats model b with probability ``sigmoid(s_a - s_b)``) and a cost per model.

    * ``rule`` a threshold t in [0, 1]: the cheapest model that no dearer candidate beats with a
      win rate of at least t. With two models this is RouteLLM's rule (the strong model when its win
      rate is >= t); t = 0 always picks the dearest, t = 1 the cheapest (unless a dearer one wins
      for certain).
    * ``rule`` a :class:`CostWeight` lambda: the model maximising its win rate against the
      best-scored candidate minus ``lambda * cost / max(costs)``; ties go to the cheaper model.
    """
    scores = check_scores(scores)
    n, k = scores.shape
    costs, order = cost_order(costs, k)
    ranked = scores[:, order]  # cheapest first
    if isinstance(rule, CostWeight):
        value = _sigmoid(ranked - ranked.max(axis=1, keepdims=True))
        top = costs.max()
        value = value - rule.value * (costs[order] / top if top > 0 else 0.0)
        return order[np.argmax(value, axis=1)]
    t = check_threshold(rule)
    # Best score among the dearer candidates of each position (-inf for the dearest).
    dearer = np.full((n, k), -np.inf)
    if k > 1:
        dearer[:, :-1] = np.maximum.accumulate(ranked[:, ::-1], axis=1)[:, ::-1][:, 1:]
    qualifies = _sigmoid(dearer - ranked) < t
    qualifies[:, -1] = True
    return order[np.argmax(qualifies, axis=1)]


def check_models(models: Any) -> dict[str, float]:
    """``{name: cost}`` of at least two models, each cost finite and >= 0."""
    if not isinstance(models, Mapping) or len(models) < 2:
        raise RoutingError("models must map at least two model names to their costs")
    try:
        checked = {str(k): float(v) for k, v in models.items()}
    except (TypeError, ValueError):
        raise RoutingError(f"model costs must be numbers, got {dict(models)}") from None
    if not all(math.isfinite(c) and c >= 0 for c in checked.values()):
        raise RoutingError(f"model costs must be finite and >= 0, got {checked}")
    return checked
