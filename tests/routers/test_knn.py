"""The knn router and its compiled index against a NumPy reference, its errors, its file and the
shipped knn routers.

Tolerances: float32 rows reproduce the float64 reference's similarities to 1e-12 (exact products
summed in double) and its shares and win rates to 1e-12; float16 and int8 rows are compared with
the same reference run on their decoded rows, to 1e-5 (the kernels sum them in float lanes, ~1e-7
relative, which exp(sim / temperature) magnifies by 1 / temperature).
"""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast import _core
from routellm_fast.errors import BadFileError
from routellm_fast.formats.knn import KnnFile, load_knn, save_knn
from routellm_fast.routers import KNNRouter

MODELS = ["strong", "weak", "other"]


def reference_topk(rows: np.ndarray, factor: np.ndarray, queries: np.ndarray, eligible: np.ndarray,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 similarities (rows as stored, times their factor, over the query's norm: the cosine
    for float32 rows, factor 1 / ||row||); the k highest among eligible rows, equal ones by lower row."""
    q = queries.astype(np.float64)
    sims = (q @ rows.astype(np.float64).T) * factor[None, :] / np.linalg.norm(q, axis=1)[:, None]
    idx = np.empty((len(q), k), dtype=np.int64)
    for i in range(len(q)):
        cand = np.flatnonzero(eligible)
        order = np.lexsort((cand, -sims[i, cand]))  # by similarity descending, then row ascending
        idx[i] = cand[order[:k]]
    return idx, np.take_along_axis(sims, idx, axis=1)


def reference_shares(stored, labels, queries, models, k, temperature):
    """Each model's softmax(sim / temperature)-weighted mean label over the reference neighbours;
    ``stored`` = (rows as stored, row factors)."""
    eligible = ~np.isnan(labels[:, models]).any(axis=1)
    idx, sims = reference_topk(*stored, queries, eligible, k)
    w = np.exp((sims - sims[:, :1]) / temperature)
    w /= w.sum(axis=1, keepdims=True)
    return np.einsum("qk,qkm->qm", w, labels[idx][:, :, models].astype(np.float64))


def stored(index: _core.KnnIndex) -> tuple[np.ndarray, np.ndarray]:
    """The rows as the index stores them (float32, float16 unit rows or int8) and their factors."""
    _, _, rows, factor, _ = index.__getstate__()
    return rows, factor


def make_data(rng, n, dim, missing=0.2):
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    labels = rng.integers(0, 2, (n, len(MODELS))).astype(np.float32)
    labels[rng.random((n, len(MODELS))) < missing] = np.nan
    labels[np.isnan(labels).all(axis=1), 0] = 1.0
    return emb, labels


@pytest.mark.parametrize("n,dim", [(1, 5), (7, 16), (97, 33), (989, 64)])
@pytest.mark.parametrize("storage", ["float32", "float16", "int8"])
def test_index_matches_the_numpy_reference(simd, n, dim, storage):
    rng = np.random.default_rng(n * 31 + dim)
    emb, labels = make_data(rng, n, dim)
    labels[:, 0] = rng.integers(0, 2, n)  # the pair is labelled on every row
    labels[:, 1] = rng.integers(0, 2, n)
    index = _core.KnnIndex(emb, labels, storage)
    queries = rng.standard_normal((13, dim)).astype(np.float32)
    rows = stored(index)
    tol = 1e-12 if storage == "float32" else 1e-5
    for k in sorted({1, min(5, n), n}):
        got_idx, got_sims = index.topk(queries, k, [0, 1])
        want_idx, want_sims = reference_topk(*rows, queries, np.ones(n, bool), k)
        np.testing.assert_array_equal(got_idx, want_idx)
        np.testing.assert_allclose(got_sims, want_sims, rtol=0, atol=tol)
        for t in (0.05, 1.0):
            want = reference_shares(rows, labels, queries, [0, 1], k, t)
            np.testing.assert_allclose(index.shares(queries, k, t, [0, 1]), want, rtol=0, atol=tol)
            win = 1 / (1 + np.exp(-2 * (want[:, 0] - want[:, 1])))
            np.testing.assert_allclose(index.win_rates(queries, k, t, 0, 1), win, rtol=0, atol=tol)


def test_neighbours_are_labelled_for_every_model_asked_about():
    rng = np.random.default_rng(5)
    emb, labels = make_data(rng, 300, 24, missing=0.4)
    index = _core.KnnIndex(emb, labels)
    queries = rng.standard_normal((20, 24)).astype(np.float32)
    for models in ([0], [2], [0, 2], [0, 1, 2]):
        eligible = ~np.isnan(labels[:, models]).any(axis=1)
        assert index.n_labelled(models) == eligible.sum()
        idx, _ = index.topk(queries, 10, models)
        assert eligible[idx].all()
        want = reference_shares(stored(index), labels, queries, models, 10, 0.1)
        np.testing.assert_allclose(index.shares(queries, 10, 0.1, models), want, rtol=0, atol=1e-12)


def test_equal_similarities_go_to_the_lower_row():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((4, 8)).astype(np.float32)
    emb = np.concatenate([base, base, 2 * base])  # rows i, i + 4, i + 8: one direction, equal cosines (x2 is exact)
    labels = np.tile(np.array([[1, 0, 1]], np.float32), (12, 1))
    labels[4:8, 0] = 0.0
    for storage in ("float32", "float16", "int8"):
        index = _core.KnnIndex(emb, labels, storage)
        idx, sims = index.topk(base, 3, [0, 1])
        for q in range(4):
            assert list(idx[q]) == [q, q + 4, q + 8] and sims[q, 0] == sims[q, 1] == sims[q, 2]
        want_idx, _ = reference_topk(*stored(index), base, np.ones(12, bool), 3)
        np.testing.assert_array_equal(idx, want_idx)
        # k = 2 takes rows q and q + 4 (labels 1 and 0), never the later copy q + 8 (label 1).
        np.testing.assert_allclose(index.shares(base, 2, 1.0, [0])[:, 0], 0.5, rtol=0, atol=1e-15)


def router(rng=None, n=400, dim=32, **kwargs) -> KNNRouter:
    rng = rng or np.random.default_rng(11)
    emb, labels = make_data(rng, n, dim)
    labels[:, :2] = rng.integers(0, 2, (n, 2))
    return KNNRouter.from_labels(emb, labels, MODELS, "strong", "weak", embedding_model="test-embedder", **kwargs)


def test_router_scores_the_pair_and_many_models_on_one_scale():
    r = router(k=15, temperature=0.05)
    q = np.random.default_rng(1).standard_normal((30, 32)).astype(np.float32)
    pair = r.score_models_embeddings(q, ["strong", "weak"])
    np.testing.assert_allclose(1 / (1 + np.exp(-(pair[:, 0] - pair[:, 1]))), r.score_embeddings(q), rtol=0, atol=1e-12)
    three = r.score_models_embeddings(q, MODELS)
    f = r.to_file()
    want = 2 * reference_shares((f.rows, f.row_factor), f.labels, q, [0, 1, 2], 15, 0.05)
    np.testing.assert_allclose(three, want, rtol=0, atol=1e-12)
    idx, _ = r.neighbours(q)
    assert idx.shape == (30, 15)
    # Decisions among the two models by the N-model rule are the pair's decisions.
    from routellm_fast.decision.rule import choose_models

    np.testing.assert_array_equal(choose_models(pair, [1.0, 0.1], 0.55) == 0, r.score_embeddings(q) >= 0.55)


def test_router_pickles_and_saves_to_equal_bytes(tmp_path):
    r = router(storage="int8", k=7, temperature=0.2, training_prompt_keys=np.zeros((3, 16), np.uint8))
    q = np.random.default_rng(4).standard_normal((25, 32)).astype(np.float32)
    copy = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(copy.score_embeddings(q), r.score_embeddings(q))
    assert copy.fingerprint == r.fingerprint and copy.k == 7 and copy.storage == "int8"
    save_knn(tmp_path / "a.npz", r.to_file())
    save_knn(tmp_path / "b.npz", load_knn(tmp_path / "a.npz"))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = KNNRouter(tmp_path / "a.npz", "strong", "weak")
    np.testing.assert_array_equal(loaded.score_embeddings(q), r.score_embeddings(q))
    assert loaded.fingerprint == r.fingerprint and loaded.training_prompt_keys == r.training_prompt_keys
    assert KNNRouter(tmp_path / "a.npz", "strong", "weak", k=3).k == 3


def test_scoring_releases_the_gil():
    rng = np.random.default_rng(0)
    emb, labels = make_data(rng, 20000, 128, missing=0.0)
    index = _core.KnnIndex(emb, labels)
    queries = rng.standard_normal((300, 128)).astype(np.float32)
    ticks, done = [], threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(1)

    thread = threading.Thread(target=tick)
    thread.start()
    before = len(ticks)
    index.win_rates(queries, 20, 0.1, 0, 1)
    during = len(ticks) - before
    done.set()
    thread.join()
    assert during > 0


def test_bad_input_is_refused_clearly():
    r = router()
    good = np.ones((2, 32), np.float32)
    with pytest.raises(ValueError, match="dimension 32"):
        r.score_embeddings(np.ones((2, 31), np.float32))
    bad = good.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="row 1 contains NaN"):
        r.score_embeddings(bad)
    with pytest.raises(ValueError, match="zero vector"):
        r.score_embeddings(np.zeros((1, 32), np.float32))
    emb, labels = make_data(np.random.default_rng(0), 50, 8, missing=0.0)
    for k in (0, 51, True, 2.5):
        with pytest.raises(ValueError, match="k must be an integer in \\[1, 50\\]"):
            KNNRouter.from_labels(emb, labels, MODELS, "strong", "weak", k=k, embedding_model="e")
    for t in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            KNNRouter.from_labels(emb, labels, MODELS, "strong", "weak", temperature=t, embedding_model="e")
    index = _core.KnnIndex(emb, labels)
    with pytest.raises(ValueError, match="k must be in \\[1, 50\\]"):
        index.win_rates(good[:, :8], 51, 0.1, 0, 1)
    with pytest.raises(ValueError, match="k must be in"):
        index.topk(np.empty((0, 8), np.float32), 0, [0])  # checked on an empty batch too
    with pytest.raises(ValueError, match="temperature"):
        index.shares(good[:, :8], 5, 0.0, [0])
    with pytest.raises(ValueError, match="model index 3"):
        index.shares(good[:, :8], 5, 0.1, [3])
    nan_rows = emb.copy()
    nan_rows[4, 0] = np.nan
    with pytest.raises(ValueError, match="labelled prompt embedding row 4 contains NaN"):
        _core.KnnIndex(nan_rows, labels)
    with pytest.raises(ValueError, match="labels must be in \\[0, 1\\]"):
        _core.KnnIndex(emb, np.full((50, 3), 2.0, np.float32))
    with pytest.raises(ValueError, match="has no label for any model"):
        _core.KnnIndex(emb, np.full((50, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="one row per embedding"):
        _core.KnnIndex(emb, labels[:10])
    with pytest.raises(TypeError, match="float32"):
        _core.KnnIndex(emb, labels.astype(np.float64))
    with pytest.raises(ValueError, match="unknown strong_model"):
        KNNRouter.from_labels(emb, labels, MODELS, "strongest", "weak", embedding_model="e")
    with pytest.raises(ValueError, match="unknown model"):
        r.score_models_embeddings(good, ["strong", "nobody"])
    only = labels.copy()
    only[:, 1] = np.nan
    only[:, 2] = 1.0
    with pytest.raises(ValueError, match="no labelled prompt has labels for both"):
        KNNRouter.from_labels(emb, only, MODELS, "strong", "weak", embedding_model="e")


def test_bad_states_and_files_are_refused(tmp_path):
    index = _core.KnnIndex(*make_data(np.random.default_rng(0), 10, 8, missing=0.0))
    state = index.__getstate__()
    with pytest.raises(ValueError, match="format 2"):
        _core.KnnIndex.from_state((2,) + state[1:])
    with pytest.raises(ValueError, match="row_factor"):
        _core.KnnIndex.from_state(state[:3] + (state[3][:5],) + state[4:])
    factor = state[3].copy()
    factor[2] = np.inf
    with pytest.raises(ValueError, match="row 2 has factor"):
        _core.KnnIndex.from_state(state[:3] + (factor,) + state[4:])
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(BadFileError):
        load_knn(tmp_path / "x.npz")
    np.savez(tmp_path / "y.npz", format=np.array("something else"))
    with pytest.raises(BadFileError, match="is not a routellm_fast.knn/1 file"):
        load_knn(tmp_path / "y.npz")
    with pytest.raises(ValueError, match="exact in float16"):
        f = router().to_file()
        save_knn(tmp_path / "z.npz", KnnFile(f.storage, f.rows, f.row_factor, f.labels * np.float32(0.3), f.models,
                                             f.metadata))


@pytest.mark.parametrize("embedder", ["minilm", "static"])
def test_shipped_knn_routes_with_a_calibrated_threshold(embedder):
    from routellm_fast.paths import SAMPLE_PROMPTS, shipped_knn_file
    from routellm_fast.routers.shipped import (
        default_knn_router,
        default_threshold,
        shipped_calibration,
    )

    knn = default_knn_router(embedder=embedder)
    assert knn.storage == "int8" and shipped_knn_file(embedder).stat().st_size < 4_500_000
    cal = shipped_calibration("knn", embedder)
    assert len(cal["win_rates"]) == len(SAMPLE_PROMPTS.read_text().splitlines())
    t = default_threshold(0.5, "knn", embedder)
    assert 0 < t < 1 and 1 <= knn.k <= knn.num_prompts
    assert {"gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", "o1-mini-2024-09-12"} <= set(knn.models)
    ctl = rf.Controller(["knn"], "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", embedder=embedder)
    decision = ctl.decide("Prove that there are infinitely many primes.", "knn", t)
    assert decision.model in ("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1") and 0 <= decision.win_rate <= 1


def test_loading_the_shipped_knn_imports_no_training_or_evaluation_code():
    import subprocess
    import sys

    script = (
        "import sys; from routellm_fast.routers.shipped import default_knn_router, default_threshold\n"
        "default_knn_router(embedder='static'); default_threshold(0.5, 'knn', 'static')\n"
        "loaded = [m for m in ('routellm_fast.train.fit', 'routellm_fast.train.recipe', 'routellm_fast.evals',\n"
        "                      'routellm_fast.formats.preference', 'torch', 'matplotlib') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_python_threads_score_concurrently_alike():
    rng = np.random.default_rng(8)
    emb, labels = make_data(rng, 3000, 48, missing=0.1)
    labels[:, :2] = rng.integers(0, 2, (3000, 2))
    index = _core.KnnIndex(emb, labels, "float16")
    queries = rng.standard_normal((200, 48)).astype(np.float32)
    want = index.win_rates(queries, 25, 0.05, 0, 1)
    shares = index.shares(queries, 25, 0.05, [0, 1, 2])
    got: list = [None] * 8

    def work(i: int) -> None:
        got[i] = (index.win_rates(queries, 25, 0.05, 0, 1), index.shares(queries, 25, 0.05, [0, 1, 2]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for rates, s in got:
        np.testing.assert_array_equal(rates, want)
        np.testing.assert_array_equal(s, shares)


def test_damaged_files_and_parts_raise_value_errors(tmp_path):
    """Random byte damage to a knn file, and parts no training writes, give ValueError (BadFileError
    is one) or TypeError naming the problem: never a crash or a router that scores."""
    r = router(n=40, dim=8, k=5)
    save_knn(tmp_path / "good.npz", r.to_file())
    good = (tmp_path / "good.npz").read_bytes()
    rng = np.random.default_rng(0)
    for i in range(120):
        damaged = bytearray(good)
        for pos in rng.integers(0, len(good), rng.integers(1, 6)):
            damaged[pos] = int(rng.integers(0, 256))
        (tmp_path / "bad.npz").write_bytes(bytes(damaged))
        try:
            KNNRouter(tmp_path / "bad.npz", "strong", "weak")
        except (ValueError, TypeError):
            pass
    f = r.to_file()
    bad_rows = f.rows.copy()
    bad_rows[3, 2] = np.nan
    bad_factor = f.row_factor.copy()
    bad_factor[0] = -1.0
    for parts, match in (((f.storage, bad_rows, f.row_factor, f.labels), "row 3 contains NaN"),
                         ((f.storage, f.rows, bad_factor, f.labels), "row 0 has factor"),
                         ((f.storage, f.rows, f.row_factor, np.full_like(f.labels, 0.5) + 1), "labels must be in")):
        with pytest.raises(ValueError, match=match):
            KNNRouter(KnnFile(*parts, f.models, f.metadata), "strong", "weak")
