"""RouteLLM's evaluation benchmarks: golden-label items routed between two models.

* **MMLU**: 57 domains, 14,042 questions; score = % answered correctly by the routed model;
* **GSM8K**: 1,319 grade-school maths questions; the same score;
* **MT Bench**: 80 two-turn questions, routed on the first turn; score = mean GPT-4 judgement
  (1-10) of the routed model's answers to both turns;
* any file of your own with :func:`load_golden_file`.

Prompts that RouteLLM's ``contaminated_prompts.jsonl`` lists (they also occur in its training
data) are dropped exactly as RouteLLM drops them, and so are prompts a router was trained on
(:meth:`Benchmark.excluding`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..formats.model_names import (
    canonical_model_name,
)
from ..formats.preference import training_split
from ..formats.prompt_keys import prompt_key
from ..formats.tables import column, read_table
from .data import (
    EVAL_STRONG_MODEL,
    EVAL_WEAK_MODEL,
    MMLU_DOMAINS,
    eval_data,
    model_column,
    same_model,
)

__all__ = [
    "BENCHMARKS",
    "EVAL_STRONG_MODEL",
    "EVAL_WEAK_MODEL",
    "MMLU_DOMAINS",
    "Benchmark",
    "load_benchmark",
    "load_golden_file",
    "load_gsm8k",
    "load_mmlu",
    "load_mt_bench",
]


@dataclass(frozen=True)
class Benchmark:
    """Golden-label items routed between two models.

    ``strong_scores`` / ``weak_scores`` hold each item's score for either model (1/0 correctness
    for MMLU and GSM8K, the mean judgement over both turns for MT Bench); a routed set's score is
    ``mean(where(strong call, strong, weak)) * scale``.
    """

    name: str
    prompts: list[str]
    strong_scores: np.ndarray
    weak_scores: np.ndarray
    strong_model: str
    weak_model: str
    scale: float = 1.0
    #: MT Bench counts whole strong calls in the optimal router (``int(n * share)``); the
    #: correctness benchmarks allow a fractional count.
    whole_strong_calls: bool = False
    #: How many items the source had, and what was dropped on the way (in order).
    num_source: int = 0
    dropped: tuple[tuple[str, int], ...] = ()
    #: The salt of :func:`~routellm_fast.formats.preference.training_split` that splits the items
    #: into a training and a held-out half (by a hash of each prompt, share 0.5), or None where the
    #: benchmark has no training half (MT Bench, your own files).
    training_salt: str | None = None

    def __post_init__(self) -> None:
        n = len(self.prompts)
        for label, scores in (("strong", self.strong_scores), ("weak", self.weak_scores)):
            if scores.shape != (n,):
                raise ValueError(f"{self.name}: {label} scores have shape {scores.shape}, expected ({n},)")
            if not np.all(np.isfinite(scores)):
                raise ValueError(f"{self.name}: {label} scores contain NaN or inf")
        if n == 0:
            raise ValueError(f"{self.name}: no items left to evaluate ({self.describe()})")

    def __len__(self) -> int:
        return len(self.prompts)

    def describe(self) -> str:
        """e.g. ``mmlu: 14037 of 14042 items (dropped 5 contaminated)``."""
        drops = ", ".join(f"{n} {why}" for why, n in self.dropped if n)
        return f"{self.name}: {len(self.prompts)} of {self.num_source} items" + (f" (dropped {drops})" if drops else "")

    def routed_score(self, strong_call: np.ndarray) -> float:
        """The benchmark score when the items marked in ``strong_call`` go to the strong model."""
        return float(np.where(strong_call, self.strong_scores, self.weak_scores).sum() / len(self) * self.scale)

    def model_score(self, model: str) -> float:
        """The score of sending every item to ``model`` (the strong or the weak one)."""
        if same_model(model, self.strong_model):
            return self.routed_score(np.ones(len(self), dtype=bool))
        if same_model(model, self.weak_model):
            return self.routed_score(np.zeros(len(self), dtype=bool))
        raise ValueError(f"{self.name} routes between {self.strong_model!r} and {self.weak_model!r}, not {model!r}")

    def optimal_score(self, strong_share: float) -> float:
        """The best score reachable with ``strong_share`` of the items sent to the strong model:
        an oracle sends the items where the strong model gains most."""
        calls = len(self) * strong_share
        if self.whole_strong_calls:
            calls = float(int(calls))
        gains = np.sort((self.strong_scores - self.weak_scores)[self.strong_scores > self.weak_scores])[::-1]
        whole = min(int(calls), len(gains))
        gain = gains[:whole].sum() + (calls - int(calls)) * (gains[whole] if whole < len(gains) else 0.0)
        return float((self.weak_scores.sum() + gain) / len(self) * self.scale)

    def training_mask(self) -> np.ndarray:
        """bool ``[n]``: the items of the training half (:attr:`training_salt`)."""
        if self.training_salt is None:
            raise ValueError(f"{self.name} has no training half (only MMLU, GSM8K and the ZeroEval sets have one)")
        return training_split(self.prompts, 0.5, self.training_salt)

    def training_half(self) -> Benchmark:
        """The items routers may be trained on (and the length baseline is fitted on)."""
        return self._subset(self.training_mask(), "held-out half")

    def held_out_half(self) -> Benchmark:
        """The items never trained on: what the evaluation reports."""
        return self._subset(~self.training_mask(), "training half")

    def excluding(self, keys: set[bytes], why: str) -> Benchmark:
        """This benchmark without the prompts whose :func:`~routellm_fast.embedders.prompt_key` is in ``keys``."""
        keep = np.array([prompt_key(p) not in keys for p in self.prompts], dtype=bool)
        return self._subset(keep, why)

    def _subset(self, keep: np.ndarray, why: str) -> Benchmark:
        return replace(
            self,
            prompts=[p for p, k in zip(self.prompts, keep) if k],
            strong_scores=self.strong_scores[keep],
            weak_scores=self.weak_scores[keep],
            dropped=self.dropped + ((why, int((~keep).sum())),),
        )


def _correctness_benchmark(
    name: str, tables: list[tuple[Any, str]], contaminated: set[str], strong_model: str, weak_model: str
) -> Benchmark:
    prompts: list[str] = []
    strong: list[np.ndarray] = []
    weak: list[np.ndarray] = []
    for table, source in tables:
        columns = table.column_names
        if "prompt" not in columns:
            raise ValueError(f"{source} has no 'prompt' column (columns: {', '.join(columns)})")
        prompts += table.column("prompt").to_pylist()
        strong.append(_correctness(table.column(model_column(columns, strong_model, source)).to_pylist(), source))
        weak.append(_correctness(table.column(model_column(columns, weak_model, source)).to_pylist(), source))
    bench = Benchmark(name, prompts, np.concatenate(strong), np.concatenate(weak), strong_model, weak_model,
                      scale=100.0, num_source=len(prompts), training_salt="")
    return bench._subset(np.array([p not in contaminated for p in prompts], dtype=bool), "contaminated")


def _correctness(values: list, source: str) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            v = v.strip().lower() == "true"
        if not isinstance(v, (bool, int, float, np.bool_)) or v not in (0, 1):
            raise ValueError(f"{source} row {i}: correctness must be True/False or 1/0, got {v!r}")
        out[i] = float(v)
    return out


def load_mmlu(
    data_dir: str | os.PathLike[str] | None = None, strong_model: str = EVAL_STRONG_MODEL,
    weak_model: str = EVAL_WEAK_MODEL,
) -> Benchmark:
    """MMLU's 57 domains in RouteLLM's order (:data:`MMLU_DOMAINS`), decontaminated as RouteLLM does.
    ``data_dir``: a folder in RouteLLM's layout (see :func:`eval_data`); None: the bundled copy."""
    source = eval_data(data_dir)
    return _correctness_benchmark("mmlu", source.mmlu_tables(), source.contaminated("mmlu"), strong_model, weak_model)


def load_gsm8k(
    data_dir: str | os.PathLike[str] | None = None, strong_model: str = EVAL_STRONG_MODEL,
    weak_model: str = EVAL_WEAK_MODEL,
) -> Benchmark:
    """GSM8K's test questions with both models' correctness, decontaminated as RouteLLM does.
    ``data_dir``: a folder in RouteLLM's layout (see :func:`eval_data`); None: the bundled copy."""
    source = eval_data(data_dir)
    return _correctness_benchmark("gsm8k", [source.gsm8k_table()], source.contaminated("gsm8k"), strong_model,
                                  weak_model)


def load_mt_bench(
    data_dir: str | os.PathLike[str] | None = None, strong_model: str = EVAL_STRONG_MODEL,
    weak_model: str = EVAL_WEAK_MODEL,
) -> Benchmark:
    """MT Bench: route on the first turn; a question's score is the routed model's mean judgement
    over both turns. Questions with either turn contaminated are dropped (RouteLLM's rule).
    ``data_dir``: a folder in RouteLLM's layout (see :func:`eval_data`); None: the bundled copy."""
    source = eval_data(data_dir)
    questions, (judgements, where) = source.mt_bench_questions(), source.mt_bench_judgements()
    contaminated = source.contaminated("mt-bench")
    scores: dict[tuple[int, str], list[float]] = {}
    for row in judgements:
        scores.setdefault((row["question_id"], canonical_model_name(row["model"])), []).append(float(row["score"]))

    def per_question(model: str) -> np.ndarray:
        out = []
        for q in questions:
            turns = scores.get((q["question_id"], canonical_model_name(model)))
            if not turns:
                raise ValueError(f"{where} has no judgement of {model!r} on question {q['question_id']}")
            out.append(sum(turns) / len(turns))
        return np.array(out, dtype=np.float64)

    bench = Benchmark("mt-bench", [q["turns"][0] for q in questions], per_question(strong_model),
                      per_question(weak_model), strong_model, weak_model, whole_strong_calls=True,
                      num_source=len(questions))
    keep = np.array([not (set(q["turns"][:2]) & contaminated) for q in questions], dtype=bool)
    return bench._subset(keep, "contaminated")


def load_golden_file(
    path: str | os.PathLike[str],
    strong_model: str = EVAL_STRONG_MODEL,
    weak_model: str = EVAL_WEAK_MODEL,
    name: str | None = None,
) -> Benchmark:
    """Your own golden-label benchmark: a CSV / JSON lines / parquet file with a ``prompt`` column
    and one column per model (any alias of its name) holding either correctness (True/False,
    scored as % correct like MMLU) or a numeric score (averaged, like MT Bench's judgements)."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"benchmark file {str(path)!r} does not exist")
    table = read_table(source)
    prompts = column(table, "prompt", source)
    if any(not isinstance(p, str) for p in prompts):
        raise ValueError(f"{source}: every 'prompt' must be a string")
    columns = [table.column(model_column(table.column_names, m, str(source))).to_pylist() for m in (strong_model, weak_model)]
    boolean = all(isinstance(v, (bool, np.bool_)) or (isinstance(v, str) and v.lower() in ("true", "false"))
                  for col in columns for v in col)
    if boolean:
        strong, weak = (_correctness(col, source) for col in columns)
    else:
        try:
            strong, weak = (np.array(col, dtype=np.float64) for col in columns)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: model columns must be True/False or numbers ({exc})") from None
    return Benchmark(name or source.stem, prompts, strong, weak, strong_model, weak_model,
                     scale=100.0 if boolean else 1.0, num_source=len(prompts))


#: Built-in benchmarks by their command-line name.
BENCHMARKS: dict[str, Callable[..., Benchmark]] = {"mmlu": load_mmlu, "gsm8k": load_gsm8k, "mt-bench": load_mt_bench}


def load_benchmark(
    name_or_file: str, data_dir: str | os.PathLike[str] | None = None, strong_model: str = EVAL_STRONG_MODEL,
    weak_model: str = EVAL_WEAK_MODEL,
) -> Benchmark:
    """A built-in benchmark (``mmlu``, ``gsm8k``, ``mt-bench``; from ``data_dir``, else the bundled
    copy) or a golden-label file."""
    if name_or_file in BENCHMARKS:
        return BENCHMARKS[name_or_file](data_dir, strong_model, weak_model)
    if Path(name_or_file).is_file():
        return load_golden_file(name_or_file, strong_model, weak_model)
    raise ValueError(f"unknown benchmark {name_or_file!r}: use one of {', '.join(BENCHMARKS)} or a file path")
