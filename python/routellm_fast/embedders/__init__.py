"""Prompt embedders: a local ONNX sentence embedder (the default), any OpenAI-compatible
``/v1/embeddings`` endpoint, and a thread-safe LRU cache in front of either.

Every embedder has ``name`` (recorded with the routers trained on it), ``dim`` and
``embed(prompts: list[str]) -> float32 [n, dim]``. :func:`embedder_for` turns a name into the
embedder, one instance per name and process, so routers built on the same embeddings share it.
"""

from __future__ import annotations

import os
import threading

from .base import CallableEmbedder, Embedder, EmbeddingError, EmbedFn, prompt_key
from .cache import CachedEmbedder, embed_all
from .onnx import (
    DEFAULT_EMBEDDER_NAME,
    DEFAULT_MAX_TOKENS,
    OnnxEmbedder,
    shared_default_embedder,
)
from .openai import OPENAI_EMBEDDING_DIMS, OpenAIEmbedder

__all__ = [
    "DEFAULT_EMBEDDER_NAME",
    "DEFAULT_MAX_TOKENS",
    "OPENAI_EMBEDDING_DIMS",
    "CachedEmbedder",
    "CallableEmbedder",
    "EmbedFn",
    "Embedder",
    "EmbeddingError",
    "OnnxEmbedder",
    "OpenAIEmbedder",
    "embed_all",
    "embedder_for",
    "prompt_key",
]

_by_name: dict[str, Embedder] = {}
_by_name_lock = threading.Lock()


def embedder_for(name: str, dim: int | None = None) -> Embedder:
    """The embedder called ``name``: ``"default"`` or ``"all-MiniLM-L6-v2"`` is the local ONNX model,
    an OpenAI embedding model's name is OpenAI's API (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``).

    One instance per name and process: every router built on the same embeddings shares it (one
    model in memory). ``dim``, when given, must match the embedder's.
    """
    if name == "default":
        name = DEFAULT_EMBEDDER_NAME
    with _by_name_lock:
        embedder = _by_name.get(name)
        if embedder is None:
            if name == DEFAULT_EMBEDDER_NAME:
                embedder = shared_default_embedder()
            elif name in OPENAI_EMBEDDING_DIMS:
                embedder = OpenAIEmbedder(name, base_url=os.environ.get("OPENAI_BASE_URL"))
            else:
                raise ValueError(
                    f"no built-in embedder {name!r}: use 'default' ({DEFAULT_EMBEDDER_NAME}, local) or one of "
                    f"{', '.join(OPENAI_EMBEDDING_DIMS)}, or pass embed=... (an OnnxEmbedder(path), an "
                    "OpenAIEmbedder(model, base_url=...), or any callable list[str] -> array)"
                )
            _by_name[name] = embedder
    if dim is not None and embedder.dim != dim:
        raise ValueError(f"the {name!r} embedder makes {embedder.dim}-d vectors but the router expects {dim}-d")
    return embedder
