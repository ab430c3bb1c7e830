"""The per-query Elo solver of sw_ranking: existence, limits, tiny weights, and a property sample.

The reference (tests/core/elo_reference.py) is scipy's optimiser on the same likelihood with a vanishing
ridge, so it also finds the limits the fit approaches when the maximum is not finite. The full
property check (>= 1,000 seeded arenas) is scripts/elo_property_check.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import routellm_fast as rf

from tests.core import elo_reference as er


def build(model_a, model_b, winner, emb, strong, weak, num_tiers):
    return rf.SWRankingRouter.from_battles(model_a, model_b, winner, np.asarray(emb, np.float32), strong, weak,
                                           num_tiers=num_tiers)


def unit(angle: float, dim: int = 4) -> np.ndarray:
    """A unit vector whose cosine similarity with e0 is cos(angle)."""
    v = np.zeros(dim)
    v[0], v[1] = math.cos(angle), math.sin(angle)
    return v


def with_similarity(sim: float, dim: int = 4) -> np.ndarray:
    return unit(math.acos(sim), dim)


QUERY = np.eye(4, dtype=np.float32)[:1]
LN10 = math.log(10.0)


# --- Limits: no finite tier-level maximum, but the pair's win rate has a limit ----------------------


def limit_example():
    """A beats B and C 16 of 20; B and C share a tier and model_a wins both of their battles, so
    the tier fit's same-tier row is one-sided: no finite maximum, but A's tier over theirs -> 0.8."""
    model_a = ["A"] * 20 + ["B", "C"]
    model_b = ["B"] * 10 + ["C"] * 10 + ["C", "B"]
    winner = (["model_a"] * 8 + ["model_b"] * 2) * 2 + ["model_a", "model_a"]
    return model_a, model_b, winner


def test_limit_example_answers_point_eight():
    model_a, model_b, winner = limit_example()
    emb = np.tile(with_similarity(0.7), (len(winner), 1))  # equal weights
    router = build(model_a, model_b, winner, emb, "A", "B", num_tiers=2)
    assert router.model2tier == {"A": 0, "B": 1, "C": 1}
    # RouteLLM (sklearn, penalty=None, stopping at tol 1e-4) answers 0.79998; the limit is 0.8.
    assert router.score_embeddings(QUERY)[0] == pytest.approx(0.8, abs=1e-6)
    assert router.score_pair(QUERY, "A", "C")[0] == pytest.approx(0.8, abs=1e-6)
    assert router.score_pair(QUERY, "C", "A")[0] == pytest.approx(0.2, abs=1e-6)
    assert router.score_pair(QUERY, "B", "C")[0] == 0.5


def test_limit_with_unequal_weights_matches_reference():
    # Same battles, each on its own prompt: the limit is the weighted share of A's tier's wins.
    model_a, model_b, winner = limit_example()
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(winner), 6)) + 2.0
    router = build(model_a, model_b, winner, emb, "A", "B", num_tiers=2)
    queries = (rng.normal(size=(5, 6)) + 2.0).astype(np.float32)
    design = er.tier_design(router, model_a, model_b, winner)
    assert not er.has_finite_maximum(design, *design.counts())
    for q in queries:
        (want,) = er.win_rates(design, *design.counts(er.similarity_weights(emb, q)), [(0, 1)])
        assert want is not None
        assert router.score_embeddings(q[None, :])[0] == pytest.approx(want, abs=1e-8)


def split_arena():
    """Three groups of models that never meet, rated so that tiers never mix them:
    X = {x1, x2} (rating 0) and Y = {y1, y2} (rating +a) with y3 (-2a), Z = {z1..z4} (+-b, +-3b).
    Inside the tiers {x1, x2} and {y1, y2}, model_b wins every battle: both tiers beat the fixed zero
    of RouteLLM's same-tier rows, which is all that links them, so their difference is free."""
    ma, mb, win = [], [], []

    def battles(a, b, a_wins, b_wins):
        ma.extend([a] * (a_wins + b_wins))
        mb.extend([b] * (a_wins + b_wins))
        win.extend(["model_a"] * a_wins + ["model_b"] * b_wins)

    for p, q in (("x1", "x2"), ("x2", "x1"), ("y1", "y2"), ("y2", "y1")):
        battles(p, q, 0, 10)  # balanced overall, one-sided by position
    for y in ("y1", "y2"):
        battles(y, "y3", 8, 2)
    for p, q in (("z1", "z2"), ("z2", "z3"), ("z3", "z4")):
        battles(p, q, 9, 1)
    battles("z1", "z4", 9, 1)
    battles("z4", "z1", 9, 1)
    return ma, mb, win


def test_refuses_only_pairs_without_a_limit():
    ma, mb, win = split_arena()
    emb = np.tile(with_similarity(0.7), (len(win), 1))
    router = build(ma, mb, win, emb, "y1", "y3", num_tiers=7)
    tier = router.model2tier
    assert tier["x1"] == tier["x2"] and tier["y1"] == tier["y2"]
    assert len({tier["x1"], tier["y1"], tier["y3"], tier["z1"], tier["z2"], tier["z3"], tier["z4"]}) == 7
    # y1's tier and y3's share a group inside which the maximum is finite: 16 of 20.
    assert router.score_embeddings(QUERY)[0] == pytest.approx(0.8, abs=1e-9)
    # x's tier beats the fixed zero and Z's ratings have a finite mean: x over any z -> 1.
    assert router.score_pair(QUERY, "x1", "z1")[0] == pytest.approx(1.0, abs=1e-12)
    assert router.score_pair(QUERY, "z4", "x2")[0] == pytest.approx(0.0, abs=1e-12)
    # x's tier and y's tier both only beat the fixed zero: nothing orders them.
    for a, b in (("x1", "y1"), ("y2", "x1"), ("x2", "y3")):
        with pytest.raises(ValueError) as err:
            router.score_pair(QUERY, a, b)
        message = str(err.value)
        assert "no finite maximum-likelihood" in message and "can approach any value" in message
        for m in (a, b):
            assert f"tier {tier[m]} (" in message and m in message


def test_limits_match_the_reference_ridge_path():
    # The same arena with a prompt per battle: every answer is the limit the reference's vanishing
    # ridge approaches, and the refusals are the pairs whose ridge answers depend on its shape.
    ma, mb, win = split_arena()
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(len(win), 5)) + 1.5
    router = build(ma, mb, win, emb, "y1", "y3", num_tiers=7)
    design, tier = er.tier_design(router, ma, mb, win), router.model2tier
    models = ["x1", "y1", "y3", "z1", "z2", "z3", "z4"]
    pairs = [(a, b) for a in models for b in models if a != b]
    for q in (rng.normal(size=(3, 5)) + 1.5).astype(np.float32):
        want = er.win_rates(design, *design.counts(er.similarity_weights(emb, q)),
                            [(tier[a], tier[b]) for a, b in pairs])
        for (a, b), w in zip(pairs, want):
            if w is None:
                with pytest.raises(ValueError, match="no win rate of"):
                    router.score_pair(q[None, :], a, b)
            else:
                assert router.score_pair(q[None, :], a, b)[0] == pytest.approx(w, abs=1e-8), (a, b)


# --- Tiny weights --------------------------------------------------------------------------------


def tiny_weight_arena(bridge_sim: float, heavy_sim: float = 0.05):
    """Models M0..M2 battle on prompts with similarity ``heavy_sim`` to the query. T battles only M0,
    on prompts with similarity ``bridge_sim``: relative weight 10 ** (bridge_sim / heavy_sim - 1).
    T wins 9 of 10; every model is its own tier."""
    ma, mb, win, emb = [], [], [], []
    rng = np.random.default_rng(2)
    for a, b, a_wins, b_wins in (("M0", "M1", 30, 20), ("M1", "M2", 25, 25), ("M2", "M0", 15, 35), ("M1", "M0", 12, 18)):
        ma += [a] * (a_wins + b_wins)
        mb += [b] * (a_wins + b_wins)
        win += ["model_a"] * a_wins + ["model_b"] * b_wins
        emb += [with_similarity(heavy_sim)] * (a_wins + b_wins)
    ma += ["T"] * 10
    mb += ["M0"] * 10
    win += ["model_a"] * 9 + ["model_b"]
    emb += [with_similarity(bridge_sim)] * 10
    order = rng.permutation(len(win))
    return [ma[i] for i in order], [mb[i] for i in order], [win[i] for i in order], np.array(emb)[order]


@pytest.mark.parametrize("bridge_sim", [-0.95, -1.0 + 1e-9, -0.45])
def test_tier_seen_only_in_tiny_weight_battles(bridge_sim):
    ma, mb, win, emb = tiny_weight_arena(bridge_sim)
    router = build(ma, mb, win, emb, "T", "M0", num_tiers=4)
    assert len(set(router.model2tier.values())) == 4
    weights = er.similarity_weights(emb, QUERY[0].astype(np.float64))
    assert weights.min() / weights.max() <= 10.0 ** (bridge_sim / 0.05 - 1) * 1.01
    # T's only row is against M0: its rating difference is exactly logit(18 / 20), whatever the rest.
    assert router.score_embeddings(QUERY)[0] == pytest.approx(0.9, abs=1e-9)
    # T over M1 adds M0 - M1 from the heavy battles alone (T's pull on them is ~1e-20).
    heavy = [i for i, m in enumerate(ma) if m != "T"]
    design = er.tier_design(router, [ma[i] for i in heavy], [mb[i] for i in heavy], [win[i] for i in heavy])
    beta = er.fit(design, *design.counts(weights[heavy]))
    t, m0, m1 = (router.model2tier[m] for m in ("T", "M0", "M1"))
    want = 1 / (1 + math.exp(-(math.log(9.0) + LN10 * (beta[m0] - beta[m1]))))
    assert router.score_pair(QUERY, "T", "M1")[0] == pytest.approx(want, abs=1e-9)


def test_cluster_tied_by_tiny_weight_battles():
    # T1 and T2 battle each other on heavy prompts but meet the rest only through T1 vs M0 on
    # prompts of relative weight 1e-30: the cluster's shift is set by those battles alone.
    ma, mb, win, emb = tiny_weight_arena(-0.87, heavy_sim=0.03)
    ma = ["T1" if m == "T" else m for m in ma] + ["T1"] * 12 + ["T2"] * 8
    mb = mb + ["T2"] * 12 + ["T1"] * 8
    win = win + ["model_a"] * 3 + ["model_b"] * 9 + ["model_a"] * 6 + ["model_b"] * 2  # T2 wins 15 of 20
    emb = np.vstack([emb, np.tile(with_similarity(0.03), (20, 1))])
    router = build(ma, mb, win, emb, "T2", "M0", num_tiers=5)
    weights = er.similarity_weights(emb, QUERY[0].astype(np.float64))
    assert weights.min() / weights.max() < 1.1e-30
    assert len(set(router.model2tier.values())) == 5
    # Cut edges: T1 - M0 is 18:2 (at tiny weight), T2 - T1 is 2 * 15 : 2 * 5.
    assert router.score_pair(QUERY, "T1", "M0")[0] == pytest.approx(0.9, abs=1e-9)
    want = 1 / (1 + math.exp(-(math.log(9.0) + math.log(3.0))))
    assert router.score_embeddings(QUERY)[0] == pytest.approx(want, abs=1e-9)


# --- Arenas the previous solver refused ----------------------------------------------------------


@pytest.mark.parametrize("seed", [170, 174, 220])
def test_big_position_biased_arenas_are_not_refused(seed):
    # 55,400 battles, 12 models, 10 tiers, model_a 45% / model_b 35% / tie 20%: the old solver
    # stopped on rounding noise and refused these (construction for 174 and 220, a query for 170).
    result = er.check_arena(er.random_arena(seed, big=True), max_pairs=8)
    assert not result["construction_refused"] and result["bad_refusals"] == 0 and result["missed_refusals"] == 0
    assert result["compared"] == 32 and result["max_diff"] <= 1e-8, result["messages"]
    assert result["ratings_diff"] <= 1e-6


# --- Property sample: every fit against scipy ----------------------------------------------------

SAMPLE = [(seed, kind) for kind in er.KINDS for seed in range(5000, 5006)]


@pytest.mark.parametrize("seed,kind", SAMPLE)
def test_property_sample_matches_scipy(seed, kind):
    result = er.check_arena(er.random_arena(seed, kind=kind), allow_precise=False)
    assert not result["bad_construction"], result["messages"]
    assert result["bad_refusals"] == 0 and result["missed_refusals"] == 0, result["messages"]
    assert result["max_diff"] <= 1e-8, result["messages"]
    assert result["ratings_diff"] <= 1e-6, result["messages"]
