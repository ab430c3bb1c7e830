"""Preference data for training routers: battles between two models on a prompt.

The battle format (JSON lines, CSV or parquet), one row per battle::

    prompt, model_a, model_b, winner (model_a | model_b | tie | "tie (bothbad)"), [weight]

:func:`load_preference` also reads a dataset folder holding ``battles.csv`` plus ``prompts.jsonl``
joined on a shared id column (``prompt_id`` or ``question_id``), which is how the data in
``../shared/data/preference/`` (AlpacaEval, arena-bench) comes. Model names are mapped to one
canonical spelling (:mod:`routellm_fast.formats.model_names`), so ``gpt4_1106_preview`` and
``gpt-4-1106-preview`` are one model.

:func:`golden_label_battles` turns a golden-label benchmark (MMLU, GSM8K: which model answered
correctly) into battles: one model right and the other wrong is a win, both right or both wrong a
tie. :func:`training_split` fixes which benchmark questions may be trained on, so that a router
is never evaluated on a question it has seen.

:class:`LabelledPrompts` is the other shape of training data, what the knn router learns from: per
prompt, a score in [0, 1] for each of any number of models (golden-label correctness matrices:
:func:`benchmark_labels`, or a matrix of your own), NaN where a model has no label. Battles become
labelled prompts with :func:`pair_battle_labels` (a pair's share of the battles it won on a prompt).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arena import outcome_codes
from .model_names import canonical_model_name
from .prompt_keys import prompt_key
from .tables import check_table_suffix, column, read_jsonl, read_table, write_table

__all__ = [
    "LabelledPrompts",
    "PreferenceData",
    "benchmark_labels",
    "golden_label_battles",
    "load_preference",
    "pair_battle_labels",
    "training_split",
    "write_battles",
]

_WINNER_LABELS = ("model_a", "model_b", "tie")


@dataclass(frozen=True)
class PreferenceData:
    """Battles over distinct prompts: ``prompt_index[i]`` is battle i's row of ``prompts``."""

    prompts: list[str]
    prompt_index: np.ndarray  # int64 [n]
    model_a: list[str]  # canonical model names [n]
    model_b: list[str]
    outcome: np.ndarray  # int8 [n]: 0 model_a won, 1 model_b won, 2 tie
    weight: np.ndarray  # float64 [n]

    def __post_init__(self) -> None:
        n = len(self.outcome)
        if not (len(self.prompt_index) == len(self.model_a) == len(self.model_b) == len(self.weight) == n):
            raise ValueError("battle columns differ in length")
        if n and (self.prompt_index.min() < 0 or self.prompt_index.max() >= len(self.prompts)):
            raise ValueError(f"prompt_index points outside the {len(self.prompts)} prompts")
        if not np.all(np.isfinite(self.weight)) or (self.weight < 0).any():
            raise ValueError("battle weights must be finite and >= 0")

    def __len__(self) -> int:
        return len(self.outcome)

    @property
    def models(self) -> list[str]:
        """Every model, in order of first appearance (model_a first, then model_b)."""
        return list(dict.fromkeys(self.model_a + self.model_b))

    def summary(self) -> str:
        counts = np.bincount(self.outcome, minlength=3)
        return (f"{len(self)} battles on {len(self.prompts)} prompts, {len(self.models)} models "
                f"({counts[0]} model_a, {counts[1]} model_b, {counts[2]} ties)")

    def where(self, keep: np.ndarray) -> PreferenceData:
        """The battles marked in ``keep``, with the prompts they still use."""
        keep = np.asarray(keep, dtype=bool)
        used = np.unique(self.prompt_index[keep])
        remap = np.full(len(self.prompts), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        rows = np.flatnonzero(keep)
        return PreferenceData(
            [self.prompts[i] for i in used], remap[self.prompt_index[keep]],
            [self.model_a[i] for i in rows], [self.model_b[i] for i in rows],
            self.outcome[keep], self.weight[keep],
        )

    @staticmethod
    def concat(parts: Sequence[PreferenceData]) -> PreferenceData:
        """All battles of ``parts``, in order; a prompt shared by several parts is stored once."""
        row: dict[str, int] = {}  # insertion-ordered: the prompts in order of first appearance
        index = []
        for part in parts:
            mapping = np.array([row.setdefault(p, len(row)) for p in part.prompts], dtype=np.int64)
            index.append(mapping[part.prompt_index] if len(part) else np.empty(0, np.int64))
        return PreferenceData(
            list(row), np.concatenate(index) if index else np.empty(0, np.int64),
            [m for p in parts for m in p.model_a], [m for p in parts for m in p.model_b],
            np.concatenate([p.outcome for p in parts]).astype(np.int8) if parts else np.empty(0, np.int8),
            np.concatenate([p.weight for p in parts]) if parts else np.empty(0),
        )

    def training_prompt_keys(self) -> np.ndarray:
        """:func:`~routellm_fast.embedders.prompt_key` of every prompt, uint8 ``[n, 16]``."""
        return np.frombuffer(b"".join(prompt_key(p) for p in self.prompts), dtype=np.uint8).reshape(-1, 16)


def _from_rows(
    prompts: Sequence[object], model_a: Sequence[object], model_b: Sequence[object], winners: Sequence[object],
    weights: Sequence[object] | None, where: str, aliases: Mapping[str, str] | None,
) -> PreferenceData:
    row: dict[str, int] = {}
    index = np.empty(len(prompts), dtype=np.int64)
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise ValueError(f"{where} row {i}: prompt must be a string, got {p!r}")
        index[i] = row.setdefault(p, len(row))
    names = []
    for role, values in (("model_a", model_a), ("model_b", model_b)):
        for i, m in enumerate(values):
            if not isinstance(m, str) or not m:
                raise ValueError(f"{where} row {i}: {role} must be a non-empty model name, got {m!r}")
        names.append([canonical_model_name(m, aliases) for m in values])  # type: ignore[arg-type]
    weight = np.ones(len(prompts)) if weights is None else np.array(
        [np.nan if w is None else w for w in weights], dtype=np.float64)
    if not np.all(np.isfinite(weight)) or (weight < 0).any():
        bad = int(np.flatnonzero(~(np.isfinite(weight) & (weight >= 0)))[0])
        raise ValueError(f"{where} row {bad}: weight must be a finite number >= 0, got {weights[bad]!r}")  # type: ignore[index]
    return PreferenceData(list(row), index, names[0], names[1], outcome_codes(winners, where=f"{where} row"), weight)


def _load_folder(folder: Path, aliases: Mapping[str, str] | None) -> PreferenceData:
    battles_path, prompts_path = folder / "battles.csv", folder / "prompts.jsonl"
    if not battles_path.is_file() or not prompts_path.is_file():
        raise FileNotFoundError(f"{folder}: a battle folder needs battles.csv and prompts.jsonl")
    table = read_table(battles_path)
    prompt_rows = read_jsonl(prompts_path)
    id_column = next((c for c in ("prompt_id", "question_id") if c in table.column_names), None)
    if id_column is None or not all(id_column in r and "prompt" in r for r in prompt_rows):
        raise ValueError(f"{folder}: battles.csv and prompts.jsonl must share a prompt_id or question_id column")
    text = {str(r[id_column]): r["prompt"] for r in prompt_rows}
    ids = [str(i) for i in column(table, id_column, battles_path)]
    missing = next((i for i in ids if i not in text), None)
    if missing is not None:
        raise ValueError(f"{battles_path}: {id_column} {missing!r} is not in {prompts_path}")
    weights = column(table, "weight", battles_path) if "weight" in table.column_names else None
    return _from_rows([text[i] for i in ids], column(table, "model_a", battles_path),
                      column(table, "model_b", battles_path), column(table, "winner", battles_path), weights,
                      str(battles_path), aliases)


def load_preference(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], aliases: Mapping[str, str] | None = None
) -> PreferenceData:
    """Battles from battle files and/or dataset folders (see the module docstring), concatenated.

    ``aliases`` adds model-name aliases to the built-in table (they take precedence).
    """
    paths = [Path(sources)] if isinstance(sources, (str, os.PathLike)) else [Path(s) for s in sources]
    if not paths:
        raise ValueError("no battle files given")
    parts = []
    for path in paths:
        if path.is_dir():
            parts.append(_load_folder(path, aliases))
        elif path.is_file():
            table = read_table(path)
            weights = column(table, "weight", path) if "weight" in table.column_names else None
            parts.append(_from_rows(column(table, "prompt", path), column(table, "model_a", path),
                                    column(table, "model_b", path), column(table, "winner", path), weights,
                                    str(path), aliases))
        else:
            raise FileNotFoundError(f"battle file or folder {str(path)!r} does not exist")
    return PreferenceData.concat(parts)


def write_battles(data: PreferenceData, path: str | os.PathLike[str]) -> None:
    """Write battles in the battle format (``.jsonl``, ``.csv`` or ``.parquet``, by suffix)."""
    import pyarrow as pa

    check_table_suffix(path)
    labels = np.array(_WINNER_LABELS, dtype=object)[data.outcome]
    table = pa.table({
        "prompt": [data.prompts[i] for i in data.prompt_index],
        "model_a": data.model_a, "model_b": data.model_b, "winner": labels.tolist(), "weight": data.weight,
    })
    write_table(table, path)


def training_split(prompts: Sequence[str], share: float = 0.5, salt: str = "") -> np.ndarray:
    """Which benchmark questions may be trained on: a fixed share chosen by a hash of the text
    (bool ``[n]``), the same on every machine and independent of order, so a question never moves
    between the training and the held-out side. Different ``salt``s give independent splits."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    cut = round(share * 2**16)
    return np.array([int.from_bytes(prompt_key(salt + p)[:2], "little") < cut for p in prompts], dtype=bool)


def golden_label_battles(benchmark, share: float = 0.5) -> PreferenceData:
    """Battles between a benchmark's strong and weak model on its training-split questions
    (:func:`training_split`): one right and the other wrong is a win, otherwise a tie.

    ``benchmark`` is a :class:`routellm_fast.evals.Benchmark` with correctness scores.
    """
    keep = training_split(benchmark.prompts, share)
    strong, weak = benchmark.strong_scores[keep], benchmark.weak_scores[keep]
    outcome = np.where(strong > weak, 0, np.where(weak > strong, 1, 2)).astype(np.int8)
    n = int(keep.sum())
    prompts = [p for p, k in zip(benchmark.prompts, keep) if k]
    return PreferenceData.concat([PreferenceData(
        prompts, np.arange(n, dtype=np.int64), [canonical_model_name(benchmark.strong_model)] * n,
        [canonical_model_name(benchmark.weak_model)] * n, outcome, np.ones(n))])



@dataclass(frozen=True)
class LabelledPrompts:
    """Prompts with a score in [0, 1] per model: ``labels[i, j]`` is model ``models[j]``'s score on
    ``prompts[i]`` (1/0 correctness, or a share of battles won), NaN where it has none. Model names
    are canonical (:func:`~routellm_fast.formats.model_names.canonical_model_name`)."""

    prompts: list[str]
    models: list[str]
    labels: np.ndarray  # float32 [n, len(models)]

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.shape != (len(self.prompts), len(self.models)):
            raise ValueError(f"labels must be [prompts, models] = {(len(self.prompts), len(self.models))}, "
                             f"got {labels.shape}")
        if len(set(self.models)) != len(self.models):
            raise ValueError("models must be distinct")
        known = labels[~np.isnan(labels)]
        if known.size and (known.min() < 0 or known.max() > 1):
            raise ValueError("labels must be in [0, 1] (NaN: no label)")
        if len(self.prompts) and np.isnan(labels).all(axis=1).any():
            row = int(np.flatnonzero(np.isnan(labels).all(axis=1))[0])
            raise ValueError(f"prompt {row} has no label for any model")

    def __len__(self) -> int:
        return len(self.prompts)

    def summary(self) -> str:
        return f"{len(self)} prompts, {len(self.models)} models, {int((~np.isnan(self.labels)).sum())} labels"

    def where(self, keep: np.ndarray) -> LabelledPrompts:
        """The prompts marked in ``keep``."""
        keep = np.asarray(keep, dtype=bool)
        return LabelledPrompts([p for p, k in zip(self.prompts, keep) if k], list(self.models), self.labels[keep])

    def renamed(self, names: Mapping[str, str]) -> LabelledPrompts:
        """The same labels with models renamed (``{old: new}``)."""
        return LabelledPrompts(list(self.prompts), [names.get(m, m) for m in self.models], self.labels)

    def with_copy(self, model: str, as_model: str) -> LabelledPrompts:
        """These labels plus ``as_model``'s column holding ``model``'s labels (a stand-in: e.g. the
        nearest model a data set has for one it lacks)."""
        if as_model in self.models:
            raise ValueError(f"{as_model!r} already has labels here")
        j = self.models.index(model)
        return LabelledPrompts(list(self.prompts), self.models + [as_model],
                               np.column_stack([self.labels, self.labels[:, j]]).astype(np.float32))

    @staticmethod
    def concat(parts: Sequence[LabelledPrompts]) -> LabelledPrompts:
        """Every prompt of ``parts`` over the union of their models (in order of first appearance).
        A prompt in several parts is one row; a model labelled there more than once gets the mean."""
        models = list(dict.fromkeys(m for part in parts for m in part.models))
        column = {m: j for j, m in enumerate(models)}
        row: dict[str, int] = {}
        for part in parts:
            for p in part.prompts:
                row.setdefault(p, len(row))
        total = np.zeros((len(row), len(models)))
        count = np.zeros((len(row), len(models)))
        for part in parts:
            rows = np.array([row[p] for p in part.prompts], dtype=np.int64)
            cols = np.array([column[m] for m in part.models], dtype=np.int64)
            known = ~np.isnan(part.labels)
            r, c = np.nonzero(known)
            np.add.at(total, (rows[r], cols[c]), part.labels[r, c])
            np.add.at(count, (rows[r], cols[c]), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            labels = np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)
        return LabelledPrompts(list(row), models, labels)

    def training_prompt_keys(self) -> np.ndarray:
        """:func:`~routellm_fast.embedders.prompt_key` of every prompt, uint8 ``[n, 16]``."""
        return np.frombuffer(b"".join(prompt_key(p) for p in self.prompts), dtype=np.uint8).reshape(-1, 16)


def benchmark_labels(benchmark, share: float = 0.5) -> LabelledPrompts:
    """The strong and weak model's correctness on a benchmark's training-split questions
    (:func:`training_split`, as :func:`golden_label_battles` takes them); ``benchmark`` is a
    :class:`routellm_fast.evals.Benchmark` with 0/1 scores."""
    keep = training_split(benchmark.prompts, share)
    labels = np.column_stack([benchmark.strong_scores[keep], benchmark.weak_scores[keep]]).astype(np.float32)
    return LabelledPrompts([p for p, k in zip(benchmark.prompts, keep) if k],
                           [canonical_model_name(benchmark.strong_model), canonical_model_name(benchmark.weak_model)],
                           labels)


def pair_battle_labels(data: PreferenceData, strong_model: str, weak_model: str) -> LabelledPrompts:
    """Labels from the battles between ``strong_model`` and ``weak_model``: on each prompt where they
    met, the strong model's weighted share of those battles won (ties half) and the weak model's
    share (one minus it). Prompts where they never met are left out."""
    strong, weak = canonical_model_name(strong_model), canonical_model_name(weak_model)
    a, b = np.array(data.model_a, dtype=object), np.array(data.model_b, dtype=object)
    pair = ((a == strong) & (b == weak)) | ((a == weak) & (b == strong))
    pair &= data.weight > 0
    won = np.where(data.outcome == 2, 0.5, np.where((data.outcome == 0) == (a == strong), 1.0, 0.0))
    total = np.bincount(data.prompt_index[pair], weights=data.weight[pair], minlength=len(data.prompts))
    wins = np.bincount(data.prompt_index[pair], weights=(won * data.weight)[pair], minlength=len(data.prompts))
    met = np.flatnonzero(total > 0)
    share_won = wins[met] / total[met]
    labels = np.column_stack([share_won, 1.0 - share_won]).astype(np.float32)
    return LabelledPrompts([data.prompts[i] for i in met], [strong, weak], labels)
