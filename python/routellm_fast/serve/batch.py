"""Scoring whole batches of prompts into table columns: what ``routellm-fast score`` writes, locally
or on Ray."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..decision.rule import CostWeight, choose_models

__all__ = ["score_columns"]


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

