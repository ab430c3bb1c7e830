"""Plain helpers shared by the test rooms (the fixtures built on them are in tests/conftest.py): where
the test data lives, the model pair the tests route between, the outcome codes, synthetic arenas and
a free loopback port. Import them as ``from tests.helpers import ...``."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
#: The committed test data (made by tests/fixtures/make_*.py); the ``fixtures_dir`` fixture.
FIXTURES = TESTS / "fixtures"
#: The shared training and evaluation data beside the checkout (absent in some environments); the
#: ``shared_data`` fixture.
SHARED_DATA = TESTS.parents[1] / "shared" / "data"

#: RouteLLM's default pair, the one the shipped routers score.
STRONG, WEAK = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"
#: Battle outcomes as the core codes them.
CODES = {"model_a": 0, "model_b": 1, "tie": 2}

#: Python >= 3.12 warns when a process with threads forks; forking after the pools ran is what the
#: tests so marked test.
fork_with_threads = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")


def make_arena(rng: np.random.Generator, n_battles: int, dim: int, n_models: int = 10, n_clusters: int = 6,
               tie_rate: float = 0.2, reuse: float = 0.0):
    """A synthetic arena whose outcomes depend on the prompt's cluster, so weights matter."""
    centers = rng.normal(size=(n_clusters, dim))
    cluster = rng.integers(0, n_clusters, n_battles)
    emb = centers[cluster] + 0.6 * rng.normal(size=(n_battles, dim))
    if reuse:  # some battles share a prompt (and its embedding row) with an earlier battle
        shared = np.flatnonzero(rng.random(n_battles) < reuse)
        shared = shared[shared > 0]
        source = (rng.random(len(shared)) * shared).astype(int)
        emb[shared] = emb[source]
        cluster[shared] = cluster[source]
    strength = rng.normal(0, 1, n_models)
    offset = rng.normal(0, 0.8, (n_clusters, n_models))
    a = rng.integers(0, n_models, n_battles)
    b = (a + rng.integers(1, n_models, n_battles)) % n_models
    p = 1 / (1 + np.exp(-(strength[a] - strength[b] + offset[cluster, a] - offset[cluster, b])))
    winner = np.where(rng.random(n_battles) < tie_rate, "tie", np.where(rng.random(n_battles) < p, "model_a", "model_b"))
    names = [f"model-{i}" for i in range(n_models)]
    queries = (centers[rng.integers(0, n_clusters, 16)] + 0.6 * rng.normal(size=(16, dim))).astype(np.float32)
    return {
        "model_a": [names[i] for i in a],
        "model_b": [names[i] for i in b],
        "winner": list(winner),
        "embeddings": emb.astype(np.float32),
        "queries": queries,
        "names": names,
    }


def free_port() -> int:
    """A loopback port nothing listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
