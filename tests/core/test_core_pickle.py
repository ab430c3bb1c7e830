"""Pickling of the compiled classes: exact round trips, refused malformed states, forked workers."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from routellm_fast import _core

from tests.core.core_helpers import core_arena, run_python
from tests.helpers import make_arena

STORAGES = ["float32", "float16", "int8"]
PROTOCOLS = range(2, pickle.HIGHEST_PROTOCOL + 1)
PAIRS = [(0, 1), (3, 2), (5, 5)]


def sw_answers(arena: _core.SwArena, queries: np.ndarray) -> dict:
    return {
        "score": [arena.score(queries, s, w) for s, w in PAIRS],
        "model_ratings": arena.model_ratings,
        "model_tier": arena.model_tier,
        **{k: getattr(arena, k) for k in ("dim", "n_prompts", "n_battles", "storage", "storage_bytes")},
    }


def assert_bitwise_equal(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, np.ndarray):
            got[key], value = [got[key]], [value]
        if isinstance(value, list):
            for g, w in zip(got[key], value, strict=True):
                assert g.dtype == w.dtype and g.shape == w.shape, key
                assert g.tobytes() == w.tobytes(), key  # bit for bit
        else:
            assert type(got[key]) is type(value) and got[key] == value, key


@pytest.fixture(scope="module")
def battles():
    return make_arena(np.random.default_rng(31), n_battles=1500, dim=19, reuse=0.3)


@pytest.fixture(scope="module")
def mf_weights():
    rng = np.random.default_rng(32)
    return {
        "model_embeddings": rng.normal(size=(6, 24)).astype(np.float32),
        "text_projection": rng.normal(size=(24, 37)).astype(np.float32),
        "classifier": rng.normal(size=24).astype(np.float32),
    }


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sw_arena_round_trips_bitwise(battles, storage, protocol):
    arena = core_arena(battles, storage)
    want = sw_answers(arena, battles["queries"])  # scored before pickling: the pool is running
    restored = pickle.loads(pickle.dumps(arena, protocol=protocol))
    assert type(restored) is _core.SwArena
    assert_bitwise_equal(sw_answers(restored, battles["queries"]), want)
    # and again, from the restored object
    assert_bitwise_equal(sw_answers(pickle.loads(pickle.dumps(restored, protocol=protocol)), battles["queries"]), want)


@pytest.mark.parametrize("storage", STORAGES)
def test_sw_arena_state_holds_the_stored_rows_not_float32(battles, storage):
    arena = core_arena(battles, storage)
    state = arena.__getstate__()
    assert state[0] == 1 and isinstance(state, tuple)
    rows = state[9]
    assert rows.dtype == np.dtype(storage) and rows.shape == (arena.n_prompts, arena.dim)
    assert rows.nbytes <= arena.storage_bytes
    assert all(isinstance(x, (int, str, np.ndarray)) for x in state)


@pytest.mark.parametrize("storage", STORAGES)
def test_sw_arena_deepcopy(battles, storage):
    arena = core_arena(battles, storage)
    clone = copy.deepcopy(arena)
    assert clone is not arena
    assert_bitwise_equal(sw_answers(clone, battles["queries"]), sw_answers(arena, battles["queries"]))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("projected", [True, False])
def test_mf_scorer_round_trips_bitwise(mf_weights, protocol, projected):
    w = dict(mf_weights)
    if not projected:
        w["text_projection"] = None
    scorer = _core.MfPairScorer(**w, strong_model=1, weak_model=4)
    dim = scorer.text_dim
    queries = np.random.default_rng(33).normal(size=(300, dim)).astype(np.float32)
    want = scorer.score(queries)
    restored = pickle.loads(pickle.dumps(scorer, protocol=protocol))
    assert restored.text_dim == dim
    assert restored.score(queries).tobytes() == want.tobytes()
    assert copy.deepcopy(restored).score(queries).tobytes() == want.tobytes()


def test_pickled_arrays_are_accepted_as_inputs(battles):
    # An unpickled array carries its own dtype object; it must still count as float32.
    arena = core_arena(battles)
    queries = pickle.loads(pickle.dumps(battles["queries"]))
    np.testing.assert_array_equal(arena.score(queries, 0, 1), arena.score(battles["queries"], 0, 1))


def with_item(state: tuple, i: int, value) -> tuple:
    return state[:i] + (value,) + state[i + 1 :]


def restore(cls, state):
    obj = cls.__new__(cls)
    obj.__setstate__(state)
    return obj


def sw_bad_states(state: tuple) -> list:
    """(state, exception, message pattern) for malformed SwArena states."""
    rows = state[9]
    nan_rows = rows.copy()
    nan_rows[1, 2] = np.nan
    bad_pairs = state[5].copy()
    bad_pairs[0] = (3, 1)
    far_slot = state[7].copy()
    far_slot[0] = 2 * len(state[5])
    unsorted = state[6].copy()
    unsorted[1], unsorted[2] = unsorted[2] + 1, unsorted[1]
    return [
        (list(state), TypeError, "must be a tuple"),
        ((), ValueError, "empty tuple"),
        ((2,) + state[1:], ValueError, "format 2.*reads format 1"),
        ((0,), ValueError, "format 0"),
        (("1",) + state[1:], TypeError, r"item 0 \(format\) must be an int"),
        (state[:-1], ValueError, "must have 11 items, got 10"),
        (state + (None,), ValueError, "must have 11 items, got 12"),
        (with_item(state, 1, 0), ValueError, r"item 1 \(n_battles\) is 0"),
        (with_item(state, 1, 1.5), TypeError, r"item 1 \(n_battles\) must be an int"),
        (with_item(state, 2, "bf16"), ValueError, "storage must be"),
        (with_item(state, 2, b"float32"), TypeError, r"item 2 \(storage\) must be a str"),
        (with_item(state, 3, state[3].tolist()), TypeError, r"item 3 \(model_ratings\) must be a numpy array"),
        (with_item(state, 3, state[3].astype(np.float32)), TypeError, "must have dtype float64, got float32"),
        (with_item(state, 3, state[3].astype(">f8")), TypeError, "must have dtype float64"),
        (with_item(state, 3, np.full_like(state[3], np.inf)), ValueError, "non-finite rating"),
        (with_item(state, 4, state[4][:-1]), ValueError, r"item 4 \(model_tier\) must have shape"),
        (with_item(state, 4, state[4].astype(np.int64)), TypeError, "must have dtype int32"),
        (with_item(state, 4, state[4] - 1), ValueError, "negative tier"),
        (with_item(state, 5, state[5].T.copy()), ValueError, r"item 5 \(pair_rows\) must have shape \(n, 2\)"),
        (with_item(state, 5, bad_pairs), ValueError, r"pair row \(3, 1\)"),
        (with_item(state, 5, np.asfortranarray(state[5])), ValueError, "C-contiguous"),
        (with_item(state, 6, state[6][:-1]), ValueError, "entry_begin"),
        (with_item(state, 6, unsorted), ValueError, "entry_begin"),
        (with_item(state, 6, state[6] - 1), ValueError, "negative offset"),
        (with_item(state, 7, far_slot), ValueError, "entry 0 points at slot"),
        (with_item(state, 7, state[7].astype(np.int64)), TypeError, "must have dtype uint32"),
        (with_item(state, 8, state[8][:-1]), ValueError, r"item 8 \(entry_count\) must have shape"),
        (with_item(state, 8, -state[8]), ValueError, "count that is negative"),
        (with_item(state, 9, rows.reshape(-1)), ValueError, r"item 9 \(prompt_rows\) must have shape \(n, n\)"),
        (with_item(state, 9, rows[:, :0].copy()), ValueError, "no prompt embeddings"),
        (with_item(state, 9, rows.astype(np.float64)), TypeError, "must have dtype float32"),
        (with_item(state, 9, nan_rows), ValueError, "prompt row 1 contains NaN or inf"),
        (with_item(state, 9, rows[:-1].copy()), ValueError, r"item 10 \(row_factor\) must have shape"),
        (with_item(state, 10, np.zeros_like(state[10])), ValueError, "row 0 has factor"),
        (with_item(state, 2, "int8"), TypeError, "must have dtype int8, got float32"),
    ]


def test_malformed_sw_arena_states_raise(battles):
    state = core_arena(battles).__getstate__()
    for bad, error, pattern in sw_bad_states(state):
        with pytest.raises(error, match=pattern):
            restore(_core.SwArena, bad)
    restore(_core.SwArena, state)  # the untouched state still restores


@pytest.mark.parametrize("storage", ["float16", "int8"])
def test_malformed_compressed_rows_raise(battles, storage):
    state = core_arena(battles, storage).__getstate__()
    with pytest.raises(TypeError, match="must have dtype " + storage):
        restore(_core.SwArena, with_item(state, 9, state[9].astype(np.float32)))
    if storage == "float16":
        inf_rows = state[9].copy()
        inf_rows[0, 0] = np.inf
        with pytest.raises(ValueError, match="row 0 contains NaN or inf"):
            restore(_core.SwArena, with_item(state, 9, inf_rows))


def test_a_state_with_no_tier_fit_scores_limits_or_refuses_by_pair(battles):
    # Every entry made a win of the first player: consistent shapes, but no finite tier ratings.
    # As for an arena built so, each pair answers its limit or a ValueError saying why it has none.
    state = core_arena(battles).__getstate__()
    slot = (state[7] // 2) * 2
    arena = restore(_core.SwArena, with_item(state, 7, slot.astype(np.uint32)))
    query = battles["queries"][:2]
    for strong in range(len(state[3])):
        for weak in range(len(state[3])):
            try:
                rates = arena.score(query, strong, weak)
            except ValueError as exc:
                assert "no finite" in str(exc) or "limit" in str(exc), exc
            else:
                assert np.all((rates >= 0) & (rates <= 1))


def test_malformed_mf_states_raise(mf_weights):
    state = _core.MfPairScorer(**mf_weights, strong_model=0, weak_model=2).__getstate__()
    v = state[1]
    assert state[0] == 1 and v.dtype == np.float32 and v.shape == (2, 37)
    nan_v = v.copy()
    nan_v[1, 5] = np.nan
    cases = [
        (None, TypeError, "must be a tuple"),
        ((1,), ValueError, "must have 2 items, got 1"),
        ((7, v), ValueError, "format 7"),
        ((1, v[0].copy()), ValueError, r"item 1 \(pair_vector\) must have shape \(2, n\)"),
        ((1, v.astype(np.float64)), TypeError, "must have dtype float32"),
        ((1, v.T), ValueError, r"must have shape|C-contiguous"),
        ((1, nan_v), ValueError, "not finite at element 5"),
        ((1, [[0.0], [0.0]]), TypeError, "must be a numpy array"),
    ]
    for bad, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            restore(_core.MfPairScorer, bad)


def test_scoring_and_pickling_after_fork():
    # In a fresh interpreter with a timeout: a hang here must fail the test, not the suite.
    result = run_python("""
        import os, pickle
        import numpy as np
        import routellm_fast as rf
        from tests.core.core_helpers import core_arena
        from tests.helpers import make_arena

        battles = make_arena(np.random.default_rng(35), n_battles=2000, dim=24)
        arena = core_arena(battles, "float16")
        want = arena.score(battles["queries"], 0, 1)  # the parent's pool threads exist now
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: a fresh pool, never the parent's threads
            code = 1
            try:
                rf.set_num_threads(2)  # once hung: it joined the parent's workers, absent here
                got = pickle.loads(pickle.dumps(arena)).score(battles["queries"], 0, 1)
                os.write(write_end, pickle.dumps((got, rf.backend_info()["threads_source"])))
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        got, source = pickle.loads(data)
        assert source == "set_num_threads", source
        assert got.tobytes() == want.tobytes()
        assert arena.score(battles["queries"], 0, 1).tobytes() == want.tobytes()  # the parent's pool still works
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_fork_pool_whose_initializer_sets_threads():
    # In a fresh interpreter with a timeout: a hang here must fail the test, not the suite.
    result = run_python("""
        import multiprocessing, pickle
        import numpy as np
        import routellm_fast as rf
        from tests.core.core_helpers import core_arena
        from tests.helpers import make_arena

        battles = make_arena(np.random.default_rng(34), n_battles=2000, dim=24)
        arenas = {s: core_arena(battles, s) for s in ("float32", "float16", "int8")}
        want = {s: a.score(battles["queries"], 0, 1) for s, a in arenas.items()}  # parent's pool runs

        def init():
            rf.set_num_threads(2)

        def work(item):
            storage, arena = item  # arrives pickled
            return storage, arena.score(battles["queries"], 0, 1), rf.backend_info()["threads"]

        with multiprocessing.get_context("fork").Pool(2, initializer=init) as pool:
            results = pool.map(work, list(arenas.items()) * 2, chunksize=1)
        for storage, got, threads in results:
            assert threads == 2, threads
            assert got.tobytes() == want[storage].tobytes(), storage
        print("ok", len(results))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok 6"
