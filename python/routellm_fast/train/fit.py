"""Training routers from preference data, without torch.

:func:`train_mf_router` and :func:`train_sw_router` turn battles
(:class:`~routellm_fast.formats.preference.PreferenceData`) into the files the routers load: an mf
checkpoint in RouteLLM's layout, or a compact sw_ranking arena. :func:`train_knn_router` turns
labelled prompts (:class:`~routellm_fast.formats.preference.LabelledPrompts`: golden-label
correctness of any number of models, or labels from battles) into a knn file, choosing k and the
temperature on a validation split of those prompts.

:func:`train_mf` fits RouteLLM's matrix factorisation (``MFModel_Train``): model embeddings
``P`` (L2-normalised when used), a text projection ``W`` and a linear head ``c``; a battle's
logit is ``c · ((P̂[winner] − P̂[loser]) ⊙ W(q + αε))`` with Gaussian noise ``ε`` on the prompt
embedding while training, trained with the logistic loss by Adam (torch's semantics: L2 weight
decay added to the gradient; dense updates of all of ``P`` every step), in numpy with the
gradients written out. Validation on held-out prompts stops it early and picks the best epoch.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..embedders import Embedder, embed_all
from ..evals.benchmarks import Benchmark
from ..evals.metrics import curve_metrics, routing_curve
from ..formats.arena import ArenaFile, save_arena
from ..formats.checkpoints import save_mf_checkpoint
from ..formats.knn import save_knn
from ..formats.model_names import canonical_model_name
from ..formats.preference import LabelledPrompts, PreferenceData, training_split
from ..paths import ARENA_FILE_NAME
from ..routers import KNNRouter, SWRankingRouter

__all__ = [
    "KNN_K_GRID",
    "KNN_TEMPERATURE_GRID",
    "MFTrainConfig",
    "MFTrainResult",
    "knn_validation",
    "train_knn_router",
    "train_mf",
    "train_mf_router",
    "train_sw_router",
    "validation_prompts",
]


@dataclass(frozen=True)
class MFTrainConfig:
    """RouteLLM's training settings (``train_matrix_factorization.py``), plus early stopping."""

    dim: int = 128
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-5
    alpha: float = 0.1  # std of the noise added to prompt embeddings while training
    max_epochs: int = 100
    patience: int = 5  # epochs without a better held-out loss before stopping
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("dim", "batch_size", "max_epochs", "patience"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("lr", "weight_decay", "alpha"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.lr == 0:
            raise ValueError("lr must be > 0")


@dataclass
class MFTrainResult:
    """The trained tensors (float32, RouteLLM's shapes) and how training went."""

    model_embeddings: np.ndarray  # P [num_models, dim]
    text_projection: np.ndarray  # W [dim, text_dim]
    classifier: np.ndarray  # c [1, dim]
    best_epoch: int
    history: list[dict] = field(default_factory=list)  # per epoch: train_loss, val_loss, val_accuracy
    val_accuracy: float = float("nan")
    val_loss: float = float("nan")


def _normalize(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return rows / norms, norms


def _loss_and_grads(
    P: np.ndarray, W: np.ndarray, c: np.ndarray, x: np.ndarray, win: np.ndarray, lose: np.ndarray,
    target: np.ndarray, weight: np.ndarray,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted mean logistic loss of one batch and its gradients for P (dense), W and c.

    ``x`` are the (noisy) prompt embeddings of the battles; ``target`` 1 for a win of ``win`` over
    ``lose``, 0.5 for a tie.
    """
    rows, inverse = np.unique(np.concatenate([win, lose]), return_inverse=True)
    Pn, norms = _normalize(P[rows])
    wi, li = inverse[: len(win)], inverse[len(win):]
    d = Pn[wi] - Pn[li]  # [B, D]
    h = x @ W.T  # [B, D]
    z = (d * h) @ c[0]  # [B]
    total = weight.sum()
    # BCE-with-logits(z, y) = softplus(z) - y z, computed stably
    loss = float(np.dot(weight, np.logaddexp(0, z) - target * z) / total)
    g = weight * (_sigmoid(z) - target) / total  # dL/dz
    dc = ((d * h).T @ g)[None, :]
    gc = g[:, None] * c  # [B, D]
    dW = (gc * d).T @ x
    dd = gc * h
    dPn = np.zeros_like(Pn)
    np.add.at(dPn, wi, dd)
    np.add.at(dPn, li, -dd)
    # through the normalisation: d(p/|p|) = (I - p̂p̂ᵀ) / |p|
    dP_rows = (dPn - Pn * np.sum(Pn * dPn, axis=1, keepdims=True)) / norms
    dP = np.zeros_like(P)
    dP[rows] = dP_rows
    return loss, dP, dW, dc


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -z))


class _Adam:
    """torch.optim.Adam: L2 weight decay added to the gradient, bias-corrected moments."""

    def __init__(self, params: list[np.ndarray], lr: float, weight_decay: float) -> None:
        self.params, self.lr, self.wd = params, lr, weight_decay
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[np.ndarray], beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.t += 1
        c1, c2 = 1 - beta1**self.t, 1 - beta2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            if self.wd:
                g = g + self.wd * p
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            p -= (self.lr / c1) * m / (np.sqrt(v / c2) + eps)


def _pair_logits(P: np.ndarray, W: np.ndarray, c: np.ndarray, x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Logit of model a beating model b on prompt embeddings x (no noise), float64."""
    Pn, _ = _normalize(P.astype(np.float64))
    h = x.astype(np.float64) @ W.T.astype(np.float64)
    return ((Pn[a] - Pn[b]) * h) @ c[0].astype(np.float64)


def train_mf(
    prompt_embeddings: np.ndarray,
    prompt_index: np.ndarray,
    model_a: np.ndarray,
    model_b: np.ndarray,
    outcome: np.ndarray,
    num_models: int,
    *,
    val_prompts: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    ties: str = "drop",
    config: MFTrainConfig = MFTrainConfig(),
    progress: bool = True,
) -> MFTrainResult:
    """Fit RouteLLM's mf on battles (see the module docstring).

    ``prompt_embeddings`` has one row per distinct prompt and ``prompt_index`` the row of each
    battle; ``outcome`` is 0 (model_a won), 1 (model_b won) or 2 (tie). Battles between a model
    and itself are dropped, ties too unless ``ties="half"`` (then they are half a win each).
    Battles on ``val_prompts`` (bool per prompt) are held out: the epoch with the lowest
    held-out loss is kept, and training stops ``config.patience`` epochs after it.
    """
    from tqdm.auto import tqdm

    emb = np.asarray(prompt_embeddings)
    if emb.ndim != 2 or emb.dtype.kind != "f" or emb.shape[0] == 0:
        raise ValueError(f"prompt_embeddings must be a non-empty 2-D float matrix, got {emb.shape} {emb.dtype}")
    if not np.all(np.isfinite(emb)):
        raise ValueError("prompt_embeddings contain NaN or inf")
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    prompt_index, model_a, model_b = (np.asarray(v, dtype=np.int64) for v in (prompt_index, model_a, model_b))
    outcome = np.asarray(outcome)
    n = len(outcome)
    if not (len(prompt_index) == len(model_a) == len(model_b) == n):
        raise ValueError(f"battle arrays differ in length: {len(prompt_index)}, {len(model_a)}, {len(model_b)}, {n}")
    if n and (prompt_index.min() < 0 or prompt_index.max() >= len(emb)):
        raise ValueError(f"prompt_index points outside the {len(emb)} prompt embeddings")
    if n and (min(model_a.min(), model_b.min()) < 0 or max(model_a.max(), model_b.max()) >= num_models):
        raise ValueError(f"model indices must be in [0, {num_models})")
    if n and not np.isin(outcome, (0, 1, 2)).all():
        raise ValueError("outcome must be 0 (model_a won), 1 (model_b won) or 2 (tie)")
    if ties not in ("drop", "half"):
        raise ValueError(f"ties must be 'drop' or 'half', got {ties!r}")
    weight = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    if weight.shape != (n,) or not np.all(np.isfinite(weight)) or (weight < 0).any():
        raise ValueError("weight must be one finite number >= 0 per battle")
    if val_prompts is not None:
        val_prompts = np.asarray(val_prompts, dtype=bool)
        if val_prompts.shape != (len(emb),):
            raise ValueError(f"val_prompts must be a bool per prompt ({len(emb)}), got shape {val_prompts.shape}")

    keep = (model_a != model_b) & (weight > 0) & ((outcome != 2) if ties == "drop" else True)
    win = np.where(outcome == 1, model_b, model_a)[keep]  # ties: a "wins" half
    lose = np.where(outcome == 1, model_a, model_b)[keep]
    target = np.where(outcome == 2, 0.5, 1.0)[keep].astype(np.float32)
    prompt, w = prompt_index[keep], weight[keep].astype(np.float32)
    held = val_prompts[prompt] if val_prompts is not None else np.zeros(len(prompt), dtype=bool)
    train_rows, val_rows = np.flatnonzero(~held), np.flatnonzero(held)
    if len(train_rows) == 0:
        raise ValueError("no battles left to train on (after dropping self-battles, ties and held-out prompts)")

    rng = np.random.default_rng(config.seed)
    text_dim, dim = emb.shape[1], config.dim
    P = rng.standard_normal((num_models, dim)).astype(np.float32)  # nn.Embedding: N(0, 1)
    W = rng.uniform(-1, 1, (dim, text_dim)).astype(np.float32) / np.float32(math.sqrt(text_dim))  # nn.Linear
    c = rng.uniform(-1, 1, (1, dim)).astype(np.float32) / np.float32(math.sqrt(dim))
    adam = _Adam([P, W, c], config.lr, config.weight_decay)

    def evaluate() -> tuple[float, float]:
        if len(val_rows) == 0:
            return float("nan"), float("nan")
        z = _pair_logits(P, W, c, emb[prompt[val_rows]], win[val_rows], lose[val_rows])
        y, s = target[val_rows], w[val_rows]
        loss = float(np.dot(s, np.logaddexp(0, z) - y * z) / s.sum())
        decisive = y == 1.0
        accuracy = float(np.mean(z[decisive] > 0)) if decisive.any() else float("nan")
        return loss, accuracy

    history: list[dict] = []
    best: tuple[float, int, list[np.ndarray], float] | None = None
    bar = tqdm(range(config.max_epochs), desc="training mf", unit="epoch", disable=not progress)
    for epoch in bar:
        order = train_rows[rng.permutation(len(train_rows))]
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            x = emb[prompt[batch]]
            if config.alpha:
                x = x + np.float32(config.alpha) * rng.standard_normal(x.shape, dtype=np.float32)
            loss, dP, dW, dc = _loss_and_grads(P, W, c, x, win[batch], lose[batch], target[batch], w[batch])
            adam.step([dP, dW, dc])
            total += loss * len(batch)
        val_loss, val_accuracy = evaluate()
        history.append({"epoch": epoch, "train_loss": total / len(order), "val_loss": val_loss, "val_accuracy": val_accuracy})
        bar.set_postfix(train_loss=f"{total / len(order):.4f}", val_loss=f"{val_loss:.4f}", val_acc=f"{val_accuracy:.4f}")
        if len(val_rows) == 0:
            best = (val_loss, epoch, [P.copy(), W.copy(), c.copy()], val_accuracy)
            continue
        if best is None or val_loss < best[0]:
            best = (val_loss, epoch, [P.copy(), W.copy(), c.copy()], val_accuracy)
        elif epoch - best[1] >= config.patience:
            break
    bar.close()
    assert best is not None
    (P, W, c) = best[2]
    return MFTrainResult(P, W, c, best_epoch=best[1], history=history, val_accuracy=best[3], val_loss=best[0])


# --------------------------------------------------------------------------- routers from preference data


def validation_prompts(data: PreferenceData, share: float) -> np.ndarray:
    """The prompts held out for validation (bool per prompt): a fixed share chosen by a hash of
    the text, so the split does not depend on the order or mix of the training files."""
    return ~training_split(data.prompts, 1.0 - share, salt="validation:")


def _check_pair(data: PreferenceData, model_ids: dict[str, int], pair: tuple[str, str] | None) -> None:
    for model in pair or ():
        if canonical_model_name(model) not in model_ids:
            raise ValueError(f"model {model!r} has no battles in the training data (models: {', '.join(sorted(model_ids))})")


def train_mf_router(
    data: PreferenceData,
    out: str | os.PathLike[str],
    embedder: Embedder,
    *,
    config: MFTrainConfig = MFTrainConfig(),
    val_share: float = 0.05,
    ties: str = "drop",
    embedding_cache: str | os.PathLike[str] | None = None,
    pair: tuple[str, str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train RouteLLM's matrix factorisation on ``data`` and write a checkpoint directory that both
    :class:`~routellm_fast.routers.MatrixFactorizationRouter` and RouteLLM's ``MFModel`` load.

    Prompts are split into training and validation by :func:`validation_prompts` (validation drives
    early stopping and gives the held-out pairwise accuracy). Returns the training report, which is
    also stored in the checkpoint's metadata.
    """
    models = data.models
    model_ids = {m: i for i, m in enumerate(models)}
    _check_pair(data, model_ids, pair)
    embeddings = embed_all(embedder, data.prompts, cache_file=embedding_cache, progress=progress, desc="embedding prompts")
    val = validation_prompts(data, val_share) if val_share > 0 else None
    result = train_mf(
        embeddings, data.prompt_index,
        np.array([model_ids[m] for m in data.model_a]), np.array([model_ids[m] for m in data.model_b]),
        data.outcome, len(models), val_prompts=val, weight=data.weight, ties=ties, config=config, progress=progress,
    )
    report = {
        "router": "mf",
        "data": data.summary(),
        "validation": {"prompts": int(val.sum()) if val is not None else 0, "share": val_share,
                       "pairwise_accuracy": result.val_accuracy, "loss": result.val_loss},
        "best_epoch": result.best_epoch,
        "config": asdict(config) | {"ties": ties},
    }
    save_mf_checkpoint(
        out, result.model_embeddings, result.text_projection, result.classifier,
        metadata={"format": "routellm_fast.mf/1", "model_ids": model_ids,
                  "embedder": {"name": embedder.name, "dim": embedder.dim}, "training": report},
        training_prompt_keys=data.training_prompt_keys(),
    )
    return report


def train_sw_router(
    data: PreferenceData,
    out: str | os.PathLike[str],
    embedder: Embedder,
    *,
    storage: str = "float16",
    val_share: float = 0.05,
    num_tiers: int = 10,
    embedding_cache: str | os.PathLike[str] | None = None,
    pair: tuple[str, str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the compact arena file of ``data`` (one embedding per distinct prompt, ``storage``
    float16 or float32, and the battles) that :meth:`SWRankingRouter.from_arena` loads: ``out``
    itself when it ends in ``.npz``, else ``out/arena.npz``.

    sw_ranking has no per-battle weights, so weighted battles are refused. The held-out pairwise
    accuracy is measured with an arena of the training prompts only; the file holds them all.
    """
    if storage not in ("float16", "float32"):
        raise ValueError(f"storage must be 'float16' or 'float32', got {storage!r}")
    if (data.weight != 1.0).any():
        raise ValueError("sw_ranking weighs battles by prompt similarity only: per-battle weights are not supported")
    models = data.models
    model_ids = {m: i for i, m in enumerate(models)}
    _check_pair(data, model_ids, pair)
    embeddings = embed_all(embedder, data.prompts, cache_file=embedding_cache, progress=progress, desc="embedding prompts")
    report: dict[str, Any] = {"router": "sw_ranking", "data": data.summary(), "storage": storage}
    if val_share > 0:
        val = validation_prompts(data, val_share)
        report["validation"] = {"prompts": int(val.sum()), "share": val_share,
                                "pairwise_accuracy": _sw_heldout_accuracy(data, embeddings, val, storage, num_tiers, embedder)}
    arena = _arena_of(data, embeddings, storage, embedder)
    arena.metadata["training"] = report
    out = Path(out)
    if out.suffix != ".npz":  # a folder
        out.mkdir(parents=True, exist_ok=True)
        out = out / ARENA_FILE_NAME
    save_arena(out, arena)
    return report


def _arena_of(data: PreferenceData, embeddings: np.ndarray, storage: str, embedder: Embedder) -> ArenaFile:
    models = data.models
    index = {m: i for i, m in enumerate(models)}
    return ArenaFile(
        prompt_embeddings=embeddings.astype(np.float16 if storage == "float16" else np.float32),
        battle_prompt=data.prompt_index.astype(np.int64),
        model_a=np.array([index[m] for m in data.model_a], dtype=np.int32),
        model_b=np.array([index[m] for m in data.model_b], dtype=np.int32),
        outcome=data.outcome.astype(np.int8),
        models=models,
        metadata={"embedder": {"name": embedder.name, "dim": embedder.dim}, "storage": storage},
        training_prompt_keys=data.training_prompt_keys(),
    )


def _sw_heldout_accuracy(
    data: PreferenceData, embeddings: np.ndarray, val: np.ndarray, storage: str, num_tiers: int, embedder: Embedder
) -> float:
    """Share of decisive held-out battles whose winner an arena of the other prompts predicts
    (a win rate of exactly 0.5 counts half)."""
    held = val[data.prompt_index]
    train = data.where(~held)
    row = {p: i for i, p in enumerate(data.prompts)}
    arena = _arena_of(train, embeddings[[row[p] for p in train.prompts]], storage, embedder)
    models = set(train.models)
    router = SWRankingRouter.from_arena(arena, train.models[0], train.models[-1], num_tiers=num_tiers)
    pairs: dict[tuple[str, str], list[int]] = {}
    for i in np.flatnonzero(held & (data.outcome != 2)):
        if data.model_a[i] in models and data.model_b[i] in models and data.model_a[i] != data.model_b[i]:
            pairs.setdefault((data.model_a[i], data.model_b[i]), []).append(i)
    correct = total = 0.0
    for (a, b), rows in pairs.items():
        rates = router.score_pair(embeddings[data.prompt_index[rows]], a, b)
        a_won = data.outcome[rows] == 0
        correct += np.sum(np.where(rates == 0.5, 0.5, (rates > 0.5) == a_won))
        total += len(rows)
    return float(correct / total) if total else float("nan")


# --------------------------------------------------------------------------- knn from labelled prompts

#: The settings :func:`train_knn_router` chooses among (every pair of them).
KNN_K_GRID = (5, 10, 20, 40, 80, 160)
KNN_TEMPERATURE_GRID = (0.01, 0.02, 0.05, 0.1, 1.0)
#: Routing-curve points of the validation APGR (RouteLLM's evaluation default).
_VAL_POINTS = 10


def knn_validation(
    sources: dict[str, LabelledPrompts], embeddings: dict[str, np.ndarray], val: dict[str, np.ndarray],
    pair: tuple[str, str], *, k_grid: tuple[int, ...] = KNN_K_GRID,
    temperature_grid: tuple[float, ...] = KNN_TEMPERATURE_GRID, storage: str = "float32", embedding_model: str = "",
) -> dict[str, dict[str, float]]:
    """Validation APGR of a knn router built from the non-validation prompts of every source, on
    each source's validation prompts labelled for ``pair``, for every (k, temperature) of the
    grids: ``{"k=K,temperature=T": {source: APGR, ..., "mean": mean over sources}}``.

    ``embeddings[name]`` are the rows of ``sources[name]``, ``val[name]`` its validation mask."""
    strong, weak = (canonical_model_name(m) for m in pair)
    train = LabelledPrompts.concat([s.where(~val[n]) for n, s in sources.items()])
    vectors = {p: embeddings[n][i] for n, s in sources.items() for i, p in enumerate(s.prompts)}
    train_emb = np.stack([vectors[p] for p in train.prompts]) if train.prompts else None
    checks = {}
    for name, source in sources.items():
        if strong not in source.models or weak not in source.models:
            continue
        y = source.labels[:, [source.models.index(strong), source.models.index(weak)]]
        keep = val[name] & ~np.isnan(y).any(axis=1)
        if keep.sum() >= 2 and not np.array_equal(y[keep, 0], y[keep, 1]):
            checks[name] = (embeddings[name][keep], y[keep])
    if train_emb is None or not checks:
        raise ValueError("knn validation needs training prompts and validation prompts labelled for the pair")
    table: dict[str, dict[str, float]] = {}
    for k in k_grid:
        for t in temperature_grid:
            router = KNNRouter.from_labels(train_emb, train.labels, train.models, strong, weak,
                                           k=min(k, _pair_labelled(train, strong, weak)), temperature=t,
                                           storage=storage, embedding_model=embedding_model or "validation")
            scores = {}
            for name, (emb, y) in checks.items():
                bench = Benchmark(name, [""] * len(y), y[:, 0].astype(np.float64), y[:, 1].astype(np.float64),
                                  strong, weak, num_source=len(y))
                curve = routing_curve(bench, router.score_embeddings(emb), _VAL_POINTS)
                scores[name] = curve_metrics(curve, bench.model_score(strong), bench.model_score(weak)).apgr
            scores["mean"] = float(np.mean(list(scores.values())))
            table[f"k={k},temperature={t:g}"] = scores
    return table


def _pair_labelled(data: LabelledPrompts, strong: str, weak: str) -> int:
    y = data.labels[:, [data.models.index(strong), data.models.index(weak)]]
    return int((~np.isnan(y).any(axis=1)).sum())


def train_knn_router(
    sources: dict[str, LabelledPrompts],
    out: str | os.PathLike[str],
    embedder: Embedder,
    *,
    pair: tuple[str, str],
    storage: str = "int8",
    val_share: float = 0.2,
    k_grid: tuple[int, ...] = KNN_K_GRID,
    temperature_grid: tuple[float, ...] = KNN_TEMPERATURE_GRID,
    embedding_cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the knn file (:func:`~routellm_fast.formats.knn.save_knn`) of every labelled prompt of
    ``sources``, stored as ``storage`` rows, with the k and temperature of the best mean validation
    APGR (:func:`knn_validation`; ties: the first in grid order).

    The validation prompts (``val_share`` of each source by a hash of the text,
    :func:`validation_prompts`' rule) come from the training side only; they are left out of the
    index while choosing and put back in the file. Labels are kept as float16 (what the file holds).
    Returns the training report, which the file's metadata also records."""
    if not sources:
        raise ValueError("no labelled prompts to train on")
    sources = {n: LabelledPrompts(s.prompts, s.models, s.labels.astype(np.float16).astype(np.float32))
               for n, s in sources.items()}
    data = LabelledPrompts.concat(list(sources.values()))
    strong, weak = (canonical_model_name(m) for m in pair)
    for model in (strong, weak):
        if model not in data.models:
            raise ValueError(f"model {model!r} has no labels in the training data (models: {', '.join(data.models)})")
    vectors = embed_all(embedder, data.prompts, cache_file=embedding_cache, progress=progress,
                        desc="embedding prompts")
    row = {p: i for i, p in enumerate(data.prompts)}
    embeddings = {n: vectors[[row[p] for p in s.prompts]] for n, s in sources.items()}
    val = {n: ~training_split(s.prompts, 1.0 - val_share, salt="validation:") for n, s in sources.items()}
    table = knn_validation(sources, embeddings, val, (strong, weak), k_grid=k_grid, temperature_grid=temperature_grid,
                           storage=storage, embedding_model=embedder.name)
    best = max(table, key=lambda key: table[key]["mean"])  # max keeps the first of equal means
    k = int(best.split(",")[0].removeprefix("k="))
    temperature = float(best.split(",")[1].removeprefix("temperature="))
    report = {
        "router": "knn",
        "data": {n: s.summary() for n, s in sources.items()} | {"all": data.summary()},
        "validation": {"share": val_share, "prompts": {n: int(v.sum()) for n, v in val.items()},
                       "metric": "APGR on each source's validation prompts labelled for the pair, mean over sources",
                       "chosen": best, "apgr": table[best], "grid": {key: v["mean"] for key, v in table.items()}},
        "storage": storage,
    }
    router = KNNRouter.from_labels(vectors, data.labels, data.models, strong, weak, k=min(k, _pair_labelled(data, strong, weak)),
                                   temperature=temperature, storage=storage, embedding_model=embedder.name,
                                   training_prompt_keys=data.training_prompt_keys(),
                                   metadata={"embedder": {"name": embedder.name, "dim": embedder.dim},
                                             "pair": {"strong": strong, "weak": weak}, "training": report})
    save_knn(out, router.to_file())
    return report
