"""Builds `_core.SwArena` objects straight from conftest.make_arena's battles (no Python router)."""

from __future__ import annotations

import numpy as np

from routellm_fast import _core

CODES = {"model_a": 0, "model_b": 1, "tie": 2}


def arena_arrays(arena: dict) -> dict:
    """The constructor's arrays: one embedding row per distinct prompt, battles pointing at rows."""
    index = {m: i for i, m in enumerate(arena["names"])}
    battle_prompt, firsts = _core.dedup_rows(arena["embeddings"])
    return {
        "prompt_embeddings": np.ascontiguousarray(arena["embeddings"][firsts]),
        "battle_prompt": battle_prompt,
        "model_a": np.array([index[m] for m in arena["model_a"]], dtype=np.int32),
        "model_b": np.array([index[m] for m in arena["model_b"]], dtype=np.int32),
        "outcome": np.array([CODES[w] for w in arena["winner"]], dtype=np.int8),
        "n_models": len(arena["names"]),
    }


def core_arena(arena: dict, storage: str = "float32", **overrides) -> _core.SwArena:
    arrays = arena_arrays(arena)
    arrays.update(overrides)
    return _core.SwArena(**arrays, storage=storage)
