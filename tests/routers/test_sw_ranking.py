"""sw_ranking against a float64 NumPy reference of RouteLLM's math (tolerance 1e-8 on win rates)."""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest
import routellm_fast as rf

from tests import reference as ref
from tests.helpers import CODES, make_arena


def build(arena, strong="model-0", weak="model-1", **kw):
    return rf.SWRankingRouter.from_battles(
        arena["model_a"], arena["model_b"], arena["winner"], arena["embeddings"], strong, weak, **kw
    )


def reference_win_rates(router, arena, queries, strong=None, weak=None):
    tier = router.model2tier
    ta = np.array([tier[m] for m in arena["model_a"]])
    tb = np.array([tier[m] for m in arena["model_b"]])
    outcome = np.array([CODES[w] for w in arena["winner"]])
    n_tiers = max(tier.values()) + 1
    s, w = tier[strong or router.strong_model], tier[weak or router.weak_model]
    return np.array([ref.sw_win_rate(q, arena["embeddings"], ta, tb, outcome, n_tiers, s, w) for q in queries])


def reference_tiers(sorted_ratings, num_tiers):
    """compute_tiers' dynamic program, written from its definition (all start points, all tiers)."""
    r = list(sorted_ratings)
    n, m = len(r), num_tiers
    dp = np.zeros((n, n, m))
    split = np.zeros((n, n, m), dtype=int)
    for i in range(n):
        for j in range(i + 1, n):
            dp[i, j, 0] = np.var(r[i : j + 1])
    for t in range(1, m):
        for i in range(n):
            for j in range(i + 1, n):
                dp[i, j, t] = 1e9
                for cut in range(i, j):
                    if dp[i, j, t] > dp[i, cut, t - 1] + dp[cut + 1, j, 0]:
                        dp[i, j, t] = dp[i, cut, t - 1] + dp[cut + 1, j, 0]
                        split[i, j, t] = cut
    ends, cur = [], n
    for t in range(m - 1, 0, -1):
        ends.append(split[0, cur - 1, t])
        cur = ends[-1] + 1
    ends = ends[::-1] + [n - 1]
    tiers, start = [], 0
    for t, end in enumerate(ends):
        tiers += [t] * max(0, end + 1 - start)
        start = end + 1
    return tiers


@pytest.mark.parametrize("dim", [1, 7, 19, 97, 131])
def test_win_rates_match_float64_reference(simd, dim):
    rng = np.random.default_rng(dim)
    arena = make_arena(rng, n_battles=600, dim=dim, reuse=0.2)
    router = build(arena)
    got = router.score_embeddings(arena["queries"])
    want = reference_win_rates(router, arena, arena["queries"])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)
    assert router.num_prompts < router.num_battles  # repeated prompts share one row


def test_global_ratings_and_tiers_match_reference():
    rng = np.random.default_rng(1)
    arena = make_arena(rng, n_battles=2000, dim=16, n_models=25)
    router = build(arena)
    idx = {m: i for i, m in enumerate(router.models)}
    ratings = ref.elo_ratings(
        [idx[m] for m in arena["model_a"]], [idx[m] for m in arena["model_b"]],
        [CODES[w] for w in arena["winner"]], len(router.models),
    )
    got = np.array([router.ratings[m] for m in router.models])
    np.testing.assert_allclose(got, ratings, rtol=0, atol=1e-6)
    order = list(router.ratings)  # best first
    assert [router.ratings[m] for m in order] == sorted(router.ratings.values(), reverse=True)
    assert [router.model2tier[m] for m in order] == reference_tiers([router.ratings[m] for m in order], 10)


@pytest.mark.parametrize("num_tiers", [1, 2, 3, 10, 40])
def test_tiers_for_any_count(num_tiers):
    rng = np.random.default_rng(num_tiers)
    arena = make_arena(rng, n_battles=900, dim=8, n_models=14)
    router = build(arena, num_tiers=num_tiers)
    order = list(router.ratings)
    assert [router.model2tier[m] for m in order] == reference_tiers([router.ratings[m] for m in order], num_tiers)
    got = router.score_embeddings(arena["queries"][:4])
    np.testing.assert_allclose(got, reference_win_rates(router, arena, arena["queries"][:4]), atol=1e-8)


def test_llama_anchor_shifts_ratings_only():
    rng = np.random.default_rng(3)
    arena = make_arena(rng, n_battles=800, dim=8, n_models=6)
    plain = build(arena)
    renamed = {m: ("llama-2-70b-chat" if m == "model-5" else m) for m in arena["names"]}
    arena2 = dict(arena, model_a=[renamed[m] for m in arena["model_a"]], model_b=[renamed[m] for m in arena["model_b"]])
    anchored = build(arena2)
    assert anchored.ratings["llama-2-70b-chat"] == pytest.approx(1082.0, abs=1e-9)
    shift = anchored.ratings["llama-2-70b-chat"] - plain.ratings["model-5"]
    for m in plain.ratings:
        assert anchored.ratings[renamed[m]] == pytest.approx(plain.ratings[m] + shift, abs=1e-9)
    np.testing.assert_array_equal(anchored.score_embeddings(arena["queries"]), plain.score_embeddings(arena["queries"]))


def test_same_tier_pair_is_one_half():
    rng = np.random.default_rng(4)
    arena = make_arena(rng, n_battles=500, dim=8, n_models=20)
    router = build(arena, num_tiers=3)
    by_tier: dict[int, list[str]] = {}
    for m, t in router.model2tier.items():
        by_tier.setdefault(t, []).append(m)
    pair = next(ms for ms in by_tier.values() if len(ms) >= 2)
    same = build(arena, strong=pair[0], weak=pair[1], num_tiers=3)
    np.testing.assert_array_equal(same.score_embeddings(arena["queries"]), 0.5)
    assert same.calculate_strong_win_rate.__self__ is same


def test_battle_inside_one_tier_uses_routellm_feature_overwrite():
    # With few tiers most battles are inside one tier; RouteLLM's design matrix then holds only
    # model_b's -ln(10) in that tier's column. The reference builds that matrix literally.
    rng = np.random.default_rng(5)
    arena = make_arena(rng, n_battles=700, dim=12, n_models=8)
    router = build(arena, strong="model-0", weak="model-3", num_tiers=2)
    got = router.score_embeddings(arena["queries"])
    np.testing.assert_allclose(got, reference_win_rates(router, arena, arena["queries"]), atol=1e-8)


def test_batch_single_and_thread_count_agree_exactly():
    rng = np.random.default_rng(6)
    arena = make_arena(rng, n_battles=3000, dim=40)
    router = build(arena)
    batch = router.score_embeddings(arena["queries"])
    singles = np.array([router.score_embeddings(q[None, :])[0] for q in arena["queries"]])
    np.testing.assert_array_equal(batch, singles)
    threads = rf.backend_info()["threads"]
    try:
        rf.set_num_threads(1)
        np.testing.assert_array_equal(router.score_embeddings(arena["queries"]), batch)
    finally:
        rf.set_num_threads(threads)


def test_negative_max_similarity_follows_formula():
    rng = np.random.default_rng(7)
    arena = make_arena(rng, n_battles=400, dim=6)
    arena["embeddings"] = np.abs(arena["embeddings"]) + 0.1  # positive orthant
    router = build(arena)
    queries = -(np.abs(arena["queries"][:4]) + 0.1)  # every similarity negative
    got = router.score_embeddings(queries)
    np.testing.assert_allclose(got, reference_win_rates(router, arena, queries), atol=1e-8)


def test_zero_max_similarity_is_an_error():
    rng = np.random.default_rng(8)
    arena = make_arena(rng, n_battles=300, dim=6)
    arena["embeddings"][:, 3:] = 0.0
    arena["embeddings"][:, :3] = np.abs(arena["embeddings"][:, :3]) + 0.1
    router = build(arena)
    query = np.array([[0, 0, 0, 1, 2, 3]], dtype=np.float32)  # orthogonal to every arena prompt
    with pytest.raises(ValueError, match="largest cosine similarity to the arena is exactly 0"):
        router.score_embeddings(query)


@pytest.mark.parametrize("storage,tol", [("float16", 2e-3), ("int8", 1e-2)])
def test_compressed_storage_error_is_bounded(simd, storage, tol):
    rng = np.random.default_rng(9)
    arena = make_arena(rng, n_battles=3000, dim=256, reuse=0.1)
    exact = build(arena).score_embeddings(arena["queries"])
    small = build(arena, storage=storage)
    assert small.storage == storage
    assert small.arena_bytes == small.num_prompts * 256 * (2 if storage == "float16" else 1)
    err = np.max(np.abs(small.score_embeddings(arena["queries"]) - exact))
    assert err < tol


def test_huge_batch_and_empty_batch():
    rng = np.random.default_rng(10)
    arena = make_arena(rng, n_battles=50, dim=4, n_models=4)
    router = build(arena, strong="model-0", weak="model-2")
    assert router.score_embeddings(np.zeros((0, 4), np.float32)).shape == (0,)
    queries = rng.normal(size=(100_000, 4)).astype(np.float32)
    out = router.score_embeddings(queries)
    assert out.shape == (100_000,) and out.dtype == np.float64
    assert np.all((out > 0) & (out < 1))
    np.testing.assert_array_equal(out[-5:], router.score_embeddings(queries[-5:]))


def test_score_embeddings_releases_the_gil():
    rng = np.random.default_rng(11)
    arena = make_arena(rng, n_battles=20000, dim=256)
    router = build(arena)
    queries = np.repeat(arena["queries"], 4, axis=0)
    ticks = 0
    done = threading.Event()

    def ticker():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0)

    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        before = ticks
        for _ in range(3):
            router.score_embeddings(queries)  # calls of milliseconds each
        during = ticks - before
    finally:
        done.set()
        thread.join()
    # The other thread kept running while the core worked; holding the GIL, it could not tick at
    # all (a C++ call does not give it up at Python's switch interval), so any clear count shows it.
    assert during > 10


def test_concurrent_callers_get_the_same_answers():
    rng = np.random.default_rng(12)
    arena = make_arena(rng, n_battles=4000, dim=64)
    router = build(arena)
    want = router.score_embeddings(arena["queries"])
    results: list[np.ndarray] = []

    def work():
        results.append(router.score_embeddings(arena["queries"]))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6
    for r in results:
        np.testing.assert_array_equal(r, want)


def test_scoring_works_in_a_forked_child():
    import os
    import pickle

    rng = np.random.default_rng(13)
    arena = make_arena(rng, n_battles=3000, dim=32)
    router = build(arena)
    want = router.score_embeddings(arena["queries"])  # the parent's pool threads are running now
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about fork() in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: its pool must be rebuilt, not waited on
        try:
            os.write(write_end, pickle.dumps(router.score_embeddings(arena["queries"])))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    np.testing.assert_array_equal(pickle.loads(data), want)


def test_battles_of_a_model_against_itself_follow_routellm():
    # RouteLLM's design matrix writes model_b's -ln(10) over model_a's +ln(10) when both are the same
    # model: such battles pin that model's absolute rating. The reference builds the matrix literally.
    rng = np.random.default_rng(14)
    arena = make_arena(rng, n_battles=900, dim=10, n_models=6)
    for i in range(0, 900, 9):
        arena["model_b"][i] = arena["model_a"][i]
    router = build(arena, strong="model-0", weak="model-4")
    idx = {m: i for i, m in enumerate(router.models)}
    ratings = ref.elo_ratings([idx[m] for m in arena["model_a"]], [idx[m] for m in arena["model_b"]],
                              [CODES[w] for w in arena["winner"]], len(router.models))
    np.testing.assert_allclose([router.ratings[m] for m in router.models], ratings, rtol=0, atol=1e-6)
    got = router.score_embeddings(arena["queries"])
    np.testing.assert_allclose(got, reference_win_rates(router, arena, arena["queries"]), rtol=0, atol=1e-8)
