"""Routers and embedders pickle to equal objects (bitwise the same answers), and score in
multiprocessing pools (spawn and fork) and after os.fork exactly as in-process."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import pickle

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast.embedders import CachedEmbedder, CallableEmbedder, embedder_for
from routellm_fast.routers.shipped import default_mf_router, default_sw_router

from tests.helpers import fork_with_threads, make_arena

PROMPTS = ["Prove that there are infinitely many primes.", "hi", "Write a haiku about autumn.",
           "Implement quicksort in Rust and explain its complexity.", "Wie spät ist es?", ""]


def hash_vectors(prompts: list[str]) -> np.ndarray:
    """A deterministic, picklable stand-in for a 384-d embedder (any text -> a fixed unit vector)."""
    out = np.empty((len(prompts), 384), dtype=np.float32)
    for i, p in enumerate(prompts):
        seed = int.from_bytes(hashlib.blake2b(p.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
        v = np.random.default_rng(seed).standard_normal(384)
        out[i] = v / np.linalg.norm(v)
    return out


def hash_embedder() -> CallableEmbedder:
    return CallableEmbedder(hash_vectors, "all-MiniLM-L6-v2", 384)


def synthetic_sw(storage: str) -> rf.SWRankingRouter:
    arena = make_arena(np.random.default_rng(7), 600, 384, n_models=6, reuse=0.3)
    return rf.SWRankingRouter.from_battles(arena["model_a"], arena["model_b"], arena["winner"], arena["embeddings"],
                                           "model-0", "model-3", num_tiers=4, storage=storage,
                                           embedding_model="all-MiniLM-L6-v2", embed=hash_embedder())


def synthetic_knn(storage: str) -> rf.KNNRouter:
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 2, (500, 3)).astype(np.float32)
    labels[rng.random((500, 3)) < 0.2] = np.nan
    labels[:, :2] = rng.integers(0, 2, (500, 2))
    return rf.KNNRouter.from_labels(hash_vectors([f"labelled {i}" for i in range(500)]), labels, ["a", "b", "c"],
                                    "a", "b", k=12, temperature=0.1, storage=storage,
                                    embedding_model="all-MiniLM-L6-v2", embed=hash_embedder())


ROUTERS = ["random", "mf (shipped, local embedder)", "sw_ranking (shipped, float16)", "sw_ranking float32",
           "sw_ranking int8", "mf with a callable", "knn float32", "knn int8"]


@pytest.fixture(scope="module")
def all_routers(shipped_mf, shipped_sw) -> dict[str, rf.Router]:
    """One router of each kind, by the names in ROUTERS."""
    return {
        "random": rf.RandomRouter(seed=3),
        "mf (shipped, local embedder)": shipped_mf,
        "sw_ranking (shipped, float16)": shipped_sw,
        "sw_ranking float32": synthetic_sw("float32"),
        "sw_ranking int8": synthetic_sw("int8"),
        "mf with a callable": default_mf_router(embed=hash_vectors),
        "knn float32": synthetic_knn("float32"),
        "knn int8": synthetic_knn("int8"),
    }


@pytest.mark.parametrize("name", ROUTERS)
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_router_round_trip_gives_bitwise_equal_answers(all_routers, name, protocol):
    router = all_routers[name]
    copy = pickle.loads(pickle.dumps(router, protocol=protocol))
    assert type(copy) is type(router) and str(copy) == str(router)
    assert copy.fingerprint == router.fingerprint
    assert copy.training_prompt_keys == router.training_prompt_keys
    if isinstance(router, rf.RandomRouter):  # the random stream continues where it was
        np.testing.assert_array_equal(copy.score(PROMPTS), router.score(PROMPTS))
        return
    np.testing.assert_array_equal(copy.score(PROMPTS), router.score(PROMPTS))
    vectors = hash_vectors([f"query {i}" for i in range(40)])
    np.testing.assert_array_equal(copy.score_embeddings(vectors), router.score_embeddings(vectors))
    assert copy.embedding_model == router.embedding_model and copy.embedding_dim == router.embedding_dim
    pair = rf.ModelPair(strong=router.strong_model, weak=router.weak_model)
    assert [copy.route(p, 0.5, pair) for p in PROMPTS] == [router.route(p, 0.5, pair) for p in PROMPTS]


def test_sw_ranking_attributes_survive(all_routers):
    router = all_routers["sw_ranking (shipped, float16)"]
    copy = pickle.loads(pickle.dumps(router))
    assert copy.storage == router.storage == "float16"
    assert copy.ratings == router.ratings and copy.model2tier == router.model2tier
    assert (copy.num_battles, copy.num_prompts, copy.arena_bytes) == (router.num_battles, router.num_prompts,
                                                                     router.arena_bytes)


def test_cached_router_pickles_with_an_empty_cache(all_routers):
    router = pickle.loads(pickle.dumps(all_routers["mf with a callable"]))
    cache = router.use_embedding_cache(100)
    before = router.score(PROMPTS)
    assert cache.misses == len(set(PROMPTS))
    copy = pickle.loads(pickle.dumps(router))
    assert isinstance(copy.embedder, CachedEmbedder) and len(copy.embedder) == 0
    np.testing.assert_array_equal(copy.score(PROMPTS), before)


def test_embedders_round_trip():
    onnx = embedder_for("default")
    copy = pickle.loads(pickle.dumps(onnx))
    assert copy is onnx  # one model per process: unpickling reuses the shared instance
    explicit = rf.OnnxEmbedder(batch_size=8)
    clone = pickle.loads(pickle.dumps(explicit))
    assert (clone.name, clone.dim, clone.batch_size, clone.max_tokens) == ("all-MiniLM-L6-v2", 384, 8, 256)
    np.testing.assert_array_equal(clone.embed(PROMPTS), explicit.embed(PROMPTS))

    cached = CachedEmbedder(explicit, max_entries=50)
    cached.embed(PROMPTS)
    cached_copy = pickle.loads(pickle.dumps(cached))
    assert cached_copy.max_entries == 50 and len(cached_copy) == 0 and cached_copy.name == cached.name
    np.testing.assert_array_equal(cached_copy.embed(PROMPTS), cached.embed(PROMPTS))

    api = rf.OpenAIEmbedder("text-embedding-3-small", base_url="http://127.0.0.1:9/v1", api_key="sk-x", timeout=3)
    api_copy = pickle.loads(pickle.dumps(api))
    assert (api_copy.name, api_copy.dim, api_copy.base_url, api_copy._client_args) == (
        api.name, api.dim, api.base_url, api._client_args)

    fn = pickle.loads(pickle.dumps(hash_embedder()))
    np.testing.assert_array_equal(fn.embed(PROMPTS), hash_vectors(PROMPTS))


def _many_prompts(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    words = ["prove", "primes", "write", "poem", "code", "sort", "history", "why", "sky", "blue", "tax", "law"]
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 12)))) + f" #{i}" for i in range(n)]


def _chunks(items: list, n: int) -> list[list]:
    size = -(-len(items) // n)
    return [items[i : i + size] for i in range(0, len(items), size)]


@fork_with_threads
@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_pool_scores_10000_prompts_as_in_process(method):
    mf = default_mf_router(embed=hash_vectors)
    sw = synthetic_sw("float16")
    prompts = _many_prompts(10_000)
    expected = {"mf": mf.score(prompts), "sw": sw.score(prompts)}  # the parent uses the core's thread pool first
    with mp.get_context(method).Pool(2) as pool:
        for name, router in (("mf", mf), ("sw", sw)):
            got = np.concatenate(pool.map(router.score, _chunks(prompts, 8)))
            np.testing.assert_array_equal(got, expected[name])


def _score_with_default_embedder(prompts: list[str]) -> np.ndarray:
    return default_sw_router().score(prompts)


def test_spawn_pool_with_the_local_embedder(shipped_sw):
    router = shipped_sw
    expected = router.score(PROMPTS)
    with mp.get_context("spawn").Pool(2) as pool:
        got = np.concatenate(pool.map(router.score, _chunks(PROMPTS, 2)))
        fresh = pool.apply(_score_with_default_embedder, (PROMPTS,))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(fresh, expected)


@fork_with_threads
def test_scores_after_os_fork(shipped_sw):
    router = shipped_sw
    expected = router.score(PROMPTS)  # the parent's ONNX and core worker threads exist now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, just score and report
        code = 1
        try:
            got = router.score(PROMPTS)
            os.write(write, got.tobytes())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    data = b""
    while chunk := os.read(read, 1 << 16):
        data += chunk
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    np.testing.assert_array_equal(np.frombuffer(data, dtype=np.float64), expected)
