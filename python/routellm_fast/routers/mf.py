"""RouteLLM's matrix-factorisation router, scored by the compiled core; checkpoints in RouteLLM's
layout (:mod:`routellm_fast.formats.checkpoints`) loaded without torch."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from .. import _core
from ..checks import check_model_ids, lookup_model
from ..embedders import Embedder, EmbedFn
from ..formats.checkpoints import load_mf_checkpoint
from ..formats.hub import resolve_checkpoint
from ..formats.model_names import DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL, MODEL_IDS
from ..paths import DEFAULT_MF
from .base import EmbeddingRouter, fingerprint, prompt_keys, register

__all__ = ["ROUTELLM_EMBEDDING_MODEL", "MatrixFactorizationRouter"]

#: Batches from this size score on the GPU when the router is on one (device="cuda" or "auto").
MF_GPU_MIN_BATCH = 4096
#: The embedding model of RouteLLM's published checkpoints and arena embedding datasets.
ROUTELLM_EMBEDDING_MODEL = "text-embedding-3-small"


@register("mf")
class MatrixFactorizationRouter(EmbeddingRouter):
    """RouteLLM's matrix-factorisation router, loaded from a ``MFModel.save_pretrained`` directory.

    ``model_ids`` maps model names to rows of the checkpoint's ``P.weight``; it defaults to the
    table the checkpoint records (``routellm_fast.json``), else RouteLLM's 64 names. Shapes left as
    None come from the checkpoint's ``config.json``, else RouteLLM's defaults (128, 64, 1536).

    RouteLLM's hub name ``routellm/mf_gpt4_augmented`` (its default config) loads the checkpoint from
    the local Hugging Face cache if it is there, else the shipped mf router, with one
    :class:`~routellm_fast.errors.ShippedRouterWarning` (nothing is downloaded).
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
        device: str | None = "auto",
    ) -> None:
        # RouteLLM's default config names its published checkpoint
        checkpoint_path, shipped = resolve_checkpoint(
            checkpoint_path, "mf", ("config.json", "model.safetensors"), DEFAULT_MF)
        if shipped:  # the shipped checkpoint has its own sizes
            hidden_size, num_models, text_dim = None, None, None
        ckpt = load_mf_checkpoint(checkpoint_path, hidden_size, num_models, text_dim, num_classes, use_proj)
        if model_ids is None and "model_ids" not in ckpt.metadata:
            model_ids = MODEL_IDS  # RouteLLM's 64 names: a checkpoint of other sizes has rows for some
        else:  # a table given or recorded must fit the checkpoint: distinct rows, each one it has
            model_ids = check_model_ids(ckpt.metadata["model_ids"] if model_ids is None else model_ids,
                                        len(ckpt.model_embeddings))
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
        self.fingerprint = fingerprint(
            "mf", ckpt.model_embeddings, ckpt.text_projection, ckpt.classifier, strong, weak, self.embedding_model
        )
        self.training_prompt_keys = prompt_keys(ckpt.training_prompt_keys)
        self.calibration = ckpt.metadata.get("calibration")
        # Models with a row in the checkpoint, for score_models.
        self._model_index = {m: i for m, i in self.model_ids.items() if 0 <= i < len(ckpt.model_embeddings)}
        self._set_device(device)

    @property
    def embedding_dim(self) -> int:
        return self._scorer.text_dim

    def _score_matrix(self, embeddings: np.ndarray) -> np.ndarray:
        # One decision is a dot product: below a large batch, the CPU core beats a GPU round trip.
        if self.device == "cuda" and len(embeddings) >= MF_GPU_MIN_BATCH:
            return self._gpu_scorer().score(embeddings)
        return self._scorer.score(embeddings)

    def _make_gpu_scorer(self):
        from ..backends.cuda import CudaMfScorer

        return CudaMfScorer(self._scorer)

    def _model_scores(self, embeddings: np.ndarray, models: np.ndarray) -> np.ndarray:
        # Each model's logit (RouteLLM's per-model score): logit(a) - logit(b) is the pair's.
        scorer = self.__dict__.get("_models_scorer")
        if scorer is None:
            ckpt = self.checkpoint
            scorer = self._models_scorer = _core.MfModelScorer(ckpt.model_embeddings, ckpt.text_projection,
                                                               ckpt.classifier[0])
        return scorer.logits(embeddings)[:, models]
