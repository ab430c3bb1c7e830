"""What an arena's stored rows are: only rows some battle uses, float16 rows independent of scale."""

from __future__ import annotations

import numpy as np
import pytest

from tests.core.core_helpers import arena_arrays, core_arena
from tests.helpers import make_arena

STORAGES = ["float32", "float16", "int8"]


def with_extra_rows(arrays: dict, rows: np.ndarray, at: int) -> dict:
    """The same arena with `rows` inserted before row `at`, which no battle points at."""
    out = dict(arrays)
    emb = arrays["prompt_embeddings"]
    out["prompt_embeddings"] = np.ascontiguousarray(np.concatenate([emb[:at], rows.astype(np.float32), emb[at:]]))
    bp = arrays["battle_prompt"]
    out["battle_prompt"] = np.where(bp >= at, bp + len(rows), bp).astype(np.int64)
    return out


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("at", ["start", "middle", "end"])
def test_a_row_no_battle_uses_changes_nothing(storage, at):
    rng = np.random.default_rng(21)
    arena = make_arena(rng, n_battles=700, dim=24, reuse=0.2)
    arrays = arena_arrays(arena)
    queries = arena["queries"]
    plain = core_arena(arena, storage)
    n = len(arrays["prompt_embeddings"])
    position = {"start": 0, "middle": n // 2, "end": n}[at]
    # Nearly each query itself: were it counted, it would be every query's most similar row.
    extra = queries[:3] * 1.001
    padded = core_arena(arena, storage, **{k: v for k, v in with_extra_rows(arrays, extra, position).items()
                                           if k in ("prompt_embeddings", "battle_prompt")})
    assert padded.n_prompts == plain.n_prompts == n  # only rows battles point at are kept
    assert padded.storage_bytes == plain.storage_bytes
    for strong, weak in [(0, 1), (4, 2)]:
        np.testing.assert_array_equal(padded.score(queries, strong, weak), plain.score(queries, strong, weak))
    np.testing.assert_array_equal(padded.model_ratings, plain.model_ratings)
    np.testing.assert_array_equal(padded.model_tier, plain.model_tier)


def test_unused_rows_are_not_read():
    # Zero or NaN rows no battle uses (padding in a hand-built file) neither count nor raise.
    rng = np.random.default_rng(22)
    arena = make_arena(rng, n_battles=300, dim=8)
    arrays = arena_arrays(arena)
    junk = np.stack([np.zeros(8), np.full(8, np.nan)])
    padded = core_arena(arena, **{k: v for k, v in with_extra_rows(arrays, junk, 5).items()
                                  if k in ("prompt_embeddings", "battle_prompt")})
    np.testing.assert_array_equal(padded.score(arena["queries"], 0, 1), core_arena(arena).score(arena["queries"], 0, 1))
    arrays["prompt_embeddings"][0] = 0
    with pytest.raises(ValueError, match="row 0 is a zero vector"):  # a used bad row still does
        core_arena(arena, prompt_embeddings=arrays["prompt_embeddings"])


def scaled(arena: dict, scale: float) -> dict:
    out = dict(arena)
    out["embeddings"] = (arena["embeddings"].astype(np.float64) * scale).astype(np.float32)
    return out


@pytest.mark.parametrize("scale", [1e-8, 1e8])
def test_float16_rows_do_not_depend_on_scale(scale):
    # Sign vectors: their unit vectors (entries +-1/8) are exact in float16, so float16 storage
    # holds exactly what float32 does and only the summation order differs.
    rng = np.random.default_rng(23)
    arena = make_arena(rng, n_battles=800, dim=64, reuse=0.2)
    arena["embeddings"] = np.sign(arena["embeddings"]).astype(np.float32)
    want = core_arena(arena, "float32").score(arena["queries"], 0, 1)
    got = core_arena(scaled(arena, scale), "float16").score(arena["queries"], 0, 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", [1e-8, 1e8, 1e-30, 1e30])
def test_float16_rows_of_any_scale_match_scale_one(scale):
    # General embeddings: float16 rounding of the unit rows (~5e-4 relative) moves win rates by
    # ~1e-4 against float32 whatever the scale; the scale itself must not add to it.
    rng = np.random.default_rng(24)
    arena = make_arena(rng, n_battles=800, dim=24, reuse=0.2)
    exact = core_arena(arena, "float32").score(arena["queries"], 0, 1)
    at_one = core_arena(arena, "float16").score(arena["queries"], 0, 1)
    got = core_arena(scaled(arena, scale), "float16").score(arena["queries"], 0, 1)
    np.testing.assert_allclose(got, at_one, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got, exact, rtol=0, atol=2e-3)
