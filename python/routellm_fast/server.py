"""An OpenAI-compatible routing server (FastAPI + uvicorn), started as RouteLLM's ``openai_server``.

Endpoints:

* ``POST /v1/chat/completions`` — RouteLLM's server: ``model="router-<router>-<threshold>"`` picks
  the model, the request goes to it (plain or SSE streaming) through the upstream endpoint, with the
  controller's ``api_key`` (RouteLLM's ``--api-key``), or through LiteLLM for provider-prefixed model
  names (:mod:`routellm_fast.upstream`). ``model="router-<router>-auto"`` uses the online threshold
  (``--target-strong-pct``); the strong or weak model's own name reaches that model directly.
  OpenAI request fields are forwarded by name, unknown ones in the body; the openai client's call
  options (``timeout``, ``extra_headers``, ``extra_query``, ``extra_body``) never come from a client.
* ``POST /v1/route`` — the decision only, no LLM call: ``{model, router, threshold, win_rate}``.
* ``GET /v1/models`` (names that work), ``GET /health``, ``GET /metrics`` (Prometheus).

With ``client_api_key`` every route but ``/health`` needs ``Authorization: Bearer <key>``. Routing
errors are 400 JSON (``{"object": "error", "message": ...}`` as RouteLLM), bad bearer tokens 401,
oversized bodies 413, upstream failures 502 and upstream timeouts 504 — never an unhandled 500.
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
from collections.abc import AsyncIterator
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

from .controller import Controller
from .embedders import CachedEmbedder, EmbeddingError
from .models import DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL
from .policy import (
    AUTO,
    Decision,
    RoutingError,
    message_text,
    parse_model_name,
    recorded_win_rates,
    share_threshold,
)
from .routers import EmbeddingRouter
from .upstream import Upstream, target

__all__ = ["ServerSettings", "create_app", "serve"]

logger = logging.getLogger("routellm_fast.server")

#: Options the openai client takes by name that are not request fields: from a client's body they
#: would steer the upstream call itself (its timeout, headers, query), so they are never used as such.
TRANSPORT_OPTIONS = frozenset({"timeout", "extra_headers", "extra_query", "extra_body"})
#: The OpenAI chat-completion request fields, forwarded by name; any other field of a request
#: (vLLM's repetition_penalty, say) goes to the upstream body unchanged, as ``extra_body``.
REQUEST_FIELDS = frozenset(inspect.signature(openai.resources.chat.completions.AsyncCompletions.create).parameters) \
    - {"self"} - TRANSPORT_OPTIONS


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"object": "error", "message": message}, status_code=status)


def _as_dict(response: Any) -> Any:
    """A response object (openai's or LiteLLM's) as JSON-ready data."""
    if hasattr(response, "model_dump"):
        return response.model_dump(exclude_none=True)
    return dict(response)


class _TooLarge(Exception):
    pass


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
    upstream = Upstream(controller.api_base, controller.api_key, timeout=upstream_timeout, max_retries=0)
    pair = controller.model_pair
    for model in (pair.strong, pair.weak):
        target(model)  # a provider that needs LiteLLM, without it, fails here and not per request

    registry = CollectorRegistry()
    decisions = Counter("routellm_fast_decisions", "Routing decisions", ["router", "model"], registry=registry)
    direct = Counter("routellm_fast_direct_requests", "Requests naming a model directly (not routed)", ["model"],
                     registry=registry)
    latency = Histogram("routellm_fast_routing_seconds", "Time to score and decide one request", ["router"],
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=registry)
    upstream_errors = Counter("routellm_fast_upstream_errors", "Failed upstream requests", ["kind"], registry=registry)

    caches: dict[str, CachedEmbedder] = {}
    for name, router in controller.routers.items():
        if isinstance(router, EmbeddingRouter):  # the server embeds repeated prompts once
            caches[name] = router.use_embedding_cache(cache_entries)
    if target_strong_pct is not None:
        controller.use_online_threshold(target_strong_pct, window)
    registry.register(_LiveMetrics(caches, controller))

    async def lifespan(app):
        yield
        await upstream.aclose()

    app = FastAPI(title="routellm_fast", lifespan=lifespan)
    expected_token = client_api_key.encode() if client_api_key is not None else None

    def authorized(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), expected_token)

    @app.middleware("http")
    async def auth_and_size(request: Request, call_next):
        if expected_token is not None and request.url.path != "/health" and not authorized(request):
            return _error(401, "missing or wrong bearer token")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return _error(413, f"request body over {max_body_bytes} bytes")
        return await call_next(request)

    def parse_target(body: dict) -> tuple[str, str | float]:
        if "model" in body:
            return parse_model_name(body["model"])
        return body.get("router"), body.get("threshold")

    def decide(router: str, threshold: str | float, prompt: str) -> Decision:
        """The controller's decision, timed and counted; runs in a worker thread."""
        start = time.perf_counter()
        decision = controller.decide(prompt, router, threshold)
        decisions.labels(router, decision.model).inc()
        latency.labels(router).observe(time.perf_counter() - start)
        if logger.isEnabledFor(logging.INFO):
            logger.info("router=%s threshold=%.5f win_rate=%.5f -> %s; counts %s", router, decision.threshold,
                        decision.win_rate, decision.model,
                        {r: dict(c) for r, c in controller.model_counts.items()})
        return decision

    async def read_json(request: Request) -> dict:
        raw = bytearray()
        async for part in request.stream():  # bodies without Content-Length are capped as they arrive
            raw += part
            if len(raw) > max_body_bytes:
                raise _TooLarge()
        try:
            body = json.loads(bytes(raw))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RoutingError(f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise RoutingError("request body must be a JSON object.")
        return body

    @app.exception_handler(RoutingError)
    async def routing_error(request: Request, exc: RoutingError):
        return _error(400, str(exc))

    @app.exception_handler(_TooLarge)
    async def too_large(request: Request, exc: _TooLarge):
        return _error(413, f"request body over {max_body_bytes} bytes")

    @app.exception_handler(ValueError)
    @app.exception_handler(TypeError)
    async def bad_input(request: Request, exc: Exception):
        return _error(400, str(exc))

    @app.exception_handler(EmbeddingError)
    async def embedding_failed(request: Request, exc: EmbeddingError):
        return _error(502, str(exc))

    @app.get("/health")
    async def health():
        return {"status": "ok", "routers": list(controller.routers)}

    @app.get("/v1/models")
    async def models():
        """The routing names that work (``router-<name>-<threshold for half strong calls>``, and
        ``-auto`` in online mode) and the two models, which a request may also name directly."""
        now = int(time.time())
        ids = []
        for name, router in controller.routers.items():
            if name in controller.online_thresholds:
                ids.append(f"router-{name}-{AUTO}")
            rates = recorded_win_rates(router)
            ids.append(f"router-{name}-{round(share_threshold(rates, 0.5), 5) if rates is not None else 0.5}")
        data = [{"id": i, "object": "model", "created": now, "owned_by": "routellm_fast"} for i in ids]
        data += [{"id": m, "object": "model", "created": now, "owned_by": "upstream"} for m in (pair.strong, pair.weak)]
        return {"object": "list", "data": data}

    @app.post("/v1/route")
    async def route(request: Request):
        body = await read_json(request)
        router, threshold = parse_target(body)
        prompt = body["prompt"] if isinstance(body.get("prompt"), str) else message_text(body.get("messages"))
        decision = await asyncio.to_thread(decide, router, threshold, prompt)
        return {"model": decision.model, "router": router, "threshold": decision.threshold, "win_rate": decision.win_rate}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await read_json(request)
        if body.get("model") in (pair.strong, pair.weak):  # a model named directly: proxied as it is
            model = body["model"]
            direct.labels(model).inc()
        else:
            router, threshold = parse_target(body)
            prompt = message_text(body.get("messages"))
            model = (await asyncio.to_thread(decide, router, threshold, prompt)).model
        forward = {k: v for k, v in body.items() if k in REQUEST_FIELDS}
        extra = {k: v for k, v in body.items() if k not in REQUEST_FIELDS and k not in ("router", "threshold")}
        forward["model"] = model
        if extra:
            forward["extra_body"] = extra
        try:
            response = await upstream.acreate(forward)
        except openai.APITimeoutError:
            upstream_errors.labels("timeout").inc()
            return _error(504, f"upstream model {model} timed out")
        except openai.APIStatusError as exc:
            upstream_errors.labels("status").inc()
            return _error(502, f"upstream model {model} answered HTTP {exc.status_code}: {exc.message}")
        except openai.APIError as exc:
            upstream_errors.labels("connection").inc()
            return _error(502, f"upstream model {model} failed: {exc}")
        if body.get("stream"):
            async def events() -> AsyncIterator[str]:
                try:
                    async for chunk in response:
                        data = chunk.model_dump_json() if hasattr(chunk, "model_dump_json") else json.dumps(_as_dict(chunk))
                        yield f"data: {data}\n\n"
                except openai.APIError as exc:  # the status line is gone: report in-band
                    upstream_errors.labels("stream").inc()
                    yield f"data: {json.dumps({'object': 'error', 'message': str(exc)})}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return JSONResponse(_as_dict(response))

    @app.get("/metrics")
    async def metrics():
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


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

    def app(self):
        """The controller and app these settings describe."""
        if self.verbose:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
            logger.setLevel(logging.INFO)
        controller = Controller(self.routers, self.strong_model, self.weak_model, config=self.config,
                                api_base=self.base_url, api_key=self.api_key, embedder=self.embedder)
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

    log_level = "info"
    if isinstance(settings, Controller):
        uvicorn.run(create_app(settings, **kwargs), host=host, port=port, log_level=log_level)
        return
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers <= 1:
        uvicorn.run(settings.app(), host=host, port=port, log_level=log_level)
        return
    # uvicorn starts worker processes that import the app: hand them the settings.
    os.environ[_SETTINGS_ENV] = json.dumps(asdict(settings))
    uvicorn.run("routellm_fast.server:_app_from_environment", factory=True, host=host, port=port, workers=workers,
                log_level=log_level)
