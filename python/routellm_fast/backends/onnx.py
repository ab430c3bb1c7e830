"""onnxruntime sessions on a chosen execution provider, shared by the ONNX embedder and the
ONNX-executed router classifiers, and the tokenising and batching they share."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["CHARS_PER_TOKEN", "EXECUTION_PROVIDERS", "cut_prompt", "encoder_feed", "length_batches", "onnx_session",
           "token_ids"]


#: Device names accepted by :func:`onnx_session` and the execution providers they ask for, in order.
EXECUTION_PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
}


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


#: The most characters one token is taken to cover. Prompts are cut to ``max_tokens`` times this
#: before they are tokenised, so the work and memory of a request are bounded by the token limit,
#: whatever the length or script of its text (an HF tokenizer keeps ~200 bytes per character of
#: CJK text while it tokenises). Word pieces and BPE tokens of real text cover 1 to ~6 characters;
#: 32 leaves room for long runs of spaces or punctuation, so a cut never changes the tokens kept.
CHARS_PER_TOKEN = 32
#: How far back from the cut a word boundary (whitespace) is looked for, so that the last word is
#: not split into other pieces than the whole word gives (BERT's WordPiece reads words of up to 100
#: characters; a longer one is [UNK] whole or cut).
_WORD_BACKOFF = 256
_LAST_SPACE = re.compile(r"\s(?=\S*\Z)")


def cut_prompt(text: str, max_tokens: int) -> str:
    """``text`` cut to what ``max_tokens`` tokens can cover (:data:`CHARS_PER_TOKEN` characters each),
    at the last whitespace before the cut when one is near, so the tokens kept are the ones the whole
    text gives. Text within the bound is returned as it is."""
    limit = max_tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    tail = _LAST_SPACE.search(text, max(0, limit - _WORD_BACKOFF), limit)
    return text[: tail.start()] if tail is not None else text[:limit]


def token_ids(tokenizer: Any, prompts: Sequence[str], add_special_tokens: bool = True,
              max_tokens: int | None = None) -> list[list[int]]:
    """Token ids of each prompt from an HF ``tokenizers.Tokenizer`` (with its template's special
    tokens, unless ``add_special_tokens`` is false); a prompt that is not valid Unicode (a lone
    surrogate, which the tokenizer cannot take) is a ValueError naming it. With ``max_tokens`` (the
    tokenizer's truncation), each prompt is first cut by :func:`cut_prompt`, so a long prompt is
    never tokenised whole."""
    if max_tokens is not None:
        prompts = [cut_prompt(p, max_tokens) for p in prompts]
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


