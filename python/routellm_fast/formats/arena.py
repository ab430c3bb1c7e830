"""Reading battles and their embeddings from local files, in the formats RouteLLM's datasets use.

Battle files (parquet, CSV or JSON lines; a directory means every such file in it):

* the Chatbot Arena format of ``lmsys-arena-human-preference-55k``: ``model_a``, ``model_b``,
  ``prompt`` (a JSON list of turns), ``winner_model_a``, ``winner_model_b``, ``winner_tie``. These
  are filtered as RouteLLM's ``preprocess_battles`` does: battles whose first turn, stripped, is
  shorter than 16 characters are dropped;
* a plain format: ``model_a``, ``model_b``, ``winner`` in {model_a, model_b, tie, tie (bothbad)},
  used as is.

Embedding files: ``.npy`` (a float matrix) or parquet / JSON lines with an ``embeddings`` column of
equal-length lists, one row per battle kept above, in the same order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadFileError
from ..paths import ARENA_FILE_NAME
from .checkpoints import check_metadata
from .tables import NPZ_RATIO, TABLE_SUFFIXES, column, read_npy, read_npz, read_table

__all__ = ["ArenaFile", "Battles", "load_arena", "load_battles", "load_embeddings", "save_arena", "OUTCOME_CODES"]

#: winner label -> outcome code used by the compiled core.
OUTCOME_CODES: dict[str, int] = {"model_a": 0, "model_b": 1, "tie": 2, "tie (bothbad)": 2}

#: RouteLLM's ``preprocess_battles`` drops battles whose first turn is shorter than this.
MIN_FIRST_TURN_CHARS = 16


@dataclass(frozen=True)
class Battles:
    """Battles as parallel arrays: model names (object arrays of str) and outcome codes (int8)."""

    model_a: np.ndarray
    model_b: np.ndarray
    outcome: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.model_a) == len(self.model_b) == len(self.outcome):
            raise ValueError(f"model_a, model_b and winner differ in length: {len(self.model_a)}, "
                             f"{len(self.model_b)}, {len(self.outcome)}")
        for name in ("model_a", "model_b"):
            for i, v in enumerate(getattr(self, name)):
                if not isinstance(v, str) or not v:
                    raise ValueError(f"{name} of battle {i} must be a non-empty model name, got {v!r}")

    def __len__(self) -> int:
        return len(self.outcome)


Source = str | os.PathLike[str]


def _as_list(sources: Source | Iterable[Source]) -> list[Source]:
    if isinstance(sources, (str, os.PathLike)):
        return [sources]
    return list(sources)


def _files(source: Source, suffixes: tuple[str, ...]) -> list[Path]:
    path = Path(source)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(
            f"{str(source)!r} is neither a file nor a directory (datasets are read from local files; "
            "nothing is downloaded)"
        )
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes)
    train = [p for p in files if "train" in p.name]  # a Hugging Face dataset directory: its train split
    files = train or files
    if not files:
        raise FileNotFoundError(f"no {'/'.join(suffixes)} files in directory {str(path)!r}")
    return files


def outcome_codes(winners: Iterable[object], where: str = "battle") -> np.ndarray:
    """Outcome codes (int8) of winner labels; an unknown label is an error naming its position."""
    winners = list(winners)
    out = np.empty(len(winners), dtype=np.int8)
    for i, w in enumerate(winners):
        code = OUTCOME_CODES.get(w) if isinstance(w, str) else None
        if code is None:
            raise ValueError(f"{where} {i}: winner {w!r} is not one of {', '.join(repr(k) for k in OUTCOME_CODES)}")
        out[i] = code
    return out


def _flags(values: list, name: str, path: Path) -> list[int]:
    """A Chatbot Arena winner column: 0/1 (or booleans) per battle; anything else is refused (a
    string "1" compared with 1 would silently read every battle as a tie)."""
    for i, v in enumerate(values):
        if not isinstance(v, (int, bool)) or v not in (0, 1):
            raise BadFileError(f"{path} row {i}: {name} must be 0 or 1, got {v!r}")
    return [int(v) for v in values]


def _battles_from_table(table, path: Path) -> Battles:
    cols = set(table.column_names)
    model_a = column(table, "model_a", path)
    model_b = column(table, "model_b", path)
    if {"winner_model_a", "winner_model_b", "winner_tie", "prompt"} <= cols:
        prompts = column(table, "prompt", path)
        win_a = _flags(column(table, "winner_model_a", path), "winner_model_a", path)
        win_b = _flags(column(table, "winner_model_b", path), "winner_model_b", path)
        keep, outcome = [], []
        for i, prompt in enumerate(prompts):
            try:
                turns = json.loads(prompt)
                first = turns[0]
            except (TypeError, ValueError, IndexError, KeyError) as exc:
                raise ValueError(f"{path} row {i}: 'prompt' must be a JSON list of turns ({exc})") from None
            if not isinstance(first, str):
                raise ValueError(f"{path} row {i}: the first turn of 'prompt' is not a string")
            if len(first.strip()) < MIN_FIRST_TURN_CHARS:
                continue
            keep.append(i)
            outcome.append(0 if win_a[i] == 1 else 1 if win_b[i] == 1 else 2)
        model_a = [model_a[i] for i in keep]
        model_b = [model_b[i] for i in keep]
    elif "winner" in cols:
        outcome = outcome_codes(column(table, "winner", path), where=f"{path} row")
    else:
        raise ValueError(
            f"{path}: expected battles with columns (model_a, model_b, winner) or the Chatbot Arena format "
            f"(model_a, model_b, prompt, winner_model_a, winner_model_b, winner_tie); got {', '.join(sorted(cols))}"
        )
    try:
        return Battles(np.array(model_a, dtype=object), np.array(model_b, dtype=object),
                       np.asarray(outcome, dtype=np.int8))
    except ValueError as exc:
        raise BadFileError(f"{path}: {exc}") from None


def load_battles(sources: Source | Iterable[Source]) -> Battles:
    """Battles from one or more files or directories, concatenated in order."""
    parts = [
        _battles_from_table(read_table(f), f)
        for source in _as_list(sources)
        for f in _files(source, TABLE_SUFFIXES)
    ]
    if not parts:
        raise ValueError("no battle datasets given")
    return Battles(
        np.concatenate([p.model_a for p in parts]),
        np.concatenate([p.model_b for p in parts]),
        np.concatenate([p.outcome for p in parts]),
    )


def _embeddings_from_file(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        arr = read_npy(path)
    else:
        import pyarrow as pa
        import pyarrow.compute as pc

        table = read_table(path)
        if "embeddings" not in table.column_names:
            raise ValueError(f"{path} has no 'embeddings' column (columns: {', '.join(table.column_names)})")
        col = table.column("embeddings").combine_chunks()
        if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
            raise ValueError(f"{path}: 'embeddings' must hold lists of floats, got {col.type}")
        if col.null_count:
            raise ValueError(f"{path}: 'embeddings' has {col.null_count} missing rows")
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            bad = int(np.argmax(lengths != lengths[0]))
            raise ValueError(f"{path}: embedding rows differ in length ({lengths[0]} vs {lengths[bad]} at row {bad})")
        values = col.flatten().to_numpy(zero_copy_only=False)
        arr = values.reshape(len(lengths), int(lengths[0]) if len(lengths) else 0)
    if arr.ndim != 2 or arr.dtype.kind != "f":
        raise ValueError(f"{path}: embeddings must be a 2-D float matrix, got shape {arr.shape} dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def load_embeddings(sources: Source | Iterable[Source]) -> np.ndarray:
    """Embeddings (float32 ``[n, dim]``) from one or more files or directories, concatenated."""
    parts = [
        _embeddings_from_file(f)
        for source in _as_list(sources)
        for f in _files(source, (".npy",) + TABLE_SUFFIXES)
    ]
    if not parts:
        raise ValueError("no embedding datasets given")
    dims = {p.shape[1] for p in parts}
    if len(dims) > 1:
        raise ValueError(f"embedding datasets differ in dimension: {sorted(dims)}")
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


#: Format tag of compact arena files written by :func:`save_arena`.
ARENA_FORMAT = "routellm_fast.arena/1"  # the format's name, fixed: files written before the move carry it


@dataclass(frozen=True)
class ArenaFile:
    """A compact arena: one embedding per distinct prompt, battles pointing at them. Checked when
    made: index arrays must be integers within range, outcomes 0/1/2, model names distinct."""

    prompt_embeddings: np.ndarray  # float16 or float32 [n_prompts, dim]
    battle_prompt: np.ndarray  # int64 [n_battles]
    model_a: np.ndarray  # int32 [n_battles], index into models
    model_b: np.ndarray
    outcome: np.ndarray  # int8 [n_battles]: 0 model_a, 1 model_b, 2 tie
    models: list[str]
    metadata: dict  # at least {"embedder": {"name": ..., "dim": ...}}
    #: prompt_key() of each training prompt, uint8 [n, 16], so evaluations can leave them out
    training_prompt_keys: np.ndarray | None = None

    def __post_init__(self) -> None:
        emb = np.asarray(self.prompt_embeddings)
        if emb.ndim != 2 or emb.dtype.kind != "f":
            raise ValueError(f"prompt_embeddings must be a 2-D float matrix, got shape {emb.shape} dtype {emb.dtype}")
        n = None
        for name in ("battle_prompt", "model_a", "model_b", "outcome"):
            values = np.asarray(getattr(self, name))
            if values.ndim != 1 or values.dtype.kind not in "iu":
                raise ValueError(f"{name} must be a 1-D integer array, got shape {values.shape} dtype {values.dtype}")
            if n is not None and len(values) != n:
                raise ValueError(f"battle arrays differ in length: {name} has {len(values)}, battle_prompt {n}")
            n = len(values)
        models = list(self.models)
        if not all(isinstance(m, str) and m for m in models):
            raise ValueError("models must be non-empty names")
        if len(set(models)) != len(models):
            twice = sorted({m for m in models if models.count(m) > 1})
            raise ValueError(f"models must be distinct; listed more than once: {', '.join(twice)}")
        for name, limit, what in (("model_a", len(models), "models"), ("model_b", len(models), "models"),
                                  ("battle_prompt", len(emb), "prompts"), ("outcome", 3, "outcome codes (0, 1, 2)")):
            values = np.asarray(getattr(self, name))
            if n and (values.min() < 0 or values.max() >= limit):
                raise ValueError(f"{name} has values outside the {limit} {what}")
        if not isinstance(self.metadata, dict):
            raise ValueError(f"metadata must be a JSON object, got {type(self.metadata).__name__}")
        recorded_dim = self.metadata.get("embedder", {}).get("dim") if isinstance(self.metadata.get("embedder"), dict) else None
        if recorded_dim is not None and recorded_dim != emb.shape[1]:
            raise ValueError(f"metadata says {recorded_dim}-d embeddings but the arena holds {emb.shape[1]}-d")
        keys = self.training_prompt_keys
        if keys is not None and (keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != 16):
            raise ValueError(f"training_prompt_keys must be uint8 [n, 16], got {keys.dtype} {keys.shape}")


def save_arena(path: Source, arena: ArenaFile) -> None:
    """Write ``arena`` as one compressed ``.npz`` (no pickles), loadable in well under a second."""
    np.savez_compressed(
        Path(path),
        format=np.array(ARENA_FORMAT),
        prompt_embeddings=arena.prompt_embeddings,
        battle_prompt=arena.battle_prompt.astype(np.int32),
        model_a=arena.model_a.astype(np.int16 if len(arena.models) < 2**15 else np.int32),
        model_b=arena.model_b.astype(np.int16 if len(arena.models) < 2**15 else np.int32),
        outcome=arena.outcome.astype(np.int8),
        models=np.array(arena.models, dtype=str),
        metadata=np.array(json.dumps(arena.metadata)),
        **({} if arena.training_prompt_keys is None else {"training_prompt_keys": arena.training_prompt_keys}),
    )


def load_arena(path: Source) -> ArenaFile:
    """Read a file written by :func:`save_arena` (or the ``arena.npz`` in a folder), checking its
    format and consistency; a bad file raises :class:`~routellm_fast.errors.BadFileError`."""
    path = Path(path)
    if path.is_dir():
        path = path / ARENA_FILE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"arena file {str(path)!r} does not exist")
    required = {"format", "prompt_embeddings", "battle_prompt", "model_a", "model_b", "outcome", "models", "metadata"}
    data = read_npz(path, required | {"training_prompt_keys"}, max_ratio=NPZ_RATIO, kind=f"{ARENA_FORMAT} file")
    if not required <= set(data) or data["format"].shape != () or str(data["format"]) != ARENA_FORMAT:
        raise BadFileError(f"{path} is not a {ARENA_FORMAT} file (arrays: {', '.join(sorted(data))})")
    if data["metadata"].shape != () or data["models"].ndim != 1 or data["models"].dtype.kind != "U":
        raise BadFileError(f"{path}: metadata must be one string and models a list of names")
    try:
        metadata = json.loads(str(data["metadata"]))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BadFileError(f"{path}: metadata is not valid JSON ({exc})") from None
    if not isinstance(metadata, dict):
        raise BadFileError(f"{path}: metadata must be a JSON object, got {type(metadata).__name__}")
    check_metadata(metadata, f"{path} (metadata)")
    try:
        return ArenaFile(
            prompt_embeddings=data["prompt_embeddings"],
            battle_prompt=_widened(data["battle_prompt"], np.int64),
            model_a=_widened(data["model_a"], np.int32),
            model_b=_widened(data["model_b"], np.int32),
            outcome=_widened(data["outcome"], np.int8),
            models=[str(m) for m in data["models"]],
            metadata=metadata,
            training_prompt_keys=data.get("training_prompt_keys"),
        )
    except ValueError as exc:
        raise BadFileError(f"{path}: {exc}") from None


def _widened(values: np.ndarray, dtype: type) -> np.ndarray:
    """An integer array in ``dtype`` when every value fits; anything else is left as it is for
    :class:`ArenaFile`'s checks to refuse by name (never truncated or wrapped)."""
    if values.dtype.kind not in "iu" or values.size == 0:
        return values
    info = np.iinfo(dtype)
    if values.min() < info.min or values.max() > info.max:
        return values
    return values.astype(dtype)
