"""An OpenAI-compatible routing server (FastAPI + uvicorn), started as RouteLLM's ``openai_server``.

Endpoints:

* ``POST /v1/chat/completions`` — RouteLLM's server: ``model="router-<router>-<threshold>"`` picks
  the model, the request goes to it (plain or SSE streaming) through the upstream endpoint, with the
  controller's ``api_key`` (RouteLLM's ``--api-key``), or through LiteLLM for provider-prefixed model
  names (:mod:`routellm_fast.serve.upstream`). ``model="router-<router>-auto"`` uses the online threshold
  (``--target-strong-pct``); the strong or weak model's own name reaches that model directly.
  OpenAI request fields are forwarded by name, unknown ones in the body; the openai client's call
  options (``timeout``, ``extra_headers``, ``extra_query``, ``extra_body``) never come from a client.
* ``POST /v1/route`` — the decision only, no LLM call: ``{model, router, threshold, win_rate}``, and
  ``scores`` (per model) when the server routes among many models (``--models``; ``router-<name>-cost-<lambda>``).
* ``GET /v1/models`` (names that work), ``GET /health``, ``GET /metrics`` (Prometheus).

With ``client_api_key`` every route but ``/health`` needs ``Authorization: Bearer <key>``. Routing
errors are 400 JSON (``{"object": "error", "message": ...}`` as RouteLLM), bad bearer tokens 401,
requests over a limit 413 (body bytes, message count, prompt characters: :class:`Limits`), bodies
that do not arrive within the body timeout 408 (and the connection closed), request bodies nested
deeper than ``MAX_NESTING`` or holding a number JSON cannot carry (NaN, Infinity, 1e400, more than
4,300 digits) 400, upstream failures 502 (also an answer that is not JSON, not a JSON object, not a
completion with a list of ``choices``, or a stream without a valid first chunk) and upstream timeouts
504 — never an unhandled 500. Once a stream has started, an upstream failure (an
invalid chunk, a dropped connection) ends it with an OpenAI error event, ``data: {"error": {...}}``,
then ``data: [DONE]``. These statuses and messages come from one table, :data:`.http_errors.ERRORS`.
Parsing and checking a request body, routing and the answer's encoding run in worker threads, and
a request is forwarded as the JSON it came as (not through the openai client's argument
transformation), so that one large request never holds the event loop that serves the others.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import secrets
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio
import openai
from fastapi import FastAPI, Request
from fastapi.responses import (
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..decision.router_names import AUTO, parse_model_name
from ..decision.rule import CostWeight, Decision
from ..embedders import CachedEmbedder
from ..errors import RoutingError
from ..formats.model_names import DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL
from ..routers import EmbeddingRouter
from .controller import Controller, message_text
from .http_errors import (
    REQUEST_ERRORS,
    STREAM,
    UPSTREAM,
    BadUpstream,
    BodyTimeout,
    EmptyStream,
    Failure,
    TooLarge,
    Unauthorized,
    error_response,
    failure_for,
)
from .upstream import Upstream, target
from .workers import WorkerApp

__all__ = ["KEEP_ALIVE_S", "MAX_NESTING", "Limits", "ServerSettings", "create_app", "serve"]

logger = logging.getLogger("routellm_fast.serve.server")

#: Options the openai client takes by name that are not request fields: from a client's body they
#: would steer the upstream call itself (its timeout, headers, query), so they are never used as such.
TRANSPORT_OPTIONS = frozenset({"timeout", "extra_headers", "extra_query", "extra_body"})
#: The OpenAI chat-completion request fields, forwarded by name; any other field of a request
#: (vLLM's repetition_penalty, say) goes to the upstream body unchanged, as ``extra_body``.
REQUEST_FIELDS = frozenset(inspect.signature(openai.resources.chat.completions.AsyncCompletions.create).parameters) \
    - {"self"} - TRANSPORT_OPTIONS


#: How deep a request body may nest (chat requests nest a few levels; JSON schemas in ``tools`` or
#: ``response_format`` some more): deeper bodies are refused before any recursive code (the openai
#: client's, LiteLLM's) can hit Python's recursion limit on them.
MAX_NESTING = 128
#: uvicorn's keep-alive timeout (its default is 5 s): above the idle time of clients' pooled
#: connections (httpx and the openai client keep them 5 s, browsers and proxies up to 60 s), so that
#: the server does not close a connection just as a client sends its next request on it.
KEEP_ALIVE_S = 75


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server (``routellm-fast serve`` flags of the same names);
    a request over one is refused with 413, or 408 for a body that is too slow, before any routing
    or upstream call.

    The defaults suit a production chat server: 1 MiB of JSON is some 250,000 tokens of English
    text; 1,000 messages is far more than chat clients send in one request; 1,000,000 characters
    bounds the text a request is routed on (its last message, or the ``prompt`` of ``/v1/route``),
    which only a larger ``max_body_bytes`` can reach; a client that has not sent its whole body 30 s
    after its headers is a slow-loris one (or on a link too slow to serve)."""

    #: The largest request body, in bytes (``--max-body-bytes``).
    max_body_bytes: int = 1 << 20
    #: The most messages in a chat request (``--max-messages``).
    max_messages: int = 1000
    #: The longest text a request is routed on, in characters (``--max-prompt-chars``).
    max_prompt_chars: int = 1_000_000
    #: Seconds a client has to send its body once its headers are in (``--body-timeout``).
    body_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_messages", "max_prompt_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        timeout = self.body_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
            raise ValueError(f"body_timeout must be a number of seconds > 0, got {timeout!r}")


def _shown(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _field(value: Any, name: str) -> Any:
    """A field of a mapping or of an openai/LiteLLM object (None when absent)."""
    return value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)


def _is_object(value: Any) -> bool:
    return isinstance(value, Mapping) or hasattr(value, "model_dump")


def _check_choices(answer: Any, what: str, part: str | None) -> None:
    """``BadUpstream`` unless ``answer`` has ``choices``, a list of objects that each hold an object
    ``part`` (``message`` of a completion; a chunk's ``delta`` may be absent). The openai client
    builds its objects without validating them, so ``{"choices": "nope"}`` would pass as an answer."""
    choices = _field(answer, "choices")
    if not isinstance(choices, list):
        found = "no 'choices'" if choices is None else f"'choices' that is not a list: {_shown(choices)}"
        raise BadUpstream(f"{what} with {found}")
    for i, choice in enumerate(choices):
        inner = _field(choice, part or "delta") if _is_object(choice) else None
        if not _is_object(choice) or (part is not None and not _is_object(inner)) or \
                (part is None and inner is not None and not _is_object(inner)):
            raise BadUpstream(f"{what} whose choice {i} is not an object with a '{part or 'delta'}' object: "
                              f"{_shown(choice)}")


def _dump(value: Any, exclude_none: bool) -> dict:
    # warnings=False: fields of unexpected types (the objects are built unvalidated) are dumped as they
    # are, instead of warning once per request.
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=exclude_none, warnings=False)
    return dict(value)


def _json_bytes(value: Any, what: str) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as exc:  # NaN or Infinity, which the openai client's JSON reader accepted
        raise BadUpstream(f"{what} with a number JSON cannot carry ({exc})") from None


def _answer_json(response: Any) -> bytes:
    """A completion (openai's or LiteLLM's object, or a mapping) as the JSON the client gets (runs in
    a worker thread); ``BadUpstream`` for anything else (the openai client returns a non-JSON body as
    a string, and JSON that is not an object as it is), or a completion without its choices."""
    if not _is_object(response):
        kind = "a body that is not JSON" if isinstance(response, str) else "JSON that is not an object"
        raise BadUpstream(f"{kind}: {_shown(response)}")
    _check_choices(response, "a completion", "message")
    return _json_bytes(_dump(response, True), "a completion")


def _chunk_json(chunk: Any) -> str:
    """One stream chunk as the JSON of an SSE ``data:`` line; ``BadUpstream`` for a chunk that is
    not a JSON object, or one without its list of choices."""
    if not _is_object(chunk):
        raise BadUpstream(f"a stream chunk that is not a JSON object: {_shown(chunk)}")
    _check_choices(chunk, "a stream chunk", None)
    return _json_bytes(_dump(chunk, False), "a stream chunk").decode()


def _content_type(stream: Any) -> str:
    """The Content-Type of an openai stream's HTTP response ("" when unknown, as for LiteLLM's)."""
    response = getattr(stream, "response", None)
    headers = getattr(response, "headers", None)
    return headers.get("content-type", "") if headers is not None else ""


async def _close(stream: Any) -> None:
    """Close an upstream stream (openai's ``AsyncStream.close``; LiteLLM's wrappers may have none)."""
    close = getattr(stream, "close", None)
    if close is not None:
        result = close()
        if inspect.isawaitable(result):
            await result


async def _first_chunk(response: Any, chunks: AsyncIterator[Any]) -> str:
    """A stream's first chunk as JSON; ``EmptyStream`` when it has none."""
    try:
        chunk = await anext(chunks)
    except StopAsyncIteration:
        content_type = _content_type(response)
        raise EmptyStream("a stream without any chunk"
                          + (f" (Content-Type: {content_type})" if content_type else "")) from None
    return _chunk_json(chunk)


def _too_deep(body: Any, limit: int) -> bool:
    """Whether ``body`` nests containers deeper than ``limit`` (iterative: no recursion limit)."""
    stack = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _parse_target(body: dict) -> tuple[str, str | float]:
    """The router and threshold a request names: in ``model``, else as ``router`` and ``threshold``."""
    if "model" in body:
        return parse_model_name(body["model"])
    router = body.get("router")
    if router is not None and not isinstance(router, str):
        raise RoutingError(f"Invalid router {_shown(router)}: a router name is a string.")
    return router, body.get("threshold")


def _refuse_constant(name: str) -> Any:
    raise RoutingError(f"request body is not valid JSON: {name} is not a JSON number.")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise RoutingError(f"request body has the number {shown}, out of the range of a 64-bit float.")
    return value


def _parse_body(raw: bytes) -> dict:
    """A request body as a JSON object: valid JSON (RFC 8259: no NaN or Infinity), every number
    representable (no float overflowing to infinity, no integer longer than Python converts), nested
    at most ``MAX_NESTING`` deep; else ``RoutingError``."""
    try:
        body = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RoutingError(f"request body is not valid JSON: {exc}") from None
    except RecursionError:  # json's C decoder stops at the recursion limit and says so
        raise RoutingError(f"request body is nested deeper than {MAX_NESTING} levels.") from None
    except ValueError:  # an integer over Python's int-string conversion limit
        raise RoutingError(f"request body has an integer of more than {sys.get_int_max_str_digits()} "
                           "digits.") from None
    if not isinstance(body, dict):
        raise RoutingError("request body must be a JSON object.")
    # Only a body with more brackets than MAX_NESTING can nest that deep: others are not walked.
    if raw.count(b"[") + raw.count(b"{") > MAX_NESTING and _too_deep(body, MAX_NESTING):
        raise RoutingError(f"request body is nested deeper than {MAX_NESTING} levels.")
    return body


def _stream_flag(body: dict) -> bool:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise RoutingError(f"stream must be true or false, got {_shown(stream)}.")
    return bool(stream)


def _upstream_request(body: dict, model: str) -> dict:
    """The upstream call's arguments for a chat request sent to ``model``: the OpenAI fields by name,
    any others (but ``router`` and ``threshold``) in ``extra_body``."""
    forward = {k: v for k, v in body.items() if k in REQUEST_FIELDS}
    extra = {k: v for k, v in body.items() if k not in REQUEST_FIELDS and k not in ("router", "threshold")}
    forward["model"] = model
    if extra:
        forward["extra_body"] = extra
    return forward


async def _answer_error(request: Request, exc: Exception) -> JSONResponse:
    """The app's one exception handler: a request's error as its row of ``ERRORS`` says."""
    return error_response(exc)


class _Metrics:
    """The server's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.decisions = Counter("routellm_fast_decisions", "Routing decisions", ["router", "model"], registry=registry)
        self.direct = Counter("routellm_fast_direct_requests", "Requests naming a model directly (not routed)",
                              ["model"], registry=registry)
        self.latency = Histogram("routellm_fast_routing_seconds", "Time to score and decide one request", ["router"],
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
                                 registry=registry)
        self.upstream_errors = Counter("routellm_fast_upstream_errors", "Failed upstream requests", ["kind"],
                                       registry=registry)


def check_client_api_key(key: Any) -> str | None:
    """The key clients must send: None (no authentication) or a string that is not empty or blank
    and has no surrounding whitespace (a blank key would let ``Authorization: Bearer`` through, and
    bearer tokens are compared stripped)."""
    if key is None:
        return None
    if not isinstance(key, str):
        raise TypeError(f"client_api_key must be a string or None, got {type(key).__name__}")
    if not key.strip():
        raise ValueError("the client API key is empty or whitespace: it would let 'Authorization: Bearer' with "
                         "no token through; leave it unset for no client authentication")
    if key != key.strip():
        raise ValueError("the client API key starts or ends with whitespace, which a bearer token never matches")
    return key


class _Server:
    """One app's state (the controller, the upstream client, the limits, the metrics) and its
    handlers: the routes, the guard middleware (:class:`_Guard`), and the shared steps they take
    (checking a JSON body, deciding, calling the upstream model and streaming its answer)."""

    def __init__(self, controller: Controller, *, client_api_key: str | None, limits: Limits,
                 target_strong_pct: float | None, window: int, upstream_timeout: float, cache_entries: int) -> None:
        self.controller, self.limits = controller, limits
        self.upstream = Upstream(controller.api_base, controller.api_key, timeout=upstream_timeout, max_retries=0)
        pair = controller.model_pair
        for model in (pair.strong, pair.weak):
            target(model)  # a provider that needs LiteLLM, without it, fails here and not per request
        # Models a request may name directly: the pair, and the models routed among.
        self.direct_models = list(dict.fromkeys([pair.strong, pair.weak, *(controller.models or {})]))
        key = check_client_api_key(client_api_key)
        self.expected_token = key.encode() if key is not None else None
        self.stats = _Metrics()
        caches: dict[str, CachedEmbedder] = {}
        for name, router in controller.routers.items():
            if isinstance(router, EmbeddingRouter):  # the server embeds repeated prompts once
                caches[name] = router.use_embedding_cache(cache_entries)
        if target_strong_pct is not None:
            controller.use_online_threshold(target_strong_pct, window)
        self.stats.registry.register(_LiveMetrics(caches, controller))

    def app(self) -> FastAPI:
        app = FastAPI(title="routellm_fast", lifespan=self.lifespan)
        app.add_middleware(_Guard, server=self)
        for error in REQUEST_ERRORS:
            app.add_exception_handler(error, _answer_error)
        app.get("/health")(self.health)
        app.get("/v1/models")(self.models)
        app.post("/v1/route")(self.route)
        app.post("/v1/chat/completions")(self.chat_completions)
        app.get("/metrics")(self.metrics)
        return app

    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        yield
        await self.upstream.aclose()

    # -- the routes

    async def health(self):
        return {"status": "ok", "routers": list(self.controller.routers)}

    async def models(self):
        """The routing names that work (``router-<name>-<calibrated threshold for half strong calls>``,
        with the router's calibrated thresholds for 10% to 90% strong calls, and ``-auto`` in online
        mode) and the two models, which a request may also name directly. A router's calibration is
        computed once (recorded with the shipped routers, else kept in the calibration cache)."""
        now = int(time.time())
        data = []
        for name in self.controller.routers:
            if name in self.controller.online_thresholds:
                data.append({"id": f"router-{name}-{AUTO}", "object": "model", "created": now,
                             "owned_by": "routellm_fast"})
            thresholds = await asyncio.to_thread(self.controller.calibrated_thresholds, name)
            data.append({"id": f"router-{name}-{thresholds[0.5]}", "object": "model", "created": now,
                         "owned_by": "routellm_fast", "router": name,
                         "calibrated_thresholds": {f"{pct:.0%}": t for pct, t in thresholds.items()}})
        data += [{"id": m, "object": "model", "created": now, "owned_by": "upstream"} for m in self.direct_models]
        return {"object": "list", "data": data}

    async def route(self, request: Request):
        return await asyncio.to_thread(self.route_answer, await request.body())

    async def chat_completions(self, request: Request):
        upstream_request, stream = await asyncio.to_thread(self.chat_request, await request.body())
        return await self.call_upstream(upstream_request, stream=stream)

    async def metrics(self):
        return PlainTextResponse(generate_latest(self.stats.registry), media_type=CONTENT_TYPE_LATEST)

    # -- shared steps

    def authorized(self, header: str) -> bool:
        """Whether an ``Authorization`` header value carries the client key as a bearer token."""
        scheme, _, token = header.strip().partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), self.expected_token)

    def too_large(self) -> TooLarge:
        return TooLarge(f"request body over {self.limits.max_body_bytes} bytes (the server's --max-body-bytes)")

    def parse(self, raw: bytes) -> dict:
        """A request body as a JSON object within the limits (runs in a worker thread): ``TooLarge``
        for too many messages, ``RoutingError`` for a body that is no valid JSON object."""
        body = _parse_body(raw)
        messages = body.get("messages")
        if isinstance(messages, list) and len(messages) > self.limits.max_messages:
            raise TooLarge(f"request has {len(messages)} messages, over the server's limit of "
                           f"{self.limits.max_messages} (--max-messages)")
        return body

    def checked_prompt(self, prompt: str) -> str:
        """The text a request is routed on, if within the limit."""
        if len(prompt) > self.limits.max_prompt_chars:
            raise TooLarge(f"prompt of {len(prompt)} characters, over the server's limit of "
                           f"{self.limits.max_prompt_chars} (--max-prompt-chars)")
        return prompt

    def route_answer(self, raw: bytes) -> dict:
        """``/v1/route``'s answer to a request body (runs in a worker thread)."""
        body = self.parse(raw)
        router, threshold = _parse_target(body)
        prompt = body["prompt"] if isinstance(body.get("prompt"), str) else message_text(body.get("messages"))
        decision = self.decide(router, threshold, self.checked_prompt(prompt))
        answer = {"model": decision.model, "router": router, "threshold": _rule_value(decision.threshold),
                  "win_rate": decision.win_rate}
        if decision.scores is not None:
            answer["scores"] = decision.scores
        return answer

    def chat_request(self, raw: bytes) -> tuple[dict, bool]:
        """The upstream request for a chat request body, and whether it streams (runs in a worker
        thread): parsed, checked and routed."""
        body = self.parse(raw)
        stream = _stream_flag(body)
        return _upstream_request(body, self.choose_model(body)), stream

    def decide(self, router: str, threshold: str | float, prompt: str) -> Decision:
        """The controller's decision, timed and counted; runs in a worker thread."""
        start = time.perf_counter()
        decision = self.controller.decide(prompt, router, threshold)
        self.stats.decisions.labels(router, decision.model).inc()
        self.stats.latency.labels(router).observe(time.perf_counter() - start)
        if logger.isEnabledFor(logging.INFO):
            logger.info("router=%s threshold=%s win_rate=%.5f -> %s; counts %s", router, _rule_text(decision.threshold),
                        decision.win_rate, decision.model,
                        {r: dict(c) for r, c in self.controller.model_counts.items()})
        return decision

    def choose_model(self, body: dict) -> str:
        """The model a chat request goes to: the one it names directly, or the one its router picks."""
        if body.get("model") in self.direct_models:  # a model named directly: proxied as it is
            self.stats.direct.labels(body["model"]).inc()
            return body["model"]
        router, threshold = _parse_target(body)
        return self.decide(router, threshold, self.checked_prompt(message_text(body.get("messages")))).model

    def upstream_failure(self, exc: Exception, stage: str, model: str, *, started: bool = False) -> Failure | None:
        """How an upstream failure is answered (its row of ``ERRORS``; ``started``: in a stream whose
        status is sent), counted and, where the row says, logged; None for an error that is no
        upstream failure at ``stage``."""
        failure = failure_for(exc, stage, model, " mid-stream" if started else "")
        if failure is not None:
            self.stats.upstream_errors.labels(failure.rule.kind).inc()
            if failure.rule.log:
                logger.error("upstream stream of model %s failed", model, exc_info=exc)
        return failure

    async def call_upstream(self, request: dict, *, stream: bool):
        """The upstream model's answer to ``request``: JSON, or a stream; its failures as ``ERRORS`` says."""
        model = request["model"]
        try:
            response = await self.upstream.aforward(request)
            answer = None if stream else await asyncio.to_thread(_answer_json, response)
        except Exception as exc:
            failure = self.upstream_failure(exc, UPSTREAM, model)
            if failure is None:  # not the upstream's failure: the request's, answered by _answer_error
                raise
            return failure.response()
        return await self.stream(response, model) if stream else Response(answer, media_type="application/json")

    async def stream(self, response: Any, model: str):
        """An upstream stream as SSE. Its first chunk is read before the status line is sent, so that
        an upstream whose answer is no stream at all (an HTML page, invalid JSON) gets a 502, not a 200."""
        chunks = aiter(response)
        try:
            first = await _first_chunk(response, chunks)
        except Exception as exc:  # noqa: BLE001  # every error has a STREAM row (logged when unexpected)
            await _close(response)
            return self.upstream_failure(exc, STREAM, model).response()  # type: ignore[union-attr]
        return StreamingResponse(self.events(response, chunks, first, model), media_type="text/event-stream")

    async def events(self, response: Any, chunks: AsyncIterator[Any], first: str, model: str) -> AsyncIterator[str]:
        """The SSE events of a started stream. The status line is gone: a failure from here on is
        reported in-band, then [DONE]."""
        try:
            yield f"data: {first}\n\n"
            async for chunk in chunks:
                yield f"data: {_chunk_json(chunk)}\n\n"
        except Exception as exc:  # noqa: BLE001  # anything the upstream's client raises: still end the stream
            yield self.upstream_failure(exc, STREAM, model, started=True).event()  # type: ignore[union-attr]
        finally:  # also when the client goes away mid-stream: release the upstream connection
            await _close(response)
        yield "data: [DONE]\n\n"


class _Guard:
    """The app's outer middleware (plain ASGI), before any route runs: the bearer token (when the
    server has a client key), then the whole body, read within ``body_timeout`` and
    ``max_body_bytes`` and handed to the app as if unread. A body too large (declared or as it
    arrives) is answered 413, one too slow 408, both with ``Connection: close``: its unread rest
    cannot be taken for a next request, and a slow-loris client loses its connection. So is a 401
    to a request with a body, which no one should wait for."""

    def __init__(self, app: Any, server: _Server) -> None:
        self.app, self.server = app, server

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        server, limits = self.server, self.server.limits
        headers = {k.lower(): v for k, v in scope["headers"]
                   if k.lower() in (b"authorization", b"content-length", b"transfer-encoding")}
        declared = headers.get(b"content-length", b"")
        if server.expected_token is not None and scope["path"] != "/health" and \
                not server.authorized(headers.get(b"authorization", b"").decode("latin-1")):
            response = error_response(Unauthorized("missing or wrong bearer token"))
            if declared.strip(b"0") or b"transfer-encoding" in headers:
                response.headers["connection"] = "close"
            return await response(scope, receive, send)
        if declared.isdigit() and int(declared) > limits.max_body_bytes:
            return await self.refuse(server.too_large(), scope, receive, send)
        parts: list[bytes] = []
        size, more = 0, True
        with anyio.move_on_after(limits.body_timeout):
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # the client went away: no one to answer
                part = message.get("body", b"")
                size += len(part)
                if size > limits.max_body_bytes:  # bodies without Content-Length are capped as they arrive
                    return await self.refuse(server.too_large(), scope, receive, send)
                parts.append(part)
                more = message.get("more_body", False)
        if more:
            return await self.refuse(BodyTimeout(f"request body not received within {limits.body_timeout:g} s "
                                                 "(the server's --body-timeout)"), scope, receive, send)
        body = b"".join(parts)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:  # the body once; then the client's own messages (a disconnect)
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def refuse(exc: Exception, scope: dict, receive: Any, send: Any) -> None:
        response = error_response(exc)
        response.headers["connection"] = "close"
        await response(scope, receive, send)


def create_app(
    controller: Controller,
    *,
    client_api_key: str | None = None,
    max_body_bytes: int = Limits.max_body_bytes,
    max_messages: int = Limits.max_messages,
    max_prompt_chars: int = Limits.max_prompt_chars,
    body_timeout: float = Limits.body_timeout,
    target_strong_pct: float | None = None,
    window: int = 1000,
    upstream_timeout: float = 60.0,
    cache_entries: int = 10_000,
):
    """The FastAPI app serving ``controller``'s routers (see the module docstring). The upstream
    endpoint and key are the controller's (``api_base``, ``api_key``); ``client_api_key`` (not empty
    or blank) makes every route but ``/health`` require ``Authorization: Bearer <client_api_key>``.
    ``max_body_bytes``, ``max_messages``, ``max_prompt_chars`` and ``body_timeout`` bound one request
    (:class:`Limits`)."""
    limits = Limits(max_body_bytes=max_body_bytes, max_messages=max_messages, max_prompt_chars=max_prompt_chars,
                    body_timeout=body_timeout)
    return _Server(controller, client_api_key=client_api_key, limits=limits,
                   target_strong_pct=target_strong_pct, window=window, upstream_timeout=upstream_timeout,
                   cache_entries=cache_entries).app()


class _LiveMetrics:
    """Metrics read at scrape time: embedding-cache hits and misses (counters) and the online
    thresholds (gauges)."""

    def __init__(self, caches: dict[str, CachedEmbedder], controller: Controller) -> None:
        self.caches, self.controller = caches, controller

    def collect(self):
        hits = CounterMetricFamily("routellm_fast_embedding_cache_hits", "Embedding cache hits", labels=["router"])
        misses = CounterMetricFamily("routellm_fast_embedding_cache_misses", "Embedding cache misses", labels=["router"])
        for name, cache in self.caches.items():
            hits.add_metric([name], cache.hits)
            misses.add_metric([name], cache.misses)
        threshold = GaugeMetricFamily("routellm_fast_online_threshold", "Current online threshold", labels=["router"])
        share = GaugeMetricFamily("routellm_fast_online_strong_share", "Strong-model share over the window",
                                  labels=["router"])
        for name, online in self.controller.online_thresholds.items():
            threshold.add_metric([name], online.threshold)
            share.add_metric([name], online.strong_share)
        yield from (hits, misses, threshold, share)


def _rule_text(threshold: Any) -> str:
    return str(threshold) if isinstance(threshold, CostWeight) else f"{float(threshold):.5f}"


def _rule_value(threshold: Any) -> Any:
    """A decision's threshold in JSON: the number, or ``"cost-<lambda>"`` for the cost-aware rule."""
    return str(threshold) if isinstance(threshold, CostWeight) else threshold


@dataclass
class ServerSettings:
    """What ``routellm-fast serve`` is started with (RouteLLM's ``openai_server`` flags and ours):
    enough to build the controller and app in each worker process."""

    routers: list[str] = field(default_factory=lambda: ["sw_ranking"])
    strong_model: str = DEFAULT_STRONG_MODEL
    weak_model: str = DEFAULT_WEAK_MODEL
    config: str | None = None
    base_url: str | None = None
    #: The upstream key (RouteLLM's ``--api-key``); None: ``$OPENAI_API_KEY``.
    api_key: str | None = None
    #: The key clients must send (``--client-api-key``); None: no client authentication.
    client_api_key: str | None = None
    #: The limits of one request (:class:`Limits`).
    max_body_bytes: int = Limits.max_body_bytes
    max_messages: int = Limits.max_messages
    max_prompt_chars: int = Limits.max_prompt_chars
    body_timeout: float = Limits.body_timeout
    target_strong_pct: float | None = None
    window: int = 1000
    upstream_timeout: float = 60.0
    verbose: bool = False
    #: Which shipped mf, sw_ranking and knn (``--embedder``): ``"minilm"`` or ``"static"``; None: each
    #: on the embedder it routes best on (the Controller's default).
    embedder: str | None = None
    #: Route among these models with their costs (``--models``); None: the pair.
    models: dict[str, float] | None = None

    def __post_init__(self) -> None:
        check_client_api_key(self.client_api_key)  # before any process starts
        Limits(self.max_body_bytes, self.max_messages, self.max_prompt_chars, self.body_timeout)

    def app(self):
        """The controller and app these settings describe."""
        if self.verbose:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
            logger.setLevel(logging.INFO)
        controller = Controller(self.routers, self.strong_model, self.weak_model, config=self.config,
                                api_base=self.base_url, api_key=self.api_key, embedder=self.embedder,
                                models=self.models)
        return create_app(controller, client_api_key=self.client_api_key, max_body_bytes=self.max_body_bytes,
                          max_messages=self.max_messages, max_prompt_chars=self.max_prompt_chars,
                          body_timeout=self.body_timeout, target_strong_pct=self.target_strong_pct,
                          window=self.window, upstream_timeout=self.upstream_timeout)


def _worker_app(**settings: Any) -> FastAPI:
    """A worker process's app (``--workers N``), from the fields of its :class:`ServerSettings`."""
    return ServerSettings(**settings).app()


def _run_workers(settings: ServerSettings, workers: int, options: dict) -> None:
    """uvicorn's worker processes (what ``uvicorn.run(..., workers=N)`` does), each building its app
    from ``settings``, which reach it through multiprocessing's pipe, not the environment
    (:mod:`.workers`)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(WorkerApp(f"{__name__}:{_worker_app.__name__}", asdict(settings)), factory=True,
                            workers=workers, **options)
    sockets = [config.bind_socket()]
    if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn: the supervisor takes a target
        Multiprocess(config, target=uvicorn.Server(config).run, sockets=sockets).run()
    else:
        Multiprocess(config, sockets=sockets).run()


def serve(settings: ServerSettings | Controller, host: str = "127.0.0.1", port: int = 6060, workers: int = 1,
          *, limit_concurrency: int | None = None, timeout_keep_alive: float = KEEP_ALIVE_S, **kwargs: Any) -> None:
    """Run the server (blocking) on ``host:port``: from :class:`ServerSettings`, in ``workers``
    processes (RouteLLM's ``--workers``; 0 means 1), or for a ready ``Controller`` (one process;
    ``kwargs`` go to :func:`create_app`). ``limit_concurrency`` (uvicorn's: connections and requests
    at once per process, beyond which requests get 503) and ``timeout_keep_alive`` (seconds an idle
    connection stays open) go to uvicorn."""
    import uvicorn

    options = {"host": host, "port": port, "log_level": "info", "timeout_keep_alive": timeout_keep_alive,
               "limit_concurrency": limit_concurrency}
    if isinstance(settings, Controller):
        uvicorn.run(create_app(settings, **kwargs), **options)
        return
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers <= 1:
        uvicorn.run(settings.app(), **options)
        return
    _run_workers(settings, workers, options)
