"""The model names that carry a routing request: ``router-<router>-<threshold>`` (RouteLLM's), with
``router-<router>-auto`` for the online threshold and ``router-<router>-cost-<lambda>`` for the
cost rule; and RouteLLM's checks of a request, with its ``RoutingError`` messages."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from ..checks import is_threshold
from ..errors import RoutingError
from .rule import CostWeight

__all__ = ["AUTO", "check_route", "parse_model_name"]

#: The threshold of ``router-<router>-auto``: the online threshold.
AUTO = "auto"


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
    if not is_threshold(threshold):
        raise RoutingError(f"Invalid threshold {threshold}. Threshold must be a float between 0.0 and 1.0.")

