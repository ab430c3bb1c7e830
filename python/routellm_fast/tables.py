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
    "TableWriter",
    "check_table_suffix",
    "column",
    "iter_tables",
    "read_jsonl",
    "read_prompts",
    "read_table",
    "table_rows",
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


def table_rows(path: PathLike) -> int | None:
    """The number of rows of a parquet file (from its footer); None for other formats."""
    path = Path(path)
    if path.suffix != ".parquet":
        return None
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a file that is no parquet
        raise ValueError(f"cannot read {path}: {exc}") from None


def iter_tables(path: PathLike, rows: int) -> Any:
    """The rows of a parquet, CSV or JSON-lines file as ``pyarrow.Table`` chunks of about ``rows``
    rows (CSV: blocks of the file), read as they are needed, so a large file is never whole in
    memory. Column types come from the start of the file (a CSV or JSON-lines column whose later
    values do not fit them is an error)."""
    import pyarrow as pa

    path = Path(path)
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
                yield pa.Table.from_batches([batch])
        elif path.suffix == ".csv":
            import pyarrow.csv as pcsv

            reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 22),
                                   parse_options=pcsv.ParseOptions(newlines_in_values=True))
            for batch in reader:
                yield pa.Table.from_batches([batch])
        elif path.suffix in (".jsonl", ".json"):
            schema = None
            with open(path, encoding="utf-8") as f:
                chunk: list[dict] = []
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path} line {number} is not valid JSON: {exc}") from None
                    if not isinstance(row, dict):
                        raise ValueError(f"{path} line {number}: every line must be a JSON object")
                    chunk.append(row)
                    if len(chunk) == rows:
                        table = pa.Table.from_pylist(chunk, schema=schema)
                        schema, chunk = table.schema, []
                        yield table
                if chunk or schema is None:
                    yield pa.Table.from_pylist(chunk, schema=schema)
        else:
            raise ValueError(f"unsupported file type {path.suffix!r} for {path} (use {', '.join(TABLE_SUFFIXES)})")
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None


class TableWriter:
    """Writes ``pyarrow.Table`` chunks one after another to a parquet, CSV or JSON-lines file (by
    its suffix); every chunk must have the first one's columns. A context manager."""

    def __init__(self, path: PathLike) -> None:
        self.path = check_table_suffix(path)
        self._writer: Any = None
        self._schema: Any = None
        self._file: Any = None

    def write(self, table: Any) -> None:
        if self._schema is None:
            self._schema = table.schema
            if self.path.suffix == ".parquet":
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(self.path, table.schema)
            elif self.path.suffix == ".csv":
                import pyarrow.csv as pcsv

                self._writer = pcsv.CSVWriter(self.path, table.schema)
            else:
                self._file = open(self.path, "w", encoding="utf-8")
        elif table.schema != self._schema:
            try:
                table = table.cast(self._schema)
            except (ValueError, TypeError, NotImplementedError) as exc:
                raise ValueError(f"rows further down the input have other column types than the first: {exc}") from None
        if self._file is not None:
            self._file.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in table.to_pylist())
        else:
            self._writer.write_table(table)

    def close(self) -> None:
        for handle in (self._writer, self._file):
            if handle is not None:
                handle.close()
        self._writer = self._file = None

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
