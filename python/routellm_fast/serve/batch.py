"""Scoring whole batches of prompts into table columns: what ``routellm-fast score`` writes, locally
or on Ray; and writing them whole or not at all.

``score`` never loses data: the output is written to a hidden temporary file beside it and moved
into place (fsync, ``os.replace``) only when every row was scored and written
(:func:`~routellm_fast.formats.tables.replacing`). A bad row, an error or a signal (SIGTERM, SIGINT,
SIGHUP: :func:`signals_raise`) leaves the previous output byte for byte as it was and no temporary
file behind. An error in a row names the row's number in the input file.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..decision.rule import CostWeight, choose_models
from ..errors import RouteLLMFastError

__all__ = ["Interrupted", "prompt_rows", "score_columns", "scored_chunks", "signals_raise", "write_chunks"]

#: The signals that end a ``score`` run cleanly (the temporary file removed, the output untouched).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(BaseException):
    """A stop signal arrived while a file was being written (a BaseException, as KeyboardInterrupt,
    so that no ``except Exception`` on the way swallows it). ``signum``: which."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        #: Whether the output had been written whole when the signal came (it then stays).
        self.committed = False
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM, SIGINT and SIGHUP raise :class:`Interrupted` in the main
    thread (so ``finally`` blocks run and a half-written file is removed); the previous handlers
    are restored afterwards. Outside the main thread, where Python cannot install handlers, this
    does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    from ..formats.tables import hold_signal

    def stop(signum: int, frame: Any) -> None:
        if not hold_signal(signum):  # not while a file is made or moved into place: right after
            raise Interrupted(signum)

    previous = {}
    try:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, stop)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def score_columns(routers: Mapping[str, Any], prompts: Sequence[str], models: Mapping[str, float] | None = None,
                  rule: float | CostWeight | None = None) -> dict[str, np.ndarray]:
    """The columns ``routellm-fast score`` adds for a batch of ``prompts``, per router (by name):
    ``win_rate_<router>`` (float64, the strong model's win rate); or, with ``models`` (``{name:
    cost}``), ``score_<router>_<model>`` per model (float64, one logit scale: ``score_models``) and,
    with a ``rule`` (a threshold or :class:`CostWeight`), the chosen model in ``model_<router>``."""
    columns: dict[str, np.ndarray] = {}
    for name, router in routers.items():
        if models is None:
            columns[f"win_rate_{name}"] = np.asarray(router.score(prompts), dtype=np.float64)
            continue
        names = list(models)
        scores = router.score_models(prompts, names)
        for j, model in enumerate(names):
            columns[f"score_{name}_{model}"] = scores[:, j]
        if rule is not None:
            picks = choose_models(scores, list(models.values()), rule)
            columns[f"model_{name}"] = np.asarray(names, dtype=object)[picks]
    return columns



def prompt_rows(table: Any, source: str | os.PathLike[str], first_row: int, column: str = "prompt") -> list[str]:
    """The prompts of one chunk of a file; a missing column or a value that is not a str is an error
    naming the row's number in the file (``first_row``: rows of the file before this chunk)."""
    if column not in table.column_names:
        raise ValueError(f"{source} has no column {column!r} (columns: {', '.join(table.column_names)})")
    prompts = table.column(column).to_pylist()
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"{source}: row {first_row + i + 1}: prompt must be a str, got {type(p).__name__}")
    return prompts


_PROMPT_INDEX = re.compile(r"\bprompt (\d+)\b")


def _at_rows(exc: BaseException, source: str | os.PathLike[str], first_row: int, rows: int) -> BaseException:
    """``exc`` (about prompts of one chunk, numbered from 0 in it) with the rows' numbers in the file."""
    message = str(exc)
    if _PROMPT_INDEX.search(message):
        message = _PROMPT_INDEX.sub(lambda m: f"row {first_row + int(m.group(1)) + 1}", message)
        message = f"{source}: {message}"
    else:
        message = f"{source}, rows {first_row + 1}-{first_row + rows}: {message}"
    try:
        return type(exc)(message)
    except Exception:  # an exception type that is not built from one message: keep it as it is
        return exc


def scored_chunks(source: str | os.PathLike[str], routers: Mapping[str, Any], chunk_size: int,
                  models: Mapping[str, float] | None = None, rule: float | CostWeight | None = None) -> Iterator[Any]:
    """The rows of a parquet, CSV or JSON-lines file as ``pyarrow.Table`` chunks of about
    ``chunk_size`` rows, each with the columns :func:`score_columns` adds; read and scored as they
    are asked for, so memory does not grow with the file. An error in a row names its number in the
    file (from 1, not counting a CSV's header)."""
    import pyarrow as pa

    from ..formats.tables import iter_tables

    first_row = 0
    for chunk in iter_tables(source, chunk_size):
        prompts = prompt_rows(chunk, source, first_row)
        try:
            columns = score_columns(routers, prompts, models, rule)
        except (TypeError, ValueError, RouteLLMFastError) as exc:
            raise _at_rows(exc, source, first_row, len(prompts)) from None
        for name, values in columns.items():
            chunk = chunk.append_column(name, pa.array(values))
        yield chunk
        first_row += chunk.num_rows


def write_chunks(output: str | os.PathLike[str], chunks: Iterable[Any], progress: Any = None) -> int:
    """Write ``pyarrow.Table`` chunks as one parquet, CSV or JSON-lines file (by the suffix of
    ``output``), whole or not at all: into a temporary file beside it, moved into place when the
    last chunk is written. An exception, or a stop signal (:class:`Interrupted`), while the chunks
    are made or written leaves ``output`` as it was. ``progress``: a tqdm bar to advance by rows.
    Returns the rows written."""
    from ..formats.tables import TableWriter, replacing

    output = Path(output)
    rows, written = 0, None
    try:
        with signals_raise(), replacing(output) as tmp:
            with TableWriter(tmp, kind=output.suffix) as writer:
                for chunk in chunks:
                    writer.write(chunk)
                    rows += chunk.num_rows
                    if progress is not None:
                        progress.update(chunk.num_rows)
                if not writer.written:
                    raise ValueError(f"the input has no rows: {output} was left as it was")
            written = os.stat(tmp).st_ino
    except Interrupted as stop:
        # a signal held back while the file was moved into place arrives just after: the run is done
        try:
            stop.committed = written is not None and os.stat(output).st_ino == written
        except OSError:
            pass
        raise
    return rows
