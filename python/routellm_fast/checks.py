"""Argument checks shared by the whole package: one place that turns bad input into a clear exception
(embeddings, prompts, a threshold, a share of strong-model calls, a model name)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["as_embeddings", "check_prompts", "check_share", "check_threshold", "is_threshold", "lookup_model"]

_FLOAT32 = np.dtype(np.float32)


def as_embeddings(x: Any, dim: int, name: str = "embeddings") -> np.ndarray:
    """Return ``x`` as a float32 matrix ``[n, dim]`` with contiguous rows.

    float32 input with contiguous rows is used as is (no copy). Other floating dtypes (float64,
    float16) and non-contiguous arrays are converted, which costs one copy. Integer, boolean,
    complex and object arrays are refused: they are almost always a bug upstream.
    """
    if type(x) is np.ndarray and x.dtype is _FLOAT32 and x.ndim == 2 and x.shape[1] == dim:
        if x.shape[0] <= 1 or (x.strides[1] == 4 and x.strides[0] >= 4 * dim):  # the common case, checked again by the core
            return x
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array [n, {dim}], got dtype {arr.dtype}")
    if arr.ndim != 2:
        hint = " (for one vector use x[None, :])" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D [n, {dim}], got shape {arr.shape}{hint}")
    if arr.shape[1] != dim:
        raise ValueError(
            f"{name} must have dimension {dim} (the router's embedding size), got shape {arr.shape}"
        )
    if arr.dtype.metadata is not None:  # float32 with metadata attached is still float32: drop it
        arr = arr.view(np.dtype(arr.dtype.str))
    if arr.dtype != np.float32 or (arr.shape[0] > 1 and not (arr.strides[1] == 4 and arr.strides[0] >= 4 * dim)):
        arr = np.ascontiguousarray(arr, dtype=np.float32)  # other floats, reversed or strided rows: one copy
    return arr


def check_prompts(prompts: Any) -> list[str]:
    """A list of prompt strings; a bare string is refused (iterating it would route characters)."""
    if isinstance(prompts, (str, bytes)):
        raise TypeError("prompts must be a sequence of strings, got a single string; wrap it in a list")
    if not isinstance(prompts, Sequence) and not hasattr(prompts, "__iter__"):
        raise TypeError(f"prompts must be a sequence of strings, got {type(prompts).__name__}")
    out = list(prompts)
    for i, p in enumerate(out):
        if not isinstance(p, str):
            raise TypeError(f"prompt {i} must be a str, got {type(p).__name__}")
    return out


def _is_real(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def is_threshold(value: Any) -> bool:
    """Whether ``value`` is a routing threshold: a real number (not a bool) in [0, 1]."""
    if not _is_real(value):
        return False
    try:
        return math.isfinite(value) and 0.0 <= value <= 1.0
    except OverflowError:  # an int too large for a float
        return False


def check_threshold(threshold: Any) -> float:
    """A routing threshold: a real number in [0, 1] (the one check every caller uses)."""
    if not _is_real(threshold):
        raise TypeError(f"threshold must be a number in [0, 1], got {type(threshold).__name__}")
    if not is_threshold(threshold):
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    return float(threshold)


def check_share(strong_model_pct: Any) -> float:
    """A share of strong-model calls: a number in [0, 1]."""
    pct = float(strong_model_pct)
    if not 0.0 <= pct <= 1.0:
        raise ValueError(f"strong_model_pct must be in [0, 1], got {strong_model_pct!r}")
    return pct


def lookup_model(name: Any, table: Mapping[str, int], role: str) -> int:
    """Index of model ``name`` in ``table``; an unknown name gets an error listing close matches."""
    if not isinstance(name, str):
        raise TypeError(f"{role} must be a model name (str), got {type(name).__name__}")
    try:
        return table[name]
    except KeyError:
        lowered = name.lower()
        close = [m for m in table if lowered in m.lower()]  # "mixtral" -> "mixtral-8x7b-instruct-v0.1"
        close += [m for m in difflib.get_close_matches(name, list(table), n=5, cutoff=0.5) if m not in close]
        close = close[:5]
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown {role} {name!r}: not among the router's {len(table)} models{hint}"
        ) from None
