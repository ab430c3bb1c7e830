"""Argument checks shared by the whole package: one place that turns bad input into a clear exception
(embeddings, prompts, a threshold, a share of strong-model calls, a model name)."""

from __future__ import annotations

import difflib
import inspect
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import numpy as np

__all__ = [
    "as_embeddings",
    "check_arguments",
    "check_model_ids",
    "check_prompts",
    "check_share",
    "check_threshold",
    "is_threshold",
    "lookup_model",
]

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
    """A list of prompt strings from a list, a tuple, another sequence, a 1-D numpy array (or a
    pandas Series) or an iterator of str. A bare string or bytes is refused (iterating it would route characters), and so
    are a dict (its keys) and a set (no order: win rates could not be matched to prompts)."""
    if isinstance(prompts, (str, bytes, bytearray, memoryview)):
        kind = "" if isinstance(prompts, str) else f" ({type(prompts).__name__})"
        raise TypeError(f"prompts must be a list of strings, got a single string{kind}; wrap it in a list")
    if isinstance(prompts, (Mapping, AbstractSet)):
        raise TypeError(f"prompts must be a list of strings, got a {type(prompts).__name__} (a dict or a set has no "
                        "prompt order); pass a list")
    if isinstance(prompts, np.ndarray) and prompts.ndim != 1:
        raise TypeError(f"prompts must be a list of strings, got a {prompts.ndim}-D array")
    if not isinstance(prompts, (Sequence, np.ndarray, Iterator)) and not hasattr(prompts, "__array__"):  # pandas
        raise TypeError(f"prompts must be a list of strings, got {type(prompts).__name__}")
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


def check_model_ids(model_ids: Any, rows: int | None = None, name: str = "model_ids") -> dict[str, int]:
    """A model table: model names (str) to distinct rows (int, not bool, >= 0 and, when ``rows`` is
    known, below it). ``name`` says where the table came from in errors."""
    if not isinstance(model_ids, Mapping):
        raise TypeError(f"{name} must map model names to rows (a dict), got {type(model_ids).__name__} {model_ids!r}")
    seen: dict[int, str] = {}
    for model, row in model_ids.items():
        if not isinstance(model, str) or not model:
            raise TypeError(f"{name}: model names must be non-empty strings, got {model!r}")
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)):
            raise TypeError(f"{name}[{model!r}] must be a row number (int), got {type(row).__name__} {row!r}")
        if row < 0 or (rows is not None and row >= rows):
            where = f"the checkpoint's {rows} models (rows 0..{rows - 1})" if rows is not None else "rows >= 0"
            raise ValueError(f"{name}[{model!r}] is row {row}, outside {where}")
        if int(row) in seen:
            raise ValueError(f"{name}: {seen[int(row)]!r} and {model!r} both map to row {row}")
        seen[int(row)] = model
    return {model: int(row) for model, row in model_ids.items()}


#: Annotations :func:`check_arguments` checks, and the types each accepts.
_SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int, np.integer), "float": (int, float, np.integer, np.floating), "bool": (bool,),
    "None": (type(None),), "os.PathLike[str]": (os.PathLike,), "Mapping[str, int]": (Mapping,),
    "Sequence[str]": (list, tuple),
}


def check_arguments(func: Any, values: Mapping[Any, Any], where: str) -> None:
    """Check settings (``values``: argument name -> value, e.g. a router's entry of a config file)
    against the simple annotations of ``func``'s parameters (str, int, float, bool, None, paths, a
    mapping, a list): a wrong type is a TypeError naming ``where`` and the key, before ``func`` runs
    (where it could fail anywhere, with any error). Arguments with other annotations are left to
    ``func``."""
    params = inspect.signature(func).parameters
    for key, value in values.items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: setting names must be strings, got {key!r}")
        param = params.get(key)
        if param is None or not isinstance(param.annotation, str):
            continue
        options = [o.strip() for o in param.annotation.split("|")]
        if not all(o in _SIMPLE_TYPES for o in options):
            continue
        bool_ok = "bool" in options
        if not any(isinstance(value, _SIMPLE_TYPES[o]) for o in options) or (isinstance(value, bool) and not bool_ok):
            raise TypeError(f"{where}: {key} must be {param.annotation}, got {type(value).__name__} {value!r}")
