"""The one resolver of RouteLLM's Hugging Face Hub names to local files, and the cache of Hugging Face
checkpoints converted to ONNX. RouteLLM's default config names its published checkpoints and
datasets by hub name (``routellm/mf_gpt4_augmented``, ``lmsys/lmsys-arena-human-preference-55k``, ...).

Nothing is downloaded here. An mf or bert checkpoint named by its hub name is used when it is
available locally, in the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``, where ``huggingface_hub`` keeps it); sw_ranking's datasets are used
when given as local files. Otherwise the router of the same kind that ships in this package is
built instead, and one :class:`ShippedRouterWarning` says so: a RouteLLM program with no config
runs offline after ``patch_routellm()``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ShippedRouterWarning
from ..paths import conversion_cache_dir, hf_hub_cache

__all__ = [
    "ROUTELLM_HUB_NAMES",
    "cached_hub_snapshot",
    "converted_once",
    "is_hub_name",
    "resolve_checkpoint",
    "resolve_datasets",
    "warn_shipped_instead",
]

#: RouteLLM's published checkpoints and datasets (its ``config.example.yaml``), by router.
ROUTELLM_HUB_NAMES: dict[str, str] = {
    "routellm/mf_gpt4_augmented": "mf",
    "lmsys/lmsys-arena-human-preference-55k": "sw_ranking",
    "routellm/gpt4_judge_battles": "sw_ranking",
    "routellm/arena_battles_embeddings": "sw_ranking",
    "routellm/gpt4_judge_battles_embeddings": "sw_ranking",
    "routellm/bert_gpt4_augmented": "bert",
    "routellm/causal_llm_gpt4_augmented": "causal_llm",
}
_ROUTELLM_NAMESPACE = re.compile(r"routellm/[\w.-]+")


def is_hub_name(source: Any) -> bool:
    """Whether ``source`` names one of RouteLLM's published checkpoints or datasets (anything in the
    ``routellm/`` namespace, or the arena dataset it uses) rather than a local path."""
    if not isinstance(source, str) or Path(source).exists():
        return False
    return source in ROUTELLM_HUB_NAMES or _ROUTELLM_NAMESPACE.fullmatch(source) is not None


def cached_hub_snapshot(repo_id: str, required: Iterable[str] = ("config.json", "model.safetensors")) -> Path | None:
    """The folder of ``repo_id``'s model files in the local Hugging Face cache, if a snapshot there
    has every ``required`` file (the one ``refs/main`` points at first); else None."""
    folder = hf_hub_cache() / f"models--{repo_id.replace('/', '--')}"
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    candidates = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    main = folder / "refs" / "main"
    if main.is_file():
        pinned = snapshots / main.read_text().strip()
        candidates = [pinned] + [c for c in candidates if c != pinned]
    for snapshot in candidates:
        if all((snapshot / name).is_file() for name in required):
            return snapshot
    return None


def resolve_checkpoint(source: Any, router: str, required: Iterable[str], shipped: Path | None,
                       export_command: str | None = None) -> tuple[Any, bool]:
    """Where a checkpoint named ``source`` is: a local path is returned as is; one of RouteLLM's hub
    names is the snapshot in the local Hugging Face cache that has every ``required`` file, else the
    ``shipped`` router of the same kind, with one :class:`ShippedRouterWarning`. With no shipped
    router, FileNotFoundError, naming the ``routellm-fast`` command that makes a loadable directory.
    Returns ``(path, replaced by the shipped router)``; nothing is downloaded."""
    if not is_hub_name(source):
        return source, False
    snapshot = cached_hub_snapshot(source, required)
    if snapshot is not None:
        return snapshot, False
    if shipped is None:
        raise FileNotFoundError(
            f"{source} is not in the local Hugging Face cache (nothing is downloaded): download it with "
            f"huggingface_hub, or give a directory made by `routellm-fast {export_command}`")
    warn_shipped_instead(router, [source], stacklevel=5)
    return shipped, True


def resolve_datasets(router: str, datasets: Sequence[Any], shipped: Path) -> Path | None:
    """The ``shipped`` file to use instead of ``datasets`` (each a source, a list of sources or None)
    when every list names something and every name is one of RouteLLM's hub datasets, none of them
    local (one :class:`ShippedRouterWarning` says so); else None: the datasets are local files."""
    lists = [[] if d is None else [d] if isinstance(d, (str, os.PathLike)) else list(d) for d in datasets]
    if not all(lists) or not all(is_hub_name(s) for names in lists for s in names):
        return None
    warn_shipped_instead(router, [s for names in lists for s in names], stacklevel=5)
    return shipped


def warn_shipped_instead(router: str, names: Iterable[Any], stacklevel: int = 4) -> None:
    """The one warning line for a hub checkpoint or dataset replaced by the shipped ``router``."""
    warnings.warn(
        f"{', '.join(map(str, names))}: RouteLLM's published {router} "
        f"{'datasets' if router == 'sw_ranking' else 'checkpoint'} not available locally (nothing is downloaded); "
        f"using routellm_fast's shipped {router} router instead (it runs locally, no API key; "
        f"its thresholds: routellm-fast calibrate --router {router})",
        ShippedRouterWarning,
        stacklevel=stacklevel,
    )


def converted_once(hf_dir: Path, kind: str, settings: str, marker: str, export: Callable[[Path], Any]) -> Path:
    """The converted copy of the Hugging Face directory ``hf_dir`` in ``$ROUTELLM_FAST_CACHE/<kind>/``,
    made once by ``export(folder)``. It is keyed by the directory's path, its files' names, sizes and
    modification times, and ``settings``; ``marker`` is the file a finished conversion has. A
    process that finds another's conversion finished first keeps that one."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{hf_dir.absolute()}|{settings}".encode())
    for f in sorted(hf_dir.iterdir()):
        if f.is_file():
            st = f.stat()
            digest.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    target = conversion_cache_dir(kind) / digest.hexdigest()
    if not (target / marker).is_file():
        tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
        export(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process converted it first
            shutil.rmtree(tmp, ignore_errors=True)
    return target
