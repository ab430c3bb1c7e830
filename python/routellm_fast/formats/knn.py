"""The knn router's file: labelled prompts as the compiled index keeps them.

One compressed ``.npz`` (no pickles) holding ``format``, ``storage`` (float32, float16 or int8),
``rows`` (the stored embedding rows, ``[n, dim]`` in that dtype, as encoded: float16 rows are unit
vectors, int8 rows per-row scaled), ``row_factor`` (float64 ``[n]``: raw dot product to cosine
numerator), ``labels`` (float16 ``[n, n_models]``, a score in [0, 1] per model, NaN where none),
``models`` (names), ``metadata`` (JSON: the embedder, k, temperature, calibration, training report)
and optionally ``training_prompt_keys`` (uint8 ``[n, 16]``).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadFileError
from .tables import read_npz

__all__ = ["KNN_FORMAT", "KnnFile", "load_knn", "save_knn"]

#: Format tag of knn files.
KNN_FORMAT = "routellm_fast.knn/1"
_STORAGE_DTYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8}


@dataclass(frozen=True)
class KnnFile:
    """The parts of a knn router's file (see the module docstring); checked when made."""

    storage: str
    rows: np.ndarray
    row_factor: np.ndarray
    labels: np.ndarray
    models: list[str]
    metadata: dict
    training_prompt_keys: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.storage not in _STORAGE_DTYPES:
            raise ValueError(f"storage must be one of {', '.join(_STORAGE_DTYPES)}, got {self.storage!r}")
        rows = np.asarray(self.rows)
        if rows.ndim != 2 or rows.dtype != _STORAGE_DTYPES[self.storage]:
            raise ValueError(f"rows must be 2-D {self.storage}, got shape {rows.shape} dtype {rows.dtype}")
        if np.asarray(self.row_factor).shape != (len(rows),):
            raise ValueError(f"row_factor must have one value per row ({len(rows)}), got {np.shape(self.row_factor)}")
        models = list(self.models)
        if not models or not all(isinstance(m, str) and m for m in models) or len(set(models)) != len(models):
            raise ValueError("models must be distinct non-empty names")
        if np.shape(self.labels) != (len(rows), len(models)):
            raise ValueError(f"labels must be [rows, models] = {(len(rows), len(models))}, got {np.shape(self.labels)}")
        if not isinstance(self.metadata, dict):
            raise ValueError(f"metadata must be a JSON object, got {type(self.metadata).__name__}")
        keys = self.training_prompt_keys
        if keys is not None and (keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != 16):
            raise ValueError(f"training_prompt_keys must be uint8 [n, 16], got {keys.dtype} {keys.shape}")

    def state(self) -> tuple:
        """The compiled index's pickle state (``_core.KnnIndex.from_state``)."""
        return (1, self.storage, np.ascontiguousarray(self.rows), np.ascontiguousarray(self.row_factor, np.float64),
                np.ascontiguousarray(self.labels, np.float32))


def save_knn(path: str | os.PathLike[str], knn: KnnFile) -> None:
    """Write ``knn`` as one compressed ``.npz`` (atomically: a temporary file, then renamed); the same
    parts give the same bytes."""
    labels = np.asarray(knn.labels, dtype=np.float32)
    if not np.array_equal(labels.astype(np.float16).astype(np.float32), labels, equal_nan=True):
        raise ValueError("labels must be exact in float16 (e.g. 0, 0.5, 1): the file keeps them as float16")
    arrays = {
        "format": np.array(KNN_FORMAT),
        "storage": np.array(knn.storage),
        "rows": np.ascontiguousarray(knn.rows),
        "row_factor": np.asarray(knn.row_factor, np.float64),
        "labels": labels.astype(np.float16),
        "models": np.array(knn.models, dtype=str),
        "metadata": np.array(json.dumps(knn.metadata, sort_keys=True)),
        **({} if knn.training_prompt_keys is None else {"training_prompt_keys": knn.training_prompt_keys}),
    }
    # np.savez_compressed stamps members with the current time; a fixed stamp makes equal parts equal bytes.
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, value, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())
    tmp.replace(path)


def load_knn(path: str | os.PathLike[str]) -> KnnFile:
    """Read a file written by :func:`save_knn`; a bad file raises :class:`~routellm_fast.errors.BadFileError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"knn file {str(path)!r} does not exist")
    required = {"format", "storage", "rows", "row_factor", "labels", "models", "metadata"}
    data = read_npz(path, required | {"training_prompt_keys"})
    if not required <= set(data) or data["format"].shape != () or str(data["format"]) != KNN_FORMAT:
        raise BadFileError(f"{path} is not a {KNN_FORMAT} file (arrays: {', '.join(sorted(data))})")
    if data["metadata"].shape != () or data["models"].ndim != 1 or data["models"].dtype.kind != "U":
        raise BadFileError(f"{path}: metadata must be one string and models a list of names")
    try:
        metadata = json.loads(str(data["metadata"]))
        return KnnFile(str(data["storage"]), data["rows"], data["row_factor"], data["labels"].astype(np.float32),
                       [str(m) for m in data["models"]], metadata, data.get("training_prompt_keys"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise BadFileError(f"{path}: {exc}") from None
