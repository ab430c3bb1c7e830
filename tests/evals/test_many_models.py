"""Routing among many models with their costs: per-model scores from the core (mf logits, sw_ranking
tier ratings) against float64 NumPy references, the pair win rate unchanged, the N-model rules
against brute force, their calibration, and the Controller and CLI on top."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast.decision.calibration import calibrate_models
from routellm_fast.decision.router_names import parse_model_name
from routellm_fast.decision.rule import CostWeight, choose_models
from routellm_fast.errors import RoutingError
from routellm_fast.formats.tables import read_prompts
from routellm_fast.serve.controller import Controller

from tests import reference as ref
from tests.helpers import CODES, STRONG, WEAK, make_arena


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_mf_scores_every_model_as_a_float64_reference(static_mf):
    router = static_mf
    ckpt = router.checkpoint
    prompts = list(read_prompts())[:100]
    emb = router.embedder.embed(prompts)
    models = [m for m, i in sorted(router.model_ids.items(), key=lambda kv: kv[1]) if i < len(ckpt.model_embeddings)]
    got = router.score_models(prompts, models)
    p = ckpt.model_embeddings.astype(np.float64)
    pn = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    text = emb.astype(np.float64) @ ckpt.text_projection.astype(np.float64).T
    want = (text[:, None, :] * pn[[router.model_ids[m] for m in models]][None]) @ ckpt.classifier[0].astype(np.float64)
    assert got.shape == (100, len(models)) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    # The pair's win rate, from these, is the pair scorer's.
    pair = router.score_models(prompts, [STRONG, WEAK])
    np.testing.assert_allclose(sigmoid(pair[:, 0] - pair[:, 1]), router.score(prompts), rtol=0, atol=1e-12)


def test_sw_ranking_tier_ratings_match_a_float64_reference():
    rng = np.random.default_rng(3)
    arena = make_arena(rng, n_battles=800, dim=12, n_models=9, reuse=0.2)
    router = rf.SWRankingRouter.from_battles(arena["model_a"], arena["model_b"], arena["winner"], arena["embeddings"],
                                             "model-0", "model-1")
    tier = router.model2tier
    players = sorted(set(tier.values()))
    player = {t: i for i, t in enumerate(players)}
    ta = np.array([player[tier[m]] for m in arena["model_a"]])
    tb = np.array([player[tier[m]] for m in arena["model_b"]])
    outcome = np.array([CODES[w] for w in arena["winner"]])
    got = router.score_models_embeddings(arena["queries"], arena["names"])
    battle_emb = arena["embeddings"].astype(np.float64)
    for q, row in zip(arena["queries"], got):
        sims = battle_emb @ q / (np.linalg.norm(battle_emb, axis=1) * np.linalg.norm(q))
        ratings = ref.elo_ratings(ta, tb, outcome, len(players), 10 * 10 ** (sims / sims.max()))
        want = np.array([ratings[player[tier[m]]] for m in arena["names"]]) * np.log(10) / 400
        # Ratings are defined up to a constant: compare differences from the first model.
        np.testing.assert_allclose(row - row[0], want - want[0], rtol=0, atol=1e-8)
    for a, b in itertools.combinations(range(len(arena["names"])), 2):
        np.testing.assert_allclose(sigmoid(got[:, a] - got[:, b]),
                                   router.score_pair(arena["queries"], arena["names"][a], arena["names"][b]),
                                   rtol=0, atol=1e-12)


def brute_force(scores, costs, rule):
    """The rules written out per prompt, over every candidate."""
    out = []
    k = len(costs)
    order = sorted(range(k), key=lambda m: (costs[m], m))
    for s in scores:
        if isinstance(rule, CostWeight):
            best = max(s)
            values = [sigmoid(s[m] - best) - rule.value * costs[m] / max(costs) for m in order]
            out.append(order[int(np.argmax(values))])
        else:
            for pos, m in enumerate(order):
                dearer = order[pos + 1:]
                if all(sigmoid(s[j] - s[m]) < rule for j in dearer):
                    out.append(m)
                    break
    return np.array(out)


@pytest.mark.parametrize("seed", range(6))
def test_rules_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    scores = rng.normal(0, 1.5, (300, k))
    costs = rng.choice([0.2, 0.5, 1.0, 3.0, 10.0], k)  # equal costs happen: ties keep the given order
    for rule in (0.0, 0.1, 0.37, 0.5, 0.8, 1.0, CostWeight(0.0), CostWeight(0.05), CostWeight(0.3), CostWeight(5.0)):
        np.testing.assert_array_equal(choose_models(scores, costs, rule), brute_force(scores, costs, rule), str(rule))


def test_two_models_keep_routellms_rule(static_sw):
    router = static_sw
    prompts = list(read_prompts())
    rates = router.score(prompts)
    scores = router.score_models(prompts, [STRONG, WEAK])
    for threshold in np.quantile(rates, [0.1, 0.5, 0.9]).tolist() + [0.0, 0.3, 1.0]:
        picks = choose_models(scores, [10.0, 0.6], threshold)
        clear = np.abs(rates - threshold) > 1e-12
        np.testing.assert_array_equal((picks == 0)[clear], (rates >= threshold)[clear])


def test_calibration_reaches_a_target_cost(static_mf):
    router = static_mf
    models = [STRONG, WEAK, "claude-2.1", "gpt-3.5-turbo-1106"]
    costs = np.array([10.0, 0.6, 8.0, 1.5])
    scores = router.score_models(list(read_prompts()), models)
    for rule in ("threshold", "cost"):
        for target in (0.7, 2.0, 5.0):
            value = calibrate_models(scores, costs, target, rule)
            spent = costs[choose_models(scores, costs, value)].mean()
            assert spent <= target + 1e-12 and spent > target - 1.0, (rule, target, value, spent)
    assert calibrate_models(scores, costs, 100.0) == 0.0  # affordable: every prompt may get the dearest pick
    with pytest.raises(ValueError, match="cheapest"):
        calibrate_models(scores, costs, 0.1)
    with pytest.raises(ValueError, match="rule"):
        calibrate_models(scores, costs, 1.0, "budget")


def test_bad_input(static_mf):
    with pytest.raises(ValueError, match="one cost per model"):
        choose_models(np.zeros((2, 3)), [1.0, 2.0], 0.5)
    with pytest.raises(ValueError, match="finite and >= 0"):
        choose_models(np.zeros((2, 2)), [1.0, -2.0], 0.5)
    with pytest.raises(ValueError, match="NaN"):
        choose_models(np.array([[0.0, np.nan]]), [1.0, 2.0], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        choose_models(np.zeros((2, 2)), [1.0, 2.0], 1.5)
    router = static_mf
    with pytest.raises(ValueError, match="gpt-4-1106-preview"):
        router.score_models(["hi"], [STRONG, "gpt-4-1106-previw"])
    with pytest.raises(ValueError, match="non-empty"):
        router.score_models(["hi"], [])
    assert router.score_models([], [STRONG, WEAK]).shape == (0, 2)
    with pytest.raises(TypeError, match="two models only"):
        rf.RandomRouter().score_models(["hi"], [STRONG, WEAK])
    assert parse_model_name("router-mf-cost-0.25") == ("mf", CostWeight(0.25))
    for bad in ("router-mf-cost-x", "router-mf-cost--1", "router-mf-cost-inf"):
        with pytest.raises(RoutingError):
            parse_model_name(bad)


def test_controller_routes_among_models():
    models = {STRONG: 10.0, WEAK: 0.6, "claude-2.1": 8.0}
    c = Controller(["mf", "sw_ranking"], STRONG, WEAK, embedder="static", models=models)
    prompt = "Prove that there are infinitely many primes."
    for name in ("mf", "sw_ranking"):
        router = c.routers[name]
        scores = router.score_models([prompt], list(models))
        for rule in (0.2, 0.5, CostWeight(0.1)):
            d = c.decide(prompt, name, rule)
            assert d.model == list(models)[choose_models(scores, list(models.values()), rule)[0]]
            assert d.scores == dict(zip(models, scores[0].tolist()))
    assert sum(c.model_counts["mf"].values()) == 3
    assert c.route(prompt, "mf", 1.0) == WEAK  # the cheapest unless a dearer model wins for certain
    with pytest.raises(RoutingError, match="auto"):
        c.decide(prompt, "mf", "auto")
    with pytest.raises(RoutingError, match="models="):
        Controller(["mf"], STRONG, WEAK, embedder="static").decide(prompt, "mf", CostWeight(0.1))
    with pytest.raises(RoutingError, match="cannot route among many models"):
        Controller(["random"], STRONG, WEAK, models=models)
    with pytest.raises(RoutingError, match="claude-9"):
        Controller(["mf"], STRONG, WEAK, embedder="static", models={STRONG: 1, "claude-9": 2})
    with pytest.raises(RoutingError, match="at least two"):
        Controller(["mf"], STRONG, WEAK, embedder="static", models={STRONG: 1})


def test_cli_route_among_models():
    out = subprocess.run(
        [sys.executable, "-m", "routellm_fast", "route", "What is 2+2?", "--router", "mf", "--embedder", "static",
         "--models", f"{STRONG}=10", f"{WEAK}=0.6", "claude-2.1=8", "--cost-weight", "0.2"],
        capture_output=True, text=True, check=True).stdout
    model, *fields = out.strip().split("\t")
    c = Controller(["mf"], STRONG, WEAK, embedder="static", models={STRONG: 10, WEAK: 0.6, "claude-2.1": 8})
    assert model == c.decide("What is 2+2?", "mf", CostWeight(0.2)).model and "rule=cost-0.2" in fields
    bad = subprocess.run([sys.executable, "-m", "routellm_fast", "route", "x", "--models", f"{STRONG}=ten"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "NAME=COST" in bad.stderr


def test_cli_score_among_models(tmp_path, static_mf, static_sw):
    """`score --models`: a score_<router>_<model> column per model equal to router.score_models, and
    with a rule the chosen model, equal to choose_models."""
    from routellm_fast import cli
    from routellm_fast.formats.tables import read_table

    prompts = list(read_prompts())[:300]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in enumerate(prompts)))
    models = {STRONG: 10.0, WEAK: 0.6, "claude-2.1": 8.0}
    common = ["score", "--input", str(tmp_path / "in.jsonl"), "--quiet", "--routers", "mf", "sw_ranking",
              "--embedder", "static", "--chunk-size", "128", "--models", *(f"{m}={c}" for m, c in models.items())]
    assert cli.main([*common, "--output", str(tmp_path / "scores.parquet")]) == 0
    assert cli.main([*common, "--output", str(tmp_path / "picks.parquet"), "--cost-weight", "0.25"]) == 0
    scores, picks = read_table(tmp_path / "scores.parquet"), read_table(tmp_path / "picks.parquet")
    assert scores.column_names == ["id", "prompt", *(f"score_{r}_{m}" for r in ("mf", "sw_ranking") for m in models)]
    assert picks.column_names == [*scores.column_names[:5], "model_mf", *scores.column_names[5:], "model_sw_ranking"]
    for name, router in {"mf": static_mf, "sw_ranking": static_sw}.items():
        want = router.score_models(prompts, list(models))
        got = np.column_stack([scores.column(f"score_{name}_{m}").to_numpy() for m in models])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        chosen = np.array(list(models))[choose_models(want, list(models.values()), CostWeight(0.25))]
        assert picks.column(f"model_{name}").to_pylist() == chosen.tolist()
    assert cli.main([*common[:-6], "--output", str(tmp_path / "x.parquet"), "--cost-weight", "0.2"]) == 2
    assert cli.main([*common, "--output", str(tmp_path / "x.parquet"), "--cost-weight", "-1"]) == 2
    assert cli.main([*common, "--output", str(tmp_path / "x.parquet"), "--threshold", "2"]) == 2
    assert not (tmp_path / "x.parquet").exists()


def test_cli_calibrate_for_a_target_cost(tmp_path, capsys, static_mf):
    """`calibrate --models --target-cost`: the threshold or cost weight printed spends at most the
    target on the prompts and is what calibrate_models finds (rounded up to the digits printed)."""
    from routellm_fast import cli

    prompts = list(read_prompts())[:400]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    models = {STRONG: 10.0, WEAK: 0.6, "claude-2.1": 8.0}
    costs = list(models.values())
    router = static_mf
    scores = router.score_models(prompts, list(models))
    for rule in ("threshold", "cost"):
        assert cli.main(["calibrate", "--router", "mf", "--embedder", "static", "--prompts", str(tmp_path / "p.jsonl"),
                         "--models", *(f"{m}={c}" for m, c in models.items()), "--target-cost", "5",
                         "--rule", rule]) == 0
        line = capsys.readouterr().out.strip()
        model = line.split("(model ")[1].split(")")[0]
        name, printed = parse_model_name(model)
        assert name == "mf" and isinstance(printed, CostWeight) == (rule == "cost")
        spent = np.asarray(costs)[choose_models(scores, costs, printed)].mean()
        assert spent <= 5 and f"spends {spent:.6g} on 400 prompts" in line
        exact = calibrate_models(scores, costs, 5, rule)
        value = exact.value if rule == "cost" else exact
        assert (printed.value if rule == "cost" else printed) == pytest.approx(value, rel=1e-5)
    assert cli.main(["calibrate", "--router", "mf", "--target-cost", "5"]) == 2
    assert cli.main(["calibrate", "--router", "mf", "--embedder", "static", "--target-cost", "0.1",
                     "--models", *(f"{m}={c}" for m, c in models.items())]) == 2  # below the cheapest model
    assert "cheapest" in capsys.readouterr().err


def test_aiq_and_hull():
    from routellm_fast.evals.many_models import _upper_hull, aiq

    # Flat quality 0.5 from cost 1 to 3 over the range [1, 3]: AIQ 0.5; a point under the chord is dropped.
    assert aiq(np.array([[1.0, 0.5], [3.0, 0.5]]), (1.0, 3.0)) == pytest.approx(0.5)
    hull = _upper_hull(np.array([[1.0, 0.0], [2.0, 0.4], [2.0, 0.1], [3.0, 1.0], [2.5, 0.3]]))
    assert hull.tolist() == [[1.0, 0.0], [3.0, 1.0]]
    assert aiq(hull, (1.0, 3.0)) == pytest.approx(0.5, abs=1e-3)
    # Nothing affordable below the cheapest point: quality 0 there.
    assert aiq(np.array([[2.0, 1.0]]), (1.0, 3.0)) == pytest.approx(0.5, abs=1e-3)


def test_cost_quality_curves_on_alpaca_eval(static_sw, shared_data):
    from routellm_fast.evals.many_models import (
        ALPACA_CANDIDATES,
        alpaca_quality,
        evaluate_many_models,
    )

    prompts, quality = alpaca_quality(list(ALPACA_CANDIDATES))  # the bundled copy
    if (shared_data / "preference" / "alpaca_eval").is_dir():  # equal to the shared data it was made from
        theirs = alpaca_quality(list(ALPACA_CANDIDATES), shared_data)
        assert theirs[0] == prompts and np.array_equal(theirs[1], quality)
    assert len(prompts) == 805 and quality.shape == (805, 5)
    assert ((quality >= 0) & (quality <= 1)).all() and abs(quality[:, 0].mean() - 0.5) < 0.02  # gpt-4 vs itself
    result = evaluate_many_models("sw_ranking", static_sw, prompts[:300], quality[:300],
                                  ALPACA_CANDIDATES)
    a = result.aiq
    assert result.prompts == 300 and a["oracle"] >= max(a["router (cost weight)"], a["random"])
    costs = np.array(list(ALPACA_CANDIDATES.values()))
    assert result.curve[0, 0] <= costs.max() and result.curve[-1, 0] >= costs.min()  # lambda 0 .. 10 spans the range


def test_server_routes_among_models_as_the_controller(echo_llm, serve_app):
    import httpx
    import openai
    from routellm_fast.serve.server import ServerSettings

    models = {STRONG: 10.0, WEAK: 0.6, "claude-2.1": 8.0}
    prompt = "Write a limerick about routers."
    c = Controller(["mf"], STRONG, WEAK, embedder="static", models=models)
    running = serve_app(ServerSettings(routers=["mf"], embedder="static", models=models, base_url=echo_llm.url).app())
    for name, rule in (("router-mf-cost-0.05", CostWeight(0.05)), ("router-mf-0.4", 0.4)):
        answer = httpx.post(running.url + "/v1/route", json={"model": name, "prompt": prompt}).json()
        want = c.decide(prompt, "mf", rule)
        assert answer["model"] == want.model and answer["scores"] == pytest.approx(want.scores, abs=1e-12)
        assert answer["threshold"] == (str(rule) if isinstance(rule, CostWeight) else rule)
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="x", max_retries=0)
        done = client.chat.completions.create(model=name, messages=[{"role": "user", "content": prompt}])
        assert done.model == want.model
    # A model routed among may be named directly; its list includes it.
    ids = [m["id"] for m in httpx.get(running.url + "/v1/models").json()["data"]]
    assert "claude-2.1" in ids
    bad = httpx.post(running.url + "/v1/route", json={"model": "router-mf-cost-x", "prompt": prompt})
    assert bad.status_code == 400 and "Cost weight" in bad.json()["message"]
