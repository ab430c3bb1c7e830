"""Training without torch: the mf trainer's math, determinism, early stopping; routers from battles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast.cli import main as cli_main
from routellm_fast.evals import Benchmark
from routellm_fast.formats.arena import load_arena
from routellm_fast.formats.preference import PreferenceData, write_battles
from routellm_fast.train.fit import (
    MFTrainConfig,
    _Adam,
    _loss_and_grads,
    train_mf,
    train_mf_router,
    train_sw_router,
)

from tests import reference as ref


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    P, W, c, x = rng.normal(size=(5, 4)), rng.normal(size=(4, 6)), rng.normal(size=(1, 4)), rng.normal(size=(7, 6))
    win, lose = np.array([0, 1, 2, 3, 0, 4, 1]), np.array([1, 2, 3, 4, 2, 0, 0])
    target, weight = np.array([1, 1, 0.5, 1, 1, 0.5, 1.0]), rng.random(7)
    _, *grads = _loss_and_grads(P, W, c, x, win, lose, target, weight)
    for param, grad in zip((P, W, c), grads):
        for idx in np.ndindex(param.shape):
            old = param[idx]
            param[idx] = old + 1e-6
            up = _loss_and_grads(P, W, c, x, win, lose, target, weight)[0]
            param[idx] = old - 1e-6
            down = _loss_and_grads(P, W, c, x, win, lose, target, weight)[0]
            param[idx] = old
            assert grad[idx] == pytest.approx((up - down) / 2e-6, abs=1e-8)


def test_adam_is_torchs():
    # torch.optim.Adam(lr=0.1, weight_decay=0.01), two steps, by hand.
    p, g = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    adam = _Adam([p], lr=0.1, weight_decay=0.01)
    m = v = np.zeros(2)
    expected = p.copy()
    for t in (1, 2):
        grad = g + 0.01 * expected
        m, v = 0.9 * m + 0.1 * grad, 0.999 * v + 0.001 * grad**2
        expected = expected - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        adam.step([g])
    np.testing.assert_allclose(p, expected, rtol=1e-12)


def _synthetic(n=4000, prompts=400, seed=0):
    """Model 0 beats model 1 on prompts whose first coordinate is positive, loses otherwise."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(prompts, 16)).astype(np.float32)
    index = rng.integers(0, prompts, n)
    a, b = rng.integers(0, 2, n), None
    b = 1 - a
    zero_wins = emb[index, 0] > 0
    outcome = np.where(zero_wins == (a == 0), 0, 1).astype(np.int8)
    val = np.zeros(prompts, dtype=bool)
    val[: prompts // 10] = True
    return emb, index, a, b, outcome, val


FAST = MFTrainConfig(dim=8, batch_size=32, lr=1e-2, max_epochs=15, patience=3, seed=1)


def test_it_learns_a_prompt_dependent_preference():
    emb, index, a, b, outcome, val = _synthetic()
    result = train_mf(emb, index, a, b, outcome, 3, val_prompts=val, config=FAST, progress=False)
    assert result.val_accuracy > 0.9
    rates = ref.mf_win_rate(emb, result.model_embeddings, result.text_projection, result.classifier[0], 0, 1)
    assert np.mean((rates > 0.5) == (emb[:, 0] > 0)) > 0.9
    assert result.model_embeddings.dtype == np.float32 and result.text_projection.shape == (8, 16)


def test_deterministic_under_a_seed_and_keeps_the_best_epoch():
    emb, index, a, b, outcome, val = _synthetic(n=1500)
    one = train_mf(emb, index, a, b, outcome, 2, val_prompts=val, config=FAST, progress=False)
    two = train_mf(emb, index, a, b, outcome, 2, val_prompts=val, config=FAST, progress=False)
    np.testing.assert_array_equal(one.model_embeddings, two.model_embeddings)
    np.testing.assert_array_equal(one.text_projection, two.text_projection)
    other = train_mf(emb, index, a, b, outcome, 2, val_prompts=val, config=MFTrainConfig(**{**FAST.__dict__, "seed": 2}),
                     progress=False)
    assert not np.array_equal(one.text_projection, other.text_projection)
    losses = [h["val_loss"] for h in one.history]
    assert one.best_epoch == int(np.argmin(losses)) and one.val_loss == min(losses)
    assert len(one.history) <= FAST.max_epochs
    assert len(one.history) == FAST.max_epochs or len(one.history) - 1 - one.best_epoch == FAST.patience


def test_ties_and_weights_change_training():
    emb, index, a, b, outcome, val = _synthetic(n=1000)
    outcome = outcome.copy()
    outcome[::5] = 2
    base = train_mf(emb, index, a, b, outcome, 2, val_prompts=val, config=FAST, progress=False)
    half = train_mf(emb, index, a, b, outcome, 2, val_prompts=val, ties="half", config=FAST, progress=False)
    weighted = train_mf(emb, index, a, b, outcome, 2, val_prompts=val, weight=np.linspace(0.1, 2, 1000), config=FAST,
                        progress=False)
    assert not np.array_equal(base.classifier, half.classifier)
    assert not np.array_equal(base.classifier, weighted.classifier)


def test_bad_training_inputs():
    emb, index, a, b, outcome, val = _synthetic(n=100)
    with pytest.raises(ValueError, match="NaN"):
        train_mf(np.full_like(emb, np.nan), index, a, b, outcome, 2, progress=False)
    with pytest.raises(ValueError, match="differ in length"):
        train_mf(emb, index[:-1], a, b, outcome, 2, progress=False)
    with pytest.raises(ValueError, match=r"model indices must be in \[0, 1\)"):
        train_mf(emb, index, a, b, outcome, 1, progress=False)
    with pytest.raises(ValueError, match="ties must be"):
        train_mf(emb, index, a, b, outcome, 2, ties="maybe", progress=False)
    with pytest.raises(ValueError, match="no battles left"):
        train_mf(emb, index, a, a, outcome, 2, progress=False)
    with pytest.raises(ValueError, match="val_prompts"):
        train_mf(emb, index, a, b, outcome, 2, val_prompts=val[:3], progress=False)
    with pytest.raises(ValueError, match="lr"):
        MFTrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match="batch_size"):
        MFTrainConfig(batch_size=0)


class _HashEmbedder:
    """A deterministic 16-d embedder standing in for a model: tests train without ONNX."""

    name, dim = "hash-16", 16

    def embed(self, prompts):
        out = np.stack([np.random.default_rng(abs(hash(p)) % 2**32).normal(size=16) for p in prompts])
        math_like = np.array([p.startswith("math") for p in prompts])
        out[:, 0] = np.where(math_like, 3.0, -3.0)
        return out.astype(np.float32)


def _battles(n=3000, seed=0) -> PreferenceData:
    """gpt-4 wins maths prompts against mixtral, ties or loses the rest; a third model for variety."""
    rng = np.random.default_rng(seed)
    prompts = [f"{'math' if i % 2 else 'chat'} prompt {i}" for i in range(300)]
    index = rng.integers(0, 300, n)
    is_math = np.array([prompts[i].startswith("math") for i in index])
    outcome = np.where(is_math, 0, rng.choice([1, 2], n)).astype(np.int8)
    model_b = ["mixtral-8x7b-instruct-v0.1" if i % 3 else "llama-2-70b-chat" for i in range(n)]
    return PreferenceData(prompts, index, ["gpt-4-1106-preview"] * n, model_b, outcome, np.ones(n))


def test_train_mf_router_writes_a_loadable_checkpoint(tmp_path):
    data = _battles()
    report = train_mf_router(data, tmp_path / "mf", _HashEmbedder(), config=FAST, val_share=0.1, progress=False,
                             pair=("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"))
    assert report["validation"]["pairwise_accuracy"] > 0.9
    assert {p.name for p in (tmp_path / "mf").iterdir()} == {
        "config.json", "model.safetensors", "routellm_fast.json", "training_prompts.npy"}
    config = json.loads((tmp_path / "mf" / "config.json").read_text())
    assert config == {"dim": 8, "num_models": 3, "text_dim": 16, "num_classes": 1, "use_proj": True}
    router = rf.MatrixFactorizationRouter(tmp_path / "mf", embed=_HashEmbedder())
    assert router.embedding_model == "hash-16"
    rates = router.score(["math prompt 1", "chat prompt 2"])
    assert rates[0] > 0.5 > rates[1]
    assert len(router.training_prompt_keys) == 300
    with pytest.raises(ValueError, match="has no battles in the training data"):
        train_mf_router(data, tmp_path / "x", _HashEmbedder(), config=FAST, pair=("claude-2.1", "gpt-4-1106-preview"),
                        progress=False)


def test_train_sw_router_writes_an_arena(tmp_path):
    data = _battles()
    report = train_sw_router(data, tmp_path / "sw.npz", _HashEmbedder(), val_share=0.1, progress=False)
    assert report["validation"]["pairwise_accuracy"] > 0.8
    arena = load_arena(tmp_path / "sw.npz")
    assert arena.prompt_embeddings.dtype == np.float16 and arena.prompt_embeddings.shape == (300, 16)
    assert len(arena.outcome) == len(data) and arena.training_prompt_keys.shape == (300, 16)
    router = rf.SWRankingRouter.from_arena(tmp_path / "sw.npz", embed=_HashEmbedder())
    rates = router.score(["math prompt 1001", "chat prompt 1002"])
    assert rates[0] > rates[1]
    weighted = PreferenceData(data.prompts, data.prompt_index, data.model_a, data.model_b, data.outcome,
                              np.full(len(data), 2.0))
    with pytest.raises(ValueError, match="per-battle weights are not supported"):
        train_sw_router(weighted, tmp_path / "w.npz", _HashEmbedder(), progress=False)


def test_cli_train_and_golden_labels(tmp_path, monkeypatch):
    monkeypatch.setattr("routellm_fast.embedders.embedder_for", lambda name, dim=None: _HashEmbedder())
    battles = tmp_path / "battles.jsonl"
    write_battles(_battles(600), battles)
    assert cli_main(["train", "sw", "--battles", str(battles), "--out", str(tmp_path / "sw.npz"), "--quiet"]) == 0
    assert load_arena(tmp_path / "sw.npz").metadata["embedder"] == {"name": "hash-16", "dim": 16}
    assert cli_main(["train", "sw", "--battles", str(battles), "--out", str(tmp_path / "sw_dir"), "--quiet"]) == 0
    assert (tmp_path / "sw_dir" / "arena.npz").is_file()
    router = rf.SWRankingRouter(arena=tmp_path / "sw_dir", embed=_HashEmbedder())  # a folder, as in a YAML config
    assert router.num_battles == 600
    assert cli_main(["train", "mf", "--battles", str(battles), "--out", str(tmp_path / "mf"), "--quiet",
                     "--epochs", "2", "--dim", "8"]) == 0
    assert json.loads((tmp_path / "mf" / "routellm_fast.json").read_text())["training"]["best_epoch"] in (0, 1)
    assert cli_main(["train", "mf", "--out", str(tmp_path / "none")]) == 2  # nothing to train on


def test_routellm_loads_our_checkpoint(fixtures_dir):
    """tests/fixtures/make_trained_mf_fixture.py: RouteLLM's MFModel.from_pretrained on a checkpoint
    trained here gives the win rates our router gives (float32 torch vs our float64: 1e-6)."""
    fixture = fixtures_dir / "trained_mf"
    expected = json.loads((fixture / "expected.json").read_text())
    router = rf.MatrixFactorizationRouter(fixture / "checkpoint", expected["strong"], expected["weak"])
    rates = router.score_embeddings(np.load(fixture / "prompts.npy"))
    np.testing.assert_allclose(rates, expected["win_rates"], rtol=0, atol=1e-6)


def test_golden_benchmark_shapes_are_checked():
    with pytest.raises(ValueError, match="no items left"):
        Benchmark("empty", [], np.zeros(0), np.zeros(0), "a", "b")
