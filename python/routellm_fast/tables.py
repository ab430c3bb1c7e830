"""Reading and writing tables of rows: parquet, CSV and JSON lines, chosen by the file's suffix.

Every file of rows the package reads or writes (battles, prompts, benchmark answers, scores) goes
through here, so a format is parsed one way and a bad file fails with one kind of message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "SAMPLE_PROMPTS",
    "TABLE_SUFFIXES",
    "check_table_suffix",
    "column",
    "read_jsonl",
    "read_prompts",
    "read_table",
    "write_table",
]

#: File types a table is read from or written to.
TABLE_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")
#: A bundled sample of real prompts (AlpacaEval's 805 instructions; see data/NOTICE.md).
SAMPLE_PROMPTS = Path(__file__).parent / "data" / "sample_prompts.jsonl"

PathLike = str | os.PathLike[str]


def read_table(path: PathLike) -> Any:
    """A ``pyarrow.Table`` from a parquet, CSV or JSON-lines file."""
    import pyarrow as pa

    path = Path(path)
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if path.suffix == ".csv":
            import pyarrow.csv as pcsv

            # quoted prompts may span lines
            return pcsv.read_csv(path, parse_options=pcsv.ParseOptions(newlines_in_values=True))
        if path.suffix in (".jsonl", ".json"):
            import pyarrow.json as pjson

            return pjson.read_json(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    raise ValueError(f"unsupported file type {path.suffix!r} for {path} (use {', '.join(TABLE_SUFFIXES)})")


def check_table_suffix(path: PathLike) -> Path:
    """``path`` if :func:`write_table` can write it; checked before any work is done."""
    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise ValueError(f"unsupported output type {path.suffix!r} for {path}: use .jsonl, .csv or .parquet")
    return path


def write_table(table: Any, path: PathLike) -> None:
    """Write a ``pyarrow.Table`` as parquet, CSV or JSON lines, by the suffix of ``path``."""
    path = check_table_suffix(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    elif path.suffix == ".csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, path)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in table.to_pylist())


def column(table: Any, name: str, path: PathLike) -> list:
    """The values of column ``name``; a missing column names the file and its columns."""
    if name not in table.column_names:
        raise ValueError(f"{path} has no column {name!r} (columns: {', '.join(table.column_names)})")
    return table.column(name).to_pylist()


def read_jsonl(path: PathLike) -> list[dict]:
    """The objects of a JSON-lines file, one per non-blank line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    with open(path, encoding="utf-8") as f:
        try:
            rows = [json.loads(line) for line in f if line.strip()]
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON lines: {exc}") from None
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: every line must be a JSON object")
    return rows


def read_prompts(path: PathLike | None = None) -> list[str]:
    """Prompts from a jsonl, CSV or parquet file with a ``prompt`` column (default: the bundled sample)."""
    path = Path(path) if path is not None else SAMPLE_PROMPTS
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {str(path)!r} does not exist")
    if path.suffix in (".jsonl", ".json"):
        prompts = [row.get("prompt") for row in read_jsonl(path)]
    else:
        prompts = column(read_table(path), "prompt", path)
    if not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"{path}: every row must have a string 'prompt'")
    return prompts
