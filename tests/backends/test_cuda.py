"""The GPU backend. Without a GPU (CI): every kernel compiles (NVRTC, the compiler CuPy uses at run
time, and nvcc where it is installed), the tables the CPU core exports plus the kernel's arithmetic
(emulated in NumPy) give the CPU core's win rates, and the device choice says why there is no GPU.
With a GPU: the GPU path against the CPU path on fresh random inputs and the RouteLLM parity
fixture, in every precision, at odd batch sizes."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast.backends import cuda
from routellm_fast.paths import kernels_dir
from routellm_fast.routers.shipped import default_mf_router, default_sw_router

from tests.helpers import make_arena

HAS_GPU = cuda.cuda_info()["cuda_available"]
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU and CuPy (pip install 'routellm_fast[cuda]')")


def test_kernels_compile_for_hopper(tmp_path):
    kernels = sorted(kernels_dir().glob("*.cu"))
    assert [k.name for k in kernels] == ["sw_counts.cu"]
    try:
        cuda.nvrtc_ptx("__global__ void k() {}")
    except OSError:
        pytest.skip("NVRTC is not installed: pip install 'routellm_fast[nvrtc]' (or the cuda extra)")
    for path in kernels:
        ptx = cuda.nvrtc_ptx(path.read_text(), arch="sm_90")
        assert ".target sm_90" in ptx and ".entry sw_counts_f32" in ptx and ".entry sw_counts_f64" in ptx
        if shutil.which("nvcc"):  # the CUDA toolkit's compiler too, where it is installed
            env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # not under .ci/sanitize's ASan
            subprocess.run(["nvcc", "-ptx", "-arch=sm_90", "-o", str(tmp_path / f"{path.stem}.ptx"), str(path)],
                           check=True, capture_output=True, env=env)
    with pytest.raises(RuntimeError, match="undefined"):
        cuda.nvrtc_ptx("__global__ void k() { undefined_name(); }")


def emulated_counts(tables: dict, emb: np.ndarray) -> np.ndarray:
    """kernels/sw_counts.cu's arithmetic in NumPy, from the exported tables and float64 dot products."""
    rows = np.asarray(tables["prompt_rows"], dtype=np.float64)
    dots = emb.astype(np.float64) @ rows.T
    qf = 1 / np.linalg.norm(emb.astype(np.float64), axis=1)
    sims = dots * tables["row_factor"][None, :] * qf[:, None]
    r = sims / sims.max(axis=1, keepdims=True)
    w = np.exp(np.log(10.0) * (r - r.max(axis=1, keepdims=True)))
    begin, slot, count = tables["entry_begin"], tables["entry_slot"], tables["entry_count"]
    prompt_of_entry = np.repeat(np.arange(len(begin) - 1), np.diff(begin.astype(np.int64)))
    y = np.zeros((len(emb), tables["count_slots"]))
    for q in range(len(emb)):
        np.add.at(y[q], slot, w[q, prompt_of_entry] * count)
    return y


@pytest.mark.parametrize("storage", ["float32", "float16", "int8"])
def test_exported_tables_and_counts_give_the_cpu_win_rates(storage):
    rng = np.random.default_rng(7)
    arena = make_arena(rng, n_battles=700, dim=24, n_models=8, reuse=0.3)
    router = rf.SWRankingRouter.from_battles(arena["model_a"], arena["model_b"], arena["winner"], arena["embeddings"],
                                             "model-0", "model-1", storage=storage, device="cpu")
    core = router._arena
    tables = core.device_tables()
    assert tables["prompt_rows"].dtype == np.dtype(storage) and tables["prompt_rows"].shape == (router.num_prompts, 24)
    for name in ("prompt_rows", "row_factor", "entry_begin", "entry_slot", "entry_count"):
        assert not tables[name].flags.writeable
    counts = emulated_counts(tables, arena["queries"])
    np.testing.assert_allclose(core.score_counts(counts, 0, 1), core.score(arena["queries"], 0, 1), rtol=0, atol=1e-8)
    del router, core  # the views keep the arena's memory alive
    assert np.isfinite(np.asarray(tables["prompt_rows"], dtype=np.float64)).all()


def test_counts_are_checked():
    router = default_sw_router(embedder="static", device="cpu")
    core = router._arena
    slots = core.device_tables()["count_slots"]
    with pytest.raises(TypeError, match="float64"):
        core.score_counts(np.zeros((2, slots), np.float32), 0, 1)
    with pytest.raises(ValueError, match=str(slots)):
        core.score_counts(np.zeros((2, slots + 1)), 0, 1)
    bad = np.ones((1, slots))
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        core.score_counts(bad, 0, 1)
    with pytest.raises(ValueError, match="strong_model"):
        core.score_counts(np.ones((1, slots)), 99, 1)


def test_device_choice(monkeypatch):
    monkeypatch.delenv(cuda.DEVICE_ENV, raising=False)
    assert cuda.resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device must be one of"):
        cuda.resolve_device("gpu")
    info = rf.backend_info()
    assert info["cuda_available"] == HAS_GPU and info["device"] == ("cuda" if HAS_GPU else "cpu")
    monkeypatch.setenv(cuda.DEVICE_ENV, "cpu")  # forbids the GPU
    assert cuda.resolve_device("auto") == "cpu" and default_mf_router(embedder="static").device == "cpu"
    with pytest.raises(RuntimeError, match="forbids"):
        cuda.resolve_device("cuda")
    monkeypatch.setenv(cuda.DEVICE_ENV, "tpu")
    with pytest.raises(ValueError, match=cuda.DEVICE_ENV):
        cuda.resolve_device("auto")
    if not HAS_GPU:
        monkeypatch.delenv(cuda.DEVICE_ENV)
        assert "cuda_reason" in info
        with pytest.raises(RuntimeError, match="needs a usable GPU"):
            default_sw_router(embedder="static", device="cuda")
        monkeypatch.setenv(cuda.DEVICE_ENV, "cuda")  # forces it
        with pytest.raises(RuntimeError, match="needs a usable GPU"):
            cuda.resolve_device("auto")
    with pytest.raises(ValueError, match="gpu_precision"):
        monkeypatch.delenv(cuda.DEVICE_ENV)
        default_sw_router(embedder="static", gpu_precision="int4")


# -- on a GPU


def _random_queries(rng, n, dim):
    return rng.normal(size=(n, dim)).astype(np.float32)


@needs_gpu
@pytest.mark.parametrize("precision,tolerance", [("float64", 1e-9), ("float32", 1e-6), ("float16", 5e-3)])
@pytest.mark.parametrize("n", [1, 7, 1025])
def test_gpu_sw_ranking_equals_cpu(precision, tolerance, n):
    rng = np.random.default_rng(n)
    arena = make_arena(rng, n_battles=3000, dim=64, n_models=12, reuse=0.2)
    kw = dict(storage="float32", gpu_precision=precision)
    cpu = rf.SWRankingRouter.from_battles(arena["model_a"], arena["model_b"], arena["winner"], arena["embeddings"],
                                          "model-0", "model-1", device="cpu", **kw)
    gpu = rf.SWRankingRouter.from_battles(arena["model_a"], arena["model_b"], arena["winner"], arena["embeddings"],
                                          "model-0", "model-1", device="cuda", **kw)
    queries = _random_queries(rng, n, 64)
    np.testing.assert_allclose(gpu.score_embeddings(queries), cpu.score_embeddings(queries), rtol=0, atol=tolerance)


@needs_gpu
def test_gpu_on_the_routellm_parity_fixture(fixtures_dir):
    import json

    parity = fixtures_dir / "parity" / "sw"
    expected = json.loads((parity / "expected.json").read_text())
    queries = np.load(parity / "queries.npy")
    for pair in expected["pairs"]:
        args = ([parity / "battles"], [parity / "embeddings"], pair["strong"], pair["weak"])
        cpu = rf.SWRankingRouter(*args, device="cpu").score_embeddings(queries)
        for precision, tolerance in (("float64", 1e-9), ("float32", 1e-6)):
            gpu = rf.SWRankingRouter(*args, device="cuda", gpu_precision=precision).score_embeddings(queries)
            np.testing.assert_allclose(gpu, cpu, rtol=0, atol=tolerance)
            np.testing.assert_allclose(gpu, pair["win_rates"], rtol=0, atol=1e-3)  # RouteLLM's own answers


@needs_gpu
def test_gpu_mf_equals_cpu():
    from routellm_fast.routers.mf import MF_GPU_MIN_BATCH

    gpu, cpu = default_mf_router(embedder="static", device="cuda"), default_mf_router(embedder="static", device="cpu")
    emb = _random_queries(np.random.default_rng(0), MF_GPU_MIN_BATCH + 7, gpu.embedding_dim)
    np.testing.assert_allclose(gpu.score_embeddings(emb), cpu.score_embeddings(emb), rtol=0, atol=1e-9)
    emb[3, 0] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        gpu.score_embeddings(emb)
