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
oversized bodies 413, request bodies nested deeper than ``MAX_NESTING`` 400, upstream failures 502
(also an answer that is not JSON, not a JSON object, or a stream without a valid first chunk) and
upstream timeouts 504 — never an unhandled 500. Once a stream has started, an upstream failure (an
invalid chunk, a dropped connection) ends it with an OpenAI error event, ``data: {"error": {...}}``,
then ``data: [DONE]``. These statuses and messages come from one table, :data:`.http_errors.ERRORS`.
Scoring runs in worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import openai
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
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
    EmptyStream,
    Failure,
    TooLarge,
    Unauthorized,
    error_response,
    failure_for,
)
from .upstream import Upstream, target

__all__ = ["KEEP_ALIVE_S", "MAX_NESTING", "ServerSettings", "create_app", "serve"]

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


def _shown(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _as_dict(response: Any) -> dict:
    """A completion (openai's or LiteLLM's object, or a mapping) as JSON-ready data; ``BadUpstream``
    for anything else (the openai client returns a non-JSON body as a string, and JSON that is not
    an object as it is)."""
    if hasattr(response, "model_dump"):
        return response.model_dump(exclude_none=True)
    if isinstance(response, Mapping):
        return dict(response)
    kind = "a body that is not JSON" if isinstance(response, str) else "JSON that is not an object"
    raise BadUpstream(f"{kind}: {_shown(response)}")


def _chunk_json(chunk: Any) -> str:
    """One stream chunk as the JSON of an SSE ``data:`` line; ``BadUpstream`` for a chunk that is
    not a JSON object."""
    if hasattr(chunk, "model_dump_json"):
        return chunk.model_dump_json()
    if isinstance(chunk, Mapping):
        return json.dumps(dict(chunk))
    raise BadUpstream(f"a stream chunk that is not a JSON object: {_shown(chunk)}")


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
    return body.get("router"), body.get("threshold")


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


class _Server:
    """One app's state (the controller, the upstream client, the limits, the metrics) and its
    handlers: the routes, the auth-and-size middleware, and the shared steps they take (reading a
    JSON body, deciding, calling the upstream model and streaming its answer)."""

    def __init__(self, controller: Controller, *, client_api_key: str | None, max_body_bytes: int,
                 target_strong_pct: float | None, window: int, upstream_timeout: float, cache_entries: int) -> None:
        self.controller, self.max_body_bytes = controller, max_body_bytes
        self.upstream = Upstream(controller.api_base, controller.api_key, timeout=upstream_timeout, max_retries=0)
        pair = controller.model_pair
        for model in (pair.strong, pair.weak):
            target(model)  # a provider that needs LiteLLM, without it, fails here and not per request
        # Models a request may name directly: the pair, and the models routed among.
        self.direct_models = list(dict.fromkeys([pair.strong, pair.weak, *(controller.models or {})]))
        self.expected_token = client_api_key.encode() if client_api_key is not None else None
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
        app.middleware("http")(self.auth_and_size)
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
        body = await self.read_json(request)
        router, threshold = _parse_target(body)
        prompt = body["prompt"] if isinstance(body.get("prompt"), str) else message_text(body.get("messages"))
        decision = await asyncio.to_thread(self.decide, router, threshold, prompt)
        answer = {"model": decision.model, "router": router, "threshold": _rule_value(decision.threshold),
                  "win_rate": decision.win_rate}
        if decision.scores is not None:
            answer["scores"] = decision.scores
        return answer

    async def chat_completions(self, request: Request):
        body = await self.read_json(request)
        model = await self.choose_model(body)
        return await self.call_upstream(_upstream_request(body, model), stream=bool(body.get("stream")))

    async def metrics(self):
        return PlainTextResponse(generate_latest(self.stats.registry), media_type=CONTENT_TYPE_LATEST)

    # -- shared steps

    def authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), self.expected_token)

    def too_large(self) -> TooLarge:
        return TooLarge(f"request body over {self.max_body_bytes} bytes")

    async def auth_and_size(self, request: Request, call_next):
        """The middleware: a bearer token (when the server has a client key) and a declared size
        within the limit, before any route runs."""
        if self.expected_token is not None and request.url.path != "/health" and not self.authorized(request):
            return error_response(Unauthorized("missing or wrong bearer token"))
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return error_response(self.too_large())
        return await call_next(request)

    async def read_json(self, request: Request) -> dict:
        """The request's body, a JSON object within the size and nesting limits (else ``TooLarge``
        or ``RoutingError``)."""
        raw = bytearray()
        async for part in request.stream():  # bodies without Content-Length are capped as they arrive
            raw += part
            if len(raw) > self.max_body_bytes:
                raise self.too_large()
        try:
            body = json.loads(bytes(raw))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RoutingError(f"request body is not valid JSON: {exc}") from None
        except RecursionError:  # json's C decoder stops at the recursion limit and says so
            raise RoutingError(f"request body is nested deeper than {MAX_NESTING} levels.") from None
        if not isinstance(body, dict):
            raise RoutingError("request body must be a JSON object.")
        # Only a body with more brackets than MAX_NESTING can nest that deep: others are not walked.
        if raw.count(b"[") + raw.count(b"{") > MAX_NESTING and _too_deep(body, MAX_NESTING):
            raise RoutingError(f"request body is nested deeper than {MAX_NESTING} levels.")
        return body

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

    async def choose_model(self, body: dict) -> str:
        """The model a chat request goes to: the one it names directly, or the one its router picks."""
        if body.get("model") in self.direct_models:  # a model named directly: proxied as it is
            self.stats.direct.labels(body["model"]).inc()
            return body["model"]
        router, threshold = _parse_target(body)
        prompt = message_text(body.get("messages"))
        return (await asyncio.to_thread(self.decide, router, threshold, prompt)).model

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
            response = await self.upstream.acreate(request)
            answer = response if stream else _as_dict(response)
        except Exception as exc:
            failure = self.upstream_failure(exc, UPSTREAM, model)
            if failure is None:  # not the upstream's failure: the request's, answered by _answer_error
                raise
            return failure.response()
        return await self.stream(response, model) if stream else JSONResponse(answer)

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


def create_app(
    controller: Controller,
    *,
    client_api_key: str | None = None,
    max_body_bytes: int = 1 << 20,
    target_strong_pct: float | None = None,
    window: int = 1000,
    upstream_timeout: float = 60.0,
    cache_entries: int = 10_000,
):
    """The FastAPI app serving ``controller``'s routers (see the module docstring). The upstream
    endpoint and key are the controller's (``api_base``, ``api_key``); ``client_api_key`` makes
    every route but ``/health`` require ``Authorization: Bearer <client_api_key>``."""
    return _Server(controller, client_api_key=client_api_key, max_body_bytes=max_body_bytes,
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
    max_body_bytes: int = 1 << 20
    target_strong_pct: float | None = None
    window: int = 1000
    upstream_timeout: float = 60.0
    verbose: bool = False
    #: Which shipped mf and sw_ranking (``--embedder``): ``"minilm"`` or ``"static"``.
    embedder: str = "minilm"
    #: Route among these models with their costs (``--models``); None: the pair.
    models: dict[str, float] | None = None

    def app(self):
        """The controller and app these settings describe."""
        if self.verbose:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
            logger.setLevel(logging.INFO)
        controller = Controller(self.routers, self.strong_model, self.weak_model, config=self.config,
                                api_base=self.base_url, api_key=self.api_key, embedder=self.embedder,
                                models=self.models)
        return create_app(controller, client_api_key=self.client_api_key, max_body_bytes=self.max_body_bytes,
                          target_strong_pct=self.target_strong_pct, window=self.window,
                          upstream_timeout=self.upstream_timeout)


_SETTINGS_ENV = "ROUTELLM_FAST_SERVER_SETTINGS"


def _app_from_environment():
    """The app factory each worker process calls (``--workers N``): settings come from the parent
    through the environment."""
    return ServerSettings(**json.loads(os.environ[_SETTINGS_ENV])).app()


def serve(settings: ServerSettings | Controller, host: str = "127.0.0.1", port: int = 6060, workers: int = 1,
          **kwargs: Any) -> None:
    """Run the server (blocking) on ``host:port``: from :class:`ServerSettings`, in ``workers``
    processes (RouteLLM's ``--workers``; 0 means 1), or for a ready ``Controller`` (one process;
    ``kwargs`` go to :func:`create_app`)."""
    import uvicorn

    options = {"host": host, "port": port, "log_level": "info", "timeout_keep_alive": KEEP_ALIVE_S}
    if isinstance(settings, Controller):
        uvicorn.run(create_app(settings, **kwargs), **options)
        return
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers <= 1:
        uvicorn.run(settings.app(), **options)
        return
    # uvicorn starts worker processes that import the app: hand them the settings.
    os.environ[_SETTINGS_ENV] = json.dumps(asdict(settings))
    uvicorn.run("routellm_fast.serve.server:_app_from_environment", factory=True, workers=workers, **options)
