"""The Controller: RouteLLM's interface and messages, batched scoring, forwarding to an
OpenAI-compatible upstream with the real openai client."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from conftest import FIXTURES
from upstream import Upstream

import routellm_fast as rf
from routellm_fast.controller import RoutingError

STRONG, WEAK = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"
PROMPTS = ["Prove that the square root of 2 is irrational.", "hi", "Write a haiku about the sea.",
           "Implement a thread-safe LRU cache in C++.", "What is 2 + 2?"]
MF_CONFIG = {"mf": {"checkpoint_path": str(FIXTURES / "parity" / "mf" / "checkpoint"), "text_dim": 1536}}


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
    with pytest.raises(RoutingError, match="Invalid router causal_llm"):
        rf.Controller(["causal_llm"], STRONG, WEAK)
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


def test_config_dict_and_yaml_file(tmp_path):
    from_dict = rf.Controller(["mf"], STRONG, WEAK, config=MF_CONFIG)
    yaml_file = tmp_path / "config.yaml"
    yaml_file.write_text(f"mf:\n  checkpoint_path: {MF_CONFIG['mf']['checkpoint_path']}\n")
    from_yaml = rf.Controller(["mf"], STRONG, WEAK, config=yaml_file)
    emb = np.load(FIXTURES / "parity" / "mf" / "prompts.npy")[:5]
    np.testing.assert_array_equal(from_dict.routers["mf"].score_embeddings(emb), from_yaml.routers["mf"].score_embeddings(emb))
    (tmp_path / "bad.yaml").write_text("mf: [1, 2]\n")
    with pytest.raises(ValueError, match="config must map router names"):
        rf.Controller(["mf"], STRONG, WEAK, config=tmp_path / "bad.yaml")


def test_chat_completions_are_routed_and_forwarded(controller):
    with Upstream() as upstream:
        ctl = rf.Controller(["sw_ranking"], STRONG, WEAK, api_base=upstream.url, api_key="sk-upstream")
        threshold = float(np.median(ctl.routers["sw_ranking"].score(PROMPTS)))
        for prompt in PROMPTS:
            messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": prompt}]
            response = ctl.chat.completions.create(model=f"router-sw_ranking-{threshold}", messages=messages, temperature=0)
            expected = ctl.route(prompt, "sw_ranking", threshold)
            assert response.model == expected
            assert response.choices[0].message.content == f"answered by {expected}"
            sent = upstream.requests[-1]
            assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-upstream"
            assert sent["body"]["messages"] == messages and sent["body"]["temperature"] == 0
        counts = ctl.model_counts["sw_ranking"]
        assert sum(counts.values()) == len(PROMPTS) and set(counts) <= {STRONG, WEAK}

        async def go():
            return await ctl.chat.completions.acreate(router="sw_ranking", threshold=0.0,
                                                       messages=[{"role": "user", "content": "hi"}])

        assert asyncio.run(go()).model == STRONG  # threshold 0 always picks the strong model
        assert sum(ctl.model_counts["sw_ranking"].values()) == len(PROMPTS) + 1


def test_patch_routellm_makes_its_controller_use_our_routers(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "unused")  # routellm builds an OpenAI client at import
    rl_controller = pytest.importorskip("routellm.controller")
    rf.patch_routellm()
    ctl = rl_controller.Controller(routers=["mf", "random"], strong_model=STRONG, weak_model=WEAK, config=MF_CONFIG)
    assert isinstance(ctl.routers["mf"], rf.MatrixFactorizationRouter)
    assert isinstance(ctl.routers["random"], rf.RandomRouter)
    assert str(ctl.routers["mf"]) == "mf"
    emb = np.load(FIXTURES / "parity" / "mf" / "prompts.npy")[:3]
    ours = rf.MatrixFactorizationRouter(MF_CONFIG["mf"]["checkpoint_path"], STRONG, WEAK)
    np.testing.assert_array_equal(ctl.routers["mf"].score_embeddings(emb), ours.score_embeddings(emb))


def test_decide_is_route_with_its_reasons(controller):
    prompt = "Prove that there are infinitely many primes."
    decision = controller.decide(prompt, "sw_ranking", 0.5, count=False)
    assert controller.route(prompt, "sw_ranking", 0.5) == decision.model
    assert decision.win_rate == controller.routers["sw_ranking"].calculate_strong_win_rate(prompt)
    assert decision.strong == (decision.model == STRONG) == (decision.win_rate >= 0.5)
    with pytest.raises(RoutingError, match="online threshold"):
        controller.decide("hi", "sw_ranking", "auto")


def test_routers_share_one_embedder_per_name():
    ctl = rf.Controller(["mf", "sw_ranking"], "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1")
    assert ctl.routers["mf"].embedder is ctl.routers["sw_ranking"].embedder
