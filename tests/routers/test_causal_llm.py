"""The causal_llm router on onnxruntime against RouteLLM's own CausalLLMRouter (routellm==0.2.0, run by
tests/fixtures/make_causal_fixture.py on a tiny random-weight Llama checkpoint in float32): the same
first score-token step, softmax scores within 1e-4, the same win rate (1e-4), single and batched;
the int8 and int4 exports; bad input; the Controller, CLI and pickling."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast.routers import ROUTER_CLS, CausalLLMRouter

from tests.helpers import FIXTURES, STRONG, WEAK

FIXTURE = FIXTURES / "causal"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
PROMPTS = EXPECTED["prompts"]
RESULTS = EXPECTED["results"]
TOL = 1e-4  # float32 through two different runtimes (torch eager vs onnxruntime)


@pytest.fixture(scope="module")
def router():
    return CausalLLMRouter(str(FIXTURE / "fp32"))


def fits(router, i):
    return RESULTS[i]["num_tokens"] <= router.max_prompt_tokens


def test_registered_as_routellm_names_it():
    assert ROUTER_CLS["causal_llm"] is CausalLLMRouter and rf.CausalLLMRouter is CausalLLMRouter


def test_prompt_text_and_tokens_are_routellms(router):
    for i, prompt in enumerate(PROMPTS):
        if fits(router, i):
            assert len(router.tokenize([prompt])[0]) == RESULTS[i]["num_tokens"], i
    text = router.prompt_text("What is 2+2?")
    assert text.startswith("<|start_header_id|>system<|end_header_id|>\n\nYou are a router")
    assert text.endswith("[Question]\nWhat is 2+2?<|eot_id|>")  # the classifier turn is stripped
    assert router.tokenize(["x"])[0][0] == router._tokenizer.token_to_id("<|begin_of_text|>")


def test_parity_with_routellm_single_and_batched(router):
    inside = [i for i in range(len(PROMPTS)) if fits(router, i)]
    assert len(inside) >= 45 and {RESULTS[i]["step"] for i in inside} >= {None, 0, 1, 2, 3, 4, 5}
    batched = router.classify([PROMPTS[i] for i in inside])
    win_batched = router.score([PROMPTS[i] for i in inside])
    for k, i in enumerate(inside):
        want = RESULTS[i]
        single = router.classify([PROMPTS[i]])[0]
        for got in (single, batched[k]):
            if want["step"] is None:
                assert got is None, i
                continue
            assert got is not None and got.step == want["step"], i
            np.testing.assert_allclose(got.probabilities(), want["softmax_scores"], rtol=0, atol=TOL, err_msg=str(i))
            np.testing.assert_allclose(got.logits, want["score_logits"], rtol=1e-4, atol=1e-4, err_msg=str(i))
            assert int(np.argmax(got.logits)) + 1 == want["score_pred"]
        assert router.calculate_strong_win_rate(PROMPTS[i]) == pytest.approx(want["win_rate"], abs=TOL)
        assert win_batched[k] == pytest.approx(want["win_rate"], abs=TOL)


def test_batch_composition_does_not_change_a_win_rate(router):
    inside = [p for i, p in enumerate(PROMPTS) if fits(router, i)]
    alone = np.array([router.calculate_strong_win_rate(p) for p in inside])
    for batch_size in (1, 3, 16):
        r = CausalLLMRouter(str(FIXTURE / "fp32"), batch_size=batch_size, threads=1)
        np.testing.assert_allclose(r.score(inside[::-1])[::-1], alone, rtol=0, atol=1e-5)


def test_over_long_prompts_are_refused_as_routellm_does_not_truncate(router):
    long = [i for i in range(len(PROMPTS)) if not fits(router, i)]
    assert long, "the fixture has prompts past the context"
    with pytest.raises(ValueError, match=r"prompt 1 is \d+ tokens .* takes at most 1018"):
        router.score(["hi", PROMPTS[long[0]]])
    with pytest.raises(ValueError, match="takes at most"):
        router.score(["word " * 250_000])  # 1 MB
    lenient = CausalLLMRouter(str(FIXTURE / "fp32"), long_prompts="strong")
    got = lenient.score(["hi", PROMPTS[long[0]], "word " * 250_000, PROMPTS[0]])
    assert got[1] == got[2] == 1.0
    np.testing.assert_allclose(got[[0, 3]], router.score(["hi", PROMPTS[0]]), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="long_prompts must be"):
        CausalLLMRouter(str(FIXTURE / "fp32"), long_prompts="truncate")


@pytest.mark.parametrize(("kind", "median", "agree"), [("int8", 0.01, 0.85), ("int4", 0.05, 0.7)])
def test_quantized_exports_stay_close(router, kind, median, agree):
    """int8 (per-channel dynamic) and int4 (MatMulNBits, blocks of 32) weights. This random-weight
    model, its score-token rows scaled up, is far more fragile than a trained one (a changed greedy
    token changes the step): measured here int8 moves the median win rate by 0.004 and agrees at
    0.5 on 92% of prompts, int4 0.02 and 78%; the bounds guard those figures."""
    q = CausalLLMRouter(str(FIXTURE / kind))
    assert q.metadata["quantize"] == kind
    inside = [p for i, p in enumerate(PROMPTS) if fits(router, i)]
    want, got = router.score(inside), q.score(inside)
    assert np.isfinite(got).all() and ((got >= 0) & (got <= 1)).all()
    assert np.median(np.abs(got - want)) < median
    assert np.mean((got >= 0.5) == (want >= 0.5)) >= agree


def test_score_threshold_and_max_new_tokens(router):
    steps = router.classify(PROMPTS[:20])
    for threshold in (1, 3, 5):
        r = CausalLLMRouter(str(FIXTURE / "fp32"), score_threshold=threshold)
        want = [1.0 if s is None else 1 - s.probabilities()[threshold - 1:].sum() for s in steps]
        np.testing.assert_allclose(r.score(PROMPTS[:20]), want, rtol=0, atol=1e-12)
    short = CausalLLMRouter(str(FIXTURE / "fp32"), max_new_tokens=1)
    for got, full in zip(short.classify(PROMPTS[:20]), steps):
        assert (got is None) == (full is None or full.step > 0)


def test_bad_input_is_a_clear_error(router, tmp_path):
    with pytest.raises(TypeError, match="single string"):
        router.score("hi")
    with pytest.raises(TypeError, match="prompt 1 must be a str"):
        router.score(["hi", 3])
    assert router.score([]).shape == (0,)
    assert 0 <= router.calculate_strong_win_rate("") <= 1
    with pytest.raises(ValueError, match="lone surrogate"):
        router.score(["\ud800"])
    for kwargs, match in [({"score_threshold": 6}, "score_threshold"), ({"score_threshold": True}, "score_threshold"),
                          ({"special_tokens": ["[[1]]", "[[2]]"]}, "special_tokens"), ({"model_type": "seq2seq"}, "model_type"),
                          ({"model_id": "mistralai/Mistral-7B"}, "prompt format"), ({"batch_size": 0}, "batch_size"),
                          ({"max_new_tokens": 0}, "max_new_tokens"), ({"device": "tpu"}, "unknown device")]:
        with pytest.raises(ValueError, match=match):
            CausalLLMRouter(str(FIXTURE / "fp32"), **kwargs)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        CausalLLMRouter(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="neither an exported causal router"):
        CausalLLMRouter(str(tmp_path))

    def broken(edit) -> Path:
        target = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(FIXTURE / "fp32", target)
        edit(target)
        return target

    with pytest.raises(FileNotFoundError, match="tokenizer file tokenizer.json is missing"):
        CausalLLMRouter(str(broken(lambda d: (d / "tokenizer.json").unlink())))
    with pytest.raises(FileNotFoundError, match="classifier_ft_v5.txt is missing"):
        CausalLLMRouter(str(broken(lambda d: (d / "classifier_ft_v5.txt").unlink())))
    with pytest.raises(ValueError, match="cannot load ONNX model"):
        CausalLLMRouter(str(broken(lambda d: (d / "model.onnx").write_bytes(b"\x08\x07garbage" * 100))))
    with pytest.raises(ValueError, match="cannot load tokenizer"):
        CausalLLMRouter(str(broken(lambda d: (d / "tokenizer.json").write_text("{"))))
    with pytest.raises(ValueError, match="cannot read"):
        CausalLLMRouter(str(broken(lambda d: (d / "routellm_fast_causal.json").write_text("[1"))))
    with pytest.raises(ValueError, match="not a template with one {question} field"):
        CausalLLMRouter(str(broken(lambda d: (d / "classifier_ft_v5.txt").write_text("rate {answer}"))))

    def edit_meta(**fields):
        def edit(d):
            meta = json.loads((d / "routellm_fast_causal.json").read_text())
            meta.update(fields)
            (d / "routellm_fast_causal.json").write_text(json.dumps(meta))
        return edit

    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        CausalLLMRouter(str(broken(edit_meta(num_layers="2"))))
    with pytest.raises(ValueError, match="not a 3-layer decoding step"):
        CausalLLMRouter(str(broken(edit_meta(num_layers=3))))
    with pytest.raises(ValueError, match="plus 5 score tokens"):
        CausalLLMRouter(str(broken(edit_meta(orig_vocab_size=1000))))
    with pytest.raises(ValueError, match="exported with score tokens"):
        CausalLLMRouter(str(broken(edit_meta(special_tokens=["[[5]]", "[[4]]", "[[3]]", "[[2]]", "[[1]]"]))))
    with pytest.raises(ValueError, match="not a format-1"):
        CausalLLMRouter(str(broken(edit_meta(format=2))))
    # The BERT fixture is an ONNX model, but no decoder with a cache.
    bert = broken(lambda d: shutil.copyfile(FIXTURE.parent / "bert" / "model.onnx", d / "model.onnx"))
    with pytest.raises(ValueError, match="is not a 2-layer decoding step"):
        CausalLLMRouter(str(bert))


def test_routellm_hub_name_needs_the_local_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"routellm/causal_llm_gpt4_augmented is not in the local Hugging "
                                                r"Face cache \(nothing is downloaded\)"):
        CausalLLMRouter("routellm/causal_llm_gpt4_augmented")


def test_pickles_and_routes_from_the_controller_and_cli(router, tmp_path):
    clone = pickle.loads(pickle.dumps(router))
    assert clone.score(PROMPTS[:5]).tolist() == router.score(PROMPTS[:5]).tolist()
    config = {"causal_llm": {"checkpoint_path": str(FIXTURE / "fp32")}}
    controller = rf.Controller(["causal_llm"], STRONG, WEAK, config=config)
    win = router.calculate_strong_win_rate(PROMPTS[1])
    assert controller.route(PROMPTS[1], "causal_llm", 0.5) == (STRONG if win >= 0.5 else WEAK)
    np.testing.assert_array_equal(controller.batch_calculate_win_rate(PROMPTS[:4], "causal_llm"), router.score(PROMPTS[:4]))
    (tmp_path / "config.yaml").write_text(f"causal_llm:\n  checkpoint_path: {FIXTURE / 'fp32'}\n")
    out = subprocess.run([sys.executable, "-m", "routellm_fast", "route", PROMPTS[1], "--router", "causal_llm",
                          "--config", str(tmp_path / "config.yaml"), "--threshold", "0.5"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith(STRONG if win >= 0.5 else WEAK) and f"win_rate={win:.5f}" in out
    with pytest.raises(rf.RoutingError, match="needs a config entry"):
        rf.Controller(["causal_llm"], STRONG, WEAK)


def test_export_matches_the_committed_router(tmp_path, monkeypatch):
    """`routellm-fast export-causal` on the fixture's transformers checkpoint gives the committed
    router's answers (needs the export extra: torch, transformers, onnx)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from routellm_fast import cli

    assert cli.main(["export-causal", str(FIXTURE / "hf"), str(tmp_path / "out")]) == 0
    exported = CausalLLMRouter(str(tmp_path / "out"))
    committed = CausalLLMRouter(str(FIXTURE / "fp32"))
    inside = [p for i, p in enumerate(PROMPTS) if fits(committed, i)]
    np.testing.assert_allclose(exported.score(inside), committed.score(inside), rtol=0, atol=1e-6)
    monkeypatch.setenv("ROUTELLM_FAST_CACHE", str(tmp_path / "cache"))
    hf_router = CausalLLMRouter(str(FIXTURE / "hf"))  # converted once into the cache
    np.testing.assert_allclose(hf_router.score(inside[:5]), committed.score(inside[:5]), rtol=0, atol=1e-6)


def test_the_server_routes_with_it_over_the_openai_client(echo_llm, serve_app):
    """A real server (uvicorn on loopback) with the causal router, called by the openai client."""
    import openai
    from routellm_fast.serve.server import create_app

    config = {"causal_llm": {"checkpoint_path": str(FIXTURE / "fp32")}}
    controller = rf.Controller(["causal_llm"], STRONG, WEAK, config=config, api_base=echo_llm.url, api_key="sk-up")
    server = serve_app(create_app(controller))
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
        for prompt in PROMPTS[:4]:
            want = controller.route(prompt, "causal_llm", 0.5)
            reply = client.chat.completions.create(model="router-causal_llm-0.5",
                                                   messages=[{"role": "user", "content": prompt}])
            assert reply.model == want and echo_llm.requests[-1]["body"]["model"] == want
