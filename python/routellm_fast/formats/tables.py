"""Reading and writing files: tables of rows (parquet, CSV and JSON lines, chosen by the file's
suffix), JSON documents and ``.npy`` / ``.npz`` arrays.

Every file the package reads from a user (battles, prompts, benchmark answers, arenas, checkpoint
metadata) goes through here, so a format is parsed one way and any bad file, however it is broken
(truncated, corrupt, hostile), fails with one exception type, :class:`BadFileError`, naming the file
and the problem. JSON is parsed by Python's own decoder, which refuses deep nesting cleanly; arrays
are checked against the bytes that back them before any memory is allocated for them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import signal
import zipfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadFileError
from ..paths import SAMPLE_PROMPTS

__all__ = [
    "BadFileError",
    "SAMPLE_PROMPTS",
    "TABLE_SUFFIXES",
    "NPZ_RATIO",
    "TableWriter",
    "check_output",
    "check_table_suffix",
    "column",
    "hold_signal",
    "iter_tables",
    "read_json",
    "read_jsonl",
    "read_npy",
    "read_npz",
    "read_prompts",
    "read_table",
    "replacing",
    "table_rows",
    "write_table",
]

#: File types a table is read from or written to.
TABLE_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")

PathLike = str | os.PathLike[str]


def _bad(path: PathLike, problem: object) -> BadFileError:
    return BadFileError(f"{path}: {problem}")


def read_table(path: PathLike) -> Any:
    """A ``pyarrow.Table`` from a parquet, CSV or JSON-lines file, its columns distinctly named."""
    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise ValueError(f"unsupported file type {path.suffix!r} for {path} (use {', '.join(TABLE_SUFFIXES)})")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    table = _read_rows(path)
    names = table.column_names
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise _bad(path, f"columns must have distinct names; repeated: {', '.join(twice)}")
    return table


def _read_rows(path: Path) -> Any:
    import pyarrow as pa

    if path.suffix in (".jsonl", ".json"):
        # Python's decoder, not pyarrow's: a deeply nested value must be an error, not a crash
        rows = read_jsonl(path)
        try:
            return pa.Table.from_pylist(rows)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise _bad(path, f"rows do not form a table: {exc}") from None
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as pcsv

        # quoted prompts may span lines
        return pcsv.read_csv(path, parse_options=pcsv.ParseOptions(newlines_in_values=True))
    except Exception as exc:  # pyarrow raises many types (ArrowInvalid, OSError, ...) for bad files
        raise _bad(path, f"cannot read it: {exc}") from None


def check_table_suffix(path: PathLike) -> Path:
    """``path`` if :func:`write_table` can write it; checked before any work is done."""
    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise ValueError(f"unsupported output type {path.suffix!r} for {path}: use .jsonl, .csv or .parquet")
    return path


def check_output(path: PathLike, source: PathLike | None = None) -> Path:
    """The file a table written to ``path`` replaces, checked before any work: a supported suffix, not
    a directory, in a folder that exists, and not the ``source`` file under another name. Files are
    compared as files (device and inode, following symbolic links), so a hard link or a symbolic link
    to the input is refused too. A symbolic link ``path`` names the file it points to: that file is
    replaced and the link stays."""
    path = check_table_suffix(path)
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise ValueError(f"output {path} is a directory; name a file to write")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path}: the folder {target.parent} is not writable")
    if source is not None:
        try:
            src, out = os.stat(source), os.stat(target)
        except FileNotFoundError:
            return target  # no output yet (or no input: its reader says so)
        except OSError as exc:
            raise ValueError(f"cannot use output {path}: {exc}") from None
        if (src.st_dev, src.st_ino) == (out.st_dev, out.st_ino):
            raise ValueError(f"output {path} is the input file {source} (the same file, by a link or another "
                             "name); writing it would destroy the input: name another file")
    return target


#: Depth of the sections in which a temporary output file is made or moved into place, and the
#: signals that arrived in them (see :func:`hold_signal`).
_held = 0
_deferred: list[int] = []


def hold_signal(signum: int) -> bool:
    """For a signal handler that raises (as ``score``'s): whether to hold signal ``signum`` back
    because a temporary output file is being made or moved into place right now, so that the
    exception can neither leave the file behind nor come between the rename and the bookkeeping.
    A held signal is raised again (``signal.raise_signal``) as soon as the section ends."""
    if _held:
        _deferred.append(signum)
        return True
    return False


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    global _held
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if not _held and _deferred:
            pending = list(_deferred)
            _deferred.clear()
            for signum in pending:
                signal.raise_signal(signum)


def _fsync(path: PathLike, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: PathLike) -> Iterator[Path]:
    """Write a file whole or not at all: yields a new, empty, hidden temporary file beside ``path``
    (same folder, so the rename cannot cross file systems); when the block ends normally the file is
    flushed to disk (fsync) and renamed over ``path`` (``os.replace``: readers see the old file or the
    new one, never a part), then the folder is synced. When the block raises anything (an error, a
    signal turned into an exception, KeyboardInterrupt) the temporary file is removed and ``path`` is
    left exactly as it was. A file that existed keeps its permission bits."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    tmp: Path | None = None
    committed = False
    try:
        with _signals_held():
            while True:
                name = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
                try:
                    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0o666 less the umask
                    tmp = name
                    break
                except FileExistsError:
                    continue
        yield tmp
        with _signals_held():
            if mode is not None:
                os.chmod(tmp, mode)
            _fsync(tmp)
            os.replace(tmp, path)
            committed = True
            _fsync(path.parent, directory=True)
    finally:
        if tmp is not None and not committed:
            with _signals_held():
                tmp.unlink(missing_ok=True)


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
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a file that is no parquet
        raise _bad(path, f"cannot read it: {exc}") from None


def iter_tables(path: PathLike, rows: int) -> Any:
    """The rows of a parquet, CSV or JSON-lines file as ``pyarrow.Table`` chunks of about ``rows``
    rows (CSV: blocks of the file), read as they are needed, so a large file is never whole in
    memory. Column types come from the start of the file (a CSV or JSON-lines column whose later
    values do not fit them is an error)."""
    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise ValueError(f"unsupported file type {path.suffix!r} for {path} (use {', '.join(TABLE_SUFFIXES)})")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    for table in _iter_rows(path, rows):
        names = table.column_names
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise _bad(path, f"columns must have distinct names; repeated: {', '.join(twice)}")
        yield table


def _iter_rows(path: Path, rows: int) -> Any:
    import pyarrow as pa

    if path.suffix in (".jsonl", ".json"):
        schema, chunk, lines = None, [], []
        try:
            with open(path, "rb") as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    chunk.append(_json(line, path, number))
                    lines.append(number)
                    if not isinstance(chunk[-1], dict):
                        raise _bad(path, f"line {number} is not a JSON object")
                    if len(chunk) == rows:
                        table = _rows_table(chunk, schema, path, lines)
                        schema, chunk, lines = table.schema, [], []
                        yield table
        except OSError as exc:
            raise _bad(path, f"cannot read it: {exc}") from None
        if chunk or schema is None:
            yield _rows_table(chunk, schema, path, lines)
        return
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            batches = pq.ParquetFile(path).iter_batches(batch_size=rows)
        else:
            import pyarrow.csv as pcsv

            batches = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 22),
                                    parse_options=pcsv.ParseOptions(newlines_in_values=True))
        for batch in batches:
            yield pa.Table.from_batches([batch])
    except Exception as exc:  # pyarrow raises many types (ArrowInvalid, OSError, ...) for bad files
        raise _bad(path, f"cannot read it: {exc}") from None


def _rows_table(rows: list[dict], schema: Any, path: Path, lines: list[int] | None = None) -> Any:
    import pyarrow as pa

    errors = (pa.ArrowException, TypeError, ValueError, OverflowError)
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except errors as exc:
        where = ""
        if lines is not None:  # name the first line that does not fit (only on this error path: row by row)
            for k, (row, number) in enumerate(zip(rows, lines)):
                try:
                    table = pa.Table.from_pylist([row], schema=schema)
                except errors:
                    where = f" at line {number}"
                    break
                if k == 0 and schema is None:
                    schema = table.schema  # later rows must fit the first one's columns
        raise _bad(path, f"rows do not form a table{where} (later rows must fit the first rows' columns): "
                         f"{exc}") from None


class TableWriter:
    """Writes ``pyarrow.Table`` chunks one after another to a parquet, CSV or JSON-lines file (by
    its suffix, or by ``kind``, a suffix such as ``".parquet"``, for a file named otherwise, e.g. a
    temporary one); every chunk must have the first one's columns. A context manager."""

    def __init__(self, path: PathLike, kind: str | None = None) -> None:
        self.path = Path(path)
        self.kind = check_table_suffix(Path("x" + kind) if kind is not None else self.path).suffix
        self._writer: Any = None
        self._schema: Any = None
        self._file: Any = None

    def write(self, table: Any) -> None:
        if self._schema is None:
            self._schema = table.schema
            if self.kind == ".parquet":
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(self.path, table.schema)
            elif self.kind == ".csv":
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

    @property
    def written(self) -> bool:
        """Whether a chunk was written (the file is made on the first)."""
        return self._schema is not None

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


def _json(text: str | bytes, path: PathLike, line: int | None = None) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        where = f" at line {line}" if line is not None else ""
        problem = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise BadFileError(f"{path} is not valid JSON{where}: {problem}") from None


def read_json(path: PathLike) -> Any:
    """A JSON document (e.g. a checkpoint's ``config.json``)."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _bad(path, f"cannot read it: {exc}") from None
    return _json(text, path)


def read_jsonl(path: PathLike) -> list[dict]:
    """The objects of a JSON-lines file, one per non-blank line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    rows = []
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    rows.append(_json(line, path, number))
                    if not isinstance(rows[-1], dict):
                        raise _bad(path, f"line {number} is not a JSON object")
    except OSError as exc:
        raise _bad(path, f"cannot read it: {exc}") from None
    return rows


def _npy_header(stream: Any, path: PathLike, name: str) -> tuple[np.dtype, tuple[int, ...], bool]:
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(stream, max_header_size=10_000)
    except Exception as exc:  # numpy raises ValueError, SyntaxError, ... on malformed headers
        raise _bad(path, f"{name} has no valid .npy header ({exc})") from None
    if dtype.hasobject or dtype.kind not in "biufcUS" or dtype.fields is not None:
        raise _bad(path, f"{name} holds {dtype} values; only plain numbers are read (no pickles)")
    return dtype, tuple(shape), fortran


def _npy_data(stream: Any, dtype: np.dtype, shape: tuple[int, ...], fortran: bool, path: PathLike, name: str) -> np.ndarray:
    nbytes = math.prod(shape) * dtype.itemsize
    data = stream.read(nbytes)
    if len(data) != nbytes:
        raise _bad(path, f"{name} is truncated: its header declares shape {shape} ({nbytes} bytes), "
                         f"the file holds {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def read_npy(path: PathLike) -> np.ndarray:
    """One array from a ``.npy`` file: plain numbers only, its declared size checked against the file's."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with open(path, "rb") as f:
            dtype, shape, fortran = _npy_header(f, path, "the array")
            available = path.stat().st_size - f.tell()
            declared = math.prod(shape) * dtype.itemsize
            if declared != available:
                raise _bad(path, f"its header declares shape {shape} ({declared} bytes) but {available} bytes follow")
            return _npy_data(f, dtype, shape, fortran, path, "the array")
    except OSError as exc:
        raise _bad(path, f"cannot read it: {exc}") from None


#: No deflate stream expands more than this many times (zlib's limit is 1032:1); declared sizes
#: beyond it cannot be backed by the file and are refused before anything is allocated.
_MAX_DEFLATE_RATIO = 1100
#: The bytes of a zip entry's local header besides its name and extra field.
_LOCAL_HEADER = 30
#: What the package's own .npz files (arenas, embedding caches) may inflate to, as a multiple of the
#: file's size: they hold float vectors and integer ids, and the shipped arena inflates 1.15 times
#: (its most compressible member, sorted model ids, 117 times), so a file declaring 100 times its
#: size is out of proportion. Files under ``_NPZ_FLOOR`` bytes inflated may always be read.
NPZ_RATIO = 100
_NPZ_FLOOR = 1 << 20


def read_npz(path: PathLike, names: Collection[str] | None = None,
             max_ratio: float = _MAX_DEFLATE_RATIO, kind: str = "file") -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (plain numbers only, no pickles), bounded before anything is
    decompressed: from the archive's directory alone, a member outside ``names`` (when given), a name
    given twice, members whose stored bytes overlap (one deflate stream counted many times), a
    compression other than stored or deflate, or declared sizes, per member or all together, beyond
    what the file's bytes can inflate to, is refused; so are members declaring more than
    ``max_ratio`` times the file's size in all (default: what deflate can reach; the package's own
    files pass :data:`NPZ_RATIO`; ``kind`` names what the file should be, in errors). Then each member's ``.npy`` header is checked
    against the bytes declared for it, so a small file that lies about its sizes fails at once
    instead of allocating gigabytes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    out: dict[str, np.ndarray] = {}
    try:
        file_size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_members(path, infos, file_size, names, max_ratio, kind)
            for info in infos:
                name = info.filename.removesuffix(".npy")
                with archive.open(info) as member:
                    dtype, shape, fortran = _npy_header(member, path, name)
                    declared = math.prod(shape) * dtype.itemsize
                    if declared > info.file_size:
                        raise _bad(path, f"{name} declares shape {shape} ({declared} bytes) but the archive "
                                         f"holds {info.file_size} bytes for it")
                    out[name] = _npy_data(member, dtype, shape, fortran, path, name)
    except BadFileError:
        raise
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, NotImplementedError, ...
        raise _bad(path, f"not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    return out


def _check_members(path: Path, infos: list[zipfile.ZipInfo], file_size: int, names: Collection[str] | None,
                   max_ratio: float, kind: str) -> None:
    """The checks :func:`read_npz` makes on the archive's directory, before reading any member."""
    seen: set[str] = set()
    for info in infos:
        name = info.filename.removesuffix(".npy")
        if names is not None and (name not in names or not info.filename.endswith(".npy")):
            raise BadFileError(f"{path} is not a {kind}: unexpected member {info.filename!r} (a {kind} holds "
                               f"only {', '.join(sorted(names))})")
        if name in seen:
            raise _bad(path, f"member {name!r} appears twice")
        seen.add(name)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _bad(path, f"{name} uses an unsupported compression ({info.compress_type})")
        limit = info.compress_size * (_MAX_DEFLATE_RATIO if info.compress_type == zipfile.ZIP_DEFLATED else 1)
        if info.file_size > limit + 1024:
            raise _bad(path, f"{name} declares {info.file_size} bytes, more than its {info.compress_size} "
                             "compressed bytes can hold")
    # Members must sit one after another: entries that point at the same stored bytes would inflate
    # one stream many times (the overlapping zip bomb).
    end = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset < end:
            raise _bad(path, f"member {info.filename!r} overlaps the member before it")
        end = info.header_offset + _LOCAL_HEADER + len(info.filename.encode()) + info.compress_size
        if end > file_size:
            raise _bad(path, f"member {info.filename!r} runs past the end of the file")
    total = sum(info.file_size for info in infos)
    if total > max(file_size * max_ratio, _NPZ_FLOOR):
        raise _bad(path, f"its members declare {total} bytes in all, {total / max(file_size, 1):.0f} times the "
                         f"file's {file_size} bytes (at most {max_ratio:g} times for this file)")


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
