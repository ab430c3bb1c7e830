"""mf router against a float64 NumPy reference of RouteLLM's MFModel (tolerance 1e-9), and its
checkpoint loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import routellm_fast as rf
from safetensors.numpy import save_file

from tests import reference as ref


def write_checkpoint(path, rng, hidden=16, num_models=64, text_dim=40, use_proj=True, scale=10.0):
    path.mkdir(parents=True, exist_ok=True)
    tensors = {
        "P.weight": rng.normal(size=(num_models, hidden)).astype(np.float32),
        "classifier.0.weight": (scale * rng.normal(size=(1, hidden))).astype(np.float32),
    }
    if use_proj:
        tensors["text_proj.0.weight"] = (rng.normal(size=(hidden, text_dim)) / np.sqrt(text_dim)).astype(np.float32)
    save_file(tensors, str(path / "model.safetensors"))
    config = {"dim": hidden, "num_models": num_models, "text_dim": text_dim, "num_classes": 1, "use_proj": use_proj}
    (path / "config.json").write_text(json.dumps(config))
    return tensors


@pytest.mark.parametrize("text_dim", [1, 7, 40, 97])
def test_matches_reference(simd, tmp_path, text_dim):
    rng = np.random.default_rng(text_dim)
    t = write_checkpoint(tmp_path, rng, text_dim=text_dim)
    router = rf.MatrixFactorizationRouter(tmp_path, "claude-2.1", "llama-2-7b-chat", hidden_size=16, text_dim=text_dim)
    emb = rng.normal(size=(301, text_dim)).astype(np.float32)
    ids = rf.MODEL_IDS
    want = ref.mf_win_rate(emb, t["P.weight"], t["text_proj.0.weight"], t["classifier.0.weight"][0],
                           ids["claude-2.1"], ids["llama-2-7b-chat"])
    got = router.score_embeddings(emb)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert router.calculate_strong_win_rate.__func__ is rf.Router.calculate_strong_win_rate


def test_without_projection(tmp_path):
    rng = np.random.default_rng(1)
    t = write_checkpoint(tmp_path, rng, hidden=24, text_dim=24, use_proj=False)
    router = rf.MatrixFactorizationRouter(tmp_path, hidden_size=24, text_dim=24, use_proj=False)
    emb = rng.normal(size=(50, 24)).astype(np.float32)
    ids = rf.MODEL_IDS
    want = ref.mf_win_rate(emb, t["P.weight"], None, t["classifier.0.weight"][0],
                           ids["gpt-4-1106-preview"], ids["mixtral-8x7b-instruct-v0.1"])
    np.testing.assert_allclose(router.score_embeddings(emb), want, rtol=0, atol=1e-9)


def test_same_model_both_sides_is_one_half(tmp_path):
    write_checkpoint(tmp_path, np.random.default_rng(2))
    router = rf.MatrixFactorizationRouter(tmp_path, "vicuna-13b", "vicuna-13b", hidden_size=16, text_dim=40)
    np.testing.assert_array_equal(router.score_embeddings(np.ones((3, 40), np.float32)), 0.5)


def test_embed_callable_and_route(tmp_path):
    rng = np.random.default_rng(3)
    write_checkpoint(tmp_path, rng)
    vectors = {"easy": rng.normal(size=40), "hard": rng.normal(size=40)}
    router = rf.MatrixFactorizationRouter(
        tmp_path, hidden_size=16, text_dim=40, embed=lambda prompts: np.stack([vectors[p] for p in prompts])
    )
    scores = router.score(["easy", "hard"])
    assert scores.dtype == np.float64 and scores.shape == (2,)
    assert router.calculate_strong_win_rate("hard") == scores[1]

    class Pair:
        strong, weak = "gpt-4", "mixtral"

    expected = "gpt-4" if scores[0] >= 0.3 else "mixtral"
    assert router.route("easy", 0.3, Pair) == expected
    assert router.route("easy", 0.0, Pair) == "gpt-4"
    assert router.route("easy", 1.0, Pair) == ("gpt-4" if scores[0] >= 1.0 else "mixtral")
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="threshold"):
            router.route("easy", bad, Pair)
    with pytest.raises(TypeError, match="threshold"):
        router.route("easy", "0.5", Pair)
    with pytest.raises(TypeError, match="single string"):
        router.score("easy")


def test_input_errors(tmp_path):
    write_checkpoint(tmp_path, np.random.default_rng(4))
    router = rf.MatrixFactorizationRouter(tmp_path, hidden_size=16, text_dim=40)
    good = np.ones((2, 40), np.float32)
    with pytest.raises(ValueError, match="dimension 40.*shape \\(2, 39\\)"):
        router.score_embeddings(good[:, :39])
    with pytest.raises(ValueError, match="2-D"):
        router.score_embeddings(good[0])
    with pytest.raises(TypeError, match="dtype int64"):
        router.score_embeddings(np.ones((2, 40), np.int64))
    for bad in (np.nan, np.inf, -np.inf):
        x = good.copy()
        x[1, 7] = bad
        with pytest.raises(ValueError, match="row 1 contains NaN or inf"):
            router.score_embeddings(x)
    # float64, Fortran order and strided views are converted (one documented copy), same answers.
    base = router.score_embeddings(good)
    np.testing.assert_array_equal(router.score_embeddings(good.astype(np.float64)), base)
    np.testing.assert_array_equal(router.score_embeddings(np.asfortranarray(good)), base)
    wide = np.ones((2, 80), np.float32)
    np.testing.assert_array_equal(router.score_embeddings(wide[:, ::2]), base)
    np.testing.assert_array_equal(router.score_embeddings(wide[:, :40]), base)  # padded rows, read in place
    assert router.score_embeddings(np.empty((0, 40), np.float32)).shape == (0,)
    # No embed given: RouteLLM's checkpoints are text-embedding-3-small (1536-d); this one is 40-d.
    with pytest.raises(ValueError, match="makes 1536-d vectors but the router expects 40-d"):
        router.score(["hello"])


def test_huge_batch_matches_small_batches(tmp_path):
    rng = np.random.default_rng(5)
    write_checkpoint(tmp_path, rng)
    router = rf.MatrixFactorizationRouter(tmp_path, hidden_size=16, text_dim=40)
    emb = rng.normal(size=(100_000, 40)).astype(np.float32)
    out = router.score_embeddings(emb)
    np.testing.assert_array_equal(out[12345:12350], router.score_embeddings(emb[12345:12350]))


def test_unknown_model_names_close_matches(tmp_path):
    write_checkpoint(tmp_path, np.random.default_rng(6))
    with pytest.raises(ValueError, match="unknown strong_model 'gpt-4-1106'.*did you mean.*'gpt-4-1106-preview'"):
        rf.MatrixFactorizationRouter(tmp_path, "gpt-4-1106", hidden_size=16, text_dim=40)
    with pytest.raises(ValueError, match="unknown weak_model"):
        rf.MatrixFactorizationRouter(tmp_path, weak_model="mixtral", hidden_size=16, text_dim=40)
    custom = {"strong-one": 3, "weak-one": 9}
    router = rf.MatrixFactorizationRouter(tmp_path, "strong-one", "weak-one", hidden_size=16, text_dim=40, model_ids=custom)
    assert router.score_embeddings(np.ones((1, 40), np.float32)).shape == (1,)
    with pytest.raises(ValueError, match="outside the checkpoint's 64 models"):
        rf.MatrixFactorizationRouter(tmp_path, "a", "b", hidden_size=16, text_dim=40, model_ids={"a": 0, "b": 64})


def test_checkpoint_errors(tmp_path):
    rng = np.random.default_rng(7)
    with pytest.raises(FileNotFoundError, match="never downloads"):
        rf.MatrixFactorizationRouter("my-org/my_mf_checkpoint")  # RouteLLM's hub names: test_routellm_compat.py
    write_checkpoint(tmp_path / "ok", rng)
    # Sizes not given come from config.json; given ones must fit the tensors.
    assert rf.MatrixFactorizationRouter(tmp_path / "ok").embedding_dim == 40
    with pytest.raises(ValueError, match="'P.weight' has shape \\(64, 16\\), expected \\(64, 128\\).*config.json says"):
        rf.MatrixFactorizationRouter(tmp_path / "ok", hidden_size=128)
    with pytest.raises(ValueError, match="text_proj.0.weight"):
        rf.MatrixFactorizationRouter(tmp_path / "ok", hidden_size=16, text_dim=41)
    with pytest.raises(ValueError, match="num_classes must be 1"):
        rf.MatrixFactorizationRouter(tmp_path / "ok", hidden_size=16, text_dim=40, num_classes=3)

    truncated = tmp_path / "truncated"
    truncated.mkdir()
    data = (tmp_path / "ok" / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        rf.MatrixFactorizationRouter(truncated, hidden_size=16, text_dim=40)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "model.safetensors").write_bytes(b"\xff" * 100)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        rf.MatrixFactorizationRouter(garbage, hidden_size=16, text_dim=40)

    missing = tmp_path / "missing"
    missing.mkdir()
    save_file({"P.weight": np.zeros((64, 16), np.float32)}, str(missing / "model.safetensors"))
    with pytest.raises(ValueError, match="no tensor 'classifier.0.weight'"):
        rf.MatrixFactorizationRouter(missing, hidden_size=16, text_dim=40)

    nan = tmp_path / "nan"
    tensors = write_checkpoint(nan, rng)
    tensors["P.weight"][3, 3] = np.nan
    save_file(tensors, str(nan / "model.safetensors"))
    with pytest.raises(ValueError, match="'P.weight' contains NaN"):
        rf.MatrixFactorizationRouter(nan, hidden_size=16, text_dim=40)

    (tmp_path / "ok" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        rf.MatrixFactorizationRouter(tmp_path / "ok", hidden_size=16, text_dim=40)
