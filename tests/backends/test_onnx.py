"""Where work runs: the CPUs a process may use, onnxruntime sessions on the requested provider."""

from __future__ import annotations

import os

import pytest
from routellm_fast.backends.cpu import available_cpus
from routellm_fast.backends.onnx import length_batches, onnx_session
from routellm_fast.embedders import OnnxEmbedder, embedder_for


def test_available_cpus_is_the_affinity_mask():
    assert available_cpus() == len(os.sched_getaffinity(0))
    assert OnnxEmbedder(batch_size=4).threads == available_cpus()


def test_onnx_session_runs_where_asked():
    onnx_embedder = embedder_for("default")
    session = onnx_session(onnx_embedder.model_path)
    assert session.get_providers()[0] == "CPUExecutionProvider"
    assert onnx_session(onnx_embedder.model_path, device="auto").get_providers()[0] in (
        "CPUExecutionProvider", "CUDAExecutionProvider")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(RuntimeError, match="CUDAExecutionProvider"):
            onnx_session(onnx_embedder.model_path, device="cuda")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        onnx_session(onnx_embedder.model_path, device="tpu")
    with pytest.raises(ValueError, match="intra_op_threads must be a positive integer"):
        onnx_session(onnx_embedder.model_path, intra_op_threads=0)


def test_onnx_session_names_a_bad_model(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load ONNX model .*bad.onnx"):
        onnx_session(bad)


def test_length_batches_bound_rows_tokens_and_attention():
    lengths = [400, 20, 100, 20, 400, 100, 400, 20]
    batches = length_batches(lengths, 32, tokens_per_batch=8192, attention_per_batch=400 * 400 * 2)
    # every prompt exactly once, shortest first, each batch within all three bounds
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert [lengths[b[0]] for b in batches] == sorted(lengths[b[0]] for b in batches)
    for b in batches:
        longest = max(lengths[i] for i in b)
        assert len(b) <= 32 and len(b) * longest <= 8192 and len(b) * longest**2 <= 400 * 400 * 2
    assert [len(b) for b in batches] == [5, 2, 1]  # the short ones share a batch; the 400s go two at a time
    # a prompt past a bound still runs, alone
    assert length_batches([10, 5000], 8, tokens_per_batch=1000) == [[0], [1]]
    assert length_batches([3, 1, 2], 2) == [[1, 2], [0]]
