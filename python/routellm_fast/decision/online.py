"""How a threshold is found online: a sliding window that keeps the share of strong-model calls near a
target (what RouteLLM's issue #36 asks for)."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from ..checks import check_share
from .rule import is_strong

__all__ = ["OnlineThreshold"]


class OnlineThreshold:
    """Keeps the share of strong-model calls near ``target_strong_pct`` over a sliding window.

    The threshold is the ``1 - target`` quantile of the last ``window`` win rates seen, so a
    shift in traffic (harder or easier prompts) moves it. Until ``min_samples`` win rates have been
    seen, ``initial`` is used. Thread-safe.
    """

    def __init__(self, target_strong_pct: float, window: int = 1000, initial: float = 0.5, min_samples: int = 20) -> None:
        self.target = check_share(target_strong_pct)
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

