"""In-process micro-benchmarks (pytest-benchmark): ``pytest benchmarks --benchmark-only``.

Not part of the test run (``testpaths = ["tests"]``) and apart from ``run.py``, which times RouteLLM
beside us in one run. These time our own hot paths one at a time, with pytest-benchmark's
calibration, warm-up and statistics (``--benchmark-compare`` tracks them across commits):

* mf: one decision and a batch of 10,000 embeddings (the shipped router, 384-d);
* sw_ranking: one decision and a batch of 64 per storage (float32, float16, int8) on a synthetic
  20,000-battle arena of 384-d prompts, and on the shipped arena;
* the local embedder: one prompt and a batch of 32;
* ``Controller.route`` end to end: text to embedding to win rate to model, no cache.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

import routellm_fast as rf  # noqa: E402
from routellm_fast.formats.tables import read_prompts  # noqa: E402
from routellm_fast.routers.shipped import (
    default_mf_router,
    default_sw_router,
    default_threshold,
)

DIM = 384
PROMPT = "Prove that there are infinitely many primes, then explain the proof to a ten-year-old."


def unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return unit_rows(np.random.default_rng(0), 10_000)


@pytest.fixture(scope="module")
def mf() -> rf.MatrixFactorizationRouter:
    return default_mf_router()


@pytest.fixture(scope="module")
def synthetic_arena() -> dict:
    """20,000 battles over 10 models, 5,000 distinct clustered prompts, outcomes by cluster."""
    rng = np.random.default_rng(1)
    centers = unit_rows(rng, 8)
    cluster = rng.integers(0, 8, 5_000)
    prompts = centers[cluster] + 0.5 * unit_rows(rng, 5_000)
    battle_prompt = rng.integers(0, 5_000, 20_000)
    strength = rng.normal(0, 1, 10)
    a = rng.integers(0, 10, 20_000)
    b = (a + rng.integers(1, 10, 20_000)) % 10
    p = 1 / (1 + np.exp(-(strength[a] - strength[b])))
    winner = np.where(rng.random(20_000) < 0.15, "tie", np.where(rng.random(20_000) < p, "model_a", "model_b"))
    names = [f"model-{i}" for i in range(10)]
    return {"model_a": [names[i] for i in a], "model_b": [names[i] for i in b], "winner": list(winner),
            "embeddings": prompts[battle_prompt].astype(np.float32)}


@pytest.fixture(scope="module", params=["float32", "float16", "int8"])
def sw(request, synthetic_arena) -> rf.SWRankingRouter:
    arena = synthetic_arena
    return rf.SWRankingRouter.from_battles(arena["model_a"], arena["model_b"], arena["winner"], arena["embeddings"],
                                           "model-0", "model-1", storage=request.param)


@pytest.fixture(scope="module")
def shipped_sw() -> rf.SWRankingRouter:
    return default_sw_router()


def test_mf_single(benchmark, mf, queries):
    one = queries[:1]
    benchmark(mf.score_embeddings, one)


def test_mf_batch_10000(benchmark, mf, queries):
    out = benchmark(mf.score_embeddings, queries)
    assert out.shape == (10_000,)


def test_sw_single(benchmark, sw, queries):
    benchmark.extra_info.update(storage=sw.storage, battles=sw.num_battles, arena_bytes=sw.arena_bytes)
    benchmark(sw.score_embeddings, queries[:1])


def test_sw_batch_64(benchmark, sw, queries):
    benchmark.extra_info.update(storage=sw.storage, battles=sw.num_battles, per_decision="time / 64")
    out = benchmark(sw.score_embeddings, queries[:64])
    assert out.shape == (64,)


def test_sw_shipped_single(benchmark, shipped_sw, queries):
    benchmark.extra_info.update(storage=shipped_sw.storage, battles=shipped_sw.num_battles)
    benchmark(shipped_sw.score_embeddings, queries[:1])


def test_sw_shipped_batch_64(benchmark, shipped_sw, queries):
    benchmark(shipped_sw.score_embeddings, queries[:64])


def test_embedder_one_prompt(benchmark, shipped_sw):
    embedder = shipped_sw.embedder
    out = benchmark(embedder.embed, [PROMPT])
    assert out.shape == (1, DIM)


def test_embedder_batch_32(benchmark, shipped_sw):
    embedder, prompts = shipped_sw.embedder, read_prompts()[:32]
    out = benchmark(embedder.embed, prompts)
    assert out.shape == (32, DIM)


def test_route_end_to_end(benchmark):
    """``Controller.route``: embed the prompt, score it, pick the model (no embedding cache)."""
    controller = rf.Controller(["sw_ranking"], "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1")
    threshold = default_threshold(0.5, "sw_ranking")
    model = benchmark(controller.route, PROMPT, "sw_ranking", threshold)
    assert model in ("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1")
