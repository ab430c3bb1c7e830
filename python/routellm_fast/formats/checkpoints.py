"""Loading RouteLLM's published checkpoint formats without torch."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import check_model_ids
from ..errors import BadFileError
from ..paths import MF_METADATA_FILE
from .tables import read_json, read_npy

__all__ = ["MFCheckpoint", "check_metadata", "load_mf_checkpoint", "save_mf_checkpoint"]

_WEIGHTS_FILE = "model.safetensors"
_CONFIG_FILE = "config.json"

TRAINING_PROMPTS_FILE = "training_prompts.npy"


@dataclass(frozen=True)
class MFCheckpoint:
    """The tensors of RouteLLM's ``MFModel`` as float32 arrays."""

    model_embeddings: np.ndarray  # P.weight [num_models, hidden]
    text_projection: np.ndarray | None  # text_proj.0.weight [hidden, text_dim], None without projection
    classifier: np.ndarray  # classifier.0.weight [num_classes, hidden]
    config: dict
    #: routellm_fast's own metadata (``routellm_fast.json``): the embedder a checkpoint was trained
    #: on, its model table. Empty for RouteLLM's checkpoints.
    metadata: dict
    #: prompt_key() of each training prompt (uint8 [n, 16], ``training_prompts.npy``), if recorded.
    training_prompt_keys: np.ndarray | None = None


def load_mf_checkpoint(
    path: str | os.PathLike[str],
    hidden_size: int | None,
    num_models: int | None,
    text_dim: int | None,
    num_classes: int,
    use_proj: bool,
) -> MFCheckpoint:
    """Read a directory written by RouteLLM's ``MFModel.save_pretrained``.

    The constructor arguments decide the expected shapes (as in RouteLLM, where ``from_pretrained``
    builds the module from them and then loads the state dict); every tensor is checked against
    them and a mismatch names the tensor, the expected and the found shape. A size given as None is
    taken from ``config.json`` (``dim``, ``num_models``, ``text_dim``), else RouteLLM's default.
    """
    directory = Path(path)
    if directory.is_file():  # a path to model.safetensors itself
        directory = directory.parent
    if not directory.is_dir():
        raise FileNotFoundError(
            f"mf checkpoint directory {str(path)!r} does not exist (expected a local directory with "
            f"{_CONFIG_FILE} and {_WEIGHTS_FILE}; this package never downloads from a model hub)"
        )
    weights_path = directory / _WEIGHTS_FILE
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path} not found: an mf checkpoint needs {_WEIGHTS_FILE}")
    config = _read_json(directory / _CONFIG_FILE)
    metadata = _read_json(directory / MF_METADATA_FILE)
    sizes = {"hidden_size": (hidden_size, "dim", 128), "num_models": (num_models, "num_models", 64),
             "text_dim": (text_dim, "text_dim", 1536)}
    for arg, (value, key, default) in sizes.items():
        if value is None:
            value = config.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BadFileError(f"{directory / _CONFIG_FILE}: {key} must be a positive integer, got {value!r}")
        sizes[arg] = (value, key, default)
    hidden_size, num_models, text_dim = (sizes[k][0] for k in ("hidden_size", "num_models", "text_dim"))
    if num_classes != 1:
        raise ValueError(
            f"num_classes must be 1: RouteLLM's mf win rate compares one logit per model, got {num_classes}"
        )

    tensors = _read_safetensors(weights_path)
    expected: dict[str, tuple[int, ...]] = {
        "P.weight": (num_models, hidden_size),
        "classifier.0.weight": (num_classes, hidden_size),
    }
    if use_proj:
        expected["text_proj.0.weight"] = (hidden_size, text_dim)
    elif text_dim != hidden_size:
        raise ValueError(f"without projection text_dim ({text_dim}) must equal hidden_size ({hidden_size})")
    for name, shape in expected.items():
        if name not in tensors:
            raise BadFileError(
                f"{weights_path} has no tensor {name!r} (found: {', '.join(sorted(tensors)) or 'none'})"
            )
        got = tuple(tensors[name].shape)
        if got != shape:
            hint = _config_hint(config)
            raise BadFileError(
                f"{weights_path}: tensor {name!r} has shape {got}, expected {shape} from "
                f"hidden_size={hidden_size}, num_models={num_models}, text_dim={text_dim}{hint}"
            )
    check_metadata(metadata, directory / MF_METADATA_FILE, rows=num_models)
    return MFCheckpoint(
        model_embeddings=tensors["P.weight"],
        text_projection=tensors["text_proj.0.weight"] if use_proj else None,
        classifier=tensors["classifier.0.weight"],
        config=config,
        metadata=metadata,
        training_prompt_keys=_read_prompt_keys(directory / TRAINING_PROMPTS_FILE),
    )


def check_metadata(metadata: dict, path: str | os.PathLike[str], rows: int | None = None) -> dict:
    """The types of the keys routellm_fast reads from a router's own metadata (an mf checkpoint's
    ``routellm_fast.json``, an arena's ``metadata``): ``format`` (str), ``model_ids`` (model names to
    distinct rows below ``rows``), ``embedder`` (``name``: str, ``dim``: a positive int) and
    ``calibration`` (``prompts_sha256``: str, ``pair``: str ``strong``/``weak``, ``win_rates``: finite
    numbers). A wrong one is a BadFileError naming the file and the key; others are left alone."""

    def bad(key: str, want: str, value: object) -> BadFileError:
        return BadFileError(f"{path}: {key} must be {want}, got {type(value).__name__} {value!r:.80}")

    def obj(key: str, value: object) -> dict:
        if not isinstance(value, dict):
            raise bad(key, "an object", value)
        return value

    if "format" in metadata and not isinstance(metadata["format"], str):
        raise bad("format", "a string", metadata["format"])
    if "model_ids" in metadata:
        try:
            check_model_ids(metadata["model_ids"], rows, "model_ids")
        except (TypeError, ValueError) as exc:
            raise BadFileError(f"{path}: {exc}") from None
    embedder = obj("embedder", metadata.get("embedder", {}))
    if "name" in embedder and not isinstance(embedder["name"], str):
        raise bad("embedder.name", "a string", embedder["name"])
    dim = embedder.get("dim", 1)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise bad("embedder.dim", "a positive integer", dim)
    calibration = metadata.get("calibration")
    if calibration is not None:
        calibration = obj("calibration", calibration)
        if not isinstance(calibration.get("prompts_sha256", ""), str):
            raise bad("calibration.prompts_sha256", "a string", calibration["prompts_sha256"])
        pair = obj("calibration.pair", calibration.get("pair", {}))
        for role in ("strong", "weak"):
            if not isinstance(pair.get(role, ""), str):
                raise bad(f"calibration.pair.{role}", "a model name", pair[role])
        rates = calibration.get("win_rates", [])
        if not isinstance(rates, list) or not all(
                isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r) for r in rates):
            raise bad("calibration.win_rates", "a list of finite numbers", rates)
    return metadata


def _read_prompt_keys(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    keys = read_npy(path)
    if keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != 16:
        raise BadFileError(f"{path}: training prompt keys must be uint8 [n, 16], got {keys.dtype} {keys.shape}")
    return keys


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    value = read_json(path)
    if not isinstance(value, dict):
        raise BadFileError(f"{path} must hold a JSON object, got {type(value).__name__}")
    return value


def _config_hint(config: dict) -> str:
    keys = ("dim", "num_models", "text_dim", "num_classes", "use_proj")
    found = {k: config[k] for k in keys if k in config}
    return f" (the checkpoint's config.json says {found})" if found else ""


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        raw = load_file(str(path))
    except Exception as exc:  # safetensors raises SafetensorError, OSError, RuntimeError, ... on bad files
        raise BadFileError(f"{path} is not a readable safetensors file: {exc}") from None
    out: dict[str, np.ndarray] = {}
    for name, array in raw.items():
        if array.dtype.kind != "f":
            raise BadFileError(f"{path}: tensor {name!r} has dtype {array.dtype}, expected floating point")
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.all(np.isfinite(array)):
            raise BadFileError(f"{path}: tensor {name!r} contains NaN or inf")
        out[name] = array
    return out


def save_mf_checkpoint(
    path: str | os.PathLike[str],
    model_embeddings: np.ndarray,
    text_projection: np.ndarray,
    classifier: np.ndarray,
    metadata: dict,
    training_prompt_keys: np.ndarray | None = None,
) -> Path:
    """Write an mf checkpoint in RouteLLM's layout (``config.json`` with ``MFModel``'s constructor
    arguments, ``model.safetensors`` with its tensor names), so that RouteLLM's own
    ``MFModel.from_pretrained`` loads it, plus ``routellm_fast.json`` (``metadata``: model table,
    embedder) and ``training_prompts.npy``."""
    from safetensors.numpy import save_file

    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    num_models, dim = model_embeddings.shape
    if text_projection.shape[0] != dim or classifier.shape != (1, dim):
        raise ValueError(f"inconsistent mf shapes: P {model_embeddings.shape}, text_proj {text_projection.shape}, "
                         f"classifier {classifier.shape}")
    config = {"dim": int(dim), "num_models": int(num_models), "text_dim": int(text_projection.shape[1]),
              "num_classes": 1, "use_proj": True}
    (directory / _CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    tensors = {"P.weight": model_embeddings, "text_proj.0.weight": text_projection, "classifier.0.weight": classifier}
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(directory / _WEIGHTS_FILE))
    (directory / MF_METADATA_FILE).write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")
    if training_prompt_keys is not None:
        np.save(directory / TRAINING_PROMPTS_FILE, np.ascontiguousarray(training_prompt_keys, dtype=np.uint8))
    return directory
