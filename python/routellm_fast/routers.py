"""Routers with RouteLLM's interface, scored by the compiled core.

Every router answers ``calculate_strong_win_rate(prompt)`` and ``route(prompt, threshold,
routed_pair)`` exactly as RouteLLM's do, plus ``score(prompts)`` for whole batches. Routers that
work on prompt embeddings (mf, sw_ranking) also take embeddings directly via
``score_embeddings(emb)``; they turn text into vectors with the ``embed`` they were given.
"""

from __future__ import annotations

import abc
import hashlib
import os
import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from . import _core
from ._validation import as_embeddings, check_prompts, check_threshold, lookup_model
from .arena import ArenaFile, Battles, Source, load_arena, load_battles, load_embeddings, outcome_codes
from .checkpoints import load_mf_checkpoint
from .embedders import CachedEmbedder, Embedder, default_embedder_for
from .model_ids import MODEL_IDS

__all__ = [
    "Router",
    "EmbeddingRouter",
    "RandomRouter",
    "MatrixFactorizationRouter",
    "SWRankingRouter",
    "ROUTER_CLS",
    "NAME_TO_CLS",
]

DEFAULT_STRONG_MODEL = "gpt-4-1106-preview"
DEFAULT_WEAK_MODEL = "mixtral-8x7b-instruct-v0.1"


class RoutedPair(Protocol):
    strong: str
    weak: str


EmbedFn = Callable[[list[str]], Any]

#: The embedding model of RouteLLM's published checkpoints and arena embedding datasets.
ROUTELLM_EMBEDDING_MODEL = "text-embedding-3-small"


class Router(abc.ABC):
    """The interface of every router: a strong-model win rate per prompt, and a routing decision."""

    #: RouteLLM's flag: callers should not score this router's prompts in parallel processes.
    NO_PARALLEL: ClassVar[bool] = False
    #: Where scoring runs.
    device: str = "cpu"

    @abc.abstractmethod
    def score(self, prompts: Sequence[str]) -> np.ndarray:
        """Strong-model win rates for a batch of prompts, as float64 ``[len(prompts)]``."""

    def calculate_strong_win_rate(self, prompt: str) -> float:
        """The strong model's estimated win rate on ``prompt``, in [0, 1]."""
        return float(self.score([prompt])[0])

    def route(self, prompt: str, threshold: float, routed_pair: RoutedPair) -> str:
        """``routed_pair.strong`` when the win rate is at least ``threshold`` (in [0, 1]), else weak."""
        threshold = check_threshold(threshold)
        if self.calculate_strong_win_rate(prompt) >= threshold:
            return routed_pair.strong
        return routed_pair.weak

    def __str__(self) -> str:
        return NAME_TO_CLS.get(type(self), type(self).__name__)

    #: A digest of everything the router's answers depend on (weights or arena, model pair,
    #: embedder), for caching its win rates; None for routers whose answers are not repeatable.
    fingerprint: str | None = None
    #: Keys (:func:`~routellm_fast.embedders.prompt_key`) of the prompts the router was trained
    #: on, so that an evaluation can leave them out; empty when unknown.
    training_prompt_keys: frozenset[bytes] = frozenset()


def _fingerprint(kind: str, *parts: Any) -> str:
    digest = hashlib.blake2b(kind.encode(), digest_size=16)
    for part in parts:
        digest.update(np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
    return f"{kind}-{digest.hexdigest()}"


def _keys(rows: np.ndarray | None) -> frozenset[bytes]:
    """Prompt keys stored as uint8 rows of 16 bytes."""
    if rows is None:
        return frozenset()
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != 16 or rows.dtype != np.uint8:
        raise ValueError(f"training prompt keys must be uint8 rows of 16 bytes, got {rows.dtype} {rows.shape}")
    return frozenset(r.tobytes() for r in rows)


class _CallableEmbedder:
    """A plain ``list[str] -> array`` callable with the name and dimension a cache needs."""

    def __init__(self, fn: EmbedFn, name: str, dim: int) -> None:
        self.fn, self.name, self.dim = fn, name, dim

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        return as_embeddings(self.fn(list(prompts)), self.dim, name="embed() output")


class EmbeddingRouter(Router):
    """A router that scores prompt embeddings of a fixed dimension.

    ``embedding_model`` names the embedder the router's vectors come from. An ``embed`` object with
    ``name``/``dim`` attributes (an :class:`~routellm_fast.embedders.Embedder`) must match both; a
    plain callable is only checked for the dimension of what it returns. With no ``embed``, the
    router uses the embedder it was built with: the local ONNX model for routers built on it,
    OpenAI's API (``OPENAI_API_KEY``) for RouteLLM's published ``text-embedding-3-small`` routers.
    """

    def _init_embedder(self, embed: Embedder | EmbedFn | None, embedding_model: str) -> None:
        self.embedding_model = embedding_model
        self._embedder_lock = threading.Lock()
        if embed is None:
            self._embedder: Any = None  # made on first use, from embedding_model
            self._embed: EmbedFn | None = None
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
        if hasattr(embed, "embed") and callable(embed.embed):
            self._embedder, self._embed = embed, embed.embed
        elif callable(embed):
            self._embedder, self._embed = embed, embed
        else:
            raise TypeError(
                f"embed must be a callable list[str] -> array or an object with .embed(), got {type(embed).__name__}"
            )

    @property
    def embedder(self) -> Any:
        """The embedder ``score(prompts)`` uses (created on first use when none was given)."""
        with self._embedder_lock:
            if self._embed is None:
                self._embedder = default_embedder_for(self.embedding_model, self.embedding_dim)
                self._embed = self._embedder.embed
            return self._embedder

    def use_embedding_cache(self, max_entries: int = 10_000) -> CachedEmbedder:
        """Put a thread-safe LRU cache in front of this router's embedder (a server sees the same
        prompts again); returns the cache, whose ``hits``/``misses`` count prompts."""
        embedder = self.embedder
        if not isinstance(embedder, CachedEmbedder):
            if not hasattr(embedder, "name"):  # a plain callable
                embedder = _CallableEmbedder(embedder, self.embedding_model, self.embedding_dim)
            embedder = CachedEmbedder(embedder, max_entries)
            with self._embedder_lock:
                self._embedder, self._embed = embedder, embedder.embed
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

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        prompts = check_prompts(prompts)
        if not prompts:
            return np.empty(0, dtype=np.float64)
        embed = self._embed or self.embedder.embed
        vectors = as_embeddings(embed(prompts), self.embedding_dim, name="embed() output")
        if vectors.shape[0] != len(prompts):
            raise ValueError(f"embed() returned {vectors.shape[0]} vectors for {len(prompts)} prompts")
        return self._score_matrix(vectors)


class RandomRouter(Router):
    """RouteLLM's baseline: a uniformly random win rate per prompt."""

    NO_PARALLEL = True  # parallelism makes the random stream non-deterministic

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def calculate_strong_win_rate(self, prompt: str) -> float:
        del prompt
        return self._rng.uniform(0, 1)

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        return np.array([self._rng.uniform(0, 1) for _ in check_prompts(prompts)], dtype=np.float64)


class MatrixFactorizationRouter(EmbeddingRouter):
    """RouteLLM's matrix-factorisation router, loaded from a ``MFModel.save_pretrained`` directory.

    ``model_ids`` maps model names to rows of the checkpoint's ``P.weight``; it defaults to the
    table the checkpoint records (``routellm_fast.json``), else RouteLLM's 64 names. Shapes left as
    None come from the checkpoint's ``config.json``, else RouteLLM's defaults (128, 64, 1536).
    """

    NO_PARALLEL = True

    def __init__(
        self,
        checkpoint_path: str | os.PathLike[str],
        strong_model: str = DEFAULT_STRONG_MODEL,
        weak_model: str = DEFAULT_WEAK_MODEL,
        hidden_size: int | None = None,
        num_models: int | None = None,
        text_dim: int | None = None,
        num_classes: int = 1,
        use_proj: bool = True,
        *,
        embed: Embedder | EmbedFn | None = None,
        model_ids: Mapping[str, int] | None = None,
        embedding_model: str | None = None,
    ) -> None:
        ckpt = load_mf_checkpoint(checkpoint_path, hidden_size, num_models, text_dim, num_classes, use_proj)
        if model_ids is None:
            model_ids = ckpt.metadata.get("model_ids", MODEL_IDS)
        self.model_ids = dict(model_ids)
        self.strong_model, self.weak_model = strong_model, weak_model
        strong = lookup_model(strong_model, self.model_ids, "strong_model")
        weak = lookup_model(weak_model, self.model_ids, "weak_model")
        for role, idx in (("strong_model", strong), ("weak_model", weak)):
            if not 0 <= idx < len(ckpt.model_embeddings):
                raise ValueError(f"{role} maps to row {idx}, outside the checkpoint's {len(ckpt.model_embeddings)} models")
        self._scorer = _core.MfPairScorer(
            ckpt.model_embeddings, ckpt.text_projection, ckpt.classifier[0], strong, weak
        )
        self.checkpoint = ckpt
        recorded = ckpt.metadata.get("embedder", {}).get("name", ROUTELLM_EMBEDDING_MODEL)
        self._init_embedder(embed, embedding_model or recorded)
        self.fingerprint = _fingerprint(
            "mf", ckpt.model_embeddings, ckpt.text_projection, ckpt.classifier, strong, weak, self.embedding_model
        )
        self.training_prompt_keys = _keys(ckpt.training_prompt_keys)

    @property
    def embedding_dim(self) -> int:
        return self._scorer.text_dim

    def _score_matrix(self, embeddings: np.ndarray) -> np.ndarray:
        return self._scorer.score(embeddings)


class SWRankingRouter(EmbeddingRouter):
    """RouteLLM's similarity-weighted Elo router over an arena of battles with prompt embeddings.

    ``arena_battle_datasets`` and ``arena_embedding_datasets`` are local files or directories (see
    :mod:`routellm_fast.arena` for the formats); ``arena=FILE`` instead loads a compact arena file
    (``routellm-fast train sw``), e.g. from a YAML config; use :meth:`from_battles` for in-memory arrays.
    ``storage`` keeps the arena's prompt embeddings as ``"float32"`` (exact), ``"float16"`` or
    ``"int8"`` (per-row scaled), trading accuracy for memory and bandwidth (see README).
    """

    def __init__(
        self,
        arena_battle_datasets: Source | Iterable[Source] | None = None,
        arena_embedding_datasets: Source | Iterable[Source] | None = None,
        strong_model: str = DEFAULT_STRONG_MODEL,
        weak_model: str = DEFAULT_WEAK_MODEL,
        num_tiers: int = 10,
        *,
        embed: Embedder | EmbedFn | None = None,
        storage: str = "float32",
        embedding_model: str = ROUTELLM_EMBEDDING_MODEL,
        arena: Source | None = None,
    ) -> None:
        if arena is not None:  # a compact arena file (routellm-fast train sw), e.g. from a YAML config
            if arena_battle_datasets is not None or arena_embedding_datasets is not None:
                raise ValueError("give either arena= (a compact arena file) or the battle and embedding datasets")
            loaded = load_arena(arena)
            self._build_arena(loaded, strong_model, weak_model, num_tiers, embed, storage,
                              _recorded_embedder(loaded, arena))
            return
        if arena_battle_datasets is None or arena_embedding_datasets is None:
            raise ValueError("sw_ranking needs arena_battle_datasets and arena_embedding_datasets, or arena=FILE")
        battles = load_battles(arena_battle_datasets)
        embeddings = load_embeddings(arena_embedding_datasets)
        self._build(battles, embeddings, strong_model, weak_model, num_tiers, embed, storage, embedding_model)

    @classmethod
    def from_battles(
        cls,
        model_a: Sequence[str],
        model_b: Sequence[str],
        winner: Sequence[str],
        embeddings: Any,
        strong_model: str = DEFAULT_STRONG_MODEL,
        weak_model: str = DEFAULT_WEAK_MODEL,
        num_tiers: int = 10,
        *,
        embed: Embedder | EmbedFn | None = None,
        storage: str = "float32",
        embedding_model: str = ROUTELLM_EMBEDDING_MODEL,
    ) -> SWRankingRouter:
        """Build from arrays: one embedding row per battle; ``winner`` in model_a/model_b/tie."""
        outcome = outcome_codes(winner)
        battles = Battles(np.asarray(list(model_a), dtype=object), np.asarray(list(model_b), dtype=object), outcome)
        router = cls.__new__(cls)
        router._build(battles, embeddings, strong_model, weak_model, num_tiers, embed, storage, embedding_model)
        return router

    @classmethod
    def from_arena(
        cls,
        path: Source | ArenaFile,
        strong_model: str = DEFAULT_STRONG_MODEL,
        weak_model: str = DEFAULT_WEAK_MODEL,
        num_tiers: int = 10,
        *,
        embed: Embedder | EmbedFn | None = None,
        storage: str = "float32",
    ) -> SWRankingRouter:
        """Load a compact arena file (:func:`routellm_fast.arena.save_arena`), or use an
        :class:`~routellm_fast.arena.ArenaFile` in memory; the embedder it was built with is recorded
        in it and is the default ``embed``."""
        arena = path if isinstance(path, ArenaFile) else load_arena(path)
        router = cls.__new__(cls)
        router._build_arena(arena, strong_model, weak_model, num_tiers, embed, storage, _recorded_embedder(arena, path))
        return router

    def _build(
        self,
        battles: Battles,
        embeddings: Any,
        strong_model: str,
        weak_model: str,
        num_tiers: int,
        embed: Embedder | EmbedFn | None,
        storage: str,
        embedding_model: str,
    ) -> None:
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.dtype.kind != "f":
            raise ValueError(f"arena embeddings must be a 2-D float matrix, got shape {emb.shape} dtype {emb.dtype}")
        if len(battles.model_a) != len(battles.model_b) or len(battles.model_a) != len(battles):
            raise ValueError("model_a, model_b and winner must have the same length")
        if emb.shape[0] != len(battles):
            raise ValueError(
                f"number of battle embeddings ({emb.shape[0]}) does not match the number of battles "
                f"({len(battles)}) after preprocessing"
            )
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        # Models numbered by first appearance in model_a then model_b, as RouteLLM's pandas code does.
        names = np.concatenate([battles.model_a, battles.model_b])
        _, first = np.unique(names.astype(str), return_index=True)
        models = [str(m) for m in names[np.sort(first)]]
        index = {m: i for i, m in enumerate(models)}
        battle_prompt, firsts = _core.dedup_rows(emb)  # battles sharing a prompt share its row
        arena = ArenaFile(
            prompt_embeddings=np.ascontiguousarray(emb[firsts]),
            battle_prompt=battle_prompt,
            model_a=np.fromiter((index[m] for m in battles.model_a), dtype=np.int32, count=len(battles)),
            model_b=np.fromiter((index[m] for m in battles.model_b), dtype=np.int32, count=len(battles)),
            outcome=battles.outcome,
            models=models,
            metadata={"embedder": {"name": embedding_model, "dim": int(emb.shape[1])}},
        )
        self._build_arena(arena, strong_model, weak_model, num_tiers, embed, storage, embedding_model)

    def _build_arena(
        self,
        arena: ArenaFile,
        strong_model: str,
        weak_model: str,
        num_tiers: int,
        embed: Embedder | EmbedFn | None,
        storage: str,
        embedding_model: str,
    ) -> None:
        self.models: list[str] = list(arena.models)
        self.metadata = arena.metadata
        index = {m: i for i, m in enumerate(self.models)}
        self._arena = _core.SwArena(
            np.ascontiguousarray(arena.prompt_embeddings, dtype=np.float32),
            np.ascontiguousarray(arena.battle_prompt, dtype=np.int64),
            np.ascontiguousarray(arena.model_a, dtype=np.int32),
            np.ascontiguousarray(arena.model_b, dtype=np.int32),
            np.ascontiguousarray(arena.outcome, dtype=np.int8),
            n_models=len(self.models),
            num_tiers=num_tiers,
            anchor_model=index.get("llama-2-70b-chat", -1),
            storage=storage,
            model_names=self.models,
        )
        self.strong_model, self.weak_model = strong_model, weak_model
        self._strong = lookup_model(strong_model, index, "strong_model")
        self._weak = lookup_model(weak_model, index, "weak_model")
        ratings = self._arena.model_ratings
        order = sorted(range(len(self.models)), key=lambda i: -ratings[i])
        #: Elo rating per model over all battles, best first (RouteLLM's compute_elo_mle_with_tie).
        self.ratings: dict[str, float] = {self.models[i]: float(ratings[i]) for i in order}
        tiers = self._arena.model_tier
        #: model -> tier (0 = strongest), as RouteLLM's ``model2tier``.
        self.model2tier: dict[str, int] = {self.models[i]: int(tiers[i]) for i in order}
        self._init_embedder(embed, embedding_model)
        self.fingerprint = _fingerprint(
            "sw_ranking", arena.prompt_embeddings, arena.battle_prompt, arena.model_a, arena.model_b, arena.outcome,
            self.models, num_tiers, storage, self._strong, self._weak, self.embedding_model,
        )
        self.training_prompt_keys = _keys(arena.training_prompt_keys)

    @property
    def embedding_dim(self) -> int:
        return self._arena.dim

    @property
    def num_battles(self) -> int:
        return self._arena.n_battles

    @property
    def num_prompts(self) -> int:
        """Distinct prompts in the arena (battles sharing an embedding share one row)."""
        return self._arena.n_prompts

    @property
    def storage(self) -> str:
        return self._arena.storage

    @property
    def arena_bytes(self) -> int:
        """Bytes of stored prompt embeddings, the data one decision streams through."""
        return self._arena.storage_bytes

    def _score_matrix(self, embeddings: np.ndarray) -> np.ndarray:
        return self._arena.score(embeddings, self._strong, self._weak)

    def score_pair(self, embeddings: Any, model_a: str, model_b: str) -> np.ndarray:
        """Win rates of ``model_a`` over ``model_b`` (any two arena models) for prompt embeddings."""
        index = {m: i for i, m in enumerate(self.models)}
        a, b = lookup_model(model_a, index, "model_a"), lookup_model(model_b, index, "model_b")
        return self._arena.score(as_embeddings(embeddings, self.embedding_dim), a, b)


def _recorded_embedder(arena: ArenaFile, where: object) -> str:
    name = arena.metadata.get("embedder", {}).get("name")
    if not name:
        raise ValueError(f"{where}: the arena's metadata does not name its embedder")
    return name


ROUTER_CLS: dict[str, type[Router]] = {
    "random": RandomRouter,
    "mf": MatrixFactorizationRouter,
    "sw_ranking": SWRankingRouter,
}
NAME_TO_CLS: dict[type[Router], str] = {v: k for k, v in ROUTER_CLS.items()}
