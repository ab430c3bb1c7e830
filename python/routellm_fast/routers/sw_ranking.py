"""RouteLLM's similarity-weighted Elo router over an arena of battles, scored by the compiled core."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .. import _core
from ..checks import as_embeddings, lookup_model
from ..embedders import Embedder, EmbedFn
from ..formats.arena import (
    ArenaFile,
    Battles,
    Source,
    load_arena,
    load_battles,
    load_embeddings,
    outcome_codes,
)
from ..formats.hub import resolve_datasets
from ..formats.model_names import DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL
from ..paths import DEFAULT_SW_ARENA
from .base import EmbeddingRouter, fingerprint, prompt_keys, register
from .mf import ROUTELLM_EMBEDDING_MODEL

__all__ = ["SWRankingRouter"]


@register("sw_ranking")
class SWRankingRouter(EmbeddingRouter):
    """RouteLLM's similarity-weighted Elo router over an arena of battles with prompt embeddings.

    ``arena_battle_datasets`` and ``arena_embedding_datasets`` are local files or directories (see
    :mod:`routellm_fast.formats.arena` for the formats); ``arena=FILE`` instead loads a compact arena file
    (``routellm-fast train sw``), e.g. from a YAML config; use :meth:`from_battles` for in-memory arrays.
    ``storage`` keeps the arena's prompt embeddings as ``"float32"`` (exact), ``"float16"`` or
    ``"int8"`` (per-row scaled), trading accuracy for memory and bandwidth (docs/routers.md, "Arena storage"); by default
    the arena's own precision (a float16 arena file stays float16, anything else is float32).

    RouteLLM's hub dataset names (its default config) are not downloaded: when every dataset named
    is one of them and none is a local path, the shipped arena is used instead, with one
    :class:`~routellm_fast.errors.ShippedRouterWarning`.
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
        storage: str | None = None,
        embedding_model: str = ROUTELLM_EMBEDDING_MODEL,
        arena: Source | None = None,
        device: str | None = "auto",
        gpu_precision: str = "float32",
    ) -> None:
        if arena is None:  # RouteLLM's default config names its hub datasets: offline, the shipped arena
            arena = resolve_datasets("sw_ranking", [arena_battle_datasets, arena_embedding_datasets], DEFAULT_SW_ARENA)
            if arena is not None:
                arena_battle_datasets = arena_embedding_datasets = None
        if arena is not None:  # a compact arena file (routellm-fast train sw), e.g. from a YAML config
            if arena_battle_datasets is not None or arena_embedding_datasets is not None:
                raise ValueError("give either arena= (a compact arena file) or the battle and embedding datasets")
            loaded = load_arena(arena)
            self._build_arena(loaded, strong_model, weak_model, num_tiers, embed, storage,
                              _recorded_embedder(loaded, arena))
            self._set_device(device, gpu_precision)
            return
        if arena_battle_datasets is None or arena_embedding_datasets is None:
            raise ValueError("sw_ranking needs arena_battle_datasets and arena_embedding_datasets, or arena=FILE")
        battles = load_battles(arena_battle_datasets)
        embeddings = load_embeddings(arena_embedding_datasets)
        self._build(battles, embeddings, strong_model, weak_model, num_tiers, embed, storage, embedding_model)
        self._set_device(device, gpu_precision)

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
        storage: str | None = None,
        embedding_model: str = ROUTELLM_EMBEDDING_MODEL,
        device: str | None = "auto",
        gpu_precision: str = "float32",
    ) -> SWRankingRouter:
        """Build from arrays: one embedding row per battle; ``winner`` in model_a/model_b/tie."""
        outcome = outcome_codes(winner)
        battles = Battles(np.asarray(list(model_a), dtype=object), np.asarray(list(model_b), dtype=object), outcome)
        router = cls.__new__(cls)
        router._build(battles, embeddings, strong_model, weak_model, num_tiers, embed, storage, embedding_model)
        router._set_device(device, gpu_precision)
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
        storage: str | None = None,
        device: str | None = "auto",
        gpu_precision: str = "float32",
    ) -> SWRankingRouter:
        """Load a compact arena file (:func:`routellm_fast.formats.arena.save_arena`), or use an
        :class:`~routellm_fast.formats.arena.ArenaFile` in memory; the embedder it was built with is recorded
        in it and is the default ``embed``."""
        arena = path if isinstance(path, ArenaFile) else load_arena(path)
        router = cls.__new__(cls)
        router._build_arena(arena, strong_model, weak_model, num_tiers, embed, storage, _recorded_embedder(arena, path))
        router._set_device(device, gpu_precision)
        return router

    def _build(
        self,
        battles: Battles,
        embeddings: Any,
        strong_model: str,
        weak_model: str,
        num_tiers: int,
        embed: Embedder | EmbedFn | None,
        storage: str | None,
        embedding_model: str,
    ) -> None:
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.dtype.kind != "f":
            raise ValueError(f"arena embeddings must be a 2-D float matrix, got shape {emb.shape} dtype {emb.dtype}")
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
        storage: str | None,
        embedding_model: str,
    ) -> None:
        if isinstance(num_tiers, bool) or not isinstance(num_tiers, (int, np.integer)) or num_tiers < 1:
            raise ValueError(f"num_tiers must be >= 1 (a positive integer), got {num_tiers!r}")
        if storage is None:  # the arena's own precision: a float16 arena file stays float16 in memory
            storage = "float16" if arena.prompt_embeddings.dtype == np.float16 else "float32"
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
        self._model_index = index  # for score_models and score_pair
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
        self.fingerprint = fingerprint(
            "sw_ranking", arena.prompt_embeddings, arena.battle_prompt, arena.model_a, arena.model_b, arena.outcome,
            self.models, num_tiers, storage, self._strong, self._weak, self.embedding_model,
        )
        self.training_prompt_keys = prompt_keys(arena.training_prompt_keys)
        self.calibration = arena.metadata.get("calibration")

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
        if self.device == "cuda":
            return self._gpu_scorer().score(embeddings, self._strong, self._weak)
        return self._arena.score(embeddings, self._strong, self._weak)

    def _make_gpu_scorer(self):
        from ..backends.cuda import CudaSwScorer

        return CudaSwScorer(self._arena, self.gpu_precision)

    def _model_scores(self, embeddings: np.ndarray, models: np.ndarray) -> np.ndarray:
        # Each model's tier rating from the prompt's fit, Elo points to natural log-odds: the pair's
        # win rate is 1 / (1 + 10 ** (-diff / 400)) = sigmoid(diff * ln 10 / 400).
        players = self._arena.model_player[models]
        return self._arena.score_ratings(embeddings)[:, players] * (np.log(10.0) / 400.0)

    def score_pair(self, embeddings: Any, model_a: str, model_b: str) -> np.ndarray:
        """Win rates of ``model_a`` over ``model_b`` (any two arena models) for prompt embeddings."""
        a, b = lookup_model(model_a, self._model_index, "model_a"), lookup_model(model_b, self._model_index, "model_b")
        return self._arena.score(as_embeddings(embeddings, self.embedding_dim), a, b)


def _recorded_embedder(arena: ArenaFile, where: object) -> str:
    name = arena.metadata.get("embedder", {}).get("name")
    if not name:
        raise ValueError(f"{where}: the arena's metadata does not name its embedder")
    return name
