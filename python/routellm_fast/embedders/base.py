"""What every embedder is: ``name`` (recorded with the routers trained on it), ``dim`` and
``embed(prompts) -> float32 [n, dim]``; and a plain callable wrapped as one. (The key of a prompt's
text is :func:`routellm_fast.formats.prompt_keys.prompt_key`; the error an embedding backend raises,
:class:`routellm_fast.errors.EmbeddingError`.)"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..checks import as_embeddings

__all__ = ["CallableEmbedder", "EmbedFn", "Embedder"]

EmbedFn = Callable[[list[str]], Any]


@runtime_checkable
class Embedder(Protocol):
    """What routers need from an embedder."""

    name: str
    dim: int

    def embed(self, prompts: Sequence[str]) -> np.ndarray: ...


class CallableEmbedder:
    """A plain ``list[str] -> array`` callable given the name and dimension an embedder has; its
    output is checked to be ``[n, dim]`` floats. Pickles when the callable does."""

    def __init__(self, fn: EmbedFn, name: str, dim: int) -> None:
        if not callable(fn):
            raise TypeError(f"embed must be a callable list[str] -> array or an object with .embed(), got {type(fn).__name__}")
        self.fn, self.name, self.dim = fn, name, int(dim)

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        return as_embeddings(self.fn(list(prompts)), self.dim, name="embed() output")

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        return self.embed(prompts)

    def __repr__(self) -> str:
        return f"CallableEmbedder({self.fn!r}, name={self.name!r}, dim={self.dim})"
