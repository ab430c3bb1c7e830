"""The routing decision: one rule, RouteLLM's model names and messages, the text a request routes on."""

from __future__ import annotations

import numpy as np
import pytest
from routellm_fast.decision.online import OnlineThreshold
from routellm_fast.decision.router_names import AUTO, check_route, parse_model_name
from routellm_fast.decision.rule import ModelPair, choose
from routellm_fast.errors import RoutingError
from routellm_fast.serve.controller import message_text

PAIR = ModelPair(strong="big", weak="small")


def test_rule_is_strong_at_or_above_the_threshold():
    assert choose(0.5, 0.5, PAIR) == "big"
    assert choose(0.4999999, 0.5, PAIR) == "small"
    assert choose(0.0, 0.0, PAIR) == "big" and choose(1.0, 1.0, PAIR) == "big"


def test_model_names():
    assert parse_model_name("router-mf-0.116") == ("mf", 0.116)
    assert parse_model_name("router-sw_ranking-auto") == ("sw_ranking", AUTO)
    for bad in ("gpt-4", "router-mf", "mf-0.5-x", None, 3):
        with pytest.raises(RoutingError, match="Model name must be of the format"):
            parse_model_name(bad)
    with pytest.raises(RoutingError, match="Threshold x must be a float"):
        parse_model_name("router-mf-x")


def test_route_checks_use_routellm_messages():
    check_route(["mf"], "mf", 0.3)
    check_route(["mf"], "mf", AUTO)
    with pytest.raises(RoutingError, match="Router or threshold unspecified"):
        check_route(["mf"], None, 0.3)
    with pytest.raises(RoutingError, match=r"Invalid router bert. Available routers are \['mf'\]"):
        check_route(["mf"], "bert", 0.3)
    for bad in (1.5, -0.1, float("nan"), "0.5", True):
        with pytest.raises(RoutingError, match="Threshold must be a float between 0.0 and 1.0"):
            check_route(["mf"], "mf", bad)


def test_message_text():
    assert message_text([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == "b"
    parts = [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {}}, {"type": "text", "text": "y"}]
    assert message_text([{"role": "user", "content": parts}]) == "x\ny"
    for bad in ([], None, "hello", [{"role": "user"}], ["text"], [{"content": 3}]):
        with pytest.raises(RoutingError):
            message_text(bad)


def test_online_threshold_follows_the_window():
    online = OnlineThreshold(0.25, window=100, min_samples=10)
    assert online.threshold == 0.5
    for i in range(100):
        online.decide(i / 100)
    assert online.threshold == pytest.approx(0.7425)  # the 75% quantile of 0.00 .. 0.99
    shuffled = OnlineThreshold(0.25, window=1000)
    for w in np.random.default_rng(0).random(3000):
        shuffled.decide(float(w))
    assert 0.22 < shuffled.strong_share < 0.28
