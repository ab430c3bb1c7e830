"""Different spellings of one model mapped to one canonical name.

The table is data (``data/model_aliases.json``): AlpacaEval writes ``gpt4_1106_preview`` and
arena-bench ``mistralai/Mixtral-8x7B-Instruct-v0.1`` where RouteLLM writes ``gpt-4-1106-preview``
and ``mixtral-8x7b-instruct-v0.1``. Names not in the table are kept as they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

__all__ = ["MODEL_ALIASES", "canonical_model_name"]

_TABLE = Path(__file__).parent / "data" / "model_aliases.json"


@lru_cache(maxsize=1)
def _load() -> dict[str, str]:
    table = json.loads(_TABLE.read_text())
    table.pop("_doc", None)
    return table


MODEL_ALIASES: Mapping[str, str] = _load()


def canonical_model_name(name: str, extra: Mapping[str, str] | None = None) -> str:
    """The canonical spelling of ``name``; ``extra`` aliases take precedence over the built-in table."""
    if extra and name in extra:
        return extra[name]
    return MODEL_ALIASES.get(name, name)
