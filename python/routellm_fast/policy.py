"""From a win rate to a model: the routing rule, its thresholds and the names that carry them.

* :func:`is_strong` / :func:`choose` is the rule every router, the controller and the server apply:
  the strong model when its win rate is at least the threshold (RouteLLM's ``route``).
* ``model="router-<router>-<threshold>"`` names (:func:`parse_model_name`) and the checks on them
  (:func:`check_route`), with RouteLLM's ``RoutingError`` messages; ``router-<router>-auto`` asks for
  the online threshold.
* :func:`message_text`: the text a chat request is routed on (its last message; OpenAI content-part
  lists included).
* Thresholds: :func:`calibrate_threshold` (RouteLLM's offline calibration; on the bundled sample
  prompts by default, whose win rates the shipped routers record: :func:`sample_win_rates`) and
  :class:`OnlineThreshold`, which keeps the share of strong-model calls near a target over a sliding
  window (what RouteLLM's issue #36 asks for).
* Many models with their costs (:func:`choose_models`, :func:`calibrate_models`): from per-model
  scores on one logit scale (``router.score_models``) to the model each prompt goes to, by the
  threshold rule generalised to N models (two models: RouteLLM's rule) or a cost-aware rule
  (``router-<router>-cost-<lambda>``, :class:`CostWeight`).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from .routers import Router

__all__ = [
    "AUTO",
    "CostWeight",
    "Decision",
    "ModelPair",
    "OnlineThreshold",
    "RoutingError",
    "calibrate_models",
    "calibrate_threshold",
    "check_models",
    "check_route",
    "choose",
    "choose_models",
    "is_strong",
    "message_text",
    "parse_model_name",
    "recorded_win_rates",
    "sample_win_rates",
    "score_columns",
    "share_threshold",
]

#: The threshold of ``router-<router>-auto``: the online threshold.
AUTO = "auto"


class RoutingError(Exception):
    """A bad router name, threshold, ``router-<name>-<threshold>`` model string or message list."""


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


_MODEL_FORMAT = "Model name must be of the format 'router-[router name]-[threshold]."


def parse_model_name(model: Any) -> tuple[str, float | str]:
    """``"router-mf-0.116"`` -> ``("mf", 0.116)``; ``"router-mf-auto"`` -> ``("mf", AUTO)``.
    RouteLLM's parsing and messages (the threshold is checked by :func:`check_route`)."""
    if not isinstance(model, str) or model.count("-") < 2:
        raise RoutingError(f"Invalid model {model}. {_MODEL_FORMAT}")
    prefix, router, threshold_text = model.split("-", 2)
    if prefix != "router":
        raise RoutingError(f"Invalid model {model}. {_MODEL_FORMAT}")
    if threshold_text == AUTO:
        return router, AUTO
    if threshold_text.startswith("cost-"):
        try:
            weight = float(threshold_text[5:])
        except ValueError:
            raise RoutingError(f"Cost weight {threshold_text[5:]} must be a float.") from None
        if not (math.isfinite(weight) and weight >= 0):
            raise RoutingError(f"Invalid cost weight {weight}: it must be a finite number >= 0.")
        return router, CostWeight(weight)  # type: ignore[return-value]
    try:
        return router, float(threshold_text)
    except ValueError as exc:
        raise RoutingError(f"Threshold {threshold_text} must be a float.") from exc


def check_route(routers: Collection[str], router: Any, threshold: Any) -> None:
    """RouteLLM's checks of a routing request, with its messages: a known router and a threshold in
    [0, 1] (or :data:`AUTO`)."""
    if router is None or threshold is None:
        raise RoutingError("Router or threshold unspecified.")
    if router not in routers:
        raise RoutingError(f"Invalid router {router}. Available routers are {list(routers)}.")
    if threshold == AUTO or isinstance(threshold, CostWeight):
        return
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) or not (
        math.isfinite(threshold) and 0 <= threshold <= 1
    ):
        raise RoutingError(f"Invalid threshold {threshold}. Threshold must be a float between 0.0 and 1.0.")


def message_text(messages: Any) -> str:
    """The text a chat request is routed on: its last message's content, a string or OpenAI
    content parts (``[{"type": "text", "text": ...}, ...]``, the text parts joined by newlines).
    RouteLLM routes on the last turn too (its routers were trained on first turns)."""
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)) or not messages:
        raise RoutingError("messages must be a non-empty list of message objects.")
    last = messages[-1]
    if not isinstance(last, Mapping):
        raise RoutingError("messages must be a non-empty list of message objects.")
    content = last.get("content")
    if isinstance(content, list):
        content = "\n".join(
            part["text"] for part in content
            if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    if not isinstance(content, str):
        raise RoutingError("the last message has no text content to route on.")
    return content


def _check_pct(strong_model_pct: float) -> float:
    pct = float(strong_model_pct)
    if not 0.0 <= pct <= 1.0:
        raise ValueError(f"strong_model_pct must be in [0, 1], got {strong_model_pct!r}")
    return pct


def share_threshold(win_rates: Any, strong_model_pct: float) -> float:
    """The threshold that sends ``strong_model_pct`` of prompts with these win rates to the strong
    model: their ``1 - strong_model_pct`` quantile, linearly interpolated (RouteLLM's
    ``calibrate_threshold``, which takes it with pandas). Any share in [0, 1]."""
    pct = _check_pct(strong_model_pct)
    rates = np.asarray(win_rates, dtype=np.float64)
    if rates.size == 0:
        raise ValueError("no prompts to calibrate on")
    return float(np.quantile(rates, 1.0 - pct))


def calibrate_threshold(router: Router, prompts: Sequence[str] | None, strong_model_pct: float) -> float:
    """The threshold that sends ``strong_model_pct`` of ``prompts`` to the strong model (see
    :func:`share_threshold`). ``prompts=None`` means the bundled sample prompts
    (:func:`sample_win_rates`: the win rates recorded with a shipped router, so that ``route
    --strong-model-pct`` and ``calibrate`` give one answer)."""
    _check_pct(strong_model_pct)
    if prompts is None:
        return share_threshold(sample_win_rates(router), strong_model_pct)
    return share_threshold(router.score(list(prompts)), strong_model_pct)


@lru_cache(maxsize=1)
def sample_prompts_digest() -> str:
    """sha256 of the bundled sample prompts file, which a recorded calibration names."""
    from .tables import SAMPLE_PROMPTS

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
        from .tables import read_prompts

        cached = np.asarray(router.score(read_prompts()), dtype=np.float64)
        if getattr(router, "fingerprint", None):  # repeatable: keep them
            router._sample_win_rates = cached  # type: ignore[attr-defined]
    return cached


class OnlineThreshold:
    """Keeps the share of strong-model calls near ``target_strong_pct`` over a sliding window.

    The threshold is the ``1 - target`` quantile of the last ``window`` win rates seen, so a
    shift in traffic (harder or easier prompts) moves it. Until ``min_samples`` win rates have been
    seen, ``initial`` is used. Thread-safe.
    """

    def __init__(self, target_strong_pct: float, window: int = 1000, initial: float = 0.5, min_samples: int = 20) -> None:
        self.target = _check_pct(target_strong_pct)
        if window < 1 or min_samples < 1:
            raise ValueError("window and min_samples must be >= 1")
        self.initial, self.min_samples = float(initial), min_samples
        self._win_rates: deque[float] = deque(maxlen=window)
        self._strong: deque[bool] = deque(maxlen=window)
        self._lock = threading.Lock()

    @property
    def threshold(self) -> float:
        with self._lock:
            return self._threshold_locked()

    def _threshold_locked(self) -> float:
        if len(self._win_rates) < self.min_samples:
            return self.initial
        return float(np.quantile(np.fromiter(self._win_rates, dtype=np.float64), 1.0 - self.target))

    def decide(self, win_rate: float) -> tuple[bool, float]:
        """(route to the strong model?, the threshold used) for one decision, then record it."""
        with self._lock:
            threshold = self._threshold_locked()
            strong = is_strong(win_rate, threshold)
            self._win_rates.append(float(win_rate))
            self._strong.append(strong)
            return strong, threshold

    @property
    def strong_share(self) -> float:
        """The share of strong-model calls over the window (0 before any decision)."""
        with self._lock:
            return sum(self._strong) / len(self._strong) if self._strong else 0.0

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


# -- many models with their costs


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow warnings at +-inf


def _cost_order(costs: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    costs = np.asarray(costs, dtype=np.float64)
    if costs.shape != (k,):
        raise ValueError(f"need one cost per model: {k} models, got costs of shape {costs.shape}")
    if not (np.isfinite(costs).all() and (costs >= 0).all()):
        raise ValueError(f"costs must be finite and >= 0, got {costs.tolist()}")
    return costs, np.argsort(costs, kind="stable")  # equal costs keep the given order


def _check_scores(scores: Any) -> np.ndarray:
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
    scores = _check_scores(scores)
    n, k = scores.shape
    costs, order = _cost_order(costs, k)
    ranked = scores[:, order]  # cheapest first
    if isinstance(rule, CostWeight):
        value = _sigmoid(ranked - ranked.max(axis=1, keepdims=True))
        top = costs.max()
        value = value - rule.value * (costs[order] / top if top > 0 else 0.0)
        return order[np.argmax(value, axis=1)]
    t = check_threshold_value(rule)
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


def check_threshold_value(threshold: Any) -> float:
    """A threshold of the N-model rule: a number in [0, 1]."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise TypeError(f"threshold must be a number in [0, 1] or a CostWeight, got {type(threshold).__name__}")
    if not (math.isfinite(threshold) and 0 <= threshold <= 1):
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    return float(threshold)


def calibrate_models(scores: Any, costs: Any, target_cost: float, rule: str = "threshold",
                     iterations: int = 60) -> float | CostWeight:
    """The threshold (``rule="threshold"``) or cost weight (``rule="cost"``) whose choices on these
    prompts' ``scores`` cost at most ``target_cost`` on average (per prompt, in the units of
    ``costs``), spending as much of it as the rule allows: the N-model counterpart of
    :func:`calibrate_threshold`. Raises ValueError when even the cheapest choices cost more."""
    scores = _check_scores(scores)
    costs, _ = _cost_order(costs, scores.shape[1])
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


def score_columns(routers: Mapping[str, Any], prompts: Sequence[str], models: Mapping[str, float] | None = None,
                  rule: float | CostWeight | None = None) -> dict[str, np.ndarray]:
    """The columns ``routellm-fast score`` adds for a batch of ``prompts``, per router (by name):
    ``win_rate_<router>`` (float64, the strong model's win rate); or, with ``models`` (``{name:
    cost}``), ``score_<router>_<model>`` per model (float64, one logit scale: ``score_models``) and,
    with a ``rule`` (a threshold or :class:`CostWeight`), the chosen model in ``model_<router>``."""
    columns: dict[str, np.ndarray] = {}
    for name, router in routers.items():
        if models is None:
            columns[f"win_rate_{name}"] = np.asarray(router.score(prompts), dtype=np.float64)
            continue
        names = list(models)
        scores = router.score_models(prompts, names)
        for j, model in enumerate(names):
            columns[f"score_{name}_{model}"] = scores[:, j]
        if rule is not None:
            picks = choose_models(scores, list(models.values()), rule)
            columns[f"model_{name}"] = np.asarray(names, dtype=object)[picks]
    return columns
