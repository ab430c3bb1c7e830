"""Routing thresholds: offline calibration as RouteLLM does it, and an online controller that keeps
the share of strong-model calls near a target (what RouteLLM's issue #36 asks for)."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .routers import Router

__all__ = ["calibrate_threshold", "OnlineThreshold", "read_prompts", "SAMPLE_PROMPTS"]

#: A bundled sample of real prompts (AlpacaEval's 805 instructions; see data/NOTICE.md).
SAMPLE_PROMPTS = Path(__file__).parent / "data" / "sample_prompts.jsonl"


def _check_pct(strong_model_pct: float) -> float:
    pct = float(strong_model_pct)
    if not 0.0 <= pct <= 1.0:
        raise ValueError(f"strong_model_pct must be in [0, 1], got {strong_model_pct!r}")
    return pct


def calibrate_threshold(router: Router, prompts: Sequence[str], strong_model_pct: float) -> float:
    """The threshold that sends ``strong_model_pct`` of ``prompts`` to the strong model: the
    ``1 - strong_model_pct`` quantile of their win rates (linear interpolation, as RouteLLM's
    ``calibrate_threshold`` takes it with pandas)."""
    pct = _check_pct(strong_model_pct)
    win_rates = np.asarray(router.score(list(prompts)), dtype=np.float64)
    if win_rates.size == 0:
        raise ValueError("no prompts to calibrate on")
    return float(np.quantile(win_rates, 1.0 - pct))


def read_prompts(path: str | Path | None = None) -> list[str]:
    """Prompts from a jsonl, CSV or parquet file with a ``prompt`` column (default: the bundled sample)."""
    path = Path(path) if path is not None else SAMPLE_PROMPTS
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {str(path)!r} does not exist")
    if path.suffix in (".jsonl", ".json"):
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        if not all(isinstance(r, dict) and isinstance(r.get("prompt"), str) for r in rows):
            raise ValueError(f"{path}: every line must be a JSON object with a string 'prompt'")
        return [r["prompt"] for r in rows]
    from .arena import _read_table

    table = _read_table(path)
    if "prompt" not in table.column_names:
        raise ValueError(f"{path} has no 'prompt' column (columns: {', '.join(table.column_names)})")
    prompts = table.column("prompt").to_pylist()
    if not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"{path}: 'prompt' must hold strings")
    return prompts


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
            strong = win_rate >= threshold
            self._win_rates.append(float(win_rate))
            self._strong.append(strong)
            return strong, threshold

    @property
    def strong_share(self) -> float:
        """The share of strong-model calls over the window (0 before any decision)."""
        with self._lock:
            return sum(self._strong) / len(self._strong) if self._strong else 0.0
