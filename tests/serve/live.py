"""The routing server run for real on loopback: ``Running`` (an app under uvicorn in a background
thread, as a context manager; the ``serve_app`` fixture of tests/conftest.py starts one for a test)
and ``serve_process`` (``routellm-fast serve`` in a child process)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.helpers import free_port


@contextlib.contextmanager
def serve_process(args: list[str], log_path, env: dict | None = None, started: list | None = None):
    """`routellm-fast serve ARGS` in a child process on a free port, its output in log_path; yields
    the port once /health answers, and stops it with SIGINT (as Ctrl-C) afterwards. ``started``, a
    list, receives the process's ``Popen``."""
    port = free_port()
    with open(log_path, "w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "routellm_fast", "serve", *args, "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        if started is not None:
            started.append(proc)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None and time.time() < deadline, Path(log_path).read_text()
                time.sleep(0.2)
            yield port
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Running:
    """A uvicorn server for ``app`` on a free loopback port, in a background thread."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
