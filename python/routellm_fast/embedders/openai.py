"""Any OpenAI-compatible ``/v1/embeddings`` endpoint, through the official ``openai`` client."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..checks import check_prompts
from ..errors import EmbeddingError

__all__ = ["OPENAI_EMBEDDING_DIMS", "OpenAIEmbedder"]

#: Output sizes of OpenAI's embedding models (RouteLLM's published routers use text-embedding-3-small).
OPENAI_EMBEDDING_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


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
                import openai

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

    def __getstate__(self) -> dict:
        # By its settings: the client and its lock are made again where it is unpickled.
        return {k: v for k, v in self.__dict__.items() if k not in ("_client", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._client, self._lock = None, threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.name!r}, dim={self.dim}, base_url={self.base_url!r})"
