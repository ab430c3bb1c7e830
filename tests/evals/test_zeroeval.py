"""ZeroEval's golden labels: the bundled copy, the CRUX and MATH level 5 benchmarks, their halves."""

from __future__ import annotations

import numpy as np
import pytest
from routellm_fast import evals
from routellm_fast.cli import main as cli_main
from routellm_fast.embedders import prompt_key
from routellm_fast.formats.preference import golden_label_battles, training_split
from routellm_fast.paths import BUNDLED_EVALS

from tests.helpers import SHARED_DATA

ZEROEVAL = SHARED_DATA / "golden" / "zeroeval"


@pytest.mark.skipif(not ZEROEVAL.is_dir(), reason="compares with the CSVs in ../shared/data/golden/zeroeval")
@pytest.mark.parametrize("name", ["crux", "math-l5"])
def test_bundled_copy_gives_what_the_csv_gives(name, shared_data):
    ours, theirs = evals.load_zeroeval(name), evals.load_zeroeval(name, shared_data)
    assert (ours.ids, ours.prompts, ours.models) == (theirs.ids, theirs.prompts, theirs.models)
    np.testing.assert_array_equal(ours.correct, theirs.correct)
    assert evals.load_zeroeval(name, ZEROEVAL).prompts == theirs.prompts  # the folder itself works too


def test_crux_pair_and_halves():
    crux = evals.load_crux()
    assert (len(crux), crux.strong_model, crux.weak_model) == (800, "gpt-4-turbo-2024-04-09", "Mixtral-8x7B-Instruct-v0.1")
    # PROVENANCE.md: 78.88% and 44.88% on all 800 items.
    assert crux.model_score(crux.strong_model) == pytest.approx(78.875)
    assert crux.model_score("mixtral-8x7b-instruct-v0.1") == pytest.approx(44.875)
    train, held = crux.training_half(), crux.held_out_half()
    assert len(train) + len(held) == 800 and 300 < len(held) < 500
    assert not {prompt_key(p) for p in train.prompts} & {prompt_key(p) for p in held.prompts}
    np.testing.assert_array_equal(crux.training_mask(), training_split(crux.prompts, 0.5))
    # Training code sees the same half: the golden-label battles and the N-model training half.
    assert golden_label_battles(crux).prompts == train.prompts
    half = evals.zeroeval_training_half("crux")
    assert half.prompts == train.prompts and half.correct.shape == (len(train), 48)
    j = half.index("gpt-4-turbo-2024-04-09")
    np.testing.assert_array_equal(half.correct[:, j], train.strong_scores)
    assert evals.load_zeroeval("crux").held_out_half().prompts == held.prompts


def test_math_l5_needs_a_weak_model():
    with pytest.raises(ValueError, match="never ran mixtral.*--weak-model"):
        evals.load_benchmark("math-l5")
    bench = evals.load_benchmark("math-l5", weak_model="gpt-3.5-turbo-0125")
    assert len(bench) == 721 and bench.model_score("gpt-3.5-turbo-0125") == pytest.approx(13.73, abs=0.01)
    with pytest.raises(ValueError, match="no model 'nope'"):
        evals.load_math_l5(weak_model="nope")
    with pytest.raises(ValueError, match="unknown ZeroEval set"):
        evals.load_zeroeval("zebra")


def test_bad_zeroeval_files(tmp_path):
    (tmp_path / "crux.csv").write_text("id,prompt,a,b\n1,q,1,2\n")
    with pytest.raises(ValueError, match="row 0, model 'b': correctness must be 0 or 1"):
        evals.load_zeroeval("crux", tmp_path)
    (tmp_path / "crux.csv").write_text("id,question,a\n1,q,1\n")
    with pytest.raises(ValueError, match="no 'prompt' column"):
        evals.load_zeroeval("crux", tmp_path)
    with pytest.raises(FileNotFoundError, match="golden/zeroeval/math_l5.csv"):
        evals.load_zeroeval("math-l5", tmp_path)


def test_bundled_files_are_documented():
    notice = (BUNDLED_EVALS.parent / "NOTICE.md").read_text()
    for stem in ("crux", "math_l5"):
        assert (BUNDLED_EVALS / f"zeroeval_{stem}.parquet").is_file()
        assert f"zeroeval_{stem}.parquet" in notice
    assert "ZeroEval" in notice and "Apache-2.0" in notice


def test_cli_eval_crux_without_shared_data(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ROUTELLM_FAST_DATA", raising=False)
    out = tmp_path / "out"
    assert cli_main(["eval", "--routers", "random", "--benchmark", "crux", "--output", str(out), "--quiet",
                     "--random-iters", "2", "--bootstrap", "50", "--seed", "3", "--cache-dir", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out
    assert "crux: 401 of 800 items (dropped 399 training half)" in printed
    assert "| length |" in printed and "50 bootstrap resamples of the 401 items, seed 3" in printed
    header = (out / "crux-metrics.csv").read_text().splitlines()[0]
    assert header.endswith("apgr,apgr_low,apgr_high,vs_baseline,vs_baseline_low,vs_baseline_high")
    with pytest.raises(SystemExit):
        cli_main(["eval", "--benchmark", "crux", "--bootstrap", "-1", "--output", str(out)])
    assert "--bootstrap: expected a whole number >= 0, got '-1'" in capsys.readouterr().err
