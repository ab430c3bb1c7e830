"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for the tests: it answers every
request (plain or streamed) with the name of the model it was asked for, so routing decisions can
be read back."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops connections under 64 concurrent requests


class Upstream:
    def __init__(self, delay: float = 0.0, port: int = 0) -> None:
        self.requests: list[dict] = []
        self.delay = delay
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
                model = body["model"]
                if body.get("stream"):
                    return self.stream(model, n)
                payload = json.dumps({
                    "id": f"chatcmpl-{len(outer.requests)}", "object": "chat.completion", "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"answered by {model}"}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def stream(self, model, n):
                parts = ["answered ", "by ", model]
                events = []
                for i, text in enumerate(parts):
                    chunk = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": int(time.time()),
                             "model": model, "choices": [{"index": 0, "delta": {"content": text},
                                                          "finish_reason": "stop" if i == len(parts) - 1 else None}]}
                    events.append(f"data: {json.dumps(chunk)}\n\n")
                events.append("data: [DONE]\n\n")
                payload = "".join(events).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = _Server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "Upstream":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
