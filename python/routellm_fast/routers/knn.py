"""The nearest-neighbour router: what the most similar labelled prompts say about the models.

Labelled prompts carry a score in [0, 1] per model (golden-label correctness, or a model's share of
battles won on that prompt; NaN where a model has no label). For a prompt and a set of models the
compiled index (``_core.KnnIndex``) takes the ``k`` labelled prompts of highest cosine similarity
among those labelled for every model of the set (equal similarities: the earlier labelled prompt
first), weights them by ``softmax(sim / temperature)`` and gives each model its weighted mean score
there, its success share ``p_m``.

* ``score`` (the pair): ``sigmoid(2 (p_strong - p_weak))``. It orders prompts exactly by the
  strong model's expected gain ``p_strong - p_weak`` and agrees to first order with the share of
  neighbour battles the strong model wins (ties half), ``0.5 + (p_strong - p_weak) / 2``.
* ``score_models``: ``2 p_m`` per model, on the logit scale routing among many models uses
  (:func:`routellm_fast.decision.rule.choose_models`): ``sigmoid(s_a - s_b)`` is the pair's win rate,
  so two models route exactly as ``score`` does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _core
from ..checks import as_embeddings, lookup_model
from ..embedders import Embedder, EmbedFn
from ..formats.knn import KnnFile, load_knn
from ..formats.model_names import (
    DEFAULT_STRONG_MODEL,
    DEFAULT_WEAK_MODEL,
    canonical_model_name,
)
from ..paths import DEFAULT_KNN
from .base import EmbeddingRouter, fingerprint, prompt_keys, register

__all__ = ["DEFAULT_K", "DEFAULT_TEMPERATURE", "KNNRouter"]

#: Neighbours and softmax temperature when neither the caller nor the file gives them.
DEFAULT_K = 20
DEFAULT_TEMPERATURE = 0.05


@register("knn")
class KNNRouter(EmbeddingRouter):
    """The nearest-neighbour router (see the module docstring), loaded from a knn file
    (:mod:`routellm_fast.formats.knn`; by default the shipped one on MiniLM). ``k`` and
    ``temperature`` default to what the file records (chosen on a validation split when it was
    trained, docs/training.md); :meth:`from_labels` builds one from arrays."""

    def __init__(
        self,
        path: str | os.PathLike[str] | KnnFile = DEFAULT_KNN,
        strong_model: str = DEFAULT_STRONG_MODEL,
        weak_model: str = DEFAULT_WEAK_MODEL,
        k: int | None = None,
        temperature: float | None = None,
        *,
        embed: Embedder | EmbedFn | None = None,
        embedding_model: str | None = None,
    ) -> None:
        knn = path if isinstance(path, KnnFile) else load_knn(path)
        recorded = knn.metadata.get("embedder", {}).get("name") if isinstance(knn.metadata.get("embedder"), dict) else None
        if not (embedding_model or recorded):
            raise ValueError(f"{path}: the knn file's metadata does not name its embedder; pass embedding_model=")
        self._build(_core.KnnIndex.from_state(knn.state()), knn, strong_model, weak_model, k, temperature, embed,
                    embedding_model or recorded)

    @classmethod
    def from_labels(
        cls,
        embeddings: Any,
        labels: Any,
        models: Sequence[str],
        strong_model: str = DEFAULT_STRONG_MODEL,
        weak_model: str = DEFAULT_WEAK_MODEL,
        k: int = DEFAULT_K,
        temperature: float = DEFAULT_TEMPERATURE,
        *,
        storage: str = "float32",
        embed: Embedder | EmbedFn | None = None,
        embedding_model: str = "",
        training_prompt_keys: np.ndarray | None = None,
        metadata: dict | None = None,
    ) -> KNNRouter:
        """Build from labelled prompts: ``embeddings`` ``[n, dim]``, ``labels`` ``[n, len(models)]``
        (scores in [0, 1], NaN where a model has no label), stored as ``storage`` (float32, float16
        or int8 rows). ``embedding_model`` names the embedder the rows come from."""
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.dtype.kind != "f":
            raise ValueError(f"embeddings must be a 2-D float matrix, got shape {emb.shape} dtype {emb.dtype}")
        y = np.asarray(labels, dtype=np.float32)
        if y.shape != (len(emb), len(models)):
            raise ValueError(f"labels must be [prompts, models] = {(len(emb), len(models))}, got {y.shape}")
        if not embedding_model:
            embedding_model = getattr(embed, "name", None) or ""
        if not embedding_model:
            raise ValueError("name the embedder the embeddings come from: embedding_model= (or an embed with a name)")
        index = _core.KnnIndex(np.ascontiguousarray(emb, dtype=np.float32), np.ascontiguousarray(y), storage)
        state = index.__getstate__()
        meta = {"embedder": {"name": embedding_model, "dim": int(emb.shape[1])}, **(metadata or {})}
        knn = KnnFile(state[1], state[2], state[3], state[4], [canonical_model_name(m) for m in models], meta,
                      training_prompt_keys)
        router = cls.__new__(cls)
        router._build(index, knn, strong_model, weak_model, k, temperature, embed, embedding_model)
        return router

    def _build(self, index: Any, knn: KnnFile, strong_model: str, weak_model: str, k: int | None,
               temperature: float | None, embed: Embedder | EmbedFn | None, embedding_model: str) -> None:
        self._index = index
        self.models: list[str] = list(knn.models)
        self.metadata = knn.metadata
        self._model_index = {m: i for i, m in enumerate(self.models)}
        self.strong_model, self.weak_model = strong_model, weak_model
        self._strong = lookup_model(canonical_model_name(strong_model), self._model_index, "strong_model")
        self._weak = lookup_model(canonical_model_name(weak_model), self._model_index, "weak_model")
        if self._strong == self._weak:
            raise ValueError(f"strong_model and weak_model are the same model ({self.models[self._strong]!r})")
        labelled = index.n_labelled([self._strong, self._weak])
        if labelled == 0:
            raise ValueError(f"no labelled prompt has labels for both {strong_model!r} and {weak_model!r}")
        self.k = _check_k(knn.metadata.get("k", DEFAULT_K) if k is None else k, labelled)
        self.temperature = _check_temperature(
            knn.metadata.get("temperature", DEFAULT_TEMPERATURE) if temperature is None else temperature)
        self._init_embedder(embed, embedding_model)
        self.fingerprint = fingerprint("knn", knn.rows, knn.row_factor, knn.labels, self.models, self.k,
                                       self.temperature, self._strong, self._weak, self.embedding_model)
        self._training_keys = knn.training_prompt_keys
        self.training_prompt_keys = prompt_keys(knn.training_prompt_keys)
        self.calibration = knn.metadata.get("calibration")

    @property
    def embedding_dim(self) -> int:
        return self._index.dim

    @property
    def num_prompts(self) -> int:
        """Labelled prompts in the index."""
        return self._index.n_rows

    @property
    def storage(self) -> str:
        return self._index.storage

    def _score_matrix(self, embeddings: np.ndarray) -> np.ndarray:
        return self._index.win_rates(embeddings, self.k, self.temperature, self._strong, self._weak)

    def _model_scores(self, embeddings: np.ndarray, models: np.ndarray) -> np.ndarray:
        # Neighbours labelled for every model asked about; fewer such prompts than k use them all.
        ids = [int(m) for m in models]
        k = min(self.k, self._index.n_labelled(ids))
        if k == 0:
            names = ", ".join(self.models[i] for i in dict.fromkeys(ids))
            raise ValueError(f"no labelled prompt of this knn router has labels for all of: {names}")
        return 2.0 * self._index.shares(embeddings, k, self.temperature, ids)

    def neighbours(self, embeddings: Any, models: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k labelled prompts nearest to each embedding among those labelled for every one of
        ``models`` (default: the pair): (row indices, cosine similarities), each ``[n, k]``."""
        names = [self.strong_model, self.weak_model] if models is None else list(models)
        ids = [lookup_model(canonical_model_name(m), self._model_index, "model") for m in names]
        return self._index.topk(as_embeddings(embeddings, self.embedding_dim), self.k, ids)

    def to_file(self) -> KnnFile:
        """This router's labelled prompts, k and temperature as a knn file (:func:`~routellm_fast.formats.knn.save_knn`)."""
        _, storage, rows, factor, labels = self._index.__getstate__()
        meta = {**self.metadata, "k": self.k, "temperature": self.temperature}
        return KnnFile(storage, rows, factor, labels, self.models, meta, self._training_keys)


def _check_k(k: Any, labelled: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= labelled:
        raise ValueError(f"k must be an integer in [1, {labelled}] (the prompts labelled for the pair), got {k!r}")
    return int(k)


def _check_temperature(t: Any) -> float:
    if isinstance(t, bool) or not isinstance(t, (int, float, np.floating)) or not math.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {t!r}")
    return float(t)
