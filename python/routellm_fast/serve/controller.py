"""RouteLLM's ``Controller``, on routellm_fast's routers.

Same constructor, same methods, same ``RoutingError`` messages as ``routellm.controller``:
``route``, ``batch_calculate_win_rate`` (one batched, GIL-free ``score`` call instead of a
per-prompt apply), and ``chat.completions.create`` / ``acreate`` that read ``model="router-mf-0.116"``,
route on the last message and forward the request to the chosen model through any
OpenAI-compatible endpoint with the official ``openai`` client, or through LiteLLM for
provider-prefixed model names (:mod:`routellm_fast.serve.upstream`). :meth:`Controller.decide` is the
one routing decision that these and the server make.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..checks import check_arguments
from ..decision.calibration import (
    known_win_rates,
    sample_win_rates,
    share_threshold,
    threshold_advice,
)
from ..decision.online import OnlineThreshold
from ..decision.router_names import AUTO, StrongShare, check_route, parse_model_name
from ..decision.rule import (
    CostWeight,
    Decision,
    ModelPair,
    check_models,
    choose_models,
    is_strong,
)
from ..embedders import DEFAULT_EMBEDDER_NAME, STATIC_EMBEDDER_NAME
from ..errors import RoutingError, ThresholdWarning
from ..paths import SHIPPED_EMBEDDERS
from ..routers import (
    ROUTER_CLS,
    BERTRouter,
    EmbeddingRouter,
    RandomRouter,
    Router,
    unknown_router,
)
from ..routers.shipped import EMBEDDER_ROUTERS, SHIPPED_ROUTERS
from .upstream import Upstream

__all__ = ["Controller", "ModelPair", "RoutingError", "load_config", "message_text", "warn_threshold_meaning"]

logger = logging.getLogger("routellm_fast")


def load_config(config: Mapping[str, Mapping[str, Any]] | str | os.PathLike[str] | None) -> dict:
    """Router settings: a dict, or a YAML file as RouteLLM's ``config.example.yaml``."""
    if config is None:
        return {}
    if isinstance(config, (str, os.PathLike)):
        import yaml

        try:
            loaded = yaml.safe_load(Path(config).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read router config {str(config)!r}: {exc}") from None
        config = loaded or {}
    if not isinstance(config, Mapping):
        raise ValueError(f"config must map router names to dicts of constructor arguments, got {type(config).__name__}")
    for name, entry in config.items():
        if not isinstance(name, str):
            raise ValueError(f"config must map router names to dicts of constructor arguments: {name!r} is no name")
        if not isinstance(entry, Mapping):
            raise ValueError(f"config must map router names to dicts of constructor arguments: the entry of "
                             f"router {name!r} is {type(entry).__name__} {entry!r}")
        if name in ROUTER_CLS:  # each value's type, by the router's own signature, naming the key
            check_arguments(ROUTER_CLS[name].__init__, entry, f"config of router {name!r}")
    return {k: dict(v) for k, v in config.items()}


class Controller:
    """Routes prompts between ``strong_model`` and ``weak_model`` with the named ``routers``.

    ``config`` maps router names to constructor arguments (a dict, or a YAML file as RouteLLM's
    ``config.example.yaml``). A router missing from it uses the router this package ships
    (``mf``, ``sw_ranking``, ``knn`` and ``bert``: local, no key; ``random``); others need an entry.
    ``embedder`` (``"minilm"`` or ``"static"``: microseconds per prompt) picks which shipped mf,
    sw_ranking and knn; None (the default) takes each on the embedder it routes best on (knn on static,
    mf and sw_ranking on MiniLM: :data:`~routellm_fast.routers.shipped.BEST_EMBEDDER`); a config entry of
    only ``{"embedder": "static"}`` picks for one router.

    ``models`` (``{name: cost}``, any cost unit, e.g. $ per 1M tokens) routes among many models
    instead of the pair: ``router-<name>-<t>`` picks the cheapest model that no dearer one beats with
    a win rate of at least t (with the pair's two models, RouteLLM's rule), ``router-<name>-cost-<lambda>``
    the model with the best predicted win rate against the best candidate minus lambda times its
    relative cost (:func:`routellm_fast.decision.rule.choose_models`). Needs routers with per-model scores
    (mf, sw_ranking, knn).
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
        *,
        embedder: str | None = None,
        models: Mapping[str, float] | None = None,
    ) -> None:
        if embedder is not None and embedder not in SHIPPED_EMBEDDERS:
            raise RoutingError(f"Invalid embedder {embedder!r}: the shipped routers come on {', '.join(SHIPPED_EMBEDDERS)}.")
        self.model_pair = ModelPair(strong=strong_model, weak=weak_model)
        self.api_base, self.api_key, self.progress_bar = api_base, api_key, progress_bar
        self.model_counts: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._counts_lock = threading.Lock()
        self.online_thresholds: dict[str, OnlineThreshold] = {}
        self._thresholds_checked: set[tuple[str, float]] = set()
        settings = load_config(config)
        self.routers: dict[str, Router] = {}
        for name in routers:
            if name not in ROUTER_CLS:
                raise RoutingError(f"Invalid router {name}. Available routers are {list(ROUTER_CLS)}. "
                                   + unknown_router(name))
            entry = settings.get(name)
            if name in EMBEDDER_ROUTERS and (entry is None or entry.keys() == {"embedder"}):
                self.routers[name] = SHIPPED_ROUTERS[name](embedder=(entry or {}).get("embedder", embedder))
            elif entry is not None:
                self.routers[name] = ROUTER_CLS[name](**entry)
            elif name in SHIPPED_ROUTERS:
                self.routers[name] = SHIPPED_ROUTERS[name]()
            else:
                raise RoutingError(
                    f"Router {name} needs a config entry (e.g. config={{'{name}': {{'checkpoint_path': ...}}}}): "
                    f"this package ships no default {name} router yet."
                )
        self.models: dict[str, float] | None = None
        if models is not None:
            self.models = check_models(models)
            for name, router in self.routers.items():  # every model known to every router, before any request
                try:
                    router.score_models_embeddings(np.zeros((0, router.embedding_dim), np.float32), list(self.models))
                except (TypeError, AttributeError):
                    raise RoutingError(f"Router {name} cannot route among many models (mf, sw_ranking and knn can).") from None
                except ValueError as exc:
                    raise RoutingError(f"Router {name}: {exc}") from None
        self._upstream: Upstream | None = None
        # The OpenAI SDK's shape: controller.chat.completions.create(...)
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.completion, acreate=self.acompletion))

    # -- the routing decision

    def use_online_threshold(self, target_strong_pct: float, window: int = 1000) -> None:
        """Let ``threshold="auto"`` (``model="router-<name>-auto"``) keep ``target_strong_pct`` of
        each router's decisions on the strong model over a sliding window of ``window`` decisions,
        starting from the router's calibrated threshold for that share (on the bundled sample
        prompts: recorded with the shipped routers, scored once for others)."""
        self.online_thresholds = {
            name: OnlineThreshold(target_strong_pct, window, initial=self.share_threshold(name, target_strong_pct))
            for name in self.routers
        }

    def share_threshold(self, router: str, strong_model_pct: float) -> float:
        """``router``'s calibrated threshold for ``strong_model_pct`` strong calls on its calibration
        prompts (the bundled sample prompts: recorded with the shipped routers, else scored once and
        kept in the calibration cache; what ``routellm-fast calibrate`` prints, unrounded). The random
        router's win rates are uniform: 1 - strong_model_pct."""
        check_route(self.routers, router, 0)
        instance = self.routers[router]
        if isinstance(instance, RandomRouter):
            return 1.0 - float(strong_model_pct)
        return share_threshold(sample_win_rates(instance), strong_model_pct)

    def calibrated_thresholds(self, router: str, shares: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7,
                                                                             0.8, 0.9)) -> dict[float, float]:
        """``{share: threshold}`` for ``router`` (:meth:`share_threshold`), rounded as ``calibrate`` prints."""
        return {pct: round(self.share_threshold(router, pct), 5) for pct in shares}

    def check_threshold_meaning(self, router: str, threshold: float) -> str | None:
        """Warn once per router and threshold (log and :class:`~routellm_fast.errors.ThresholdWarning`)
        when ``threshold`` sends more than 99% or less than 1% of ``router``'s calibration prompts
        to one model (:func:`~routellm_fast.decision.calibration.threshold_advice`); returns the message."""
        key = (router, float(threshold))
        with self._counts_lock:
            if key in self._thresholds_checked:
                return None
            self._thresholds_checked.add(key)
        return warn_threshold_meaning(router, self.routers[router], float(threshold), stacklevel=4)

    def decide(self, prompt: str, router: str, threshold: float | str | StrongShare, *,
               count: bool = True) -> Decision:
        """The model ``router`` picks for ``prompt`` at ``threshold`` (a number in [0, 1], ``"auto"``
        for the online threshold, or a :class:`~routellm_fast.decision.router_names.StrongShare`: the
        calibrated threshold for that share of strong calls), with the win rate and threshold it was
        picked by. ``count`` adds it to ``model_counts``. A number that sends almost every
        calibration prompt to one model is warned about once (:meth:`check_threshold_meaning`)."""
        check_route(self.routers, router, threshold)
        if isinstance(threshold, StrongShare):
            if self.models is not None:
                raise RoutingError(f"Share {threshold} is for two models; among many use a threshold or cost-<lambda>.")
            threshold = self.share_threshold(router, threshold.value)
        elif self.models is None and threshold != AUTO and not isinstance(threshold, CostWeight):
            self.check_threshold_meaning(router, threshold)
        if self.models is not None:
            return self._decide_among_models(prompt, router, threshold, count)
        if isinstance(threshold, CostWeight):
            raise RoutingError(f"Threshold {threshold} routes among many models: build the Controller with models=.")
        if threshold == AUTO and router not in self.online_thresholds:
            raise RoutingError(f"Threshold {AUTO} needs an online threshold (use_online_threshold, or "
                               "the server's --target-strong-pct).")
        win_rate = self.routers[router].calculate_strong_win_rate(prompt)
        if threshold == AUTO:
            strong, used = self.online_thresholds[router].decide(win_rate)
        else:
            used = float(threshold)
            strong = is_strong(win_rate, used)
        model = self.model_pair.strong if strong else self.model_pair.weak
        if count:
            with self._counts_lock:
                self.model_counts[router][model] += 1
        return Decision(model, router, used, win_rate, strong)

    def _decide_among_models(self, prompt: str, router: str, threshold: float | CostWeight, count: bool) -> Decision:
        if threshold == AUTO:
            raise RoutingError("Threshold auto is for two models; among many use a threshold or cost-<lambda>.")
        names = list(self.models)  # type: ignore[arg-type]
        scores = self.routers[router].score_models([prompt], names)
        pick = int(choose_models(scores, list(self.models.values()), threshold)[0])  # type: ignore[union-attr]
        row = scores[0]
        win_rate = float(1.0 / (1.0 + np.exp(-(row[pick] - row.max()))))
        dearest = max(self.models.values())  # type: ignore[union-attr]
        model = names[pick]
        if count:
            with self._counts_lock:
                self.model_counts[router][model] += 1
        return Decision(model, router, threshold, win_rate, self.models[model] == dearest,  # type: ignore[index]
                        scores=dict(zip(names, row.tolist())))

    def route(self, prompt: str, router: str, threshold: float) -> str:
        """The model ``router`` picks for ``prompt`` at ``threshold``."""
        return self.decide(prompt, router, threshold, count=False).model

    def batch_calculate_win_rate(self, prompts: Any, router: str) -> Any:
        """Strong-model win rates for many prompts: a pandas Series in gives a Series (same index)
        out, a list gives a list. One batched call to the router (chunked for the progress bar)."""
        check_route(self.routers, router, 0)
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

    # -- forwarding to the chosen model

    @property
    def upstream(self) -> Upstream:
        """Where requests go (:class:`~routellm_fast.serve.upstream.Upstream`): the OpenAI-compatible
        endpoint ``api_base`` with ``api_key``, or LiteLLM for provider-prefixed model names."""
        with self._counts_lock:
            if self._upstream is None:
                self._upstream = Upstream(self.api_base, self.api_key)
            return self._upstream

    def upstream_client_args(self) -> dict:
        """``base_url`` and ``api_key`` of the upstream endpoint: ``api_key``, else
        ``$OPENAI_API_KEY``, else ``"EMPTY"`` (local OpenAI-compatible servers take any key)."""
        return self.upstream.openai_args()

    def _prepare(self, router: str | None, threshold: float | None, kwargs: dict) -> dict:
        if "model" in kwargs:
            router, threshold = parse_model_name(kwargs["model"])
        check_route(self.routers, router, threshold)
        prompt = message_text(kwargs.get("messages") or [])
        kwargs["model"] = self.decide(prompt, router, threshold).model  # type: ignore[arg-type]
        return kwargs

    def completion(self, *, router: str | None = None, threshold: float | None = None, **kwargs: Any) -> Any:
        """OpenAI's ``chat.completions.create``, routed: ``model="router-<name>-<threshold>"`` (or
        ``router=``/``threshold=``) picks the model, the rest is forwarded unchanged (see
        :mod:`routellm_fast.serve.upstream` for provider-prefixed model names)."""
        return self.upstream.create(self._prepare(router, threshold, kwargs))

    async def acompletion(self, *, router: str | None = None, threshold: float | None = None, **kwargs: Any) -> Any:
        """The async form of :meth:`completion`. Each event loop gets one client, kept open while the
        loop runs, so a stream (``stream=True``) can be read after the call returns."""
        return await self.upstream.acreate(self._prepare(router, threshold, kwargs))


def _calibration_rates(instance: Any) -> Any:
    """The win rates a threshold is checked against: known ones, or scored now where that is local
    and quick (MiniLM, static, bert); None where scoring would call an API or take minutes, and for
    routers that are not routellm_fast's."""
    if not isinstance(instance, Router) or isinstance(instance, RandomRouter):
        return None
    rates = known_win_rates(instance)
    if rates is None and (isinstance(instance, BERTRouter) or (
            isinstance(instance, EmbeddingRouter)
            and instance.embedding_model in (DEFAULT_EMBEDDER_NAME, STATIC_EMBEDDER_NAME))):
        rates = sample_win_rates(instance)
    return rates


def warn_threshold_meaning(name: str, instance: Any, threshold: float, stacklevel: int = 2) -> str | None:
    """The :class:`~routellm_fast.errors.ThresholdWarning` (and log line) for ``threshold`` on router
    ``instance`` when it sends almost every calibration prompt to one model; returns the message.
    Callers warn once per router and threshold."""
    rates = _calibration_rates(instance)
    message = None if rates is None else threshold_advice(name, rates, threshold)
    if message is not None:
        logger.warning(message)
        warnings.warn(message, ThresholdWarning, stacklevel=stacklevel + 1)
    return message


def message_text(messages: Any) -> str:
    """The text a chat request is routed on: its last message's content, a string or OpenAI
    content parts (``[{"type": "text", "text": ...}, ...]``, the text parts joined by newlines).
    RouteLLM routes on the last turn too (its routers were trained on first turns)."""
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)) or not messages:
        raise RoutingError("messages must be a non-empty list of message objects.")
    last = messages[-1]
    if not isinstance(last, Mapping):
        raise RoutingError("messages must be a non-empty list of message objects.")
    content = last.get("content")
    if isinstance(content, list):
        content = "\n".join(
            part["text"] for part in content
            if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    if not isinstance(content, str):
        raise RoutingError("the last message has no text content to route on.")
    return content
