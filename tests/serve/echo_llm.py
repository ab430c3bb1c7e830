"""``EchoLLMServer``: a small OpenAI-compatible chat-completions server on 127.0.0.1 that stands in for
the LLM upstream in the tests (and in benchmarks/load_test.py): it answers every request (plain or
streamed) with the name of the model it was asked for, so routing decisions can be read back. Not to
be confused with the package's client of a real upstream, ``routellm_fast.serve.upstream.Upstream``.

``EchoLLMServer.fault`` (settable while it runs) makes it a broken upstream instead, answering every
request with status 200 and:

* ``"invalid_json"``: a truncated JSON body labelled ``application/json``;
* ``"html"``: an HTML error page labelled ``text/html`` (what a proxy in front of a model shows);
* ``"not_an_object"``: valid JSON that is not an object (a list);
* ``"bad_choices"``: a completion whose ``choices`` is a string, ``"no_choices"`` one without them,
  ``"bad_choice"`` one whose choice has no message;
* ``"broken_sse"``: for streamed requests, a valid first chunk, then a chunk that is not JSON, then
  the rest and ``[DONE]`` (plain requests are answered normally);
* ``"broken_first_sse"``: the same with the invalid chunk first; ``"bad_choices_sse"`` with a first
  chunk whose ``choices`` is a string, ``"no_choices_sse"`` with a second chunk without them.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops connections under 64 concurrent requests


#: What each body fault answers: (Content-Type, body).
BODY_FAULTS = {
    "invalid_json": ("application/json", b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"ind'),
    "html": ("text/html; charset=utf-8", b"<html><head><title>502 Bad Gateway</title></head>"
                                         b"<body><h1>502 Bad Gateway</h1></body></html>"),
    "not_an_object": ("application/json", b'["not", "a", "completion"]'),
    "bad_choices": ("application/json", b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": "nope"}'),
    "no_choices": ("application/json", b'{"id": "chatcmpl-1", "object": "chat.completion", "created": 1}'),
    "bad_choice": ("application/json", b'{"id": "chatcmpl-1", "object": "chat.completion", '
                                       b'"choices": [{"index": 0, "finish_reason": "stop"}]}'),
}
INVALID_CHUNK = 'data: {"id": "chatcmpl-x", "choices": [{"delta": {"content": "trunc\n\n'
#: Stream faults: the index of the chunk replaced, and the event that replaces it.
STREAM_FAULTS = {
    "broken_sse": (1, INVALID_CHUNK),
    "broken_first_sse": (0, INVALID_CHUNK),
    "bad_choices_sse": (0, 'data: {"id": "chatcmpl-x", "object": "chat.completion.chunk", "choices": "nope"}\n\n'),
    "no_choices_sse": (1, 'data: {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1}\n\n'),
}


class EchoLLMServer:
    def __init__(self, delay: float = 0.0, port: int = 0, fault: str | None = None) -> None:
        self.requests: list[dict] = []
        self.delay = delay
        self.fault = fault
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer._lock:
                    outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization"),
                                           "headers": dict(self.headers)})
                    n = len(outer.requests)
                if outer.delay:
                    time.sleep(outer.delay)
                model, fault = body["model"], outer.fault
                if fault in BODY_FAULTS:
                    return self.send(200, *BODY_FAULTS[fault])
                if body.get("stream"):
                    return self.stream(model, n, *STREAM_FAULTS.get(fault, (None, None)))
                payload = json.dumps({
                    "id": f"chatcmpl-{len(outer.requests)}", "object": "chat.completion", "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"answered by {model}"}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
                }).encode()
                self.send(200, "application/json", payload)

            def send(self, status, content_type, payload):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def stream(self, model, n, broken_at=None, replacement=None):
                parts = ["answered ", "by ", model]
                events = []
                for i, text in enumerate(parts):
                    chunk = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": int(time.time()),
                             "model": model, "choices": [{"index": 0, "delta": {"content": text},
                                                          "finish_reason": "stop" if i == len(parts) - 1 else None}]}
                    events.append(replacement if i == broken_at else f"data: {json.dumps(chunk)}\n\n")
                events.append("data: [DONE]\n\n")
                self.send(200, "text/event-stream", "".join(events).encode())

        self.server = _Server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> EchoLLMServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
