"""Prompt embedders: a local ONNX sentence embedder (the default), a static embedder distilled from
it (microseconds per prompt), any OpenAI-compatible ``/v1/embeddings`` endpoint, and a thread-safe
LRU cache in front of any of them.

Every embedder has ``name`` (recorded with the routers trained on it), ``dim`` and
``embed(prompts: list[str]) -> float32 [n, dim]``. :func:`embedder_for` turns a name into the
embedder, one instance per name and process, so routers built on the same embeddings share it.
"""

from __future__ import annotations

import os
import threading

from ..errors import EmbeddingError
from ..formats.prompt_keys import prompt_key
from .base import CallableEmbedder, Embedder, EmbedFn
from .cache import CachedEmbedder, embed_all
from .onnx import (
    DEFAULT_EMBEDDER_NAME,
    DEFAULT_MAX_TOKENS,
    OnnxEmbedder,
    shared_default_embedder,
)
from .openai import OPENAI_EMBEDDING_DIMS, OpenAIEmbedder
from .static import STATIC_EMBEDDER_NAME, StaticEmbedder, shared_static_embedder

__all__ = [
    "EMBEDDER_ALIASES",
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
    "STATIC_EMBEDDER_NAME",
    "StaticEmbedder",
    "embed_all",
    "embedder_for",
    "prompt_key",
]

#: Short names of the local embedders, as the CLI's and the server's ``--embedder`` take them.
EMBEDDER_ALIASES = {"default": DEFAULT_EMBEDDER_NAME, "minilm": DEFAULT_EMBEDDER_NAME, "static": STATIC_EMBEDDER_NAME}

_by_name: dict[str, Embedder] = {}
_by_name_lock = threading.Lock()


def embedder_for(name: str, dim: int | None = None) -> Embedder:
    """The embedder called ``name``: ``"default"``, ``"minilm"`` or ``"all-MiniLM-L6-v2"`` is the local
    ONNX model, ``"static"`` or ``"minilm-static-256"`` the shipped static embedder, an OpenAI
    embedding model's name is OpenAI's API (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``).

    One instance per name and process: every router built on the same embeddings shares it (one
    model in memory). ``dim``, when given, must match the embedder's.
    """
    name = EMBEDDER_ALIASES.get(name, name)
    with _by_name_lock:
        embedder = _by_name.get(name)
        if embedder is None:
            if name == DEFAULT_EMBEDDER_NAME:
                embedder = shared_default_embedder()
            elif name == STATIC_EMBEDDER_NAME:
                embedder = shared_static_embedder()
            elif name in OPENAI_EMBEDDING_DIMS:
                embedder = OpenAIEmbedder(name, base_url=os.environ.get("OPENAI_BASE_URL"))
            else:
                raise ValueError(
                    f"no built-in embedder {name!r}: use 'minilm' ({DEFAULT_EMBEDDER_NAME}, local), 'static' "
                    f"({STATIC_EMBEDDER_NAME}, local) or one of "
                    f"{', '.join(OPENAI_EMBEDDING_DIMS)}, or pass embed=... (an OnnxEmbedder(path), an "
                    "OpenAIEmbedder(model, base_url=...), or any callable list[str] -> array)"
                )
            _by_name[name] = embedder
    if dim is not None and embedder.dim != dim:
        raise ValueError(f"the {name!r} embedder makes {embedder.dim}-d vectors but the router expects {dim}-d")
    return embedder
