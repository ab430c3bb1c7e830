"""Thread counts: where the default comes from, the bounds on it, and threads that cannot start."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import routellm_fast as rf

from tests.core.core_helpers import core_arena, run_python
from tests.helpers import make_arena

REPORT = "import json, os, routellm_fast as rf; print(json.dumps(rf.backend_info()))"


def backend_info_in_child(env: dict | None = None, before: str = "") -> dict:
    result = run_python(before + "\n" + REPORT, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def restore_threads():
    threads = rf.backend_info()["threads"]
    yield
    rf.set_num_threads(threads)


@pytest.mark.parametrize("n", [0, -1, 1025, 10**6, 2**80, -(2**80)])
def test_set_num_threads_rejects_counts_outside_bounds(restore_threads, n):
    before = rf.backend_info()
    with pytest.raises(ValueError, match=r"number of threads must be in \[1, 1024\]"):
        rf.set_num_threads(n)
    assert rf.backend_info()["threads"] == before["threads"]
    assert rf.backend_info()["threads_source"] == before["threads_source"]


@pytest.mark.parametrize("n", [1, 3, 1024])
def test_set_num_threads_accepts_counts_within_bounds(restore_threads, n):
    rf.set_num_threads(n)
    info = rf.backend_info()
    assert info["threads"] == n and info["threads_source"] == "set_num_threads"


def test_scores_agree_for_every_thread_count(restore_threads):
    battles = make_arena(np.random.default_rng(41), n_battles=3000, dim=16)
    arena = core_arena(battles)
    rf.set_num_threads(1)
    want = arena.score(battles["queries"], 0, 1)
    for n in (2, 3, 7):
        rf.set_num_threads(n)
        assert arena.score(battles["queries"], 0, 1).tobytes() == want.tobytes()


def test_default_follows_the_affinity_mask():
    info = backend_info_in_child()
    assert info["threads"] == len(os.sched_getaffinity(0))
    assert info["threads_source"] == "affinity" and "threads_note" not in info


def test_default_follows_a_narrowed_affinity_mask():
    # One CPU allowed: one thread, whatever the machine's core count.
    cpu = min(os.sched_getaffinity(0))
    info = backend_info_in_child(before=f"import os; os.sched_setaffinity(0, {{{cpu}}})")
    assert info["threads"] == 1 and info["threads_source"] == "affinity"


@pytest.mark.parametrize("value,threads", [("3", 3), (" 5 ", 5), ("1", 1), ("1024", 1024)])
def test_environment_variable_sets_the_count(value, threads):
    info = backend_info_in_child({"ROUTELLM_FAST_NUM_THREADS": value})
    assert info["threads"] == threads and info["threads_source"] == "env"


@pytest.mark.parametrize("value", ["0", "-2", "1025", "99999999999999999999", "abc", "4x", "2.5"])
def test_bad_environment_variable_falls_back_with_a_note(value):
    info = backend_info_in_child({"ROUTELLM_FAST_NUM_THREADS": value})
    assert info["threads"] == len(os.sched_getaffinity(0))
    assert info["threads_source"] == "affinity"
    assert f"ROUTELLM_FAST_NUM_THREADS='{value}' ignored" in info["threads_note"]


@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="under an address-space limit AddressSanitizer's own per-thread mappings "
                           "fail first, and it aborts by design (the normal run covers this)")
def test_threads_that_cannot_start_raise_instead_of_hanging():
    # An address-space limit leaves no room for 999 thread stacks: scoring must say so, and work
    # again once the count is lowered.
    result = run_python("""
        import resource
        import numpy as np
        import routellm_fast as rf
        from tests.core.core_helpers import core_arena
        from tests.helpers import make_arena

        battles = make_arena(np.random.default_rng(42), n_battles=3000, dim=16)
        arena = core_arena(battles)
        want = arena.score(battles["queries"], 0, 1)
        pages = int(open("/proc/self/statm").read().split()[0])
        limit = pages * resource.getpagesize() + (1 << 30)  # what the process uses, plus 1 GiB
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        rf.set_num_threads(1000)
        try:
            arena.score(battles["queries"], 0, 1)
            print("started")  # the OS ignored the limit
        except RuntimeError as e:
            print("refused:", e)
        rf.set_num_threads(2)
        assert arena.score(battles["queries"], 0, 1).tobytes() == want.tobytes()
    """)
    assert result.returncode == 0, result.stderr
    if result.stdout.startswith("started"):
        pytest.skip("this OS started 1000 threads under a 1 GiB address-space limit")
    assert result.stdout.startswith("refused: could not start the thread pool's 1000 threads"), result.stdout
