"""The routing server, started for real on loopback and driven with the official openai client."""

from __future__ import annotations

import json
import os
import sys
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import routellm_fast as rf
from routellm_fast.formats.tables import read_prompts
from routellm_fast.routers.shipped import default_threshold
from routellm_fast.serve.server import create_app

from tests.helpers import STRONG, WEAK, free_port
from tests.serve.echo_llm import EchoLLMServer
from tests.serve.live import Running, serve_process

pytest.importorskip("uvicorn")

PROMPTS = ["Prove that the square root of 2 is irrational.", "hi", "Write a haiku about the sea.",
           "Implement a thread-safe LRU cache in C++.", "What is 2 + 2?", "Summarise the French revolution."]


@pytest.fixture(scope="module")
def controller(upstream):
    return rf.Controller(["sw_ranking", "random"], STRONG, WEAK, api_base=upstream.url, api_key="sk-up")


@pytest.fixture(scope="module")
def server(controller):
    with Running(create_app(controller, client_api_key="sk-router", max_body_bytes=64_000)) as running:
        yield running


def client(server, key="sk-router", **kw):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, **kw)


def test_routed_model_equals_controller_route(server, controller, upstream):
    threshold = float(np.median(controller.routers["sw_ranking"].score(PROMPTS)))
    c = client(server)
    for prompt in PROMPTS:
        expected = controller.route(prompt, "sw_ranking", threshold)
        # RouteLLM's example clients: model=f"router-{router}-{threshold}"
        response = c.chat.completions.create(model=f"router-sw_ranking-{threshold}",
                                             messages=[{"role": "user", "content": prompt}], max_tokens=5,
                                             extra_body={"repetition_penalty": 1.1})  # a field the SDK does not know
        assert response.model == expected
        assert response.choices[0].message.content == f"answered by {expected}"
        sent = upstream.requests[-1]
        assert sent["auth"] == "Bearer sk-up" and sent["body"]["max_tokens"] == 5
        assert sent["body"]["repetition_penalty"] == 1.1 and sent["body"]["model"] == expected
        decision = httpx.post(server.url + "/v1/route", headers={"Authorization": "Bearer sk-router"},
                              json={"model": f"router-sw_ranking-{threshold}", "prompt": prompt}).json()
        assert decision["model"] == expected and decision["router"] == "sw_ranking"
        assert decision["threshold"] == threshold
        assert decision["win_rate"] == pytest.approx(controller.routers["sw_ranking"].calculate_strong_win_rate(prompt))


def test_streaming_delivers_chunks_and_done(server):
    c = client(server)
    stream = c.chat.completions.create(model="router-random-0.0", stream=True,
                                       messages=[{"role": "user", "content": "tell me a story"}])
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == f"answered by {STRONG}"  # threshold 0: always the strong model
    with httpx.stream("POST", server.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-router"},
                      json={"model": "router-random-1.0", "stream": True,
                            "messages": [{"role": "user", "content": "hi"}]}) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in raw.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and len(lines) == 4
    assert json.loads(lines[0][len("data: "):])["model"] == WEAK


def test_64_concurrent_requests(server, controller):
    c = client(server)
    model = f"router-sw_ranking-{controller.calibrated_thresholds('sw_ranking')[0.2]}"  # 20% strong calls

    def one(i):
        return c.chat.completions.create(model=model, messages=[{"role": "user", "content": PROMPTS[i % 6]}]).model

    with ThreadPoolExecutor(64) as pool:
        models = list(pool.map(one, range(64)))
    assert len(models) == 64 and set(models) <= {STRONG, WEAK}


def test_client_errors(server):
    c = client(server)
    msg = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError, match="Invalid router bert"):
        c.chat.completions.create(model="router-bert-0.5", messages=msg)
    with pytest.raises(openai.BadRequestError, match="Invalid threshold 2.0"):
        c.chat.completions.create(model="router-sw_ranking-2.0", messages=msg)
    with pytest.raises(openai.BadRequestError, match="Threshold x must be a float"):
        c.chat.completions.create(model="router-sw_ranking-x", messages=msg)
    with pytest.raises(openai.BadRequestError, match="messages must be"):
        c.chat.completions.create(model="router-sw_ranking-0.5", messages=[])
    with pytest.raises(openai.AuthenticationError):
        client(server, key="wrong").chat.completions.create(model="router-random-0.5", messages=msg)
    headers = {"Authorization": "Bearer sk-router"}
    r = httpx.post(server.url + "/v1/chat/completions", headers=headers, content=b"{not json")
    assert r.status_code == 400 and r.json()["object"] == "error"
    r = httpx.post(server.url + "/v1/route", headers=headers, json={"model": "router-random-0.5", "prompt": "x" * 70_000})
    assert r.status_code == 413
    chunks = iter([b'{"model": "router-random-0.5", "prompt": "', b"y" * 70_000, b'"}'])
    r = httpx.post(server.url + "/v1/route", headers=headers, content=chunks)  # chunked: no Content-Length
    assert r.status_code == 413
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_metrics(server):
    text = httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer sk-router"}).text
    assert 'routellm_fast_decisions_total{model="gpt-4-1106-preview",router="sw_ranking"}' in text
    assert "routellm_fast_routing_seconds_bucket" in text
    assert 'routellm_fast_embedding_cache_hits_total{router="sw_ranking"}' in text
    hits = float(text.split('routellm_fast_embedding_cache_hits_total{router="sw_ranking"} ')[1].split()[0])
    assert hits > 0  # the same prompts came back


def test_dead_and_slow_upstream():
    port = free_port()  # nothing listens there
    dead = rf.Controller(["random"], STRONG, WEAK, api_base=f"http://127.0.0.1:{port}/v1")
    with Running(create_app(dead)) as running:
        r = httpx.post(running.url + "/v1/chat/completions",
                       json={"model": "router-random-0.5", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 502 and "failed" in r.json()["message"]
    with EchoLLMServer(delay=2.0) as slow:
        ctl = rf.Controller(["random"], STRONG, WEAK, api_base=slow.url)
        with Running(create_app(ctl, upstream_timeout=0.3)) as running:
            r = httpx.post(running.url + "/v1/chat/completions", timeout=10,
                           json={"model": "router-random-0.5", "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 504 and "timed out" in r.json()["message"]


def test_online_threshold_keeps_the_strong_share(upstream):
    ctl = rf.Controller(["sw_ranking"], STRONG, WEAK, api_base=upstream.url)
    prompts = read_prompts()[:200]
    with Running(create_app(ctl, target_strong_pct=0.3, window=100)) as running:
        decisions = [httpx.post(running.url + "/v1/route", json={"model": "router-sw_ranking-auto", "prompt": p}).json()
                     for p in prompts]
        text = httpx.get(running.url + "/metrics").text
        r = httpx.post(running.url + "/v1/route", json={"model": "router-random-auto", "prompt": "hi"})
    # It starts from the calibrated threshold for 30% (it started from 0.5: 43% strong over 200 calls).
    assert decisions[0]["threshold"] == pytest.approx(default_threshold(0.3, "sw_ranking"), abs=1e-12)
    strong = np.array([d["model"] == STRONG for d in decisions])
    assert abs(strong.mean() - 0.3) < 0.08
    assert abs(strong[50:].mean() - 0.3) < 0.12  # once the window has filled up
    assert 'routellm_fast_online_threshold{router="sw_ranking"}' in text
    assert r.status_code == 400


@pytest.mark.parametrize("content", [
    "Prove that the square root of 2 is irrational.",
    [{"type": "text", "text": "Prove that the square root of 2"}, {"type": "text", "text": "is irrational."}],
    [{"type": "image_url", "image_url": {"url": "data:,"}}, {"type": "text", "text": "What is 2 + 2?"}],
])
def test_server_and_controller_choose_the_same_model_for_the_same_messages(server, controller, content):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "an earlier turn"},
                {"role": "assistant", "content": "ok"}, {"role": "user", "content": content}]
    threshold = float(np.median(controller.routers["sw_ranking"].score(PROMPTS)))
    model = f"router-sw_ranking-{threshold}"
    through_controller = controller.chat.completions.create(model=model, messages=messages).model
    with client(server) as c:
        through_server = c.chat.completions.create(model=model, messages=messages).model
    decision = httpx.post(server.url + "/v1/route", headers={"Authorization": "Bearer sk-router"},
                          json={"model": model, "messages": messages}).json()
    assert through_controller == through_server == decision["model"]
    text = content if isinstance(content, str) else "\n".join(p["text"] for p in content if p["type"] == "text")
    assert decision["win_rate"] == controller.routers["sw_ranking"].calculate_strong_win_rate(text)


def test_upstream_key_defaults_to_the_environment(upstream, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    ctl = rf.Controller(["random"], STRONG, WEAK, api_base=upstream.url)
    with Running(create_app(ctl)) as running, client(running, key="unused") as c:
        c.chat.completions.create(model="router-random-0.5", messages=[{"role": "user", "content": "hi"}])
    assert upstream.requests[-1]["auth"] == "Bearer sk-from-env"


def test_models_lists_only_names_that_work(server, upstream):
    """Every id of /v1/models works as a model: routing names at the calibrated threshold for half
    strong calls, and the two models themselves, proxied as they are."""
    ids = [m["id"] for m in httpx.get(server.url + "/v1/models", headers={"Authorization": "Bearer sk-router"}).json()["data"]]
    assert ids == [f"router-sw_ranking-{round(default_threshold(0.5, 'sw_ranking'), 5)}", "router-random-0.5", STRONG, WEAK]
    c = client(server)
    for model in ids:
        response = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert response.model in (STRONG, WEAK)
        if model in (STRONG, WEAK):
            assert response.model == model == upstream.requests[-1]["body"]["model"]
    text = httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer sk-router"}).text
    assert f'routellm_fast_direct_requests_total{{model="{WEAK}"}} 1.0' in text


def test_client_auth_covers_every_route_but_health(server, upstream):
    for path in ("/metrics", "/docs", "/openapi.json", "/v1/models", "/redoc"):
        assert httpx.get(server.url + path).status_code == 401, path
        assert httpx.get(server.url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
        for scheme in ("Bearer", "bearer", "BEARER"):
            assert httpx.get(server.url + path, headers={"Authorization": f"{scheme} sk-router"}).status_code == 200
    assert httpx.post(server.url + "/v1/route", json={"model": "router-random-0.5", "prompt": "hi"}).status_code == 401
    assert httpx.get(server.url + "/health").status_code == 200
    # The upstream sees the upstream key, never the client's.
    client(server).chat.completions.create(model="router-random-0.5", messages=[{"role": "user", "content": "hi"}])
    assert upstream.requests[-1]["auth"] == "Bearer sk-up"


def test_transport_options_in_a_body_do_not_steer_the_upstream_call(server, upstream):
    body = {"model": "router-random-0.5", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
            "timeout": 1e-6, "extra_headers": {"Authorization": "Bearer stolen", "X-Injected": "1"},
            "extra_query": {"api-version": "evil"}, "extra_body": {"model": "gpt-5"}}
    r = httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-router"}, json=body)
    assert r.status_code == 200  # a 1 us timeout would have been a 504
    sent = upstream.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-up"
    assert "X-Injected" not in sent["headers"]
    assert sent["body"]["model"] in (STRONG, WEAK) and sent["body"]["max_tokens"] == 3


class _FakeLiteLLM(types.ModuleType):
    provider_list = ["openai", "anyscale"]

    def __init__(self):
        super().__init__("litellm")
        self.calls = []

    async def acompletion(self, **kwargs):
        self.calls.append(kwargs)
        return {"id": "x", "object": "chat.completion", "model": kwargs["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}]}


def test_provider_prefixed_models_need_litellm(upstream, monkeypatch):
    ctl = rf.Controller(["random"], STRONG, "ollama_chat/llama3", api_base=upstream.url)
    monkeypatch.setitem(sys.modules, "litellm", None)
    with pytest.raises(ImportError, match=r"routellm_fast\[litellm\]"):
        create_app(ctl)  # at start-up, not on the first request
    fake = _FakeLiteLLM()
    monkeypatch.setitem(sys.modules, "litellm", fake)
    ctl = rf.Controller(["random"], STRONG, "anyscale/mistralai/Mixtral-8x7B-Instruct-v0.1", api_base=upstream.url,
                        api_key="sk-up")
    with Running(create_app(ctl, upstream_timeout=7.0)) as running, client(running, key="x") as c:
        response = c.chat.completions.create(model="router-random-1.0", messages=[{"role": "user", "content": "hi"}],
                                             temperature=0.5, extra_body={"timeout": 1e-6, "api_base": "http://evil"})
    assert response.model == "anyscale/mistralai/Mixtral-8x7B-Instruct-v0.1"
    call = fake.calls[-1]
    assert call["api_base"] == upstream.url and call["api_key"] == "sk-up"
    assert call["timeout"] == 7.0 and call["max_retries"] == 0 and call["temperature"] == 0.5
    assert call["extra_body"] == {"timeout": 1e-6, "api_base": "http://evil"}  # request fields, not call options


def child_processes(parent: int) -> list[int]:
    """The pids of ``parent``'s child processes (from /proc)."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:  # gone meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                children.append(int(entry))
    return children


def test_cli_serve_takes_routellm_flags(upstream, tmp_path):
    """RouteLLM's `openai_server` command line: --api-key is the upstream key, --workers, --verbose;
    clients authenticate with --client-api-key ($ROUTELLM_FAST_CLIENT_API_KEY)."""
    env = {**os.environ, "ROUTELLM_FAST_CLIENT_API_KEY": "sk-client"}
    env.pop("OPENAI_API_KEY", None)
    args = ["--routers", "random", "--base-url", upstream.url, "--api-key", "sk-upstream", "--workers", "2", "--verbose"]
    started: list = []
    with serve_process(args, tmp_path / "server.log", env, started) as port:
        # The keys reach the workers through multiprocessing's pipe: no worker (nor what it would
        # start) has them in its environment.
        workers = child_processes(started[0].pid) if os.path.isdir("/proc/self") else None
        assert workers is None or len(workers) >= 2
        for pid in workers or ():
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert b"sk-client" not in environ and b"sk-upstream" not in environ, pid
            assert b"ROUTELLM_FAST" not in environ
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-client", max_retries=0) as c:
            reply = c.chat.completions.create(model="router-random-0.0", messages=[{"role": "user", "content": "hi"}])
        assert reply.model == STRONG
        assert upstream.requests[-1]["auth"] == "Bearer sk-upstream"
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-upstream", max_retries=0) as c, \
                pytest.raises(openai.AuthenticationError):
            c.chat.completions.create(model="router-random-0.0", messages=[{"role": "user", "content": "hi"}])
    output = (tmp_path / "server.log").read_text()
    assert "router=random threshold=0.00000" in output and f"-> {STRONG}" in output  # --verbose
    assert output.count("Started server process") == 2  # --workers 2
