"""Training from golden labels: labelled prompts from correctness matrices and battles, the knn
router's choice of k and temperature on a validation split, its byte-for-byte file, and the recipe's
sources (training halves only)."""

from __future__ import annotations

import numpy as np
import pytest
from routellm_fast.embedders import embedder_for
from routellm_fast.evals import Benchmark
from routellm_fast.formats.knn import load_knn
from routellm_fast.formats.preference import (
    LabelledPrompts,
    PreferenceData,
    benchmark_labels,
    pair_battle_labels,
    training_split,
)
from routellm_fast.routers import KNNRouter
from routellm_fast.train.fit import train_knn_router

from tests.helpers import STRONG, WEAK


def test_labelled_prompts_merge_by_prompt_and_model():
    a = LabelledPrompts(["p", "q"], ["m1", "m2"], np.array([[1, 0], [np.nan, 1]], np.float32))
    b = LabelledPrompts(["q", "r"], ["m2", "m3"], np.array([[0, 1], [1, np.nan]], np.float32))
    both = LabelledPrompts.concat([a, b])
    assert both.prompts == ["p", "q", "r"] and both.models == ["m1", "m2", "m3"]
    np.testing.assert_array_equal(both.labels, np.array([[1, 0, np.nan], [np.nan, 0.5, 1], [np.nan, 1, np.nan]],
                                                        np.float32))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        LabelledPrompts(["p"], ["m"], np.array([[2.0]], np.float32))
    with pytest.raises(ValueError, match="no label for any model"):
        LabelledPrompts(["p"], ["m"], np.array([[np.nan]], np.float32))
    stand_in = a.with_copy("m1", "m9")
    np.testing.assert_array_equal(stand_in.labels[:, 2], a.labels[:, 0])


def test_battles_give_the_pairs_share_of_wins_per_prompt():
    data = PreferenceData(
        ["p", "q", "r"], np.array([0, 0, 0, 1, 2]),
        [STRONG, WEAK, STRONG, "other", STRONG], [WEAK, STRONG, WEAK, STRONG, "other"],
        np.array([0, 0, 2, 0, 1], np.int8), np.array([1.0, 1.0, 2.0, 1.0, 1.0]))
    labels = pair_battle_labels(data, STRONG, WEAK)
    # p: strong won (1), weak won (0), a tie of weight 2 (0.5 each): (1 + 0 + 1) / 4
    assert labels.prompts == ["p"] and labels.models == [STRONG, WEAK]
    np.testing.assert_allclose(labels.labels, [[0.5, 0.5]])


def test_benchmark_labels_are_the_training_half():
    prompts = [f"question {i}" for i in range(200)]
    rng = np.random.default_rng(0)
    bench = Benchmark("b", prompts, rng.integers(0, 2, 200).astype(float), rng.integers(0, 2, 200).astype(float),
                      STRONG, WEAK, scale=100.0, num_source=200)
    labels = benchmark_labels(bench)
    keep = training_split(prompts, 0.5)
    assert labels.prompts == [p for p, k in zip(prompts, keep) if k]
    np.testing.assert_array_equal(labels.labels[:, 0], bench.strong_scores[keep])


def synthetic_sources(n: int = 240) -> dict[str, LabelledPrompts]:
    """Maths prompts the strong model alone solves; chit-chat both models handle."""
    rng = np.random.default_rng(1)
    maths = [f"Solve the equation {i} x + {i + 3} = {2 * i} and prove the answer is unique." for i in range(n)]
    chat = [f"Say hello to my friend number {i} in a cheerful way." for i in range(n)]
    y_maths = np.column_stack([rng.random(n) < 0.9, rng.random(n) < 0.2]).astype(np.float32)
    y_chat = np.column_stack([rng.random(n) < 0.9, rng.random(n) < 0.85]).astype(np.float32)
    return {"maths": LabelledPrompts(maths, [STRONG, WEAK], y_maths),
            "chat": LabelledPrompts(chat, [STRONG, WEAK], y_chat)}


def test_knn_training_chooses_on_validation_and_writes_the_same_bytes(tmp_path):
    embedder = embedder_for("static")
    sources = synthetic_sources()
    report = train_knn_router(sources, tmp_path / "a.npz", embedder, pair=(STRONG, WEAK), k_grid=(5, 20),
                              temperature_grid=(0.05, 1.0), progress=False)
    train_knn_router(sources, tmp_path / "b.npz", embedder, pair=(STRONG, WEAK), k_grid=(5, 20),
                     temperature_grid=(0.05, 1.0), progress=False)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    val = report["validation"]
    assert set(val["grid"]) == {"k=5,temperature=0.05", "k=5,temperature=1", "k=20,temperature=0.05",
                                "k=20,temperature=1"}
    assert val["apgr"]["mean"] == max(val["grid"].values())
    for name, source in sources.items():  # the validation prompts are a hash-chosen share of each source
        assert val["prompts"][name] == int((~training_split(source.prompts, 0.8, salt="validation:")).sum())
    knn = load_knn(tmp_path / "a.npz")
    assert knn.storage == "int8" and len(knn.rows) == 2 * 240
    router = KNNRouter(tmp_path / "a.npz", STRONG, WEAK)
    assert f"k={router.k},temperature={router.temperature:g}" == val["chosen"]
    maths, chat = router.score(["Solve the equation 7 x + 1 = 3 and prove it.", "Say hello to my friend Bob."])
    assert maths > chat


def test_knn_training_refuses_a_pair_without_labels(tmp_path):
    with pytest.raises(ValueError, match="has no labels"):
        train_knn_router(synthetic_sources(20), tmp_path / "x.npz", embedder_for("static"), pair=(STRONG, "nobody"),
                         progress=False)


def test_recipe_trains_on_training_halves_only(shared_data):
    if not (shared_data / "golden" / "zeroeval").is_dir():
        pytest.skip("needs ../shared/data")
    from routellm_fast.evals import load_gsm8k, load_mmlu
    from routellm_fast.evals.zeroeval import load_zeroeval
    from routellm_fast.train.recipe import knn_training_data

    sources = knn_training_data(shared_data)
    held_out = set()
    for bench in (load_mmlu(shared_data), load_gsm8k(shared_data)):
        held_out |= {p for p, k in zip(bench.prompts, training_split(bench.prompts, 0.5)) if not k}
    for name in ("crux", "math-l5"):
        held_out |= set(load_zeroeval(name, shared_data).held_out_half().prompts)
    for name, source in sources.items():
        assert not held_out & set(source.prompts), name
    assert {"mmlu_train", "gsm8k_train", "crux_train", "math-l5_train", "arena_bench_v1", "alpaca_eval"} == set(sources)
    crux = sources["crux_train"]  # gpt-4-turbo-2024-04-09 stands in for the pair's strong model
    np.testing.assert_array_equal(crux.labels[:, crux.models.index(STRONG)],
                                  crux.labels[:, crux.models.index("gpt-4-turbo-2024-04-09")])
