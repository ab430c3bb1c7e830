"""Where work runs: the CPUs a process may use, onnxruntime sessions on the requested provider."""

from __future__ import annotations

import os

import pytest
from routellm_fast.embedders import OnnxEmbedder, embedder_for
from routellm_fast.runtime import available_cpus, onnx_session


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
