"""The model names that carry a routing request: ``router-<router>-<threshold>`` (RouteLLM's), with
``router-<router>-<pct>%`` for the calibrated threshold of a share of strong calls,
``router-<router>-auto`` for the online threshold and ``router-<router>-cost-<lambda>`` for the
cost rule; and RouteLLM's checks of a request, with its ``RoutingError`` messages."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from ..checks import is_threshold
from ..errors import RoutingError
from .rule import CostWeight

__all__ = ["AUTO", "StrongShare", "check_route", "parse_model_name", "parse_threshold"]

#: The threshold of ``router-<router>-auto``: the online threshold.
AUTO = "auto"


@dataclass(frozen=True)
class StrongShare:
    """A share of strong-model calls asked for instead of a threshold (``router-mf-50%``, ``route
    --threshold 50%``): the router's calibrated threshold for it on its calibration prompts (the
    bundled sample prompts; :func:`routellm_fast.decision.calibration.sample_win_rates`)."""

    value: float  # in [0, 1]

    def __str__(self) -> str:
        return f"{self.value * 100:g}%"


def parse_threshold(text: str) -> float | StrongShare:
    """``"0.116"`` -> 0.116; ``"50%"`` -> ``StrongShare(0.5)`` (a percentage in [0, 100]). RoutingError
    for anything else; the number's range is checked by :func:`check_route`."""
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            pct = math.nan
        if not (math.isfinite(pct) and 0.0 <= pct <= 100.0):
            raise RoutingError(f"Share {text} must be a percentage of strong-model calls between 0% and 100%.")
        return StrongShare(pct / 100.0)
    try:
        return float(text)
    except ValueError:
        raise RoutingError(f"Threshold {text} must be a float.") from None  # RouteLLM's message


_MODEL_FORMAT = "Model name must be of the format 'router-[router name]-[threshold]."


def parse_model_name(model: Any) -> tuple[str, float | str]:
    """``"router-mf-0.116"`` -> ``("mf", 0.116)``; ``"router-mf-50%"`` -> ``("mf", StrongShare(0.5))``;
    ``"router-mf-auto"`` -> ``("mf", AUTO)``. RouteLLM's parsing and messages (the threshold is checked
    by :func:`check_route`)."""
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
    return router, parse_threshold(threshold_text)


def check_route(routers: Collection[str], router: Any, threshold: Any) -> None:
    """RouteLLM's checks of a routing request, with its messages: a known router and a threshold in
    [0, 1] (or :data:`AUTO`, a :class:`StrongShare` or a cost weight)."""
    if router is None or threshold is None:
        raise RoutingError("Router or threshold unspecified.")
    if router not in routers:
        raise RoutingError(f"Invalid router {router}. Available routers are {list(routers)}.")
    if threshold == AUTO or isinstance(threshold, (CostWeight, StrongShare)):
        return
    if not is_threshold(threshold):
        raise RoutingError(f"Invalid threshold {threshold}. Threshold must be a float between 0.0 and 1.0.")

