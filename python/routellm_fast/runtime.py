"""Where work runs: the CPUs this process may use, onnxruntime sessions on a chosen execution
provider (shared by the ONNX embedder and the ONNX-executed router classifiers), and the cache of
Hugging Face checkpoints converted for them."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CACHE_ENV", "EXECUTION_PROVIDERS", "available_cpus", "converted_once", "encoder_feed", "length_batches",
           "onnx_session", "token_ids"]

#: Environment variable naming where Hugging Face checkpoints are converted (default
#: ``~/.cache/routellm_fast``; one folder per router kind under it).
CACHE_ENV = "ROUTELLM_FAST_CACHE"

#: Device names accepted by :func:`onnx_session` and the execution providers they ask for, in order.
EXECUTION_PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
}


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a container's or ``taskset``'s limit), not
    the machine's core count, so that worker processes do not oversubscribe."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def onnx_session(
    model_path: str | os.PathLike[str],
    *,
    device: str = "cpu",
    intra_op_threads: int = 1,
    inter_op_threads: int = 1,
) -> Any:
    """An ``onnxruntime.InferenceSession`` on ``device`` (``"cpu"``, ``"cuda"`` or ``"auto"``: CUDA
    where onnxruntime has it, else the CPU).

    onnxruntime silently falls back to the CPU when a requested provider cannot start; this checks
    that the session really runs on the requested one and raises otherwise. A model file that cannot
    be loaded raises ValueError naming it.
    """
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    if device == "auto":
        device = "cuda" if "CUDAExecutionProvider" in available else "cpu"
    if device not in EXECUTION_PROVIDERS:
        raise ValueError(f"unknown device {device!r}: use one of {', '.join(EXECUTION_PROVIDERS)} or 'auto'")
    providers: Sequence[str] = EXECUTION_PROVIDERS[device]
    if providers[0] not in available:
        raise RuntimeError(
            f"device={device!r} needs onnxruntime's {providers[0]}, but this onnxruntime has only "
            f"{', '.join(sorted(available))} (install onnxruntime-gpu for CUDA)"
        )
    for name, value in (("intra_op_threads", intra_op_threads), ("inter_op_threads", inter_op_threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Inputs change shape with every batch: a memory pattern per shape would only grow the arena.
    options.enable_mem_pattern = False
    try:
        session = ort.InferenceSession(str(model_path), options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt models
        raise ValueError(f"cannot load ONNX model {model_path}: {exc}") from None
    if session.get_providers()[0] != providers[0]:
        raise RuntimeError(
            f"onnxruntime could not run {model_path} on {providers[0]} (it fell back to "
            f"{session.get_providers()[0]}); check the CUDA/cuDNN installation"
        )
    return session


def encoder_feed(ids: Sequence[Sequence[int]], token_types: bool) -> dict[str, Any]:
    """The inputs of a BERT-style ONNX encoder for one batch of token-id lists, padded to the
    batch's longest (``input_ids``, ``attention_mask`` and, when the model takes them, zero
    ``token_type_ids``)."""
    import numpy as np

    longest = max(len(x) for x in ids)
    input_ids = np.zeros((len(ids), longest), dtype=np.int64)
    mask = np.zeros((len(ids), longest), dtype=np.int64)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = x
        mask[row, : len(x)] = 1
    feed = {"input_ids": input_ids, "attention_mask": mask}
    if token_types:
        feed["token_type_ids"] = np.zeros_like(input_ids)
    return feed


def token_ids(tokenizer: Any, prompts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
    """Token ids of each prompt from an HF ``tokenizers.Tokenizer`` (with its template's special
    tokens, unless ``add_special_tokens`` is false); a prompt that is not valid Unicode (a lone
    surrogate, which the tokenizer cannot take) is a ValueError naming it."""
    for i, p in enumerate(prompts):
        try:
            p.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"prompt {i} is not valid Unicode (it contains a lone surrogate)") from None
    return [e.ids for e in tokenizer.encode_batch(prompts, add_special_tokens=add_special_tokens)]


def length_batches(lengths: Sequence[int], batch_size: int, tokens_per_batch: int | None = None,
                   attention_per_batch: int | None = None) -> list[list[int]]:
    """Indices of prompts grouped into batches of similar length, so that short prompts never pay
    for long ones: sorted by length, each batch grows until it holds ``batch_size`` prompts, or its
    padded size (prompts x its longest) would pass ``tokens_per_batch``, or its attention matrices
    (prompts x its longest squared) would pass ``attention_per_batch`` (a prompt past either limit
    alone makes a batch of one). The attention bound keeps long prompts in small batches, whose
    score matrices stay in cache, while short ones still fill whole batches."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, start = [], 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and stop - start < batch_size:
            rows, longest = stop - start + 1, lengths[order[stop]]
            if tokens_per_batch is not None and rows * longest > tokens_per_batch:
                break
            if attention_per_batch is not None and rows * longest * longest > attention_per_batch:
                break
            stop += 1
        batches.append(order[start:stop])
        start = stop
    return batches


def converted_once(hf_dir: Path, kind: str, settings: str, marker: str, export: Callable[[Path], Any]) -> Path:
    """The converted copy of the Hugging Face directory ``hf_dir`` in ``$ROUTELLM_FAST_CACHE/<kind>/``,
    made once by ``export(folder)``. It is keyed by the directory's path, its files' names, sizes and
    modification times, and ``settings``; ``marker`` is the file a finished conversion has. A
    process that finds another's conversion finished first keeps that one."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{hf_dir.absolute()}|{settings}".encode())
    for f in sorted(hf_dir.iterdir()):
        if f.is_file():
            st = f.stat()
            digest.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    root = os.environ.get(CACHE_ENV)
    target = (Path(root) if root else Path.home() / ".cache" / "routellm_fast") / kind / digest.hexdigest()
    if not (target / marker).is_file():
        tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
        export(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process converted it first
            shutil.rmtree(tmp, ignore_errors=True)
    return target
