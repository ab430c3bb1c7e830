"""The router interface and the registry of routers by RouteLLM name.

Every router answers ``calculate_strong_win_rate(prompt)`` and ``route(prompt, threshold,
routed_pair)`` exactly as RouteLLM's do, plus ``score(prompts)`` for whole batches. Routers that
work on prompt embeddings (:class:`EmbeddingRouter`: mf, sw_ranking) also take embeddings directly
via ``score_embeddings(emb)``; they turn text into vectors with the embedder they were given.

Routers pickle by what they were built from (their arrays and settings), so they work in
``multiprocessing`` pools (fork and spawn), after ``os.fork`` and on remote workers.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

from ..checks import as_embeddings, check_prompts, check_threshold, lookup_model
from ..decision.rule import RoutedPair, choose
from ..embedders import (
    CachedEmbedder,
    CallableEmbedder,
    Embedder,
    EmbedFn,
    embedder_for,
)
from ..errors import RoutingError

__all__ = ["NAME_TO_CLS", "NOT_IMPLEMENTED", "ROUTER_CLS", "EmbeddingRouter", "Router", "register", "unknown_router"]

#: RouteLLM name -> router class (RouteLLM's ``ROUTER_CLS``); filled by :func:`register`.
ROUTER_CLS: dict[str, type[Router]] = {}
#: router class -> RouteLLM name.
NAME_TO_CLS: dict[type[Router], str] = {}

R = TypeVar("R", bound="type[Router]")

#: RouteLLM's routers that routellm_fast does not implement yet, and what they need there.
NOT_IMPLEMENTED: dict[str, str] = {}


def unknown_router(name: object) -> str:
    """Why ``name`` is no router here, naming what is missing for RouteLLM's routers not implemented yet."""
    available = ", ".join(sorted(ROUTER_CLS))
    if name in NOT_IMPLEMENTED:
        return (f"routellm_fast does not implement RouteLLM's {name} router yet ({NOT_IMPLEMENTED[name]}); "  # type: ignore[index]
                f"it has {available}. Use routellm's own {name} router, or one of these.")
    return f"no router {name!r}; routellm_fast has {available}."


def register(name: str) -> Callable[[R], R]:
    """Class decorator: make a router available under ``name`` (in ``Controller``, the CLI, the
    server, ``eval`` and ``patch_routellm()``)."""

    def add(cls: R) -> R:
        ROUTER_CLS[name] = cls
        NAME_TO_CLS[cls] = name
        return cls

    return add


#: The methods whose answers are checked for NaN and infinity in every router class (wrapped once,
#: where a class defines them: see :meth:`Router.__init_subclass__`).
_CHECKED_OUTPUTS = ("score", "score_embeddings", "score_models", "score_models_embeddings")


def _all_finite(values: np.ndarray) -> bool:
    """Whether no value is NaN or infinite, cheaply for the one-prompt answers of a server's hot path
    (a few Python floats) and for large batches (one dot product: NaN and infinity propagate; only
    an overflow of huge finite values needs the element-wise check)."""
    flat = values.ravel()
    if flat.size <= 16:
        return all(map(math.isfinite, flat.tolist()))
    with np.errstate(over="ignore", invalid="ignore"):
        square = flat @ flat
    return math.isfinite(square) or bool(np.isfinite(flat).all())


def _finite_answers(method: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """``method`` (one of :data:`_CHECKED_OUTPUTS`) with its answer checked: a NaN or infinite win
    rate or score, from broken weights, an overflowing model or a hostile file, is a RoutingError
    naming the router and the first prompt, never a route (NaN compares false with every threshold,
    so it would silently send every prompt to the weak model)."""
    if getattr(method, "_finite_checked", False):
        return method

    @functools.wraps(method)
    def checked(self: Router, *args: Any, **kwargs: Any) -> np.ndarray:
        out = method(self, *args, **kwargs)
        values = np.asarray(out)
        if values.dtype.kind == "f" and not _all_finite(values):
            rows = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
            what = "scores" if "models" in method.__name__ else "win rates"
            raise RoutingError(f"router {self} gave non-finite {what} (NaN or infinity) for {rows.size} of "
                               f"{len(values)} prompts (the first is prompt {int(rows[0])}): its model or weights "
                               "are broken; no route is taken from them")
        return out

    checked._finite_checked = True  # type: ignore[attr-defined]
    return checked


class Router(abc.ABC):
    """The interface of every router: a strong-model win rate per prompt, and a routing decision.

    Every router's ``score``, ``score_models`` (and, for embedding routers, ``score_embeddings``
    and ``score_models_embeddings``) is checked here, in one place, for NaN and infinite answers:
    a RoutingError naming the router instead of a route."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _CHECKED_OUTPUTS:
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "__isabstractmethod__", False):
                setattr(cls, name, _finite_answers(method))

    #: RouteLLM's flag: callers should not score this router's prompts in parallel processes.
    NO_PARALLEL: ClassVar[bool] = False
    #: Where scoring runs.
    device: str = "cpu"
    #: A digest of everything the router's answers depend on (weights or arena, model pair,
    #: embedder), for caching its win rates; None for routers whose answers are not repeatable.
    fingerprint: str | None = None
    #: Keys (:func:`~routellm_fast.embedders.prompt_key`) of the prompts the router was trained
    #: on, so that an evaluation can leave them out; empty when unknown.
    training_prompt_keys: frozenset[bytes] = frozenset()
    #: Win rates on the bundled sample prompts recorded with the router's files (the shipped routers
    #: have them; :func:`routellm_fast.decision.calibration.sample_win_rates`), or None.
    calibration: dict | None = None

    @abc.abstractmethod
    def score(self, prompts: Sequence[str]) -> np.ndarray:
        """Strong-model win rates for a batch of prompts, as float64 ``[len(prompts)]``."""

    def calculate_strong_win_rate(self, prompt: str) -> float:
        """The strong model's estimated win rate on ``prompt``, in [0, 1]."""
        return float(self.score([prompt])[0])

    def route(self, prompt: str, threshold: float, routed_pair: RoutedPair) -> str:
        """``routed_pair.strong`` when the win rate is at least ``threshold`` (in [0, 1]), else weak."""
        threshold = check_threshold(threshold)
        return choose(self.calculate_strong_win_rate(prompt), threshold, routed_pair)

    def score_models(self, prompts: Sequence[str], models: Sequence[str]) -> np.ndarray:
        """Per-model scores for routing among many models, float64 ``[len(prompts), len(models)]`` on
        one logit scale: model a beats model b on a prompt with probability ``sigmoid(s_a - s_b)``
        (:func:`routellm_fast.decision.rule.choose_models` turns them into choices). mf, sw_ranking and knn have
        them; routers that only compare their pair raise TypeError."""
        raise TypeError(f"the {self} router compares its two models only; score_models needs mf, sw_ranking or knn")

    def __str__(self) -> str:
        return NAME_TO_CLS.get(type(self), type(self).__name__)


def fingerprint(kind: str, *parts: Any) -> str:
    """A digest of arrays and values: the identity of a router's configuration."""
    digest = hashlib.blake2b(kind.encode(), digest_size=16)
    for part in parts:
        digest.update(np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
    return f"{kind}-{digest.hexdigest()}"


def prompt_keys(rows: np.ndarray | None) -> frozenset[bytes]:
    """Prompt keys stored as uint8 rows of 16 bytes."""
    if rows is None:
        return frozenset()
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != 16 or rows.dtype != np.uint8:
        raise ValueError(f"training prompt keys must be uint8 rows of 16 bytes, got {rows.dtype} {rows.shape}")
    return frozenset(r.tobytes() for r in rows)


class EmbeddingRouter(Router):
    """A router that scores prompt embeddings of a fixed dimension.

    ``embedding_model`` names the embedder the router's vectors come from. An ``embed`` object with
    ``name``/``dim`` attributes (an :class:`~routellm_fast.embedders.Embedder`) must match both; a
    plain callable is only checked for the dimension of what it returns. With no ``embed``, the
    router uses the embedder it was built with (:func:`~routellm_fast.embedders.embedder_for`, shared
    by every router on the same embeddings): the local ONNX model for routers built on it, OpenAI's
    API (``OPENAI_API_KEY``) for RouteLLM's published ``text-embedding-3-small`` routers.
    """

    def _init_embedder(self, embed: Embedder | EmbedFn | None, embedding_model: str) -> None:
        self.embedding_model = embedding_model
        self._embedder_lock = threading.Lock()
        self._embedder: Embedder | None = None  # None: made on first use, from embedding_model
        if embed is None:
            return
        name, dim = getattr(embed, "name", None), getattr(embed, "dim", None)
        if dim is not None and int(dim) != self.embedding_dim:
            raise ValueError(
                f"embedder {name or embed!r} makes {dim}-d vectors but this router scores {self.embedding_dim}-d "
                f"{embedding_model} embeddings"
            )
        if isinstance(name, str) and name != embedding_model:
            raise ValueError(
                f"this router was built on {embedding_model!r} embeddings, but the embedder is {name!r}; "
                f"pass embedding_model={name!r} if the two are the same model"
            )
        if callable(getattr(embed, "embed", None)) and isinstance(name, str) and dim is not None:
            self._embedder = embed  # type: ignore[assignment]
        elif callable(getattr(embed, "embed", None)):
            self._embedder = CallableEmbedder(embed.embed, embedding_model, self.embedding_dim)  # type: ignore[union-attr]
        else:
            self._embedder = CallableEmbedder(embed, embedding_model, self.embedding_dim)  # type: ignore[arg-type]

    @property
    def embedder(self) -> Embedder:
        """The embedder ``score(prompts)`` uses (created on first use when none was given)."""
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = embedder_for(self.embedding_model, self.embedding_dim)
            return self._embedder

    def use_embedding_cache(self, max_entries: int = 10_000) -> CachedEmbedder:
        """Put a thread-safe LRU cache in front of this router's embedder (a server sees the same
        prompts again); returns the cache, whose ``hits``/``misses`` count prompts."""
        embedder = self.embedder
        if not isinstance(embedder, CachedEmbedder):
            embedder = CachedEmbedder(embedder, max_entries)
            with self._embedder_lock:
                self._embedder = embedder
        return embedder

    @property
    @abc.abstractmethod
    def embedding_dim(self) -> int:
        """The dimension of the prompt embeddings this router scores."""

    @abc.abstractmethod
    def _score_matrix(self, embeddings: np.ndarray) -> np.ndarray: ...

    def score_embeddings(self, embeddings: Any) -> np.ndarray:
        """Win rates for prompt embeddings ``[n, dim]``, float64 ``[n]``; releases the GIL.

        float32 rows are read in place; other float dtypes cost one conversion copy.
        """
        return self._score_matrix(as_embeddings(embeddings, self.embedding_dim))

    def _embed(self, prompts: Sequence[str]) -> np.ndarray:
        vectors = as_embeddings((self._embedder or self.embedder).embed(prompts), self.embedding_dim,
                                name="embed() output")
        if vectors.shape[0] != len(prompts):
            raise ValueError(f"embed() returned {vectors.shape[0]} vectors for {len(prompts)} prompts")
        return vectors

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        prompts = check_prompts(prompts)
        if not prompts:
            return np.empty(0, dtype=np.float64)
        return self._score_matrix(self._embed(prompts))

    #: Model name -> the index _model_scores takes (set by routers that score many models).
    _model_index: dict[str, int] | None = None

    def _model_scores(self, embeddings: np.ndarray, models: np.ndarray) -> np.ndarray:
        raise TypeError(f"the {self} router compares its two models only")

    def score_models_embeddings(self, embeddings: Any, models: Sequence[str]) -> np.ndarray:
        """:meth:`score_models` for prompt embeddings ``[n, dim]``."""
        if isinstance(models, str) or not models:
            raise ValueError("models must be a non-empty list of model names")
        if self._model_index is None:
            raise TypeError(f"the {self} router compares its two models only; score_models needs mf, sw_ranking or knn")
        index = np.array([lookup_model(m, self._model_index, "model") for m in models], dtype=np.int64)
        return self._model_scores(as_embeddings(embeddings, self.embedding_dim), index)

    def score_models(self, prompts: Sequence[str], models: Sequence[str]) -> np.ndarray:
        prompts = check_prompts(prompts)
        if not prompts:
            self.score_models_embeddings(np.empty((0, self.embedding_dim), np.float32), models)  # checks models
            return np.empty((0, len(models)), dtype=np.float64)
        return self.score_models_embeddings(self._embed(prompts), models)

    #: What the router was asked to score on (``"cpu"``, ``"cuda"``, ``"auto"``) and the precision of
    #: its GPU dot products; ``device`` is what that resolved to here.
    _device_request: str = "cpu"
    gpu_precision: str = "float32"

    def _set_device(self, device: str | None, gpu_precision: str = "float32") -> None:
        from ..backends.cuda import PRECISIONS, resolve_device

        if gpu_precision not in PRECISIONS:
            raise ValueError(f"gpu_precision must be one of {', '.join(PRECISIONS)}, got {gpu_precision!r}")
        self._device_request, self.gpu_precision = device or "auto", gpu_precision
        self.device = resolve_device(device)
        self._gpu = None

    def _gpu_scorer(self) -> Any:
        """The router's GPU scorer, built on first use (its tables copied to the GPU once)."""
        with self._embedder_lock:
            if getattr(self, "_gpu", None) is None:
                self._gpu = self._make_gpu_scorer()
            return self._gpu

    def _make_gpu_scorer(self) -> Any:
        raise RuntimeError(f"the {self} router has no GPU path")

    def __getstate__(self) -> dict:
        # Not pickled: the lock, the many-model scorer and the GPU scorer (rebuilt on first use),
        # and the resolved device (resolved again where the router is unpickled).
        skip = ("_embedder_lock", "_models_scorer", "_gpu", "device")
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._embedder_lock = threading.Lock()
        from ..backends.cuda import resolve_device

        self.device, self._gpu = resolve_device(self._device_request), None
