"""One-line acceleration of programs written against the ``routellm`` package."""

from __future__ import annotations

import functools
import os
from typing import Any

from ..routers import NOT_IMPLEMENTED, ROUTER_CLS, unknown_router

__all__ = ["patch_routellm"]

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
        if client is not None and getattr(client, "api_key", None) == _PLACEHOLDER_KEY:
            module.OPENAI_CLIENT = lazy
    for name in NOT_IMPLEMENTED:
        if name in rl_routers.ROUTER_CLS and name not in ROUTER_CLS:
            rl_routers.ROUTER_CLS[name] = _explained(name, rl_routers.ROUTER_CLS[name])
    # routellm.controller imported ROUTER_CLS by name: mutate the shared dict in place.
    rl_routers.ROUTER_CLS.update(ROUTER_CLS)
    rl_routers.NAME_TO_CLS.update({cls: name for name, cls in ROUTER_CLS.items()})
