"""RouteLLM's BERT router (a 3-label sequence classifier) on onnxruntime and HF ``tokenizers``: no
torch or transformers at run time."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.cpu import available_cpus
from ..backends.onnx import encoder_feed, length_batches, onnx_session, token_ids
from ..checks import check_prompts
from ..formats.checkpoints import check_metadata
from ..formats.hub import converted_once, resolve_checkpoint
from ..formats.tables import read_npy
from ..paths import BERT_METADATA_FILE, DEFAULT_BERT
from .base import Router, fingerprint, prompt_keys, register

__all__ = ["BERTRouter"]

#: Padded tokens per batch at most: long prompts run in smaller batches than short ones.
_TOKENS_PER_BATCH = 8192
#: Attention-matrix entries per head (prompts x tokens²) per batch at most: past a few hundred
#: tokens the score matrices of a token-bounded batch leave the cache (measured in benchmarks/bench_bert.py).
_ATTENTION_PER_BATCH = 32 * 128 * 128
#: A single prompt at least this long runs on every thread (below it one thread is fastest), for a
#: model of _WIDE_REFERENCE_BYTES (the shipped MiniLM router); the cut scales with the inverse of
#: the model file's size, the work per token (bert-base in float32 goes wide from 3 tokens).
_WIDE_TOKENS = 48
_WIDE_REFERENCE_BYTES = 23_300_000


def _convert_hf(hf_dir: Path, num_labels: int, int8: bool) -> Path:
    """The converted copy of a Hugging Face directory, made once (needs the ``export`` extra)."""
    from ..export.bert import BERT_FORMAT, export_bert

    return converted_once(hf_dir, "bert", f"int8={int8}|format={BERT_FORMAT}", BERT_METADATA_FILE,
                          lambda out: export_bert(hf_dir, out, int8=int8, num_labels=num_labels))


@register("bert")
class BERTRouter(Router):
    """RouteLLM's ``BERTRouter(checkpoint_path, num_labels=3)``: the strong model's win rate is
    ``1 - (p[-2] + p[-1])`` of the softmax over the classifier's logits (label 0: the strong model
    wins; 1: tie; 2: the weak model wins), prompts truncated where RouteLLM's tokenizer truncates.

    ``checkpoint_path`` is a directory made by ``routellm-fast export-bert`` (``model.onnx``,
    ``tokenizer.json``, ``routellm_fast_bert.json``), or a Hugging Face directory in RouteLLM's
    layout, converted once into ``$ROUTELLM_FAST_CACHE/bert`` (``int8`` chooses the int8 export) when
    torch, transformers and onnx are installed.

    ``score(prompts)`` sorts prompts by length and pads each batch only to its longest prompt, so a
    win rate does not depend on the batch (to ~1e-7); batches run on ``threads`` workers (default:
    the CPUs this process may use). A model whose activations are quantised at run time (``--int8``,
    the shipped router) scores each prompt on its own, since the quantisation scale is per tensor.
    One short prompt runs on one thread; one long prompt on all (``wide_tokens``: 48 tokens for the
    shipped MiniLM router, fewer for bigger models).
    """

    NO_PARALLEL = True  # each call already uses every core

    def __init__(
        self,
        checkpoint_path: str | os.PathLike[str],
        num_labels: int = 3,
        *,
        int8: bool = False,
        device: str = "cpu",
        threads: int | None = None,
        batch_size: int = 32,
    ) -> None:
        from tokenizers import Tokenizer

        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"num_labels must be an integer >= 2, got {num_labels!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        # RouteLLM's default config names its published checkpoint
        checkpoint_path, _ = resolve_checkpoint(checkpoint_path, "bert", ("config.json",), DEFAULT_BERT)
        path = Path(checkpoint_path)
        if not path.is_dir():
            raise FileNotFoundError(f"BERT checkpoint {str(path)!r} is not a directory (nothing is downloaded)")
        if not (path / BERT_METADATA_FILE).is_file():
            if not (path / "config.json").is_file():
                raise FileNotFoundError(
                    f"{path} holds neither an exported BERT router ({BERT_METADATA_FILE}) nor a Hugging Face "
                    "checkpoint (config.json)")
            path = _convert_hf(path, num_labels, int8)
        self.path = path.absolute()
        self._settings = (num_labels, device, threads, batch_size)
        try:
            meta = json.loads((path / BERT_METADATA_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {path / BERT_METADATA_FILE}: {exc}") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("tokenizer", ""), str):
            raise ValueError(f"{path / BERT_METADATA_FILE} is not a BERT router's metadata (an object whose "
                             "'tokenizer', if any, is a path)")
        if meta.get("num_labels") != num_labels:
            raise ValueError(f"{path} is a classifier with {meta.get('num_labels')} labels, not num_labels={num_labels}")
        max_length = meta.get("max_length")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"{path / BERT_METADATA_FILE}: max_length must be an integer >= 2, got {max_length!r}")
        self.metadata, self.max_length, self.num_labels = meta, max_length, num_labels
        # Activations quantised at run time share one scale per tensor, so a prompt's win rate would
        # depend on its batchmates (and their padding): such models score each prompt on its own.
        self.per_prompt = bool(meta.get("dynamic_quantization", meta.get("int8")))
        if "calibration" in meta:  # its types, key by key, as an mf checkpoint's
            check_metadata({"calibration": meta["calibration"]}, path / BERT_METADATA_FILE)
        self.calibration = meta.get("calibration")
        self.device, self.batch_size = device, batch_size
        self.threads = threads or available_cpus()

        tokenizer_path = path / meta.get("tokenizer", "tokenizer.json")
        model_path = path / "model.onnx"
        for what, f in (("tokenizer", tokenizer_path), ("model", model_path)):
            if not f.is_file():
                raise FileNotFoundError(f"{path}: the {what} file {f.name} is missing")
        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise ValueError(f"cannot load tokenizer {tokenizer_path}: {exc}") from None
        self._tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer.no_padding()
        self._session = onnx_session(model_path, device=device)
        #: A single prompt of at least this many tokens runs on every thread.
        self.wide_tokens = max(2, round(_WIDE_TOKENS * _WIDE_REFERENCE_BYTES / max(1, model_path.stat().st_size)))
        inputs = {i.name for i in self._session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= inputs or not inputs <= {"input_ids", "attention_mask", "token_type_ids"}:
            raise ValueError(f"{model_path} is not a BERT classifier: its inputs are {sorted(inputs)}")
        self._uses_token_types = "token_type_ids" in inputs
        self._wide: Any = None  # a session on every thread, for single long prompts; made on first use
        self._wide_lock = threading.Lock()
        try:
            probe = self._run([[self._cls(), self._sep()]], self._session)
        except Exception as exc:  # onnxruntime's Fail / InvalidArgument / RuntimeException
            raise ValueError(f"{model_path} does not run as a BERT classifier: {exc}") from None
        if probe.shape != (1, num_labels):
            raise ValueError(f"{model_path} outputs logits of shape {probe.shape[1:]}, not ({num_labels},)")

        digest = hashlib.blake2b(digest_size=16)
        for f in (model_path, tokenizer_path):
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):  # noqa: B023
                    digest.update(block)
        self.fingerprint = fingerprint("bert", digest.hexdigest(), max_length, num_labels)
        keys_path = path / "training_prompt_keys.npy"
        self.training_prompt_keys = prompt_keys(read_npy(keys_path) if keys_path.is_file() else None)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()

    def _cls(self) -> int:
        return self._tokenizer.token_to_id("[CLS]") or 101

    def _sep(self) -> int:
        return self._tokenizer.token_to_id("[SEP]") or 102

    def _run(self, ids: list[list[int]], session: Any) -> np.ndarray:
        """float32 logits ``[len(ids), num_labels]`` for one batch, padded to its longest prompt."""
        feed = encoder_feed(ids, self._uses_token_types)
        return np.asarray(session.run(None, feed)[0])

    def tokenize(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of each prompt as RouteLLM's tokenizer makes them (special tokens, truncation)."""
        prompts = check_prompts(prompts)
        return token_ids(self._tokenizer, prompts, max_tokens=self.max_length)

    def logits(self, prompts: Sequence[str]) -> np.ndarray:
        """float32 logits ``[len(prompts), num_labels]``."""
        ids = self.tokenize(prompts)
        out = np.empty((len(ids), self.num_labels), dtype=np.float32)
        if not ids:
            return out
        if len(ids) == 1:
            session = self._wide_session() if len(ids[0]) >= self.wide_tokens and self.threads > 1 else self._session
            out[0] = self._run(ids, session)[0]
            return out
        batches = length_batches([len(x) for x in ids], 1 if self.per_prompt else self.batch_size,
                                 _TOKENS_PER_BATCH, _ATTENTION_PER_BATCH)

        def run(batch: list[int]) -> None:
            out[batch] = self._run([ids[i] for i in batch], self._session)

        if len(batches) == 1 or self.threads == 1:
            for batch in batches:
                run(batch)
        else:
            list(self._workers().map(run, batches))
        return out

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        logits = self.logits(prompts).astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite logits: a RoutingError (Router's check)
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = exp / exp.sum(axis=1, keepdims=True)
        return 1.0 - probs[:, -2:].sum(axis=1)

    def _wide_session(self) -> Any:
        with self._wide_lock:
            if self._wide is None:
                self._wide = onnx_session(self.path / "model.onnx", device=self.device, intra_op_threads=self.threads)
            return self._wide

    def _workers(self) -> ThreadPoolExecutor:
        """The worker threads of this process: a forked child makes its own."""
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="routellm-fast-bert")
                self._pool_pid = os.getpid()
            return self._pool

    def __reduce__(self) -> tuple:
        num_labels, device, threads, batch_size = self._settings
        return (_rebuild, (str(self.path), num_labels, device, threads, batch_size))

    def __repr__(self) -> str:
        return f"BERTRouter({str(self.path)!r}, num_labels={self.num_labels}, max_length={self.max_length})"


def _rebuild(path: str, num_labels: int, device: str, threads: int | None, batch_size: int) -> BERTRouter:
    return BERTRouter(path, num_labels, device=device, threads=threads, batch_size=batch_size)
