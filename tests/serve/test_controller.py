"""The Controller: RouteLLM's interface and messages, batched scoring, forwarding to an
OpenAI-compatible upstream with the real openai client."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import types
import warnings

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast.serve.controller import RoutingError

from tests.helpers import STRONG, WEAK

PROMPTS = ["Prove that the square root of 2 is irrational.", "hi", "Write a haiku about the sea.",
           "Implement a thread-safe LRU cache in C++.", "What is 2 + 2?"]


@pytest.fixture(scope="module")
def mf_config(fixtures_dir):
    """A RouteLLM config entry for the mf parity fixture's checkpoint."""
    return {"mf": {"checkpoint_path": str(fixtures_dir / "parity" / "mf" / "checkpoint"), "text_dim": 1536}}


@pytest.fixture(scope="module")
def controller():
    return rf.Controller(["sw_ranking", "random"], STRONG, WEAK)


def test_route_matches_the_router(controller):
    router = controller.routers["sw_ranking"]
    scores = router.score(PROMPTS)
    threshold = float(np.median(scores))
    for prompt, score in zip(PROMPTS, scores):
        expected = STRONG if score >= threshold else WEAK
        assert controller.route(prompt, "sw_ranking", threshold) == expected


def test_routellm_error_messages(controller):
    with pytest.raises(RoutingError, match=r"^Invalid router mf\. Available routers are \['sw_ranking', 'random'\]\.$"):
        controller.route("hi", "mf", 0.5)
    with pytest.raises(RoutingError, match=r"^Invalid threshold 1\.5\. Threshold must be a float between 0\.0 and 1\.0\.$"):
        controller.route("hi", "sw_ranking", 1.5)
    with pytest.raises(RoutingError, match=r"^Router or threshold unspecified\.$"):
        controller.completion(messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(RoutingError, match=r"^Threshold abc must be a float\.$"):
        controller.completion(model="router-sw_ranking-abc", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(RoutingError, match=r"^Invalid model rooter-sw_ranking-0\.5\. Model name must be of the format"):
        controller.completion(model="rooter-sw_ranking-0.5", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(RoutingError, match=r"^Invalid model gpt-4\."):
        controller.completion(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(RoutingError, match="Router causal_llm needs a config entry"):
        rf.Controller(["causal_llm"], STRONG, WEAK)  # no causal checkpoint ships (an 8B model)
    # Every router in ROUTER_CLS ships a default: mf and sw_ranking work with no config.
    shipped = rf.Controller(["mf", "sw_ranking"], STRONG, WEAK)
    assert shipped.routers["mf"].embedding_model == shipped.routers["sw_ranking"].embedding_model == "all-MiniLM-L6-v2"


def test_batch_calculate_win_rate_list_and_series(controller):
    import pandas as pd

    router = controller.routers["sw_ranking"]
    want = router.score(PROMPTS)
    as_list = controller.batch_calculate_win_rate(PROMPTS, "sw_ranking")
    assert isinstance(as_list, list) and np.allclose(as_list, want, rtol=0, atol=0)
    series = pd.Series(PROMPTS, index=[10, 11, 12, 13, 14], name="prompt")
    out = controller.batch_calculate_win_rate(series, "sw_ranking")
    assert isinstance(out, pd.Series) and list(out.index) == [10, 11, 12, 13, 14]
    np.testing.assert_array_equal(out.to_numpy(), want)
    with_bar = rf.Controller(["random"], STRONG, WEAK, progress_bar=True)
    assert len(with_bar.batch_calculate_win_rate(PROMPTS * 30, "random")) == 150


def test_config_dict_and_yaml_file(tmp_path, fixtures_dir, mf_config):
    from_dict = rf.Controller(["mf"], STRONG, WEAK, config=mf_config)
    yaml_file = tmp_path / "config.yaml"
    yaml_file.write_text(f"mf:\n  checkpoint_path: {mf_config['mf']['checkpoint_path']}\n")
    from_yaml = rf.Controller(["mf"], STRONG, WEAK, config=yaml_file)
    emb = np.load(fixtures_dir / "parity" / "mf" / "prompts.npy")[:5]
    np.testing.assert_array_equal(from_dict.routers["mf"].score_embeddings(emb), from_yaml.routers["mf"].score_embeddings(emb))
    (tmp_path / "bad.yaml").write_text("mf: [1, 2]\n")
    with pytest.raises(ValueError, match="config must map router names"):
        rf.Controller(["mf"], STRONG, WEAK, config=tmp_path / "bad.yaml")


def test_chat_completions_are_routed_and_forwarded(controller, echo_llm):
    ctl = rf.Controller(["sw_ranking"], STRONG, WEAK, api_base=echo_llm.url, api_key="sk-upstream")
    threshold = float(np.median(ctl.routers["sw_ranking"].score(PROMPTS)))
    for prompt in PROMPTS:
        messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": prompt}]
        response = ctl.chat.completions.create(model=f"router-sw_ranking-{threshold}", messages=messages, temperature=0)
        expected = ctl.route(prompt, "sw_ranking", threshold)
        assert response.model == expected
        assert response.choices[0].message.content == f"answered by {expected}"
        sent = echo_llm.requests[-1]
        assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-upstream"
        assert sent["body"]["messages"] == messages and sent["body"]["temperature"] == 0
    counts = ctl.model_counts["sw_ranking"]
    assert sum(counts.values()) == len(PROMPTS) and set(counts) <= {STRONG, WEAK}

    async def go():
        return await ctl.chat.completions.acreate(router="sw_ranking", threshold=0.0,
                                                   messages=[{"role": "user", "content": "hi"}])

    assert asyncio.run(go()).model == STRONG  # threshold 0 always picks the strong model
    assert sum(ctl.model_counts["sw_ranking"].values()) == len(PROMPTS) + 1


def test_patch_routellm_makes_its_controller_use_our_routers(monkeypatch, fixtures_dir, mf_config):
    if importlib.util.find_spec("routellm") is None:
        pytest.skip("routellm is not installed")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # RouteLLM's import-time client needs none after the patch
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # routellm imports litellm: no price-list download
    with warnings.catch_warnings():  # RouteLLM and litellm warn at import about their own pydantic use
        warnings.simplefilter("ignore", DeprecationWarning)
        rf.patch_routellm()
        import routellm.controller as rl_controller
    ctl = rl_controller.Controller(routers=["mf", "random"], strong_model=STRONG, weak_model=WEAK, config=mf_config)
    assert isinstance(ctl.routers["mf"], rf.MatrixFactorizationRouter)
    assert isinstance(ctl.routers["random"], rf.RandomRouter)
    assert str(ctl.routers["mf"]) == "mf"
    emb = np.load(fixtures_dir / "parity" / "mf" / "prompts.npy")[:3]
    ours = rf.MatrixFactorizationRouter(mf_config["mf"]["checkpoint_path"], STRONG, WEAK)
    np.testing.assert_array_equal(ctl.routers["mf"].score_embeddings(emb), ours.score_embeddings(emb))


def test_decide_is_route_with_its_reasons(controller):
    prompt = "Prove that there are infinitely many primes."
    threshold = controller.share_threshold("sw_ranking", 0.5)  # 0.5 would send every prompt to the strong model
    decision = controller.decide(prompt, "sw_ranking", threshold, count=False)
    assert controller.route(prompt, "sw_ranking", threshold) == decision.model
    assert decision.win_rate == controller.routers["sw_ranking"].calculate_strong_win_rate(prompt)
    assert decision.strong == (decision.model == STRONG) == (decision.win_rate >= threshold)
    with pytest.raises(RoutingError, match="online threshold"):
        controller.decide("hi", "sw_ranking", "auto")


def test_routers_share_one_embedder_per_name():
    ctl = rf.Controller(["mf", "sw_ranking"], "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1")
    assert ctl.routers["mf"].embedder is ctl.routers["sw_ranking"].embedder


def _stream_text(chunks) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks)


def test_async_streams_stay_readable_and_clients_are_reused(echo_llm):
    """acreate(stream=True) returns a stream read after the call: its client must stay open (it was
    closed on return, failing 19 of 20 reads), and one client serves every call on a loop."""
    import gc

    ctl = rf.Controller(["random"], STRONG, WEAK, api_base=echo_llm.url)
    messages = [{"role": "user", "content": "tell me a story"}]

    async def one(threshold):
        stream = await ctl.chat.completions.acreate(model=f"router-random-{threshold}", messages=messages,
                                                     stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream])

    async def go():
        texts = [await one(0.0) for _ in range(20)]
        texts += await asyncio.gather(*(one(1.0) for _ in range(10)))  # concurrent streams on one client
        return texts, len(ctl.upstream._async_clients)

    for _ in range(2):  # a second event loop gets its own client; the first loop's was closed with it
        texts, clients = asyncio.run(go())
        assert texts == [f"answered by {STRONG}"] * 20 + [f"answered by {WEAK}"] * 10
        assert clients == 1
    assert not ctl.upstream._async_clients  # closed at the loop's shutdown
    gc.collect()  # no unclosed sockets (ResourceWarning is an error in this suite)


def test_completions_take_content_parts_and_forward_them(controller, echo_llm):
    parts = [{"type": "text", "text": "Prove that the square root of 2"}, {"type": "image_url", "image_url": {"url": "data:,"}},
             {"type": "text", "text": "is irrational."}]
    ctl = rf.Controller(["sw_ranking"], STRONG, WEAK, api_base=echo_llm.url)
    win_rate = ctl.routers["sw_ranking"].calculate_strong_win_rate(
        "Prove that the square root of 2\nis irrational.")
    for threshold, expected in ((win_rate, STRONG), (min(1.0, win_rate + 1e-6), WEAK)):
        response = ctl.chat.completions.create(model=f"router-sw_ranking-{threshold!r}",
                                               messages=[{"role": "user", "content": parts}])
        assert response.model == expected
        assert echo_llm.requests[-1]["body"]["messages"][0]["content"] == parts


def test_provider_prefixes_without_litellm(monkeypatch, echo_llm):
    monkeypatch.setitem(sys.modules, "litellm", None)  # import litellm fails
    ctl = rf.Controller(["random"], "openai/gpt-4-1106-preview", "ollama_chat/llama3", api_base=echo_llm.url)
    msg = [{"role": "user", "content": "hi"}]
    # openai/<name> is <name> on the OpenAI-compatible endpoint.
    assert ctl.chat.completions.create(model="router-random-0.0", messages=msg).model == "gpt-4-1106-preview"
    assert echo_llm.requests[-1]["body"]["model"] == "gpt-4-1106-preview"
    # Another provider needs LiteLLM: the error names the extra.
    with pytest.raises(ImportError, match=r"LiteLLM's 'ollama_chat' provider.*routellm_fast\[litellm\]"):
        ctl.chat.completions.create(model="router-random-1.0", messages=msg)
    # An organisation in a plain model name is no provider: sent as it is.
    plain = rf.Controller(["random"], "meta-llama/Meta-Llama-3-70B-Instruct", WEAK, api_base=echo_llm.url)
    assert plain.chat.completions.create(model="router-random-0.0", messages=msg).model == \
        "meta-llama/Meta-Llama-3-70B-Instruct"


class _FakeLiteLLM(types.ModuleType):
    """Records the calls it gets and answers with a dict, as litellm's responses are subscriptable."""

    provider_list = ["openai", "anyscale", "ollama_chat"]

    def __init__(self):
        super().__init__("litellm")
        self.calls = []

    def completion(self, **kwargs):
        self.calls.append(("completion", kwargs))
        return {"model": kwargs["model"], "choices": [{"message": {"content": "hello"}}]}

    async def acompletion(self, **kwargs):
        self.calls.append(("acompletion", kwargs))
        return {"model": kwargs["model"], "choices": [{"message": {"content": "hello"}}]}


def test_provider_prefixes_go_through_litellm_when_installed(monkeypatch, echo_llm):
    fake = _FakeLiteLLM()
    monkeypatch.setitem(sys.modules, "litellm", fake)
    ctl = rf.Controller(["random"], STRONG, "anyscale/mistralai/Mixtral-8x7B-Instruct-v0.1",
                        api_base=echo_llm.url, api_key="sk-any")
    msg = [{"role": "user", "content": "hi"}]
    response = ctl.chat.completions.create(model="router-random-1.0", messages=msg, temperature=0.2)
    assert response["choices"][0]["message"]["content"] == "hello"
    # RouteLLM's call: litellm.completion(api_base=..., api_key=..., **request)
    assert fake.calls == [("completion", {"model": "anyscale/mistralai/Mixtral-8x7B-Instruct-v0.1", "messages": msg,
                                          "temperature": 0.2, "api_base": echo_llm.url, "api_key": "sk-any"})]
    asyncio.run(ctl.chat.completions.acreate(model="router-random-1.0", messages=msg))
    assert fake.calls[-1][0] == "acompletion" and fake.calls[-1][1]["model"].startswith("anyscale/")
    # A plain name still goes to the OpenAI-compatible endpoint with the openai client.
    assert ctl.chat.completions.create(model="router-random-0.0", messages=msg).model == STRONG
    assert len(fake.calls) == 2 and echo_llm.requests[-1]["body"]["model"] == STRONG


def _close_litellm_clients():
    """LiteLLM keeps the clients it made in a process-wide cache: close them (their sockets would
    outlive the test)."""
    import litellm

    cache = getattr(litellm, "in_memory_llm_clients_cache", None)
    for client in list(getattr(cache, "cache_dict", {}).values()):
        close = getattr(client, "close", None)
        if callable(close) and not asyncio.iscoroutinefunction(close):
            close()
    if cache is not None:
        cache.flush_cache()


def test_real_litellm_calls_an_openai_compatible_endpoint(monkeypatch, echo_llm):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip("litellm")
    ctl = rf.Controller(["random"], STRONG, "openai/mixtral-8x7b-instruct-v0.1", api_base=echo_llm.url,
                        api_key="sk-up")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            response = ctl.chat.completions.create(model="router-random-1.0",
                                                   messages=[{"role": "user", "content": "hi"}])
        finally:
            _close_litellm_clients()
    assert response["choices"][0]["message"]["content"] == "answered by mixtral-8x7b-instruct-v0.1"
    assert echo_llm.requests[-1]["body"]["model"] == "mixtral-8x7b-instruct-v0.1"
    assert echo_llm.requests[-1]["auth"] == "Bearer sk-up"


def test_a_local_endpoint_needs_no_key(monkeypatch, echo_llm):
    """api_base given, no api_key and no OPENAI_API_KEY: provider-prefixed names reach the endpoint,
    through LiteLLM where it is installed (a placeholder key: it refuses to call without one,
    "Missing credentials") and through the openai client otherwise."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
    ctl = rf.Controller(["random"], "openai/gpt-4-1106-preview", "openai/mixtral-8x7b-instruct-v0.1",
                        api_base=echo_llm.url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LiteLLM's own deprecation warnings
        try:
            response = ctl.chat.completions.create(model="router-random-0.0",
                                                   messages=[{"role": "user", "content": "hi"}])
            answer = ctl.chat.completions.create(model="router-random-1.0",
                                                 messages=[{"role": "user", "content": "hi"}])
        finally:
            if importlib.util.find_spec("litellm") is not None:
                _close_litellm_clients()
    assert echo_llm.requests[-2]["body"]["model"] == "gpt-4-1106-preview"
    assert echo_llm.requests[-1]["body"]["model"] == "mixtral-8x7b-instruct-v0.1"
    assert response is not None and answer is not None
    if importlib.util.find_spec("litellm") is not None:
        import litellm
        from routellm_fast.serve.upstream import litellm_key

        assert litellm_key(litellm, "openai/x", echo_llm.url, None) == "EMPTY"
        assert litellm_key(litellm, "openai/x", echo_llm.url, "sk-mine") == "sk-mine"
        assert litellm_key(litellm, "openai/x", None, None) is None  # LiteLLM's own environment variables
        monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
        assert litellm_key(litellm, "openai/x", echo_llm.url, None) is None  # LiteLLM reads it itself
