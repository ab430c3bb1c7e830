"""Where the evaluation data comes from: RouteLLM's golden-label files, bundled or in RouteLLM's layout.

* **Bundled** (the default): ``routellm_fast/data/evals/``, a compact copy of RouteLLM's
  ``routellm/evals`` data (Apache-2.0; see ``data/NOTICE.md``) holding exactly the rows and
  columns the loaders read, as zstd parquet: ``mmlu.parquet`` (domain, prompt, both models'
  correctness; RouteLLM's domain order), ``gsm8k.parquet`` (prompt, correctness),
  ``mt_bench_questions.parquet``, ``mt_bench_judgements.parquet`` (question, model, turn, score) and
  ``contaminated.parquet`` (benchmark, eval_prompt). Written by :func:`bundle_eval_data`.
* **RouteLLM's layout**: a folder holding ``routellm-evals/`` (or that folder itself) with
  ``mmlu/responses/mmlu_<domain>.csv``, ``gsm8k/gsm8k_responses.csv``, ``mt_bench/question.jsonl``,
  ``mt_bench/judgements.jsonl`` and each benchmark's ``contaminated_prompts.jsonl``: ``--data-dir``
  or ``$ROUTELLM_FAST_DATA``.

Both give the loaders (:mod:`routellm_fast.evals.benchmarks`) the same tables, so results are
identical (``tests/test_evals.py`` compares them where the shared data is present).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ..formats.model_names import (
    DEFAULT_STRONG_MODEL,
    DEFAULT_WEAK_MODEL,
    canonical_model_name,
)
from ..formats.tables import read_jsonl, read_table
from ..paths import BUNDLED_EVALS, shared_folder

__all__ = ["BUNDLED_EVALS", "EVAL_STRONG_MODEL", "EVAL_WEAK_MODEL", "MMLU_DOMAINS", "EvalData", "RouteLLMEvalData", "BundledEvalData", "bundle_eval_data", "eval_data", "model_column", "same_model"]

#: RouteLLM's evaluation pair, in RouteLLM's router spelling.
EVAL_STRONG_MODEL = DEFAULT_STRONG_MODEL


EVAL_WEAK_MODEL = DEFAULT_WEAK_MODEL


#: MMLU's 57 domains in the order RouteLLM's evaluation reads them (``ALL_MMLU_DOMAINS``): prompts,
#: win rates and results follow it.
MMLU_DOMAINS = (
    "high_school_european_history", "business_ethics", "clinical_knowledge", "medical_genetics",
    "high_school_us_history", "high_school_physics", "high_school_world_history", "virology",
    "high_school_microeconomics", "econometrics", "college_computer_science", "high_school_biology",
    "abstract_algebra", "professional_accounting", "philosophy", "professional_medicine", "nutrition",
    "global_facts", "machine_learning", "security_studies", "public_relations", "professional_psychology",
    "prehistory", "anatomy", "human_sexuality", "college_medicine", "high_school_government_and_politics",
    "college_chemistry", "logical_fallacies", "high_school_geography", "elementary_mathematics", "human_aging",
    "college_mathematics", "high_school_psychology", "formal_logic", "high_school_statistics",
    "international_law", "high_school_mathematics", "high_school_computer_science", "conceptual_physics",
    "miscellaneous", "high_school_chemistry", "marketing", "professional_law", "management", "college_physics",
    "jurisprudence", "world_religions", "sociology", "us_foreign_policy", "high_school_macroeconomics",
    "computer_security", "moral_scenarios", "moral_disputes", "electrical_engineering", "astronomy",
    "college_biology",
)


def same_model(a: str, b: str) -> bool:
    return canonical_model_name(a) == canonical_model_name(b)


def model_column(columns: Sequence[str], model: str, where: str) -> str:
    """The column of ``model``, whatever alias of it the file uses."""
    for name in columns:
        if same_model(name, model):
            return name
    raise ValueError(f"{where} has no column for model {model!r} (columns: {', '.join(columns)})")


_BENCHMARK_DIRS = {"mmlu": "mmlu", "gsm8k": "gsm8k", "mt-bench": "mt_bench"}


class EvalData(Protocol):
    """The tables the benchmark loaders read, from wherever they are kept."""

    def mmlu_tables(self) -> list[tuple[Any, str]]:
        """(pyarrow table with ``prompt`` and per-model correctness, where it came from) per MMLU
        domain or part, in RouteLLM's domain order."""

    def gsm8k_table(self) -> tuple[Any, str]: ...

    def mt_bench_questions(self) -> list[dict]:
        """``{"question_id", "turns"}`` per question, in file order."""

    def mt_bench_judgements(self) -> tuple[list[dict], str]:
        """``{"question_id", "model", "score"}`` per judgement, and where they came from."""

    def contaminated(self, benchmark: str) -> set[str]:
        """The prompts RouteLLM drops from ``benchmark`` (``mmlu``, ``gsm8k``, ``mt-bench``)."""


def eval_data(data_dir: str | os.PathLike[str] | None = None) -> EvalData:
    """The evaluation data in ``data_dir`` (RouteLLM's layout), or the bundled copy when None."""
    return BundledEvalData() if data_dir is None else RouteLLMEvalData(data_dir)


class RouteLLMEvalData:
    """RouteLLM's files as its repository keeps them (``routellm/evals``)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        root = Path(data_dir)
        evals = shared_folder(root, "routellm_evals")  # the shared data folder, or RouteLLM's own evals folder
        self.root = evals if evals.is_dir() else root

    def _file(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (pass --data-dir, the folder holding routellm-evals/, "
                                    "or leave it out for the bundled copy)")
        return path

    def mmlu_tables(self) -> list[tuple[Any, str]]:
        responses = self.root / "mmlu" / "responses"
        files = [responses / f"mmlu_{domain}.csv" for domain in MMLU_DOMAINS]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{responses} lacks {len(missing)} MMLU domain files, e.g. {missing[0]}")
        return [(read_table(f), str(f)) for f in files]

    def gsm8k_table(self) -> tuple[Any, str]:
        path = self._file("gsm8k", "gsm8k_responses.csv")
        return read_table(path), str(path)

    def mt_bench_questions(self) -> list[dict]:
        return read_jsonl(self._file("mt_bench", "question.jsonl"))

    def mt_bench_judgements(self) -> tuple[list[dict], str]:
        path = self._file("mt_bench", "judgements.jsonl")
        return read_jsonl(path), str(path)

    def contaminated(self, benchmark: str) -> set[str]:
        return {row["eval_prompt"] for row in read_jsonl(self._file(_BENCHMARK_DIRS[benchmark], "contaminated_prompts.jsonl"))}


class BundledEvalData:
    """The compact copy in the package (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str] = BUNDLED_EVALS) -> None:
        self.root = Path(directory)

    def _table(self, name: str) -> tuple[Any, str]:
        path = self.root / name
        if not path.is_file():
            raise FileNotFoundError(f"bundled evaluation file {path} is missing (a broken install?); "
                                    "pass --data-dir with RouteLLM's files instead")
        return read_table(path), str(path)

    def mmlu_tables(self) -> list[tuple[Any, str]]:
        table, where = self._table("mmlu.parquet")
        return [(table.drop_columns(["domain"]), where)]

    def gsm8k_table(self) -> tuple[Any, str]:
        return self._table("gsm8k.parquet")

    def mt_bench_questions(self) -> list[dict]:
        return self._table("mt_bench_questions.parquet")[0].to_pylist()

    def mt_bench_judgements(self) -> tuple[list[dict], str]:
        table, where = self._table("mt_bench_judgements.parquet")
        return table.to_pylist(), where

    def contaminated(self, benchmark: str) -> set[str]:
        table = self._table("contaminated.parquet")[0]
        return {row["eval_prompt"] for row in table.to_pylist() if row["benchmark"] == benchmark}


def bundle_eval_data(data_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] = BUNDLED_EVALS) -> list[Path]:
    """Write the bundled copy from RouteLLM's files in ``data_dir``: only the rows and columns the
    loaders read (GSM8K's model responses and MT Bench's judge prompts are left out)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = RouteLLMEvalData(data_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def correctness_columns(table: Any, where: str) -> list[str]:
        return ["prompt"] + [model_column(table.column_names, m, where) for m in (EVAL_WEAK_MODEL, EVAL_STRONG_MODEL)]

    parts = []
    for domain, (table, where) in zip(MMLU_DOMAINS, source.mmlu_tables()):
        part = table.select(correctness_columns(table, where))
        parts.append(part.add_column(0, "domain", pa.array([domain] * len(part), pa.string())))
    tables = {
        "mmlu.parquet": pa.concat_tables(parts),
        "gsm8k.parquet": (lambda t: t[0].select(correctness_columns(*t)))(source.gsm8k_table()),
        "mt_bench_questions.parquet": pa.Table.from_pylist(
            [{"question_id": q["question_id"], "category": q.get("category"), "turns": q["turns"]}
             for q in source.mt_bench_questions()]),
        "mt_bench_judgements.parquet": pa.Table.from_pylist(
            [{"question_id": j["question_id"], "model": j["model"], "turn": j.get("turn"), "score": j["score"]}
             for j in source.mt_bench_judgements()[0]]),
        "contaminated.parquet": pa.Table.from_pylist(
            [{"benchmark": b, "eval_prompt": p} for b in _BENCHMARK_DIRS for p in sorted(source.contaminated(b))]),
    }
    written = []
    for name, table in tables.items():
        path = out / name
        pq.write_table(table, path, compression="zstd", compression_level=19, use_dictionary=["domain"]
                       if name == "mmlu.parquet" else True)
        written.append(path)
    return written
