"""Routing among the ZeroEval models with their prices (evals.many_models): the price file, costs,
AIQ against every single model, random choice and the oracle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from routellm_fast import evals
from routellm_fast.evals import many_models as mm
from routellm_fast.paths import MODEL_PRICES


def test_price_file_schema():
    prices = mm.load_prices()
    raw = json.loads(MODEL_PRICES.read_text())
    assert raw["currency"] == "USD" and set(prices) == set(raw["models"])
    for name, p in prices.items():
        assert p.input >= 0 and p.output >= 0 and p.source.startswith("https://") and len(p.date) >= 7
        if p.stand_in:
            assert p.stand_in in prices and p.why and (p.input, p.output) == (prices[p.stand_in].input,
                                                                             prices[p.stand_in].output)
    # Every priced model is a ZeroEval model of at least one set, so it is routed among.
    models = set(evals.load_zeroeval("crux").models) | set(evals.load_zeroeval("math-l5").models)
    assert set(prices) <= models
    assert {"gpt-4-turbo-2024-04-09", "Mixtral-8x7B-Instruct-v0.1"} <= set(prices)


@pytest.mark.parametrize("entry, message", [
    ({"input": -1, "output": 1}, "'input' must be a price"),
    ({"input": 1, "output": float("nan")}, "'output' must be a price"),
    ({"input": 1, "output": 1, "source": "http://x"}, "https URL"),
    ({"input": 1, "output": 1, "date": "Sept 2024"}, "YYYY-MM"),
    ({"input": 1, "output": 1, "stand_in": "b"}, "needs the model it names and a 'why'"),
    ({"input": 1, "output": 1, "provider": ""}, "'provider' must be a non-empty string"),
])
def test_bad_price_files_are_named(tmp_path, entry, message):
    good = {"provider": "p", "source": "https://example.com/pricing", "date": "2024-09"}
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"unit": "per 1M tokens", "models": {"m": {**good, **entry}}}))
    with pytest.raises(ValueError, match=message):
        mm.load_prices(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="cannot read the price file"):
        mm.load_prices(path)


def test_costs_from_prices():
    prices = mm.load_prices()
    prompts = ["x" * 400, "y" * 800]  # 150 tokens on average
    costs = mm.model_costs(prices, ["gpt-4o-2024-08-06", "gemini-1.5-flash"], prompts)
    assert costs["gpt-4o-2024-08-06"] == pytest.approx((2.5 * 150 + 10.0 * mm.OUTPUT_TOKENS) / 1000)
    assert costs["gemini-1.5-flash"] < costs["gpt-4o-2024-08-06"]
    with pytest.raises(ValueError, match="no price for nope"):
        mm.model_costs(prices, ["nope"], prompts)


class _KnowsTheAnswers:
    """Scores each model by its true correctness on the prompt (an oracle's ranking), for the models
    it was given; unknown names raise as a router's model table does."""

    training_prompt_keys = frozenset()

    def __init__(self, prompts, models, quality, pick_only=None):
        self.rows = {p: i for i, p in enumerate(prompts)}
        self.cols = {m: j for j, m in enumerate(models)}
        self.quality, self.pick_only = quality, pick_only

    def score_models(self, prompts, models):
        if any(m not in self.cols for m in models):
            raise ValueError("unknown model")
        if self.pick_only is not None:  # always the same model: a single model's point
            return np.array([[10.0 if m == self.pick_only else -10.0 for m in models] for _ in prompts])
        return np.array([[8.0 * self.quality[self.rows[p], self.cols[m]] if p in self.rows else 0.0
                          for m in models] for p in prompts])


def test_aiq_against_single_models_random_and_oracle():
    prices = mm.load_prices()
    prompts, models, quality = mm.zeroeval_candidates("crux", prices)
    assert len(prompts) == len(evals.load_zeroeval("crux").held_out_half())
    models, quality = models[:8], quality[:, :8]
    costs = mm.model_costs(prices, models, prompts)
    good = _KnowsTheAnswers(prompts, models, quality)
    result = mm.evaluate_many_models("answers", good, prompts, quality, costs)
    a = result.aiq
    assert a["oracle"] >= a["router (cost weight)"] > a["random"]
    assert a["router (cost weight)"] > max(v for k, v in a.items() if k.startswith("single: "))
    # On or above the point of every model at least as dear as its cheapest point (below it: nothing).
    assert set(result.beats) == {m for m in models if costs[m] >= result.curve[:, 0].min()}
    assert len(result.beats) >= len(models) - 2
    # A single model's AIQ is that of its point alone.
    m = models[0]
    assert a[f"single: {m}"] == pytest.approx(mm.aiq(np.array([result.single[m]]), (min(costs.values()),
                                                                                    max(costs.values()))))
    # A router that prefers the dearest model everywhere sits on its point when cost does not count
    # (lambda 0), and beats exactly the models under its hull.
    dearest = max(costs, key=costs.get)
    one = mm.evaluate_many_models("one", _KnowsTheAnswers(prompts, models, quality, pick_only=dearest), prompts,
                                  quality, costs)
    assert np.allclose(one.curve[0], result.single[dearest])
    assert one.beats == [n for n, (c, q) in one.single.items() if mm.hull_quality(one.curve, c) >= q - 1e-12]
    assert dearest in one.beats


def test_routers_are_evaluated_among_the_models_they_know(static_mf):
    prices = mm.load_prices()
    assert mm.routable_models(static_mf, ["gpt-4-0314", "Mixtral-8x7B-Instruct-v0.1", "o1-mini-2024-09-12"]) == [
        "gpt-4-0314", "Mixtral-8x7B-Instruct-v0.1"]
    results, notes = mm.evaluate_zeroeval("math-l5", {"mf": static_mf}, prices)
    assert results == [] and "knows 1 of the" in notes[0]
    results, notes = mm.evaluate_zeroeval("crux", {"mf": static_mf}, prices)
    assert [r.models.keys() for r in results] == [{"gpt-4-0314", "Mixtral-8x7B-Instruct-v0.1"}] and not notes


def test_main_writes_the_reports(tmp_path, capsys):
    assert mm.main(["--sets", "crux", "--routers", "mf", "--embedder", "static", "--output", str(tmp_path)]) == 0
    text = (tmp_path / "many_models.md").read_text()
    assert "## crux (held-out half" in text and "| mf (static, shipped) | 2 |" in text
    records = json.loads((tmp_path / "many_models.json").read_text())
    assert records[0]["set"] == "crux" and "random" in records[0]["aiq"]
    assert (tmp_path / "many_models-crux.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no shipped router 'nope'"):
        mm.main(["--routers", "nope", "--output", str(tmp_path)])


def test_oracle_frontier_is_the_hull_of_every_assignment():
    import itertools

    rng = np.random.default_rng(8)
    for _ in range(5):
        quality = rng.integers(0, 2, (4, 3)).astype(float) * rng.random((4, 3))
        costs = np.array([0.5, 2.0, 7.0])
        points = np.array([(costs[list(a)].mean(), quality[np.arange(4), list(a)].mean())
                           for a in itertools.product(range(3), repeat=4)])
        frontier = mm.oracle_frontier(quality, costs)
        for c in np.linspace(costs.min(), costs.max(), 25):
            assert mm.hull_quality(frontier, c) == pytest.approx(mm.hull_quality(points, c), abs=1e-12)
