"""The prompt-length baseline: a one-line rule a router has to beat.

Its win rate is ``sign * len(prompt)`` (characters): with ``sign = +1`` longer prompts go to the
strong model first, with ``-1`` shorter ones. RouteLLM's metrics depend on the order of the win
rates only, so every monotone function of length routes as one of these two; fitting the baseline
is choosing the sign, the one with the higher mean APGR on the training items.

What it is fitted on, never the evaluated items:

* a benchmark with a training half (MMLU, GSM8K, CRUX, MATH level 5:
  :meth:`Benchmark.training_half`, the half routers are trained on): that half. The baseline
  records those prompts as its training prompts, so the evaluation leaves them out as it leaves
  out a router's;
* a benchmark without one (MT Bench, your own files): the training halves of the bundled MMLU,
  GSM8K and CRUX together (mean APGR over the three).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from ..formats.prompt_keys import prompt_key
from ..routers.base import Router
from .benchmarks import Benchmark, load_gsm8k, load_mmlu
from .metrics import evaluate_win_rates
from .zeroeval import load_crux

__all__ = ["LENGTH", "LengthBaseline", "fit_length_baseline", "length_baseline_for"]

#: The baseline's method name in reports.
LENGTH = "length"


class LengthBaseline(Router):
    """Win rate ``sign * len(prompt)``; ``training_prompt_keys`` are the prompts it was fitted on."""

    def __init__(self, sign: int, fitted_on: str, training_prompts: Sequence[str] = (),
                 training_apgr: dict[int, float] | None = None) -> None:
        if sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1, got {sign!r}")
        self.sign, self.fitted_on = sign, fitted_on
        self.training_apgr = dict(training_apgr or {})
        self.training_prompt_keys = frozenset(prompt_key(p) for p in training_prompts)

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        return self.sign * np.array([len(p) for p in prompts], dtype=np.float64)

    def describe(self) -> str:
        """e.g. ``length baseline: shorter prompts to the strong model (fitted on ...: APGR 0.55 vs 0.45)``."""
        rule = "longer" if self.sign > 0 else "shorter"
        fit = ""
        if self.training_apgr:
            fit = f": training APGR {self.training_apgr[self.sign]:.3f} vs {self.training_apgr[-self.sign]:.3f} reversed"
        return f"length baseline: {rule} prompts to the strong model first (sign fitted on {self.fitted_on}{fit})"

    def __str__(self) -> str:
        return LENGTH


def fit_length_baseline(training: Sequence[Benchmark], fitted_on: str, num_results: int = 10) -> LengthBaseline:
    """The sign with the higher mean APGR over the ``training`` benchmarks (their items only); ties
    go to +1."""
    if not training:
        raise ValueError("the length baseline needs at least one training benchmark")
    mean = {}
    for sign in (1, -1):
        mean[sign] = float(np.mean([
            evaluate_win_rates(b, {LENGTH: sign * np.array([len(p) for p in b.prompts], dtype=np.float64)},
                               num_results).metrics[LENGTH].apgr for b in training]))
    sign = 1 if mean[1] >= mean[-1] else -1
    prompts = [p for b in training for p in b.prompts]
    return LengthBaseline(sign, fitted_on, prompts, mean)


@cache
def _pooled(num_results: int) -> LengthBaseline:
    parts = [load_mmlu().training_half(), load_gsm8k().training_half(), load_crux().training_half()]
    return fit_length_baseline(parts, "the training halves of the bundled MMLU, GSM8K and CRUX", num_results)


def length_baseline_for(benchmark: Benchmark, num_results: int = 10) -> LengthBaseline:
    """The length baseline for ``benchmark``: fitted on its training half, or where it has none on
    the training halves of the bundled MMLU, GSM8K and CRUX (see the module docstring)."""
    if benchmark.training_salt is not None:
        half = benchmark.training_half()
        return fit_length_baseline([half], f"{benchmark.name}'s training half ({len(half)} items)", num_results)
    return _pooled(num_results)
