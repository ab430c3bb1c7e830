"""RouteLLM's published checkpoints and datasets, which its default config names by their Hugging
Face Hub names (``routellm/mf_gpt4_augmented``, ``lmsys/lmsys-arena-human-preference-55k``, ...).

Nothing is downloaded here. An mf or bert checkpoint named by its hub name is used when it is
available locally, in the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``, where ``huggingface_hub`` keeps it); sw_ranking's datasets are used
when given as local files. Otherwise the router of the same kind that ships in this package is
built instead, and one :class:`ShippedRouterWarning` says so: a RouteLLM program with no config
runs offline after ``patch_routellm()``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["ROUTELLM_HUB_NAMES", "ShippedRouterWarning", "cached_hub_snapshot", "is_hub_name", "warn_shipped_instead"]

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


class ShippedRouterWarning(UserWarning):
    """A RouteLLM hub checkpoint or dataset is not available locally: the shipped router of the same
    kind is used instead."""


def is_hub_name(source: Any) -> bool:
    """Whether ``source`` names one of RouteLLM's published checkpoints or datasets (anything in the
    ``routellm/`` namespace, or the arena dataset it uses) rather than a local path."""
    if not isinstance(source, str) or Path(source).exists():
        return False
    return source in ROUTELLM_HUB_NAMES or _ROUTELLM_NAMESPACE.fullmatch(source) is not None


def _hub_cache() -> Path:
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit)
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home) / "hub"


def cached_hub_snapshot(repo_id: str, required: Iterable[str] = ("config.json", "model.safetensors")) -> Path | None:
    """The folder of ``repo_id``'s model files in the local Hugging Face cache, if a snapshot there
    has every ``required`` file (the one ``refs/main`` points at first); else None."""
    folder = _hub_cache() / f"models--{repo_id.replace('/', '--')}"
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


def warn_shipped_instead(router: str, names: Iterable[Any]) -> None:
    """The one warning line for a hub checkpoint or dataset replaced by the shipped ``router``."""
    warnings.warn(
        f"{', '.join(map(str, names))}: RouteLLM's published {router} "
        f"{'checkpoint' if router == 'mf' else 'datasets'} not available locally (nothing is downloaded); "
        f"using routellm_fast's shipped {router} router instead (it runs locally, no API key; "
        f"its thresholds: routellm-fast calibrate --router {router})",
        ShippedRouterWarning,
        stacklevel=4,
    )
