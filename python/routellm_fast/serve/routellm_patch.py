"""One-line acceleration of programs written against the ``routellm`` package, and RouteLLM's own
scripts run patched (``python -m routellm_fast.patched routellm.openai_server ...``)."""

from __future__ import annotations

import functools
import os
import runpy
import sys
import threading
from collections.abc import Sequence
from typing import Any

from ..decision.calibration import sample_win_rates, share_threshold
from ..decision.router_names import StrongShare, parse_model_name
from ..errors import RoutingError
from ..routers import NOT_IMPLEMENTED, ROUTER_CLS, RandomRouter, Router, unknown_router
from .controller import message_text, warn_threshold_meaning
from .upstream import litellm_key

__all__ = ["patch_routellm", "run_patched"]

_PLACEHOLDER_KEY = "routellm-fast-placeholder-key"


class _LazyOpenAIClient:
    """Stands in for the ``openai.OpenAI()`` client RouteLLM builds at import: the real one is made
    on first use, so importing RouteLLM needs no API key (routellm_fast's routers embed locally)."""

    def __init__(self) -> None:
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            import openai

            self._client = openai.OpenAI()
        return getattr(self._client, name)


def _keyless(cls: Any) -> Any:
    """``cls`` (``openai.OpenAI`` or ``AsyncOpenAI``) built with a placeholder key when given none and
    none is in the environment: RouteLLM's server builds one at import that it never uses."""

    class Keyless(cls):  # a subclass: isinstance checks and type unions of the originals still hold
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if not kwargs.get("api_key") and not os.environ.get("OPENAI_API_KEY"):
                kwargs["api_key"] = _PLACEHOLDER_KEY
            super().__init__(*args, **kwargs)

    Keyless.__name__ = Keyless.__qualname__ = cls.__name__
    return Keyless


def _explained(name: str, cls: Any) -> Any:
    """RouteLLM's own ``name`` router class, whose load failures (its checkpoint not on this machine,
    torch missing) say what is missing and what routellm_fast offers instead."""
    if getattr(cls, "_routellm_fast_explained", False):
        return cls

    @functools.wraps(cls, updated=())
    def build(*args: Any, **kwargs: Any) -> Any:
        try:
            return cls(*args, **kwargs)
        except Exception as exc:
            source = kwargs.get("checkpoint_path", args[0] if args else None)
            raise RuntimeError(
                f"RouteLLM's {name} router could not be built from {source!r} ({type(exc).__name__}: {exc}). "
                + unknown_router(name)
            ) from exc

    build._routellm_fast_explained = True  # type: ignore[attr-defined]
    return build


def patch_routellm() -> None:
    """Make the installed ``routellm`` package build routellm_fast's routers.

    After this call, ``routellm.controller.Controller`` (and RouteLLM's server and evaluation
    scripts, which use it) construct routellm_fast's routers (every name of
    :data:`~routellm_fast.routers.ROUTER_CLS`: ``mf``, ``sw_ranking``, ``bert``, ``causal_llm``, ``random``)
    from the same config: same constructor arguments, same answers, compiled scoring. Nothing is
    downloaded: checkpoints and datasets are local paths, and RouteLLM's hub names (its default
    config) load from the local Hugging Face cache or else use the shipped router of the same kind
    (:mod:`routellm_fast.formats.hub`). No ``OPENAI_API_KEY`` is needed to import RouteLLM after this call.
    Routers routellm_fast does not implement yet stay RouteLLM's, with failures that say what is missing.
    """
    placeholder = not os.environ.get("OPENAI_API_KEY")
    if placeholder:  # RouteLLM builds an OpenAI client when imported, which refuses to exist without a key
        os.environ["OPENAI_API_KEY"] = _PLACEHOLDER_KEY
    try:
        import routellm.routers.routers as rl_routers
        import routellm.routers.similarity_weighted.utils as rl_sw_utils
    except ImportError:
        raise ImportError("patch_routellm() needs the routellm package installed") from None
    finally:
        if placeholder and os.environ.get("OPENAI_API_KEY") == _PLACEHOLDER_KEY:
            del os.environ["OPENAI_API_KEY"]
    lazy = _LazyOpenAIClient()
    for module in (rl_routers, rl_sw_utils):
        client = getattr(module, "OPENAI_CLIENT", None)
        if isinstance(client, _LazyOpenAIClient):  # patched already
            continue
        if client is not None and getattr(client, "api_key", None) == _PLACEHOLDER_KEY:
            module.OPENAI_CLIENT = lazy
    for name in NOT_IMPLEMENTED:
        if name in rl_routers.ROUTER_CLS and name not in ROUTER_CLS:
            rl_routers.ROUTER_CLS[name] = _explained(name, rl_routers.ROUTER_CLS[name])
    # routellm.controller imported ROUTER_CLS by name: mutate the shared dict in place.
    rl_routers.ROUTER_CLS.update(ROUTER_CLS)
    rl_routers.NAME_TO_CLS.update({cls: name for name, cls in ROUTER_CLS.items()})
    try:
        import routellm.controller as rl_controller
    except ImportError:  # a routellm without its controller (or its litellm): the routers are patched
        return
    _patch_controller(rl_controller)


def _local_endpoint(call: Any) -> Any:
    """RouteLLM's ``litellm.completion``/``acompletion``, given a placeholder key for a local
    ``api_base`` that needs none (:func:`~routellm_fast.serve.upstream.litellm_key`)."""
    if getattr(call, "_routellm_fast_local", False):
        return call

    @functools.wraps(call)
    def with_key(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("api_key") is None and kwargs.get("api_base") and isinstance(kwargs.get("model"), str):
            import litellm

            kwargs["api_key"] = litellm_key(litellm, kwargs["model"], kwargs["api_base"], None)
        return call(*args, **kwargs)

    with_key._routellm_fast_local = True  # type: ignore[attr-defined]
    return with_key


def _patch_controller(rl_controller: Any) -> None:
    """RouteLLM's ``Controller`` as ours behaves: content-part messages, ``router-<name>-<pct>%``
    names, a warning for thresholds that send almost everything to one model, and no key needed
    for a local ``api_base``."""
    for name in ("completion", "acompletion"):
        if hasattr(rl_controller, name):
            setattr(rl_controller, name, _local_endpoint(getattr(rl_controller, name)))
    cls = rl_controller.Controller
    if getattr(cls, "_routellm_fast_patched", False):
        return
    parse, validate = cls._parse_model_name, cls._validate_router_threshold
    rl_error = getattr(rl_controller, "RoutingError", RoutingError)
    lock = threading.Lock()

    def _parse_model_name(self: Any, model: str) -> tuple[str, float]:
        if not (isinstance(model, str) and model.endswith("%")):
            return parse(self, model)
        try:
            router, share = parse_model_name(model)
        except RoutingError as exc:
            raise rl_error(str(exc)) from None
        instance = self.routers.get(router)
        if not isinstance(share, StrongShare) or instance is None:
            return router, share  # RouteLLM's validation names the problem
        if isinstance(instance, RandomRouter):
            return router, 1.0 - share.value
        if not isinstance(instance, Router):
            raise rl_error(f"Share {share} needs a routellm_fast router; RouteLLM's {router} has no calibration here.")
        return router, share_threshold(sample_win_rates(instance), share.value)

    def _validate_router_threshold(self: Any, router: Any, threshold: Any) -> None:
        validate(self, router, threshold)
        if threshold in (0, 0.0):  # batch_calculate_win_rate validates with 0
            return
        with lock:
            seen = self.__dict__.setdefault("_routellm_fast_thresholds", set())
            if (router, threshold) in seen:
                return
            seen.add((router, threshold))
        warn_threshold_meaning(router, self.routers[router], float(threshold), stacklevel=4)

    def _get_routed_model_for_completion(self: Any, messages: list, router: str, threshold: float) -> str:
        try:
            prompt = message_text(messages)  # a string, or OpenAI content parts, as our Controller takes
        except RoutingError as exc:
            raise rl_error(str(exc)) from None
        routed = self.routers[router].route(prompt, threshold, self.model_pair)
        self.model_counts[router][routed] += 1
        return routed

    cls._parse_model_name = _parse_model_name
    cls._validate_router_threshold = _validate_router_threshold
    cls._get_routed_model_for_completion = _get_routed_model_for_completion
    cls._routellm_fast_patched = True


def run_patched(argv: Sequence[str] | None = None) -> None:
    """``python -m routellm_fast.patched MODULE [ARGS...]``: run RouteLLM's script ``MODULE``
    (``routellm.openai_server``, ``routellm.evals.evaluate``) as ``python -m MODULE ARGS...`` would,
    after :func:`patch_routellm` (``routellm.calibrate_threshold`` is ``routellm-fast calibrate``:
    :mod:`routellm_fast.patched`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m routellm_fast.patched MODULE [ARGS...]\n\nRuns RouteLLM's MODULE (routellm."
              "openai_server, routellm.evals.evaluate, routellm.calibrate_threshold) on routellm_fast's routers, "
              "with its own arguments.", file=sys.stderr)
        raise SystemExit(0 if args else 2)
    module, rest = args[0], args[1:]
    patch_routellm()
    import openai

    # RouteLLM's server builds an AsyncOpenAI() it never uses, at import, which refuses to exist without a key.
    openai.AsyncOpenAI = _keyless(openai.AsyncOpenAI)
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
