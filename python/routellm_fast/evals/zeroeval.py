"""Golden labels of many models from ZeroEval (yuchenlin/ZeroEval, Apache-2.0): per-prompt correctness
on CRUXEval-O (``crux``: 800 items, 48 models) and MATH level 5 (``math-l5``: 721 items, 38 models).

* Bundled: ``routellm_fast/data/evals/zeroeval_<set>.parquet`` (id, prompt, one 0/1 column per
  model; see ``data/NOTICE.md``), written by :func:`bundle_zeroeval` from the shared data
  (``../shared/data/golden/zeroeval/<set>.csv``, its ``PROVENANCE.md`` says how they were made).
  ``data_dir``: a folder holding ``golden/zeroeval/`` (or that folder itself) to read the CSVs.
* Split: the training half is the items :func:`routellm_fast.formats.preference.training_split`
  puts in training (share 0.5, salt ``""``, by a hash of the prompt: the same rule as MMLU's and
  GSM8K's halves and :func:`~routellm_fast.formats.preference.golden_label_battles`). Training code
  takes :func:`zeroeval_training_half`; the evaluation reports only the other half.
* Two-model benchmarks (:func:`load_crux`, :func:`load_math_l5`): ZeroEval has no
  gpt-4-1106-preview (RouteLLM's strong model), so gpt-4-turbo-2024-04-09 stands in for it; ZeroEval
  never ran Mixtral on MATH level 5, so ``math-l5`` needs an explicit weak model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..formats.preference import training_split
from ..formats.tables import read_table
from ..paths import BUNDLED_EVALS, shared_folder
from .benchmarks import BENCHMARKS, Benchmark
from .data import EVAL_STRONG_MODEL, EVAL_WEAK_MODEL, same_model

__all__ = [
    "ZEROEVAL_SETS",
    "ZEROEVAL_STRONG_MODEL",
    "GoldenMatrix",
    "bundle_zeroeval",
    "load_crux",
    "load_math_l5",
    "load_zeroeval",
    "zeroeval_training_half",
]

#: ZeroEval sets by their command-line name -> the file stem (``<stem>.csv`` in the shared data,
#: ``zeroeval_<stem>.parquet`` bundled).
ZEROEVAL_SETS = {"crux": "crux", "math-l5": "math_l5"}
#: The nearest ZeroEval model to RouteLLM's strong model gpt-4-1106-preview (both GPT-4 Turbo).
ZEROEVAL_STRONG_MODEL = "gpt-4-turbo-2024-04-09"


@dataclass(frozen=True)
class GoldenMatrix:
    """Correctness of many models on one set of prompts: ``correct[i, j]`` is 1.0 when model
    ``models[j]`` answered prompt ``prompts[i]`` right, else 0.0."""

    name: str
    ids: list[str]
    prompts: list[str]
    models: list[str]
    correct: np.ndarray
    source: str

    def __post_init__(self) -> None:
        if self.correct.shape != (len(self.prompts), len(self.models)) or len(self.ids) != len(self.prompts):
            raise ValueError(f"{self.source}: {len(self.ids)} ids, {len(self.prompts)} prompts, {len(self.models)} "
                             f"models but a correctness matrix of shape {self.correct.shape}")

    def __len__(self) -> int:
        return len(self.prompts)

    def index(self, model: str) -> int:
        """The column of ``model`` (any alias of its name)."""
        for j, name in enumerate(self.models):
            if same_model(name, model):
                return j
        raise ValueError(f"{self.source} has no model {model!r} (models: {', '.join(self.models)})")

    def training_mask(self) -> np.ndarray:
        """bool ``[n]``: the training half (``training_split(prompts, 0.5)``)."""
        return training_split(self.prompts, 0.5)

    def subset(self, keep: np.ndarray) -> GoldenMatrix:
        keep = np.asarray(keep, dtype=bool)
        return GoldenMatrix(self.name, [i for i, k in zip(self.ids, keep) if k],
                            [p for p, k in zip(self.prompts, keep) if k], list(self.models), self.correct[keep],
                            self.source)

    def training_half(self) -> GoldenMatrix:
        """The items routers may train on."""
        return self.subset(self.training_mask())

    def held_out_half(self) -> GoldenMatrix:
        """The items the evaluation reports (never trained on)."""
        return self.subset(~self.training_mask())

    def benchmark(self, strong_model: str, weak_model: str) -> Benchmark:
        """The two-model benchmark of ``strong_model`` vs ``weak_model`` on every item (% correct,
        training half marked: :meth:`Benchmark.held_out_half`)."""
        s, w = self.index(strong_model), self.index(weak_model)
        return Benchmark(self.name, list(self.prompts), self.correct[:, s].copy(), self.correct[:, w].copy(),
                         self.models[s], self.models[w], scale=100.0, num_source=len(self), training_salt="")


def _csv_path(name: str, data_dir: str | os.PathLike[str]) -> Path:
    stem = ZEROEVAL_SETS[name]
    for folder in (shared_folder(data_dir, "zeroeval"), Path(data_dir)):
        if (folder / f"{stem}.csv").is_file():
            return folder / f"{stem}.csv"
    raise FileNotFoundError(f"{name}: {data_dir} holds neither golden/zeroeval/{stem}.csv nor {stem}.csv "
                            "(pass the shared data folder, or leave --data-dir out for the bundled copy)")


def load_zeroeval(name: str, data_dir: str | os.PathLike[str] | None = None) -> GoldenMatrix:
    """Every model's correctness on ZeroEval set ``name`` (``crux``, ``math-l5``): the bundled copy,
    or the CSV under ``data_dir`` (see the module docstring)."""
    if name not in ZEROEVAL_SETS:
        raise ValueError(f"unknown ZeroEval set {name!r}: use one of {', '.join(ZEROEVAL_SETS)}")
    if data_dir is None:
        path = BUNDLED_EVALS / f"zeroeval_{ZEROEVAL_SETS[name]}.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"bundled evaluation file {path} is missing (a broken install?); "
                                    "pass --data-dir with the shared data (golden/zeroeval/) instead")
    else:
        path = _csv_path(name, data_dir)
    table = read_table(path)
    columns = table.column_names
    for needed in ("id", "prompt"):
        if needed not in columns:
            raise ValueError(f"{path} has no {needed!r} column (columns: {', '.join(columns)})")
    models = [c for c in columns if c not in ("id", "prompt")]
    if not models:
        raise ValueError(f"{path} has no model columns")
    prompts = table.column("prompt").to_pylist()
    if any(not isinstance(p, str) for p in prompts):
        raise ValueError(f"{path}: every 'prompt' must be a string")
    correct = np.column_stack([np.asarray(table.column(m).to_numpy(zero_copy_only=False), dtype=np.float64)
                               for m in models])
    bad = ~np.isin(correct, (0.0, 1.0))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"{path} row {i}, model {models[j]!r}: correctness must be 0 or 1, got {correct[i, j]!r}")
    return GoldenMatrix(name, [str(i) for i in table.column("id").to_pylist()], prompts, models, correct, str(path))


def zeroeval_training_half(name: str, data_dir: str | os.PathLike[str] | None = None) -> GoldenMatrix:
    """The training half of ZeroEval set ``name`` (``crux``, ``math-l5``): the prompts and every
    model's correctness that routers may be trained on. The evaluation reports only the other half."""
    return load_zeroeval(name, data_dir).training_half()


def _pair(matrix: GoldenMatrix, strong_model: str, weak_model: str) -> Benchmark:
    if same_model(strong_model, EVAL_STRONG_MODEL):
        strong_model = ZEROEVAL_STRONG_MODEL  # RouteLLM's strong model is not in ZeroEval: its nearest
    if same_model(weak_model, EVAL_WEAK_MODEL) and not any(same_model(m, weak_model) for m in matrix.models):
        raise ValueError(f"{matrix.name}: ZeroEval never ran {weak_model} on it; pass --weak-model, one of "
                         f"{', '.join(matrix.models)}")
    return matrix.benchmark(strong_model, weak_model)


def load_crux(
    data_dir: str | os.PathLike[str] | None = None, strong_model: str = ZEROEVAL_STRONG_MODEL,
    weak_model: str = EVAL_WEAK_MODEL,
) -> Benchmark:
    """CRUXEval-O: gpt-4-turbo-2024-04-09 (standing in for gpt-4-1106-preview) vs Mixtral-8x7B, %
    correct; every item, its training half marked (the evaluation reports the held-out half)."""
    return _pair(load_zeroeval("crux", data_dir), strong_model, weak_model)


def load_math_l5(
    data_dir: str | os.PathLike[str] | None = None, strong_model: str = ZEROEVAL_STRONG_MODEL,
    weak_model: str = EVAL_WEAK_MODEL,
) -> Benchmark:
    """MATH level 5 (integer answers) between two ZeroEval models; it has no Mixtral, so the weak
    model must be named."""
    return _pair(load_zeroeval("math-l5", data_dir), strong_model, weak_model)


# The two-model ZeroEval benchmarks join the built-in ones (``routellm-fast eval --benchmark crux``).
BENCHMARKS.update({"crux": load_crux, "math-l5": load_math_l5})


def bundle_zeroeval(data_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] = BUNDLED_EVALS) -> list[Path]:
    """Write the bundled copies (``zeroeval_<set>.parquet``: id, prompt, uint8 correctness per model)
    from the CSVs under ``data_dir``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, stem in ZEROEVAL_SETS.items():
        m = load_zeroeval(name, data_dir)
        table = pa.table({"id": m.ids, "prompt": m.prompts,
                          **{model: pa.array(m.correct[:, j].astype(np.uint8)) for j, model in enumerate(m.models)}})
        path = out / f"zeroeval_{stem}.parquet"
        pq.write_table(table, path, compression="zstd", compression_level=19)
        written.append(path)
    return written
