from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import routellm_fast as rf

sys.path.insert(0, str(Path(__file__).parent))

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(params=rf.backend_info()["simd_available"])
def simd(request):
    """Runs a test once per SIMD path this CPU supports, restoring the default afterwards."""
    default = rf.backend_info()["simd"]
    rf.set_simd(request.param)
    yield request.param
    rf.set_simd(default)


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
