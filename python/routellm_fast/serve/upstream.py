"""Where a routed request goes: the chosen model's endpoint.

RouteLLM sends every completion through LiteLLM, so its strong and weak models may be any LiteLLM
provider's (``anyscale/mistralai/Mixtral-8x7B-Instruct-v0.1``, ``ollama_chat/llama3``,
``openai/...``). Here a model name is sent:

* plain (``gpt-4-1106-preview``, or ``meta-llama/Llama-3-8b``, where the part before the slash is an
  organisation, not a provider): to the OpenAI-compatible endpoint (``api_base``, default OpenAI's)
  with the official ``openai`` client, one client per process (and per event loop for async calls);
* with a LiteLLM provider prefix: through LiteLLM when it is installed (``pip install
  "routellm_fast[litellm]"``), called as RouteLLM calls it (``api_base`` and ``api_key`` passed along,
  ``None`` leaving LiteLLM to its provider's environment variables; with ``api_base`` given, no key
  and none in the environment, a placeholder key, as a local endpoint needs none: :func:`litellm_key`);
* without LiteLLM, ``openai/<name>`` is ``<name>`` on the OpenAI-compatible endpoint, and any other
  provider raises ImportError naming the extra to install.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

from ..errors import missing_extra
from ..paths import LITELLM_PROVIDERS_FILE

__all__ = ["Target", "Upstream", "litellm_key", "litellm_providers", "target"]


@lru_cache(maxsize=1)
def litellm_providers() -> frozenset[str]:
    """LiteLLM's provider prefixes as of the version this package was tested with (a data file), so
    that they are recognised without LiteLLM installed."""
    lines = LITELLM_PROVIDERS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def _litellm() -> ModuleType | None:
    try:
        import litellm
    except ImportError:
        return None
    return litellm


def litellm_key(litellm: ModuleType, model: str, api_base: str | None, api_key: str | None) -> str | None:
    """The key LiteLLM gets for ``model``: ``api_key``; else, when ``api_base`` names an endpoint of
    one's own and the provider's key is not in the environment, ``"EMPTY"`` (a local endpoint needs
    none, and LiteLLM's OpenAI-compatible providers refuse to call without one: "Missing
    credentials"); else None, LiteLLM's provider reads its own environment variable."""
    if api_key is not None or not api_base:
        return api_key
    try:
        found = litellm.validate_environment(model=model).get("keys_in_environment", False)
    except Exception:  # a model LiteLLM cannot place: its own call will say so
        found = bool(os.environ.get("OPENAI_API_KEY"))
    return None if found else "EMPTY"


@dataclass(frozen=True)
class Target:
    """How one model is called: ``via`` ``"openai"`` (the OpenAI-compatible endpoint) or
    ``"litellm"``, and the model name sent."""

    via: str
    model: str


def target(model: str) -> Target:
    """How ``model`` is called (see the module docstring); ImportError for a LiteLLM provider when
    LiteLLM is not installed."""
    if not isinstance(model, str):
        raise TypeError(f"model must be a string, got {type(model).__name__}")
    prefix, slash, rest = model.partition("/")
    if not slash:
        return Target("openai", model)
    known = prefix in litellm_providers()
    litellm = _litellm()
    if litellm is not None and (known or prefix in {str(getattr(p, "value", p)) for p in getattr(litellm, "provider_list", ())}):
        return Target("litellm", model)
    if prefix == "openai":
        return Target("openai", rest)
    if known:
        raise missing_extra(
            "litellm", f"model {model!r}, for LiteLLM's {prefix!r} provider,", "LiteLLM",
            hint=". Without it, models are called on the OpenAI-compatible endpoint (api_base / --base-url): "
            "plain names, or 'openai/<name>'.")
    return Target("openai", model)


class Upstream:
    """Sends chat-completion requests to the chosen model (see the module docstring).

    ``api_key`` falls back to ``$OPENAI_API_KEY``, then ``"EMPTY"`` (local OpenAI-compatible servers
    take any key) for the OpenAI-compatible endpoint; LiteLLM gets it as given. ``client_options``
    (``timeout``, ``max_retries``) go to every client and LiteLLM call. The sync client is shared;
    async calls use one client per running event loop, kept open for as long as that loop runs, so a
    returned stream can be read after the call returns.
    """

    def __init__(self, api_base: str | None = None, api_key: str | None = None, **client_options: Any) -> None:
        self.api_base, self.api_key, self.client_options = api_base, api_key, client_options
        self._lock = threading.Lock()
        self._client: Any = None
        self._async_clients: dict[asyncio.AbstractEventLoop, tuple[Any, Any]] = {}

    def openai_args(self) -> dict:
        """The arguments of the OpenAI-compatible endpoint's client."""
        key = self.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        return {"base_url": self.api_base, "api_key": key, **self.client_options}

    def client(self) -> Any:
        """The shared ``openai.OpenAI`` client."""
        with self._lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(**self.openai_args())
            return self._client

    async def async_client(self) -> Any:
        """The ``openai.AsyncOpenAI`` client of the running event loop, made on first use there and
        closed when the loop shuts down (``asyncio.run`` and uvicorn close async generators then)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._async_clients.get(loop)
            if entry is None:
                import openai

                for stale in [lp for lp in self._async_clients if lp.is_closed()]:
                    del self._async_clients[stale]
                client = openai.AsyncOpenAI(**self.openai_args())
                entry = self._async_clients[loop] = (client, self._close_at_shutdown(loop, client))
            else:
                return entry[0]
        await entry[1].__anext__()  # runs to its yield: the loop now tracks it
        return entry[0]

    async def _close_at_shutdown(self, loop: asyncio.AbstractEventLoop, client: Any):
        """An async generator left suspended: the loop's ``shutdown_asyncgens`` closes it, and the
        client with it, so no connection outlives its loop."""
        try:
            yield
        finally:
            with self._lock:
                if self._async_clients.get(loop, (None,))[0] is client:
                    del self._async_clients[loop]
            await client.close()

    def _litellm_call(self, request: dict, tgt: Target) -> tuple[Any, dict]:
        litellm = _litellm()
        if litellm is None:  # uninstalled since target() looked
            raise missing_extra("litellm", f"model {tgt.model!r}", "LiteLLM")
        key = litellm_key(litellm, tgt.model, self.api_base, self.api_key)
        return litellm, {**request, "model": tgt.model, "api_base": self.api_base, "api_key": key,
                         **self.client_options}

    def create(self, request: dict) -> Any:
        """``chat.completions.create(**request)`` on the model ``request["model"]`` names."""
        tgt = target(request["model"])
        if tgt.via == "litellm":
            litellm, kwargs = self._litellm_call(request, tgt)
            return litellm.completion(**kwargs)
        return self.client().chat.completions.create(**{**request, "model": tgt.model})

    async def acreate(self, request: dict) -> Any:
        """The async form of :meth:`create`; a stream stays readable after it returns."""
        tgt = target(request["model"])
        if tgt.via == "litellm":
            litellm, kwargs = self._litellm_call(request, tgt)
            return await litellm.acompletion(**kwargs)
        client = await self.async_client()
        return await client.chat.completions.create(**{**request, "model": tgt.model})

    async def aforward(self, request: dict) -> Any:
        """:meth:`acreate` for a request that is already JSON as a client sent it (a proxy's case):
        the OpenAI fields by name, the others in ``extra_body``. For the OpenAI-compatible endpoint its
        body is posted as it is, without the openai client's transformation of typed arguments, which
        is for Python objects and walks every message on the event loop (seconds for thousands of
        messages); a stream stays readable after it returns."""
        tgt = target(request["model"])
        if tgt.via == "litellm":
            litellm, kwargs = self._litellm_call(request, tgt)
            return await litellm.acompletion(**kwargs)
        from openai import AsyncStream
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        body = {k: v for k, v in request.items() if k != "extra_body"}
        body.update(request.get("extra_body") or {})  # as the openai client merges it: over the fields
        body["model"] = tgt.model
        client = await self.async_client()
        return await client.post("/chat/completions", body=body, cast_to=ChatCompletion,
                                 stream=bool(body.get("stream")), stream_cls=AsyncStream[ChatCompletionChunk])

    async def aclose(self) -> None:
        """Close the running loop's async client (a later call makes a new one)."""
        with self._lock:
            entry = self._async_clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()  # closes the client

    def close(self) -> None:
        """Close the sync client."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
