"""Preference data: the battle format, the shared datasets, golden-label battles and splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from routellm_fast.evals import Benchmark, load_gsm8k
from routellm_fast.formats.preference import (
    PreferenceData,
    golden_label_battles,
    load_preference,
    training_split,
    write_battles,
)

from tests.helpers import SHARED_DATA

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")


def _rows():
    return [
        {"prompt": "What is 2+2?", "model_a": "gpt4_1106_preview", "model_b": "Mixtral-8x7B-Instruct-v0.1", "winner": "model_a"},
        {"prompt": "Write a haiku.", "model_a": "claude-2.1", "model_b": "gpt-4-1106-preview", "winner": "tie"},
        {"prompt": "What is 2+2?", "model_a": "mixtral-8x7b-instruct-v0.1", "model_b": "claude-2.1", "winner": "model_b",
         "weight": 2.5},
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_battle_format_round_trip(tmp_path, suffix):
    source = tmp_path / "battles.jsonl"
    source.write_text("".join(json.dumps({"weight": 1.0, **r}) for r in _rows()).replace("}{", "}\n{") + "\n")
    data = load_preference(source)
    assert data.prompts == ["What is 2+2?", "Write a haiku."]  # one row per distinct prompt
    assert data.prompt_index.tolist() == [0, 1, 0]
    # Aliases: AlpacaEval's and RouteLLM's spellings are one model.
    assert data.models == ["gpt-4-1106-preview", "claude-2.1", "mixtral-8x7b-instruct-v0.1"]
    assert data.outcome.tolist() == [0, 2, 1] and data.weight.tolist() == [1.0, 1.0, 2.5]
    out = tmp_path / f"copy{suffix}"
    write_battles(data, out)
    again = load_preference(out)
    assert again.prompts == data.prompts and again.model_a == data.model_a
    np.testing.assert_array_equal(again.outcome, data.outcome)
    np.testing.assert_array_equal(again.weight, data.weight)


def test_bad_battles_are_named(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text(json.dumps({"prompt": "p", "model_a": "x", "model_b": "y", "winner": "draw"}) + "\n")
    with pytest.raises(ValueError, match="winner 'draw' is not one of"):
        load_preference(path)
    path.write_text(json.dumps({"prompt": "p", "model_a": "", "model_b": "y", "winner": "tie"}) + "\n")
    with pytest.raises(ValueError, match="model_a must be a non-empty model name"):
        load_preference(path)
    path.write_text(json.dumps({"prompt": "p", "model_a": "x", "model_b": "y", "winner": "tie", "weight": -1}) + "\n")
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        load_preference(path)
    path.write_text(json.dumps({"text": "p", "model_a": "x", "model_b": "y", "winner": "tie"}) + "\n")
    with pytest.raises(ValueError, match="no column 'prompt'"):
        load_preference(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_preference(tmp_path / "missing.csv")
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileNotFoundError, match="needs battles.csv and prompts.jsonl"):
        load_preference(tmp_path / "folder")
    with pytest.raises(ValueError, match="no battle files"):
        load_preference([])


def test_concat_and_where_keep_prompts_consistent():
    a = PreferenceData(["p", "q"], np.array([0, 1, 1]), ["x", "y", "x"], ["y", "x", "z"], np.array([0, 1, 2], np.int8),
                       np.ones(3))
    b = PreferenceData(["q", "r"], np.array([1, 0]), ["x", "x"], ["y", "y"], np.array([0, 0], np.int8), np.ones(2))
    both = PreferenceData.concat([a, b])
    assert both.prompts == ["p", "q", "r"]
    assert [both.prompts[i] for i in both.prompt_index] == ["p", "q", "q", "r", "q"]
    sub = both.where(np.array([False, True, False, True, False]))
    assert sub.prompts == ["q", "r"] and [sub.prompts[i] for i in sub.prompt_index] == ["q", "r"]
    assert len(sub.training_prompt_keys()) == 2


@needs_data
def test_shared_preference_folders(shared_data):
    data = load_preference([shared_data / "preference" / "alpaca_eval", shared_data / "preference" / "arena_bench_v1"])
    assert len(data) == 130_049 + 30_966
    assert len(data.prompts) == 805 + 300
    models = set(data.models)
    assert {"gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", "llama-2-70b-chat"} <= models
    assert "gpt4_1106_preview" not in models and "Mixtral-8x7B" not in models  # aliases applied


def test_training_split_is_stable_and_salted():
    prompts = [f"question {i}" for i in range(4000)]
    split = training_split(prompts)
    assert abs(split.mean() - 0.5) < 0.03
    np.testing.assert_array_equal(training_split(prompts[::-1])[::-1], split)  # order does not matter
    assert not np.array_equal(training_split(prompts, salt="other"), split)
    assert training_split(prompts, 0.0).sum() == 0 and training_split(prompts, 1.0).all()
    with pytest.raises(ValueError, match="share"):
        training_split(prompts, 1.5)


def test_golden_label_battles_from_correctness():
    prompts = [f"q{i}" for i in range(400)]
    rng = np.random.default_rng(0)
    strong, weak = rng.integers(0, 2, 400).astype(float), rng.integers(0, 2, 400).astype(float)
    bench = Benchmark("toy", prompts, strong, weak, "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1",
                      scale=100.0, num_source=400)
    battles = golden_label_battles(bench)
    keep = training_split(prompts)
    assert battles.prompts == [p for p, k in zip(prompts, keep) if k]
    assert set(battles.models) == {"gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"}
    expected = np.where(strong[keep] > weak[keep], 0, np.where(weak[keep] > strong[keep], 1, 2))
    np.testing.assert_array_equal(battles.outcome, expected)


def test_golden_label_battles_never_use_held_out_questions():
    gsm = load_gsm8k()  # the bundled copy
    battles = golden_label_battles(gsm)
    held_out = gsm.excluding({k.tobytes() for k in battles.training_prompt_keys()}, "seen in training")
    assert len(battles.prompts) + len(held_out) == len(gsm)
    assert not set(held_out.prompts) & set(battles.prompts)
