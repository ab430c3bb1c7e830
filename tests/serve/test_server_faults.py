"""The routing server against a broken upstream and hostile request bodies: every fault is a JSON
error with the right status (or, once a stream has started, an OpenAI error event and ``[DONE]``),
never a 500 or a dropped connection. Real servers on loopback: the router under uvicorn, the test
upstream (tests/serve/echo_llm.py) with its ``fault`` set, the official openai client."""

from __future__ import annotations

import json
import socket
import time

import httpx
import openai
import pytest
import routellm_fast as rf
from routellm_fast.serve.server import KEEP_ALIVE_S, MAX_NESTING, create_app

from tests.helpers import STRONG, WEAK
from tests.serve.live import Running, serve_process

pytest.importorskip("uvicorn")

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def faulty(upstream):
    """The upstream, with a fault set by the test and cleared after it."""
    yield upstream
    upstream.fault = None


@pytest.fixture(scope="module")
def server(upstream):
    ctl = rf.Controller(["random"], STRONG, WEAK, api_base=upstream.url)
    with Running(create_app(ctl)) as running:
        yield running


@pytest.fixture(scope="module")
def oai(server):
    """The official openai client, pointed at the router."""
    with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as c:
        yield c


def chat(server, **body):
    return httpx.post(server.url + "/v1/chat/completions", timeout=30,
                      json={"model": "router-random-0.5", "messages": MESSAGES, **body})


def sse_lines(server, **body) -> list[str]:
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=30,
                      json={"model": "router-random-0.5", "messages": MESSAGES, "stream": True, **body}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        return [line for line in r.iter_lines() if line]


def assert_healthy(server, oai):
    """The server still answers, and a plain request through it still works."""
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    answer = oai.chat.completions.create(model="router-random-0.5", messages=MESSAGES)
    assert answer.choices[0].message.content in (f"answered by {STRONG}", f"answered by {WEAK}")


@pytest.mark.parametrize(("fault", "problem"), [
    ("invalid_json", "answered invalid JSON"),
    ("html", "answered a body that is not JSON: '<html>"),
    ("not_an_object", "answered JSON that is not an object: ['not', 'a', 'completion']"),
])
def test_an_upstream_body_that_is_no_completion_is_a_json_502(server, oai, faulty, fault, problem):
    faulty.fault = fault
    with pytest.raises(openai.APIStatusError) as caught:
        oai.chat.completions.create(model="router-random-0.5", messages=MESSAGES)
    assert caught.value.status_code == 502 and problem in caught.value.message
    r = chat(server)
    assert r.status_code == 502 and r.headers["content-type"] == "application/json"
    assert r.json()["object"] == "error" and problem in r.json()["message"]
    faulty.fault = None
    assert_healthy(server, oai)


@pytest.mark.parametrize(("fault", "problem"), [
    ("invalid_json", "answered a stream without any chunk (Content-Type: application/json)"),
    ("html", "answered a stream without any chunk (Content-Type: text/html"),
    ("not_an_object", "answered a stream without any chunk"),
    ("broken_first_sse", "sent an invalid stream chunk"),
])
def test_a_stream_that_fails_before_its_first_chunk_is_a_json_502(server, oai, faulty, fault, problem):
    """Nothing has been sent yet: the client gets a real status, not a 200 with an empty stream."""
    faulty.fault = fault
    with pytest.raises(openai.APIStatusError) as caught:
        oai.chat.completions.create(model="router-random-0.5", messages=MESSAGES, stream=True)
    assert caught.value.status_code == 502 and problem in caught.value.message
    r = chat(server, stream=True)
    assert r.status_code == 502 and problem in r.json()["message"]
    faulty.fault = None
    assert_healthy(server, oai)


def test_an_invalid_chunk_mid_stream_ends_it_with_an_error_event_and_done(server, oai, faulty):
    faulty.fault = "broken_sse"
    lines = sse_lines(server)
    assert len(lines) == 3, lines
    first = json.loads(lines[0].removeprefix("data: "))
    assert first["object"] == "chat.completion.chunk" and first["choices"][0]["delta"]["content"] == "answered "
    error = json.loads(lines[1].removeprefix("data: "))["error"]  # OpenAI's error shape
    assert error["type"] == "upstream_error" and "sent an invalid stream chunk" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert lines[2] == "data: [DONE]"
    # The openai client reads the first chunk, then raises with the server's message.
    stream = oai.chat.completions.create(model="router-random-0.5", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIError, match="sent an invalid stream chunk"):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["answered "]
    text = httpx.get(server.url + "/metrics").text
    assert float(text.split('routellm_fast_upstream_errors_total{kind="invalid"} ')[1].split()[0]) >= 2
    faulty.fault = None
    assert_healthy(server, oai)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/v1/route", "/v1/chat/completions"])
@pytest.mark.parametrize("depth", [100_000, 5_000, 990, MAX_NESTING])
def test_a_deeply_nested_request_body_is_a_json_400(server, oai, upstream, path, depth):
    sent = len(upstream.requests)
    body = f'{{"model": "router-random-0.5", "messages": [{{"role": "user", "content": "hi"}}], "x": {nested(depth)}}}'
    r = httpx.post(server.url + path, content=body, timeout=30)
    assert r.status_code == 400 and r.json() == {"object": "error",
                                                 "message": f"request body is nested deeper than {MAX_NESTING} levels."}
    assert len(upstream.requests) == sent  # refused before any upstream call
    assert_healthy(server, oai)


def test_nesting_up_to_the_limit_is_served(oai, upstream):
    """The body itself is level 1, so a field may nest MAX_NESTING - 1 deep: a deep JSON schema in
    ``tools`` or ``response_format`` still reaches the upstream."""
    deep: list = []
    for _ in range(MAX_NESTING - 2):
        deep = [deep]
    answer = oai.chat.completions.create(model="router-random-0.5", messages=MESSAGES,
                                                    extra_body={"x": deep})
    assert answer.choices[0].message.content.startswith("answered by")
    assert upstream.requests[-1]["body"]["x"] == deep
    with pytest.raises(openai.BadRequestError, match="nested deeper than"):
        oai.chat.completions.create(model="router-random-0.5", messages=MESSAGES, extra_body={"x": [deep]})


def test_many_brackets_without_depth_are_served(server):
    """The depth walk runs only for bodies with many brackets, and passes wide ones."""
    messages = [{"role": "user", "content": [{"type": "text", "text": f"part {i}"}]} for i in range(300)]
    r = httpx.post(server.url + "/v1/route", json={"model": "router-random-0.5", "messages": messages})
    assert r.status_code == 200 and r.json()["model"] in (STRONG, WEAK)


def http_get(sock: socket.socket, path: str) -> bytes:
    """One keep-alive GET on an open connection; b"" when the server has closed it."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        if not part:
            return data
        data += part
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head


def test_serve_keeps_idle_connections_open_longer_than_clients_pool_them(upstream, tmp_path):
    """`routellm-fast serve` (uvicorn) keeps an idle keep-alive connection open past uvicorn's
    default 5 s, the time httpx and the openai client keep one in their pools: a client never sends
    a request on a connection the server is closing."""
    assert KEEP_ALIVE_S > 60
    with serve_process(["--routers", "random", "--base-url", upstream.url], tmp_path / "server.log") as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert http_get(sock, "/health").startswith(b"HTTP/1.1 200")
            time.sleep(6.0)  # idle past uvicorn's default timeout_keep_alive of 5 s
            assert http_get(sock, "/health").startswith(b"HTTP/1.1 200")
