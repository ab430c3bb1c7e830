"""Model names: RouteLLM's table of the 64 models its mf checkpoints index, the alias table that maps
other spellings to one canonical name, and the default strong/weak pair.

Data, not code: the names index rows of an mf checkpoint's model-embedding matrix ``P.weight``, and
the aliases live in ``data/model_aliases.json`` (AlpacaEval writes ``gpt4_1106_preview`` and
arena-bench ``mistralai/Mixtral-8x7B-Instruct-v0.1`` where RouteLLM writes ``gpt-4-1106-preview``
and ``mixtral-8x7b-instruct-v0.1``). Names not in the alias table are kept as they are.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache

from ..paths import MODEL_ALIASES_FILE

__all__ = [
    "DEFAULT_STRONG_MODEL",
    "DEFAULT_WEAK_MODEL",
    "MODEL_ALIASES",
    "MODEL_IDS",
    "ROUTELLM_MODEL_NAMES",
    "canonical_model_name",
]

#: RouteLLM's default pair (its README, its evaluation, and the pair the shipped routers are trained for).
DEFAULT_STRONG_MODEL = "gpt-4-1106-preview"
DEFAULT_WEAK_MODEL = "mixtral-8x7b-instruct-v0.1"

ROUTELLM_MODEL_NAMES: tuple[str, ...] = (
    "RWKV-4-Raven-14B",
    "alpaca-13b",
    "chatglm-6b",
    "chatglm2-6b",
    "chatglm3-6b",
    "claude-1",
    "claude-2.0",
    "claude-2.1",
    "claude-instant-1",
    "codellama-34b-instruct",
    "deepseek-llm-67b-chat",
    "dolly-v2-12b",
    "dolphin-2.2.1-mistral-7b",
    "falcon-180b-chat",
    "fastchat-t5-3b",
    "gemini-pro",
    "gemini-pro-dev-api",
    "gpt-3.5-turbo-0125",
    "gpt-3.5-turbo-0314",
    "gpt-3.5-turbo-0613",
    "gpt-3.5-turbo-1106",
    "gpt-4-0125-preview",
    "gpt-4-0314",
    "gpt-4-0613",
    "gpt-4-1106-preview",
    "gpt4all-13b-snoozy",
    "guanaco-33b",
    "koala-13b",
    "llama-13b",
    "llama-2-13b-chat",
    "llama-2-70b-chat",
    "llama-2-7b-chat",
    "llama2-70b-steerlm-chat",
    "mistral-7b-instruct",
    "mistral-7b-instruct-v0.2",
    "mistral-medium",
    "mixtral-8x7b-instruct-v0.1",
    "mpt-30b-chat",
    "mpt-7b-chat",
    "nous-hermes-2-mixtral-8x7b-dpo",
    "oasst-pythia-12b",
    "openchat-3.5",
    "openchat-3.5-0106",
    "openhermes-2.5-mistral-7b",
    "palm-2",
    "pplx-70b-online",
    "pplx-7b-online",
    "qwen-14b-chat",
    "qwen1.5-4b-chat",
    "qwen1.5-72b-chat",
    "qwen1.5-7b-chat",
    "solar-10.7b-instruct-v1.0",
    "stablelm-tuned-alpha-7b",
    "starling-lm-7b-alpha",
    "stripedhyena-nous-7b",
    "tulu-2-dpo-70b",
    "vicuna-13b",
    "vicuna-33b",
    "vicuna-7b",
    "wizardlm-13b",
    "wizardlm-70b",
    "yi-34b-chat",
    "zephyr-7b-alpha",
    "zephyr-7b-beta",
)

#: name -> row of ``P.weight``, as RouteLLM's ``MODEL_IDS``.
MODEL_IDS: dict[str, int] = {name: i for i, name in enumerate(ROUTELLM_MODEL_NAMES)}


@lru_cache(maxsize=1)
def _load_aliases() -> dict[str, str]:
    table = json.loads(MODEL_ALIASES_FILE.read_text())
    table.pop("_doc", None)
    return table


MODEL_ALIASES: Mapping[str, str] = _load_aliases()


def canonical_model_name(name: str, extra: Mapping[str, str] | None = None) -> str:
    """The canonical spelling of ``name``; ``extra`` aliases take precedence over the built-in table."""
    if extra and name in extra:
        return extra[name]
    return MODEL_ALIASES.get(name, name)
