"""How the server answers errors: ONE table, :data:`ERRORS`, from exception types to HTTP statuses
and messages, for

* a request's own errors (``stage=REQUEST``): the app's exception handler answers them;
* the upstream call and its plain answer (``UPSTREAM``): a 502 or 504 JSON error, counted in
  ``routellm_fast_upstream_errors`` under the row's ``kind``;
* an upstream stream (``STREAM``): a failure on its first chunk, read before the status line, is a
  JSON error as above; a later one, once the status is sent, ends the stream in-band with the same
  row's message and an OpenAI error event of the row's ``event`` type.

Errors are JSON ``{"object": "error", "message": ...}`` as RouteLLM's server sends them; in a stream,
``data: {"error": {"message", "type", "param", "code"}}`` as OpenAI sends them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import openai
from fastapi.responses import JSONResponse

from ..errors import EmbeddingError, RoutingError

logger = logging.getLogger("routellm_fast.serve.server")

__all__ = [
    "ERRORS",
    "REQUEST",
    "REQUEST_ERRORS",
    "STREAM",
    "UPSTREAM",
    "BadUpstream",
    "BodyTimeout",
    "EmptyStream",
    "ErrorRule",
    "Failure",
    "TooLarge",
    "Unauthorized",
    "error_response",
    "failure_for",
]

#: Where an error is raised: handling a request; calling the upstream model (and reading its plain
#: answer); reading its stream.
REQUEST, UPSTREAM, STREAM = "request", "upstream", "stream"


class Unauthorized(Exception):
    """A missing or wrong bearer token."""


class TooLarge(Exception):
    """A request over one of the server's limits: body size, message count, prompt length (the
    message says which)."""


class BodyTimeout(Exception):
    """A request body that did not arrive within the server's body timeout (a slow-loris client)."""


class BadUpstream(Exception):
    """An upstream answer that is not a chat completion (or chunk) at all."""


class EmptyStream(Exception):
    """An upstream stream that ended before its first chunk."""


@dataclass(frozen=True)
class ErrorRule:
    """One row of :data:`ERRORS`: errors of ``types`` raised at one of ``stages`` are answered with
    ``status`` and ``message``, a :meth:`str.format` template of ``{exc}`` (the error), ``{name}`` (its
    type's name), ``{model}`` (the upstream model) and ``{mid}`` (``" mid-stream"`` once a stream has
    started, else empty). Upstream failures are counted under ``kind``; ``log`` ones (of any stage) are
    also logged with their traceback, and ``event`` is the type of the in-band error event of a started stream."""

    types: type[Exception] | tuple[type[Exception], ...]
    status: int
    message: str
    stages: tuple[str, ...] = (REQUEST,)
    kind: str | None = None
    event: str = "upstream_error"
    log: bool = False


#: Errors to statuses, first matching row first (each row's ``stages`` say where it applies). An
#: error no row of its stage matches goes on up: from an upstream call to the request's rows, and
#: from a request to FastAPI (a 500).
ERRORS: tuple[ErrorRule, ...] = (
    # A request's own errors.
    ErrorRule(Unauthorized, 401, "{exc}"),
    ErrorRule(TooLarge, 413, "{exc}"),
    ErrorRule(BodyTimeout, 408, "{exc}"),
    ErrorRule(RoutingError, 400, "{exc}"),
    ErrorRule((ValueError, TypeError), 400, "{exc}"),
    ErrorRule(EmbeddingError, 502, "{exc}"),
    # A model that needs an extra this server lacks (LiteLLM for a provider-prefixed name).
    ErrorRule(ImportError, 501, "{exc}"),
    # A router failing inside (onnxruntime, thread creation): the server's fault, not the request's;
    # the traceback goes to the log, the client gets the message.
    ErrorRule(RuntimeError, 503, "routing failed: {name}: {exc}", log=True),
    # The upstream model's failures.
    ErrorRule(openai.APITimeoutError, 504, "upstream model {model} timed out{mid}", (UPSTREAM, STREAM),
              kind="timeout", event="upstream_timeout"),
    ErrorRule(openai.APIStatusError, 502, "upstream model {model} answered HTTP {exc.status_code}: {exc.message}",
              (UPSTREAM,), kind="status"),
    ErrorRule(openai.APIError, 502, "upstream model {model} failed: {exc}", (UPSTREAM,), kind="connection"),
    ErrorRule(openai.APIError, 502, "upstream model {model} failed{mid}: {exc}", (STREAM,), kind="stream"),
    ErrorRule((json.JSONDecodeError, UnicodeDecodeError), 502, "upstream model {model} answered invalid JSON: {exc}",
              (UPSTREAM,), kind="invalid"),  # a body labelled JSON that is not
    ErrorRule(BadUpstream, 502, "upstream model {model} answered {exc}", (UPSTREAM,), kind="invalid"),
    ErrorRule(EmptyStream, 502, "upstream model {model} answered {exc}", (STREAM,), kind="invalid"),
    ErrorRule((ValueError, BadUpstream), 502, "upstream model {model} sent an invalid stream chunk: {exc}",
              (STREAM,), kind="invalid"),  # json's JSONDecodeError, UnicodeDecodeError
    # Anything else the upstream's client raises in a stream: still a 502, or the end of the stream.
    ErrorRule(Exception, 502, "upstream model {model} failed{mid}: {name}: {exc}", (STREAM,), kind="stream",
              log=True),
)

#: The error types the app's exception handler answers.
REQUEST_ERRORS: tuple[type[Exception], ...] = tuple(dict.fromkeys(
    error for rule in ERRORS if REQUEST in rule.stages
    for error in (rule.types if isinstance(rule.types, tuple) else (rule.types,))
))


@dataclass(frozen=True)
class Failure:
    """An error as the client gets it: the matching ``rule`` and the message it shows."""

    rule: ErrorRule
    message: str

    def response(self) -> JSONResponse:
        """The JSON error, with the rule's status."""
        return JSONResponse({"object": "error", "message": self.message}, status_code=self.rule.status)

    def event(self) -> str:
        """The error inside a started stream, as OpenAI sends it (the openai client raises
        ``APIError`` with this message)."""
        error = {"message": self.message, "type": self.rule.event, "param": None, "code": None}
        return f"data: {json.dumps({'error': error})}\n\n"


def failure_for(exc: BaseException, stage: str, model: Any = None, mid: str = "") -> Failure | None:
    """How ``exc``, raised at ``stage``, is answered (the first row of :data:`ERRORS` that matches);
    None when no row of that stage does."""
    for rule in ERRORS:
        if stage in rule.stages and isinstance(exc, rule.types):
            return Failure(rule, rule.message.format(exc=exc, name=type(exc).__name__, model=model, mid=mid))
    return None


def error_response(exc: BaseException) -> JSONResponse:
    """The JSON error answering a request's own error ``exc`` (one of :data:`REQUEST_ERRORS`),
    logged with its traceback where its row says."""
    failure = failure_for(exc, REQUEST)
    if failure.rule.log:  # type: ignore[union-attr]  # its types all have a row
        logger.error("request failed: %s", failure.message, exc_info=exc)  # type: ignore[union-attr]
    return failure.response()  # type: ignore[union-attr]
