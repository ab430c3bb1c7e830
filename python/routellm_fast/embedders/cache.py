"""A thread-safe LRU cache in front of any embedder, and :func:`embed_all` for large prompt lists
with an on-disk cache shared between training and evaluation."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..checks import check_prompts
from ..errors import BadFileError, EmbeddingError
from ..formats.prompt_keys import prompt_key
from ..formats.tables import NPZ_RATIO, read_npz
from .base import Embedder

__all__ = ["CachedEmbedder", "embed_all"]


class CachedEmbedder:
    """A bounded, thread-safe LRU cache in front of an embedder, keyed by a hash of the text.

    Within one ``embed`` call, repeated and cached prompts are embedded once; misses go to the
    wrapped embedder in a single batch. ``misses`` counts the prompts sent to the wrapped embedder,
    ``hits`` the prompts answered without it. A pickled copy wraps a copy of the embedder and
    starts empty.
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

    def __reduce__(self) -> tuple:
        # By what it was built from: the cache of a copy starts empty (it gives the same answers).
        return (type(self), (self.embedder, self.max_entries))

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.embedder!r}, max_entries={self.max_entries})"

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
        data = read_npz(path, ("keys", "vectors", "name", "dim"), max_ratio=NPZ_RATIO, kind="routellm_fast embedding cache")
        try:
            name, dim, keys, vectors = str(data["name"]), int(data["dim"]), data["keys"], data["vectors"]
        except (KeyError, TypeError, ValueError) as exc:
            raise BadFileError(f"{path} is not an embedding cache file: {exc}") from None
        if (name, dim) != (self.name, self.dim):
            raise BadFileError(f"{path} holds {dim}-d {name!r} embeddings, not {self.dim}-d {self.name!r}")
        if keys.ndim != 2 or keys.shape[1] != 16 or vectors.shape != (len(keys), dim):
            raise BadFileError(f"{path}: keys of shape {keys.shape} do not fit vectors of shape {vectors.shape}")
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
