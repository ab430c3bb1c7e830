"""The evaluation suite: RouteLLM's benchmarks (bundled copy), its metrics, caching, the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
from routellm_fast import evals
from routellm_fast.cli import main as cli_main
from routellm_fast.embedders import prompt_key
from routellm_fast.paths import BUNDLED_EVALS
from routellm_fast.routers import RandomRouter

from tests.helpers import SHARED_DATA

#: RouteLLM's own benchmarks (the ZeroEval ones: test_zeroeval.py).
ROUTELLM = ("mmlu", "gsm8k", "mt-bench")


@pytest.fixture(scope="module")
def benchmarks() -> dict[str, evals.Benchmark]:
    return {name: evals.BENCHMARKS[name]() for name in ROUTELLM}  # the bundled copy


@pytest.mark.skipif(not (SHARED_DATA / "routellm-evals").is_dir(), reason="compares with RouteLLM's files in ../shared/data")
def test_bundled_copy_gives_what_routellm_files_give(benchmarks, shared_data):
    for name in ROUTELLM:
        theirs, ours = evals.BENCHMARKS[name](shared_data), benchmarks[name]
        assert ours.prompts == theirs.prompts and (ours.num_source, ours.dropped) == (theirs.num_source, theirs.dropped)
        np.testing.assert_array_equal(ours.strong_scores, theirs.strong_scores)
        np.testing.assert_array_equal(ours.weak_scores, theirs.weak_scores)


def test_bundled_copy_is_small_and_documented():
    files = list(BUNDLED_EVALS.iterdir())
    assert sum(f.stat().st_size for f in files) < 2_500_000
    notice = (BUNDLED_EVALS.parent / "NOTICE.md").read_text()
    assert "`evals/`" in notice and "Apache-2.0" in notice


def test_decontamination_counts_match_routellm(benchmarks):
    # RouteLLM drops 5 MMLU, 12 GSM8K and 8 MT Bench prompts listed in contaminated_prompts.jsonl.
    assert (len(benchmarks["mmlu"]), benchmarks["mmlu"].num_source) == (14037, 14042)
    assert (len(benchmarks["gsm8k"]), benchmarks["gsm8k"].num_source) == (1307, 1319)
    assert (len(benchmarks["mt-bench"]), benchmarks["mt-bench"].num_source) == (72, 80)
    assert benchmarks["mmlu"].describe() == "mmlu: 14037 of 14042 items (dropped 5 contaminated)"


def test_model_scores_are_routellm_accuracies(benchmarks):
    gsm = benchmarks["gsm8k"]
    df = pd.read_parquet(BUNDLED_EVALS / "gsm8k.parquet")
    bad = pd.read_parquet(BUNDLED_EVALS / "contaminated.parquet").query("benchmark == 'gsm8k'")["eval_prompt"]
    df = df[~df["prompt"].isin(bad)]
    assert gsm.prompts == df["prompt"].tolist()
    assert gsm.model_score("gpt-4-1106-preview") == pytest.approx(df["gpt-4-1106-preview"].mean() * 100, abs=1e-12)
    # Any alias of a model names its column.
    assert gsm.model_score("mistralai/Mixtral-8x7B-Instruct-v0.1") == gsm.model_score("mixtral-8x7b-instruct-v0.1")
    with pytest.raises(ValueError, match="routes between"):
        gsm.model_score("claude-2.1")
    mt = benchmarks["mt-bench"]
    assert 1.0 <= mt.weak_scores.min() and mt.strong_scores.max() <= 10.0


def test_quantile_thresholds_are_pandas_qcut_bins():
    rng = np.random.default_rng(3)
    for n in (7, 80, 1307):
        rates = rng.random(n)
        _, bins = pd.qcut(rates, 10, retbins=True)
        np.testing.assert_array_equal(evals.quantile_thresholds(rates, 10), bins)
    # Duplicate edges, where pandas raises, are dropped.
    rates = np.array([0.1] * 50 + list(np.linspace(0.2, 0.9, 50)))
    with pytest.raises(ValueError, match="unique"):
        pd.qcut(rates, 10, retbins=True)
    thresholds = evals.quantile_thresholds(rates, 10)
    assert len(thresholds) == len(np.unique(thresholds)) < 11


def _toy(strong, weak, **kw) -> evals.Benchmark:
    strong, weak = np.asarray(strong, float), np.asarray(weak, float)
    return evals.Benchmark("toy", [f"q{i}" for i in range(len(strong))], strong, weak, "gpt-4-1106-preview",
                           "mixtral-8x7b-instruct-v0.1", num_source=len(strong), **kw)


def test_optimal_router_by_brute_force():
    rng = np.random.default_rng(0)
    strong, weak = rng.integers(1, 11, 30).astype(float), rng.integers(1, 11, 30).astype(float)
    bench = _toy(strong, weak, whole_strong_calls=True)
    for share in (0.0, 0.1, 0.35, 0.5, 1.0):
        k = int(30 * share)
        best = max(np.where(np.isin(np.arange(30), c), strong, weak).mean()
                   for c in [np.argsort(weak - strong)[:j] for j in range(k + 1)])
        assert bench.optimal_score(share) == pytest.approx(best, abs=1e-12)
    # Correctness benchmarks allow fractional strong calls, as RouteLLM's MMLU/GSM8K formula does.
    right = _toy([1, 1, 1, 0], [0, 0, 1, 0], scale=100.0)
    assert right.optimal_score(0.25) == pytest.approx((1 + 1) / 4 * 100)
    assert right.optimal_score(0.3) == pytest.approx((1 + 1.2) / 4 * 100)
    assert right.optimal_score(1.0) == pytest.approx(75.0)


def test_metrics_of_a_perfect_and_a_random_ranking():
    rng = np.random.default_rng(1)
    strong = (rng.random(2000) < 0.8).astype(float)
    weak = (rng.random(2000) < 0.6).astype(float)
    bench = _toy(strong, weak, scale=100.0)
    oracle = (strong - weak) + rng.random(2000) * 1e-3  # gains first
    result = evals.evaluate_win_rates(bench, {"oracle": oracle, "random": [rng.random(2000) for _ in range(5)]})
    assert list(result.metrics) == ["oracle", "random"]  # sorted by APGR, as RouteLLM prints them
    assert result.metrics["oracle"].apgr > 0.8
    assert abs(result.metrics["random"].apgr - 0.5) < 0.05
    curve = result.curves["oracle"]
    assert curve.strong_percentage[0] == 0.0 and curve.strong_percentage[-1] == 100.0
    assert curve.score[0] == pytest.approx(result.weak_score) and curve.score[-1] == pytest.approx(result.strong_score)


def test_random_runs_are_averaged_per_strong_share():
    bench = _toy([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], [0, 0, 1, 0, 0, 1, 0, 1, 0, 0], scale=100.0)
    runs = [np.random.default_rng(s).random(10) for s in range(3)]
    averaged = evals.evaluate_win_rates(bench, {"random": runs}).curves["random"]
    singles = [evals.routing_curve(bench, r, 10) for r in runs]
    np.testing.assert_array_equal(averaged.strong_percentage, singles[0].strong_percentage)
    np.testing.assert_allclose(averaged.score, np.mean([c.score for c in singles], axis=0), rtol=0, atol=1e-12)


def test_bad_win_rates_are_named():
    bench = _toy([1, 0, 1], [0, 0, 1], scale=100.0)
    with pytest.raises(ValueError, match="expected 3 win rates"):
        evals.evaluate_win_rates(bench, {"mf": np.zeros(4)})
    with pytest.raises(ValueError, match="NaN"):
        evals.evaluate_win_rates(bench, {"mf": np.array([0.1, np.nan, 0.3])})
    with pytest.raises(ValueError, match="num_results"):
        evals.evaluate_win_rates(bench, {"mf": np.zeros(3)}, num_results=0)
    with pytest.raises(ValueError, match="no quality gap"):
        evals.evaluate_win_rates(_toy([1, 0], [1, 0]), {"mf": np.zeros(2)})


def test_golden_file_benchmark(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [{"prompt": f"question {i}", "gpt4_1106_preview": i % 3 != 0, "Mixtral-8x7B-Instruct-v0.1": i % 2 == 0}
            for i in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench = evals.load_golden_file(path)
    assert bench.name == "mine" and len(bench) == 20 and bench.scale == 100.0
    assert bench.model_score("gpt-4-1106-preview") == pytest.approx(np.mean([r["gpt4_1106_preview"] for r in rows]) * 100)
    scores = tmp_path / "scores.csv"
    scores.write_text("prompt,gpt-4-1106-preview,mixtral-8x7b-instruct-v0.1\na,9,7\nb,8,8.5\n")
    assert evals.load_golden_file(scores).model_score("gpt-4-1106-preview") == pytest.approx(8.5)
    scores.write_text("prompt,gpt-4-1106-preview,claude\na,9,7\n")
    with pytest.raises(ValueError, match="no column for model 'mixtral-8x7b-instruct-v0.1'"):
        evals.load_golden_file(scores)
    with pytest.raises(ValueError, match="unknown benchmark"):
        evals.load_benchmark("mmlu-pro")


class _CountingRouter:
    """A deterministic router with a fingerprint, counting how often it is asked."""

    def __init__(self, fingerprint: str, shift: float = 0.0) -> None:
        self.fingerprint, self.shift, self.calls = fingerprint, shift, 0

    def score(self, prompts):
        self.calls += 1
        return np.array([(int.from_bytes(prompt_key(p)[:4], "little") / 2**32 + self.shift) % 1 for p in prompts])


def test_win_rates_are_cached_per_router_configuration(tmp_path):
    bench = _toy([1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 1], scale=100.0)
    first = _CountingRouter("cfg-a")
    rates = evals.router_win_rates({"mf": first}, bench, cache_dir=tmp_path, progress=False)["mf"]
    again = _CountingRouter("cfg-a")
    np.testing.assert_array_equal(evals.router_win_rates({"mf": again}, bench, cache_dir=tmp_path)["mf"], rates)
    assert (first.calls, again.calls) == (1, 0)
    changed = _CountingRouter("cfg-b", shift=0.5)  # same name, new configuration: not served stale
    new = evals.router_win_rates({"mf": changed}, bench, cache_dir=tmp_path)["mf"]
    assert changed.calls == 1 and not np.array_equal(new, rates)
    evals.router_win_rates({"mf": again}, bench, cache_dir=tmp_path, overwrite_cache=True)
    assert again.calls == 1
    random_rates = evals.router_win_rates({"random": RandomRouter(seed=0)}, bench, random_iters=4, cache_dir=tmp_path)
    assert len(random_rates["random"]) == 4  # never cached, one array per run


def test_training_prompts_are_left_out(tmp_path):
    bench = _toy([1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 1], scale=100.0)
    router = _CountingRouter("cfg")
    router.training_prompt_keys = frozenset({prompt_key("q1"), prompt_key("q4"), prompt_key("not in the benchmark")})
    result = evals.run_eval({"mf": router, "random": RandomRouter(seed=0)}, bench, random_iters=2, progress=False)
    assert result.description == "toy: 4 of 6 items (dropped 2 seen in training)"
    everything = evals.run_eval({"mf": router}, bench, exclude_training_prompts=False, progress=False)
    assert everything.description == "toy: 6 of 6 items"


def test_cli_eval_writes_tables_and_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ROUTELLM_FAST_DATA", raising=False)
    out = tmp_path / "out"
    code = cli_main(["eval", "--routers", "random", "sw_ranking", "--benchmark", "mt-bench",
                     "--output", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet", "--random-iters", "3"])
    assert code == 0
    printed = capsys.readouterr()
    assert "mt-bench: 72 of 80 items (dropped 8 contaminated)" in printed.err
    assert "oracle APGR" in printed.out and "sign fitted on the training halves" in printed.out
    assert "| sw_ranking |" in printed.out and "| random |" in printed.out
    with open(out / "mt-bench-metrics.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"random", "sw_ranking", "length"} and 0 < float(rows["random"]["apgr"]) < 1
    # Beside every APGR its bootstrap interval (1000 resamples, seed 0, by default) and the paired test.
    assert float(rows["random"]["apgr_low"]) <= float(rows["random"]["apgr"]) <= float(rows["random"]["apgr_high"])
    assert rows["length"]["vs_baseline"] == "" and rows["sw_ranking"]["vs_baseline"] != ""
    assert "1000 bootstrap resamples of the 72 items, seed 0" in printed.out
    assert (out / "mt-bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "mt-bench.md").read_text().startswith("**mt-bench**")
    # A second run reads the cached sw_ranking win rates and gives the same table.
    assert cli_main(["eval", "--router", "sw_ranking", "--benchmark", "mt-bench",
                     "--output", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
    with open(out / "mt-bench-metrics.csv") as f:
        again = {r["method"]: r for r in csv.DictReader(f)}
    assert again["sw_ranking"]["apgr"] == rows["sw_ranking"]["apgr"]
    assert cli_main(["eval", "--benchmark", "nope", "--output", str(out)]) == 2
    assert cli_main(["eval", "--benchmark", "mt-bench", "--data-dir", str(tmp_path), "--output", str(out)]) == 2
    assert "not found" in capsys.readouterr().err


def test_random_router_results_do_not_depend_on_the_other_benchmarks(benchmarks):
    """Each benchmark evaluates the random router from its seed (RouteLLM reseeds per run), so GSM8K's
    numbers are the same alone or after MT Bench in one `eval` call."""
    shared = RandomRouter(seed=0)
    evals.run_eval({"random": shared}, benchmarks["mt-bench"], progress=False)
    after = evals.run_eval({"random": shared}, benchmarks["gsm8k"], progress=False)
    alone = evals.run_eval({"random": RandomRouter(seed=0)}, benchmarks["gsm8k"], progress=False)
    assert after.metrics["random"].apgr == alone.metrics["random"].apgr
    np.testing.assert_array_equal(after.curves["random"].score, alone.curves["random"].score)


def test_cached_win_rates_follow_the_embedders_computation(tmp_path, static_mf):
    """Two computations of one embedding model (float32 and int8 MiniLM share a name) never share
    cached embeddings or win rates: the cache key holds what the embedder returns for a probe."""
    from routellm_fast.paths import shipped_files
    from routellm_fast.routers import MatrixFactorizationRouter

    base = static_mf.embedder

    class Shifted:
        name, dim = base.name, base.dim

        def __init__(self, shift: float) -> None:
            self.shift, self.calls = shift, 0

        def embed(self, prompts):
            self.calls += 1
            return np.asarray(base.embed(prompts)) + self.shift

    bench = _toy([1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 1], scale=100.0)
    rates = {}
    for shift in (0.0, 0.05, 0.0):
        embedder = Shifted(shift)
        router = MatrixFactorizationRouter(shipped_files("static")[0], embed=embedder)
        rates.setdefault(shift, []).append(evals.router_win_rates({"mf": router}, bench, cache_dir=tmp_path,
                                                                  progress=False)["mf"])
        assert embedder.calls == (1 if len(rates[shift]) > 1 else 2)  # the probe, then the prompts if not cached
    assert not np.array_equal(rates[0.0][0], rates[0.05][0])
    np.testing.assert_array_equal(rates[0.0][0], rates[0.0][1])
