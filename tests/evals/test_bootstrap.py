"""Bootstrap intervals, the paired test and the length baseline (evals.metrics, evals.baselines)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from routellm_fast import evals
from routellm_fast.embedders import prompt_key
from routellm_fast.routers import RandomRouter


def _bench(n: int, rng: np.random.Generator, judged: bool = False, **kw) -> evals.Benchmark:
    if judged:  # MT Bench-like: mean of two 1-10 judgements
        strong, weak = rng.integers(2, 21, n) / 2, rng.integers(2, 21, n) / 2
        kw.setdefault("whole_strong_calls", True)
    else:
        strong, weak = (rng.random(n) < 0.7).astype(float), (rng.random(n) < 0.45).astype(float)
        kw.setdefault("scale", 100.0)
    prompts = [f"question {i} " + "x" * int(rng.integers(1, 200)) for i in range(n)]
    return evals.Benchmark("toy", prompts, strong, weak, "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1",
                           num_source=n, **kw)


def _direct(bench: evals.Benchmark, rates, rows: np.ndarray) -> float:
    """APGR of the benchmark made of the items ``rows`` (with repeats), the plain way."""
    sub = replace(bench, prompts=[bench.prompts[i] for i in rows], strong_scores=bench.strong_scores[rows],
                  weak_scores=bench.weak_scores[rows])
    if sub.model_score(sub.strong_model) == sub.model_score(sub.weak_model):
        return float("nan")
    picked = rates[rows] if isinstance(rates, np.ndarray) else [r[rows] for r in rates]
    return evals.evaluate_win_rates(sub, {"m": picked}).metrics["m"].apgr


@pytest.mark.parametrize("seed", range(6))
def test_bootstrap_apgr_equals_a_direct_loop(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 50))
    bench = _bench(n, rng, judged=seed % 2 == 1)
    cases = [rng.random(n),
             np.round(rng.random(n), 1),  # ties: duplicate quantile edges, some equal to the largest
             np.zeros(n) + (np.arange(n) == 0),  # all but one equal
             [rng.random(n) for _ in range(4)]]  # runs of a random router, averaged per strong share
    indices = evals.bootstrap_indices(n, 40, seed)
    for rates in cases:
        fast = evals.bootstrap_apgr(bench, rates, indices)
        slow = np.array([_direct(bench, rates, row) for row in indices])
        np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9, equal_nan=True)


def test_a_resample_of_every_item_once_is_the_full_set():
    rng = np.random.default_rng(7)
    bench = _bench(300, rng)
    rates = rng.random(300)
    full = evals.evaluate_win_rates(bench, {"m": rates}).metrics["m"].apgr
    identity = np.arange(300)[None, :]
    assert evals.bootstrap_apgr(bench, rates, identity)[0] == pytest.approx(full, abs=1e-12)
    runs = [rng.random(300) for _ in range(5)]
    averaged = evals.evaluate_win_rates(bench, {"r": runs}).metrics["r"].apgr
    assert evals.bootstrap_apgr(bench, runs, identity)[0] == pytest.approx(averaged, abs=1e-12)


def test_bootstrap_indices_are_fixed_by_the_seed():
    a, b = evals.bootstrap_indices(50, 20, 3), evals.bootstrap_indices(50, 20, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, evals.bootstrap_indices(50, 20, 4))
    np.testing.assert_array_equal(a, np.random.default_rng(3).integers(0, 50, (20, 50)))
    with pytest.raises(ValueError, match="at least one"):
        evals.bootstrap_indices(0, 10, 0)


def test_same_seed_same_report_and_paired_differences():
    rng = np.random.default_rng(11)
    bench = _bench(120, rng)
    good = bench.strong_scores - bench.weak_scores + rng.random(120)  # knows the gains
    rates = {"good": good, "noise": rng.random(120), "base": rng.random(120)}
    one = evals.evaluate_win_rates(bench, rates, bootstrap=200, seed=5, baseline="base")
    two = evals.evaluate_win_rates(bench, rates, bootstrap=200, seed=5, baseline="base")
    assert one.bootstrap == two.bootstrap
    other = evals.evaluate_win_rates(bench, rates, bootstrap=200, seed=6, baseline="base")
    assert other.bootstrap.apgr != one.bootstrap.apgr
    boot = one.bootstrap
    assert (boot.resamples, boot.seed, boot.baseline) == (200, 5, "base") and set(boot.paired) == {"good", "noise"}
    for method, m in one.metrics.items():
        low, high = boot.apgr[method]
        assert low <= m.apgr <= high
    diff, low, high = boot.paired["good"]
    assert diff == pytest.approx(one.metrics["good"].apgr - one.metrics["base"].apgr)
    assert low > 0 and boot.excludes_zero("good")
    # The paired interval is that of the per-resample differences on the same resamples.
    idx = evals.bootstrap_indices(120, 200, 5)
    per = evals.bootstrap_apgr(bench, good, idx) - evals.bootstrap_apgr(bench, rates["base"], idx)
    assert (low, high) == tuple(np.percentile(per, [2.5, 97.5]))
    table = evals.markdown_table(one)
    assert "APGR 95% CI" in table and "(baseline)" in table and "**+" in table


def test_bad_bootstrap_arguments():
    rng = np.random.default_rng(0)
    bench = _bench(10, rng)
    with pytest.raises(ValueError, match="bootstrap must be"):
        evals.evaluate_win_rates(bench, {"m": rng.random(10)}, bootstrap=-1)
    with pytest.raises(ValueError, match="baseline 'x'"):
        evals.evaluate_win_rates(bench, {"m": rng.random(10)}, bootstrap=10, baseline="x")
    with pytest.raises(ValueError, match="indices"):
        evals.bootstrap_apgr(bench, rng.random(10), np.zeros((3, 9), dtype=int))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        evals.bootstrap_apgr(bench, rng.random(10), np.full((3, 10), 10))


def test_length_baseline_is_fitted_on_the_training_half_only():
    rng = np.random.default_rng(2)
    n = 400
    prompts = ["p" * int(k) + f" {i}" for i, k in enumerate(rng.integers(5, 400, n))]
    bench = evals.Benchmark("toy", prompts, np.ones(n), np.zeros(n), "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1",
                            scale=100.0, num_source=n, training_salt="")
    train = bench.training_mask()
    lengths = np.array([len(p) for p in prompts])
    # The strong model is needed on long prompts in the training half, on short ones in the held-out half.
    long = lengths > np.median(lengths)
    weak = np.where(train, ~long, long).astype(float)
    fitted = evals.length_baseline_for(replace(bench, weak_scores=weak))
    assert fitted.sign == 1 and "training half (" in fitted.describe()
    assert fitted.training_prompt_keys == {prompt_key(p) for p, t in zip(prompts, train) if t}
    # Whatever the held-out items hold, the fit is the same.
    flipped = np.where(train, weak, 1.0 - weak)
    again = evals.length_baseline_for(replace(bench, weak_scores=flipped))
    assert (again.sign, again.training_apgr) == (fitted.sign, fitted.training_apgr)
    # A benchmark without a training half takes the sign fitted on the bundled training halves.
    pooled = evals.length_baseline_for(replace(bench, training_salt=None))
    assert "MMLU, GSM8K and CRUX" in pooled.fitted_on and len(pooled.training_prompt_keys) > 8000


def test_run_eval_leaves_the_training_half_out_and_reports_the_baseline():
    rng = np.random.default_rng(4)
    bench = replace(_bench(200, rng), training_salt="")
    held = int((~bench.training_mask()).sum())
    result = evals.run_eval({"random": RandomRouter(seed=0)}, bench, random_iters=3, progress=False,
                            length_baseline=True, bootstrap=100, seed=1)
    assert result.description == f"toy: {held} of 200 items (dropped {200 - held} training half)"
    assert set(result.metrics) == {"random", "length"} and result.bootstrap.baseline == "length"
    assert any("length baseline" in note for note in result.notes)
    assert any("100 bootstrap resamples" in note and "seed 1" in note for note in result.notes)
    with pytest.raises(ValueError, match="name of the length baseline"):
        evals.run_eval({"length": RandomRouter(seed=0)}, bench, progress=False, length_baseline=True)


def test_constant_win_rates_have_no_apgr_instead_of_a_crash():
    bench = _bench(20, np.random.default_rng(0))
    result = evals.evaluate_win_rates(bench, {"flat": np.full(20, 0.5)}, bootstrap=20)
    assert np.isnan(result.metrics["flat"].apgr) and all(np.isnan(result.bootstrap.apgr["flat"]))


def test_publish_table_of_mean_apgr_and_missing_routers():
    from routellm_fast.evals import publish

    rng = np.random.default_rng(5)
    results = []
    for seed in range(2):
        bench = _bench(60, np.random.default_rng(seed))
        results.append(evals.evaluate_win_rates(bench, {"a": rng.random(60), "b": bench.strong_scores + rng.random(60)},
                                                bootstrap=50))
    table = publish.mean_apgr_table(results).splitlines()
    assert table[0] == "| router | toy | toy | mean |" and table[2].startswith("| b |")  # best mean first
    mean = np.mean([r.metrics["b"].apgr for r in results])
    assert table[2].endswith(f"| **{mean:.3f}** |")
    routers, notes = publish.shipped_routers(["random", "mf"], ["static"])
    assert set(routers) == {"random", "mf-static"} and not notes
    with pytest.raises(ValueError, match="no shipped router 'nope'"):
        publish.shipped_routers(["nope"], ["minilm"])


def test_paired_interval_of_any_two_methods_uses_the_same_resamples():
    rng = np.random.default_rng(11)
    bench = _bench(200, rng)
    gain = bench.strong_scores - bench.weak_scores
    rates = {"good": gain + rng.normal(0, 0.5, 200), "noise": rng.random(200)}
    result = evals.evaluate_win_rates(bench, rates, bootstrap=300, seed=3)
    boot = result.bootstrap
    indices = evals.bootstrap_indices(200, 300, 3)
    diff = evals.bootstrap_apgr(bench, rates["noise"], indices) - evals.bootstrap_apgr(bench, rates["good"], indices)
    low, high = np.percentile(diff[np.isfinite(diff)], [2.5, 97.5])
    assert boot.paired_interval("noise", "good") == pytest.approx((low, high), abs=1e-12)
    assert boot.paired_interval("good", "good") == (0.0, 0.0)


def test_the_default_rule_keeps_routers_whose_interval_reaches_zero_on_every_benchmark():
    from routellm_fast.evals.publish import not_worse_table

    rng = np.random.default_rng(5)
    results = []
    for _ in range(2):
        bench = _bench(400, rng)
        gain = bench.strong_scores - bench.weak_scores
        good = gain + rng.normal(0, 0.3, 400)
        rates = {"good": good, "twin": good + rng.normal(0, 1e-3, 400), "noise": rng.random(400)}
        results.append(evals.evaluate_win_rates(bench, rates, bootstrap=200, seed=0))
    table, not_worse = not_worse_table(results)
    assert not_worse[0] in ("good", "twin") and set(not_worse) == {"good", "twin"}
    assert "| noise |" in table and table.splitlines()[-1].endswith("| no |")
    with pytest.raises(ValueError, match="bootstrap"):
        not_worse_table([evals.evaluate_win_rates(_bench(50, rng), {"m": rng.random(50)})])
