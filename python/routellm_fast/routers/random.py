"""RouteLLM's random baseline."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from ..checks import check_prompts
from .base import Router, register

__all__ = ["RandomRouter"]


@register("random")
class RandomRouter(Router):
    """RouteLLM's baseline: a uniformly random win rate per prompt."""

    NO_PARALLEL = True  # parallelism makes the random stream non-deterministic

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._rng = random.Random(seed)

    def restarted(self) -> RandomRouter:
        """A router whose stream starts again from this one's seed (RouteLLM's evaluation reseeds
        before each router's run), or this router when it has no seed."""
        return self if self.seed is None else RandomRouter(self.seed)

    def calculate_strong_win_rate(self, prompt: str) -> float:
        del prompt
        return self._rng.uniform(0, 1)

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        return np.array([self._rng.uniform(0, 1) for _ in check_prompts(prompts)], dtype=np.float64)
