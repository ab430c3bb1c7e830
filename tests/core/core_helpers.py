"""Helpers of the _core tests: `_core.SwArena` objects straight from tests.helpers.make_arena's
battles (no Python router), and fresh interpreters that fail a test instead of hanging it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast import _core

from tests.helpers import CODES, TESTS


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


def run_python(code: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter that imports this checkout's package and the test helpers
    (``from tests.helpers import make_arena``, ``from tests.core.core_helpers import core_arena``),
    with no ROUTELLM_FAST_* variables unless `env` adds them; a child that hangs fails the test."""
    package_root = str(Path(rf.__file__).resolve().parent.parent)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTELLM_FAST_")}
    full_env["PYTHONPATH"] = os.pathsep.join([package_root, str(TESTS.parent)])
    full_env.update(env or {})
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True,
                              text=True, env=full_env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the child process hung (killed after {timeout} s); stderr: {e.stderr}")
