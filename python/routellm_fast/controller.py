"""RouteLLM's ``Controller``, on routellm_fast's routers.

Same constructor, same methods, same ``RoutingError`` messages as ``routellm.controller``:
``route``, ``batch_calculate_win_rate`` (one batched, GIL-free ``score`` call instead of a
per-prompt apply), and ``chat.completions.create`` / ``acreate`` that read ``model="router-mf-0.116"``,
route on the last message and forward the request to the chosen model through any
OpenAI-compatible endpoint with the official ``openai`` client.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from .routers import ROUTER_CLS, RandomRouter, Router

__all__ = ["Controller", "ModelPair", "RoutingError", "SHIPPED_ROUTERS"]


class RoutingError(Exception):
    """A bad router name, threshold or ``router-<name>-<threshold>`` model string."""


@dataclass
class ModelPair:
    strong: str
    weak: str


def _shipped_sw_ranking() -> Router:
    from .defaults import default_sw_router

    return default_sw_router()


def _shipped_mf() -> Router:
    from .defaults import default_mf_router

    return default_mf_router()


#: Routers available with no config: the ones this package ships.
SHIPPED_ROUTERS: dict[str, Callable[[], Router]] = {
    "random": RandomRouter, "mf": _shipped_mf, "sw_ranking": _shipped_sw_ranking,
}


def _load_config(config: Mapping[str, Mapping[str, Any]] | str | os.PathLike[str] | None) -> dict:
    if config is None:
        return {}
    if isinstance(config, (str, os.PathLike)):
        import yaml

        try:
            loaded = yaml.safe_load(Path(config).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read router config {str(config)!r}: {exc}") from None
        config = loaded or {}
    if not isinstance(config, Mapping) or not all(isinstance(v, Mapping) for v in config.values()):
        raise ValueError("config must map router names to dicts of constructor arguments")
    return {str(k): dict(v) for k, v in config.items()}


class Controller:
    """Routes prompts between ``strong_model`` and ``weak_model`` with the named ``routers``.

    ``config`` maps router names to constructor arguments (a dict, or a YAML file as RouteLLM's
    ``config.example.yaml``). A router missing from it uses the router this package ships
    (``mf`` and ``sw_ranking``: local embeddings, no key; ``random``); others need an entry.
    """

    def __init__(
        self,
        routers: list[str],
        strong_model: str,
        weak_model: str,
        config: Mapping[str, Mapping[str, Any]] | str | os.PathLike[str] | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        progress_bar: bool = False,
    ) -> None:
        self.model_pair = ModelPair(strong=strong_model, weak=weak_model)
        self.api_base, self.api_key, self.progress_bar = api_base, api_key, progress_bar
        self.model_counts: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        settings = _load_config(config)
        self.routers: dict[str, Router] = {}
        for name in routers:
            if name not in ROUTER_CLS:
                raise RoutingError(f"Invalid router {name}. Available routers are {list(ROUTER_CLS)}.")
            if name in settings:
                self.routers[name] = ROUTER_CLS[name](**settings[name])
            elif name in SHIPPED_ROUTERS:
                self.routers[name] = SHIPPED_ROUTERS[name]()
            else:
                raise RoutingError(
                    f"Router {name} needs a config entry (e.g. config={{'{name}': {{'checkpoint_path': ...}}}}): "
                    f"this package ships no default {name} router yet."
                )
        self._client: Any = None
        # The OpenAI SDK's shape: controller.chat.completions.create(...)
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.completion, acreate=self.acompletion))

    # -- RouteLLM's checks, with its messages

    def _validate_router_threshold(self, router: str | None, threshold: float | None) -> None:
        if router is None or threshold is None:
            raise RoutingError("Router or threshold unspecified.")
        if router not in self.routers:
            raise RoutingError(f"Invalid router {router}. Available routers are {list(self.routers.keys())}.")
        if not 0 <= threshold <= 1:
            raise RoutingError(f"Invalid threshold {threshold}. Threshold must be a float between 0.0 and 1.0.")

    def _parse_model_name(self, model: str) -> tuple[str, float]:
        if not isinstance(model, str) or model.count("-") < 2:
            raise RoutingError(
                f"Invalid model {model}. Model name must be of the format 'router-[router name]-[threshold]."
            )
        _, router, threshold_text = model.split("-", 2)
        try:
            threshold = float(threshold_text)
        except ValueError as exc:
            raise RoutingError(f"Threshold {threshold_text} must be a float.") from exc
        if not model.startswith("router"):
            raise RoutingError(
                f"Invalid model {model}. Model name must be of the format 'router-[router name]-[threshold]."
            )
        return router, threshold

    def _routed_model(self, messages: list, router: str, threshold: float) -> str:
        # Route on the last turn, as RouteLLM does (its routers were trained on first turns).
        if not messages or not isinstance(messages[-1], Mapping) or not isinstance(messages[-1].get("content"), str):
            raise RoutingError("messages must end with a message whose content is a string.")
        model = self.routers[router].route(messages[-1]["content"], threshold, self.model_pair)
        self.model_counts[router][model] += 1
        return model

    # -- the public interface

    def route(self, prompt: str, router: str, threshold: float) -> str:
        """The model ``router`` picks for ``prompt`` at ``threshold``."""
        self._validate_router_threshold(router, threshold)
        return self.routers[router].route(prompt, threshold, self.model_pair)

    def batch_calculate_win_rate(self, prompts: Any, router: str) -> Any:
        """Strong-model win rates for many prompts: a pandas Series in gives a Series (same index)
        out, a list gives a list. One batched call to the router (chunked for the progress bar)."""
        self._validate_router_threshold(router, 0)
        is_series = hasattr(prompts, "index") and hasattr(prompts, "tolist")
        texts = prompts.tolist() if is_series else list(prompts)
        instance = self.routers[router]
        if self.progress_bar and texts:
            from tqdm import tqdm

            chunk = max(1, min(1024, len(texts) // 50 or 1))
            parts = []
            with tqdm(total=len(texts), desc=f"Scoring with {router}") as bar:
                for start in range(0, len(texts), chunk):
                    parts.append(instance.score(texts[start : start + chunk]))
                    bar.update(len(parts[-1]))
            scores = np.concatenate(parts)
        else:
            scores = instance.score(texts)
        if is_series:
            import pandas as pd

            return pd.Series(scores, index=prompts.index, name=getattr(prompts, "name", None))
        return scores.tolist()

    def _client_args(self) -> dict:
        return {"base_url": self.api_base, "api_key": self.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"}

    def _sync_client(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.OpenAI(**self._client_args())
        return self._client

    def _prepare(self, router: str | None, threshold: float | None, kwargs: dict) -> dict:
        if "model" in kwargs:
            router, threshold = self._parse_model_name(kwargs["model"])
        self._validate_router_threshold(router, threshold)
        kwargs["model"] = self._routed_model(kwargs.get("messages") or [], router, threshold)
        return kwargs

    def completion(self, *, router: str | None = None, threshold: float | None = None, **kwargs: Any) -> Any:
        """OpenAI's ``chat.completions.create``, routed: ``model="router-<name>-<threshold>"`` (or
        ``router=``/``threshold=``) picks the model, the rest is forwarded unchanged."""
        return self._sync_client().chat.completions.create(**self._prepare(router, threshold, kwargs))

    async def acompletion(self, *, router: str | None = None, threshold: float | None = None, **kwargs: Any) -> Any:
        """The async form of :meth:`completion`. Each call opens its own client, so the controller
        can serve any event loop; a server keeps one client per loop instead."""
        import openai

        request = self._prepare(router, threshold, kwargs)
        async with openai.AsyncOpenAI(**self._client_args()) as client:
            return await client.chat.completions.create(**request)
