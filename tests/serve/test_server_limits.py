"""The server's limits on one request (issue #26): message count, prompt length, body size and the
body timeout (slow-loris clients), numbers JSON cannot carry, malformed upstream completions, the
statuses of router and extra failures, an empty client key, the ``serve`` flags, and one large
request not holding the event loop. Real servers on loopback (uvicorn in a thread, or
``routellm-fast serve`` in a child process), raw sockets where the connection itself is tested."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import openai
import pytest
import routellm_fast as rf
from routellm_fast.cli import main
from routellm_fast.errors import MissingExtraError
from routellm_fast.serve.http_errors import REQUEST, failure_for
from routellm_fast.serve.server import Limits, ServerSettings, create_app

from tests.helpers import STRONG, WEAK
from tests.serve.live import Running, serve_process

pytest.importorskip("uvicorn")

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def controller(upstream):
    return rf.Controller(["random"], STRONG, WEAK, api_base=upstream.url)


@pytest.fixture(scope="module")
def server(controller):
    with Running(create_app(controller, max_messages=10, max_prompt_chars=100, body_timeout=0.5)) as running:
        yield running


@pytest.fixture
def faulty(upstream):
    yield upstream
    upstream.fault = None


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 response from ``sock``: status, headers (lower-case names), body; status 0 when
    the server closed the connection instead."""
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        if not part:
            return 0, {}, data
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def post(sock: socket.socket, path: str, body: bytes) -> tuple[int, dict, bytes]:
    """One keep-alive POST on an open connection."""
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return read_response(sock)


def closed(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (reads until EOF; the socket's timeout bounds the wait)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


# -- message count and prompt length


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/route"])
def test_too_many_messages_is_a_413_before_any_upstream_call(server, upstream, path):
    sent = len(upstream.requests)
    r = httpx.post(server.url + path, json={"model": "router-random-0.5", "messages": MESSAGES * 11})
    assert r.status_code == 413 and r.json() == {
        "object": "error", "message": "request has 11 messages, over the server's limit of 10 (--max-messages)"}
    assert len(upstream.requests) == sent
    r = httpx.post(server.url + path, json={"model": "router-random-0.5", "messages": MESSAGES * 10})
    assert r.status_code == 200


def test_a_prompt_over_the_limit_is_a_413(server, upstream):
    sent = len(upstream.requests)
    long = [{"role": "user", "content": "x" * 101}]
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "router-random-0.5", "messages": long})
    assert r.status_code == 413
    assert r.json()["message"] == "prompt of 101 characters, over the server's limit of 100 (--max-prompt-chars)"
    r = httpx.post(server.url + "/v1/route", json={"model": "router-random-0.5", "prompt": "y" * 101})
    assert r.status_code == 413 and "prompt of 101 characters" in r.json()["message"]
    assert len(upstream.requests) == sent
    # Only the routed text counts (the last message): earlier long messages pass.
    r = httpx.post(server.url + "/v1/route", json={"model": "router-random-0.5", "messages": long + MESSAGES})
    assert r.status_code == 200


def test_limits_are_checked():
    for bad in ({"max_messages": 0}, {"max_body_bytes": -1}, {"max_prompt_chars": True}, {"body_timeout": 0},
                {"body_timeout": float("inf")}, {"body_timeout": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Limits(**bad)
        with pytest.raises(ValueError, match=next(iter(bad))):
            ServerSettings(**bad)


# -- bodies too large or too slow


def test_a_body_over_the_limit_without_content_length_is_a_413_and_closes_the_connection(controller):
    with Running(create_app(controller, max_body_bytes=1000)) as running:
        chunks = iter([b'{"model": "router-random-0.5", "prompt": "', b"y" * 2000, b'"}'])
        r = httpx.post(running.url + "/v1/route", content=chunks)  # chunked: no Content-Length
        assert r.status_code == 413 and r.headers["connection"] == "close"
        assert r.json()["message"] == "request body over 1000 bytes (the server's --max-body-bytes)"


def test_a_slow_body_is_a_408_and_its_connection_closed(server):
    """A slow-loris client: headers, part of the body, then nothing. The server answers 408 once
    the body timeout (0.5 s here) has passed and closes the connection; the socket's own timeout of
    30 s only stops the test from hanging if the server never did."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/route HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n" + b'{"model": "router-')
        status, headers, body = read_response(sock)
        assert status == 408 and headers["connection"] == "close"
        assert json.loads(body) == {"object": "error",
                                    "message": "request body not received within 0.5 s (the server's --body-timeout)"}
        assert closed(sock)
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


# -- numbers


BIG = "1" * 400


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/v1/chat/completions", f'{{"model": "router-random-{BIG}", "messages": [{{"role": "user", "content": "hi"}}]}}',
     "Invalid threshold inf."),
    ("/v1/route", f'{{"router": "random", "threshold": {BIG}, "prompt": "hi"}}', f"Invalid threshold {BIG}."),
    ("/v1/route", f'{{"router": "random", "threshold": -{BIG}.5e3, "prompt": "hi"}}', "out of the range of a 64-bit float"),
    ("/v1/route", f'{{"router": "random", "threshold": {"7" * 5000}, "prompt": "hi"}}', "an integer of more than 4300 digits"),
    ("/v1/route", '{"router": "random", "threshold": NaN, "prompt": "hi"}', "NaN is not a JSON number"),
    ("/v1/chat/completions", '{"model": "router-random-0.5", "temperature": Infinity, "messages": []}',
     "Infinity is not a JSON number"),
    ("/v1/chat/completions", '{"model": "router-random-0.5", "top_p": -Infinity, "messages": []}',
     "-Infinity is not a JSON number"),
    ("/v1/chat/completions", '{"model": "router-random-0.5", "temperature": 1e400, "messages": []}',
     "the number 1e400, out of the range"),
    ("/v1/route", f'{{"model": "router-random-cost-{BIG}", "prompt": "hi"}}', "Invalid cost weight inf"),
    ("/v1/route", f'{{"model": "router-random-{BIG}%", "prompt": "hi"}}', "must be a percentage"),
    ("/v1/route", '{"router": ["random"], "threshold": 0.5, "prompt": "hi"}', "a router name is a string"),
    ("/v1/chat/completions", f'{{"model": "router-random-0.5", "stream": {BIG}, "messages": []}}',
     "stream must be true or false"),
])
def test_every_malformed_number_is_a_400_and_the_connection_stays_usable(server, upstream, path, body, message):
    sent = len(upstream.requests)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        status, headers, answer = post(sock, path, body.encode())
        assert status == 400 and headers["content-type"] == "application/json"
        assert answer.startswith(b'{"object":"error","message":') and message in json.loads(answer)["message"]
        # The same keep-alive connection serves the next request.
        status, _, answer = post(sock, "/v1/route", b'{"model": "router-random-0.5", "prompt": "hi"}')
        assert status == 200 and json.loads(answer)["model"] in (STRONG, WEAK)
    assert len(upstream.requests) == sent


# -- malformed upstream answers


@pytest.mark.parametrize(("fault", "problem"), [
    ("bad_choices", "answered a completion with 'choices' that is not a list: 'nope'"),
    ("no_choices", "answered a completion with no 'choices'"),
    ("bad_choice", "answered a completion whose choice 0 is not an object with a 'message' object"),
])
def test_a_completion_without_its_choices_is_a_502(server, faulty, fault, problem):
    faulty.fault = fault
    with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as c:
        with pytest.raises(openai.APIStatusError) as caught:
            c.chat.completions.create(model="router-random-0.5", messages=MESSAGES)
    assert caught.value.status_code == 502 and problem in caught.value.message
    faulty.fault = None
    assert httpx.post(server.url + "/v1/chat/completions",
                      json={"model": "router-random-0.5", "messages": MESSAGES}).status_code == 200


def test_stream_chunks_without_their_choices_are_a_502_or_an_error_event(server, faulty):
    faulty.fault = "bad_choices_sse"  # the first chunk: before the status line
    r = httpx.post(server.url + "/v1/chat/completions",
                   json={"model": "router-random-0.5", "messages": MESSAGES, "stream": True})
    assert r.status_code == 502
    assert "sent an invalid stream chunk: a stream chunk with 'choices' that is not a list" in r.json()["message"]
    faulty.fault = "no_choices_sse"  # the second chunk: in-band
    with httpx.stream("POST", server.url + "/v1/chat/completions",
                      json={"model": "router-random-0.5", "messages": MESSAGES, "stream": True}) as r:
        lines = [line for line in r.iter_lines() if line]
    assert r.status_code == 200 and len(lines) == 3 and lines[2] == "data: [DONE]"
    error = json.loads(lines[1].removeprefix("data: "))["error"]
    assert "a stream chunk with no 'choices'" in error["message"]


# -- failures inside the server


def test_router_and_extra_failures_have_their_own_statuses(controller, monkeypatch):
    failure = failure_for(RuntimeError("onnxruntime: bad allocation"), REQUEST)
    assert failure.rule.status == 503 and failure.message == "routing failed: RuntimeError: onnxruntime: bad allocation"
    failure = failure_for(MissingExtraError("pip install 'routellm_fast[litellm]'"), REQUEST)
    assert failure.rule.status == 501 and "routellm_fast[litellm]" in failure.message
    app = create_app(controller)

    def failing(*args, **kwargs):  # a router failing inside, as onnxruntime or a thread pool can
        raise RuntimeError("thread creation failed")

    monkeypatch.setattr(controller, "decide", failing)
    with Running(app) as running, httpx.Client() as c:
        r = c.post(running.url + "/v1/route", json={"model": "router-random-0.5", "prompt": "hi"})
        assert r.status_code == 503 and r.json() == {
            "object": "error", "message": "routing failed: RuntimeError: thread creation failed"}
        monkeypatch.undo()
        assert c.post(running.url + "/v1/route", json={"model": "router-random-0.5", "prompt": "hi"}).status_code == 200


# -- the client key


@pytest.mark.parametrize("key", ["", "   ", "\t", " sk-padded"])
def test_an_empty_or_blank_client_key_refuses_to_start(controller, key, monkeypatch, capsys):
    with pytest.raises(ValueError, match="client API key"):
        create_app(controller, client_api_key=key)
    with pytest.raises(ValueError, match="client API key"):
        ServerSettings(client_api_key=key)
    assert main(["serve", "--client-api-key", key]) == 2
    err = capsys.readouterr().err
    assert err.startswith("routellm-fast: error: the client API key") and err.count("\n") == 1
    monkeypatch.setenv("ROUTELLM_FAST_CLIENT_API_KEY", key)
    assert main(["serve"]) == 2
    assert "$ROUTELLM_FAST_CLIENT_API_KEY" in capsys.readouterr().err


# -- the serve flags


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--port", "99999", "from 0 to 65535"), ("--port", "-1", "from 0 to 65535"), ("--port", "http", "from 0 to"),
    ("--max-body-bytes", "-1", ">= 1"), ("--max-body-bytes", "0", ">= 1"), ("--max-messages", "0", ">= 1"),
    ("--max-prompt-chars", "1.5", ">= 1"), ("--body-timeout", "0", "seconds > 0"), ("--body-timeout", "nan", "> 0"),
    ("--upstream-timeout", "inf", "> 0"), ("--timeout-keep-alive", "-5", "> 0"), ("--workers", "-1", ">= 0"),
    ("--limit-concurrency", "0", ">= 1"), ("--window", "0", ">= 1"),
])
def test_serve_flags_are_checked(flag, value, expected, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["serve", flag, value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}: expected" in err and expected in err and "Traceback" not in err


def test_serve_flags_reach_the_server(upstream, tmp_path):
    """`routellm-fast serve --max-messages 3 --body-timeout 1`: a fourth message is a 413, a slow
    body a 408 after 1 s, over a real socket."""
    args = ["--routers", "random", "--base-url", upstream.url, "--max-messages", "3", "--body-timeout", "1",
            "--limit-concurrency", "100", "--timeout-keep-alive", "10"]
    with serve_process(args, tmp_path / "server.log") as port:
        url = f"http://127.0.0.1:{port}"
        r = httpx.post(url + "/v1/route", json={"model": "router-random-0.5", "messages": MESSAGES * 4})
        assert r.status_code == 413 and "(--max-messages)" in r.json()["message"]
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
            status, headers, _ = read_response(sock)
            assert status == 408 and headers["connection"] == "close" and closed(sock)


# -- one large request does not hold the event loop


def test_a_large_request_does_not_stall_health(controller, upstream):
    """33,000 messages (1.2 MB, limits raised to let it through): parsing, routing and encoding run
    in worker threads, and the request is forwarded as the JSON it came as. Before, the openai
    client's argument transformation walked every message on the event loop: /health waited 15-20 s
    (2 cores). The bound below, 5 s for each /health while the big request runs, is a generous one
    for a loaded machine; the request itself takes under 1 s here when idle."""
    big = json.dumps({"model": "router-random-0.5", "messages": MESSAGES * 33_000}).encode()
    app = create_app(controller, max_body_bytes=2 << 20, max_messages=50_000)
    with Running(app) as running:
        done, answer = threading.Event(), {}

        def send_big():
            answer["status"] = httpx.post(running.url + "/v1/chat/completions", content=big, timeout=120).status_code
            done.set()

        waits = []
        with httpx.Client(timeout=120) as c:
            c.get(running.url + "/health")
            thread = threading.Thread(target=send_big)
            thread.start()
            while not done.is_set():
                start = time.monotonic()
                assert c.get(running.url + "/health").status_code == 200
                waits.append(time.monotonic() - start)
                time.sleep(0.02)
            thread.join()
    assert answer["status"] == 200 and len(upstream.requests[-1]["body"]["messages"]) == 33_000
    assert max(waits) < 5.0, waits


def test_an_unauthorized_request_with_a_body_is_a_401_and_closes_its_connection(controller):
    """The body of a request without the key is never read: the connection is closed, so a client
    trickling that body cannot keep it open."""
    with Running(create_app(controller, client_api_key="sk-router")) as running:
        with socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
            sock.sendall(b"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            status, headers, body = read_response(sock)
            assert status == 401 and headers["connection"] == "close" and closed(sock)
        with socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")  # no body: the connection stays
            status, headers, _ = read_response(sock)
            assert status == 401 and "connection" not in headers
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock)[0] == 200
