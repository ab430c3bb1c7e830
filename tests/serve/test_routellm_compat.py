"""A RouteLLM program, unchanged: RouteLLM's hub names offline (the shipped routers of the same kind),
``patch_routellm()`` with no API key, RouteLLM's routers not implemented here, RouteLLM's own evaluation and server on the patched routers
(``python -m routellm_fast.patched``), content-part messages, share names, threshold warnings and a
local endpoint without a key in RouteLLM's Controller. The RouteLLM-side tests run where ``routellm``
is installed (it needs torch: the reference environment, DEVELOPERS.md) and skip otherwise."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import routellm_fast as rf

from tests.helpers import STRONG, WEAK

PROMPTS = ["Prove that the square root of 2 is irrational.", "hi", "Write a haiku about the sea."]
#: RouteLLM's default config (``routellm.controller.GPT_4_AUGMENTED_CONFIG``, its config.example.yaml).
ROUTELLM_CONFIG = {
    "sw_ranking": {
        "arena_battle_datasets": ["lmsys/lmsys-arena-human-preference-55k", "routellm/gpt4_judge_battles"],
        "arena_embedding_datasets": ["routellm/arena_battles_embeddings", "routellm/gpt4_judge_battles_embeddings"],
    },
    "causal_llm": {"checkpoint_path": "routellm/causal_llm_gpt4_augmented"},
    "bert": {"checkpoint_path": "routellm/bert_gpt4_augmented"},
    "mf": {"checkpoint_path": "routellm/mf_gpt4_augmented"},
}
needs_routellm = pytest.mark.skipif(importlib.util.find_spec("routellm") is None, reason="routellm is not installed")


def test_hub_names_use_the_shipped_routers_with_one_warning_line(tmp_path, monkeypatch, shipped_mf, shipped_sw,
                                                                 shipped_bert):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.warns(rf.ShippedRouterWarning) as caught:
        ctl = rf.Controller(["mf", "sw_ranking", "bert"], STRONG, WEAK, config=ROUTELLM_CONFIG)
    assert len(caught) == 3 and all("\n" not in str(w.message) for w in caught)
    assert "routellm/mf_gpt4_augmented" in str(caught[0].message) and "shipped mf router" in str(caught[0].message)
    assert "routellm/gpt4_judge_battles_embeddings" in str(caught[1].message)
    assert "routellm/bert_gpt4_augmented" in str(caught[2].message)
    assert "published bert checkpoint not available" in str(caught[2].message)  # a checkpoint, not datasets
    assert "published sw_ranking datasets not available" in str(caught[1].message)
    for name, shipped in (("mf", shipped_mf), ("sw_ranking", shipped_sw), ("bert", shipped_bert)):
        np.testing.assert_array_equal(ctl.routers[name].score(PROMPTS), shipped.score(PROMPTS))
    # A path of one's own that is missing stays an error; so does a mix of local and hub datasets.
    with pytest.raises(FileNotFoundError):
        rf.MatrixFactorizationRouter("my-org/mf_checkpoint")
    with pytest.raises(FileNotFoundError):
        rf.SWRankingRouter([str(tmp_path / "battles.csv")], ["routellm/arena_battles_embeddings"])


def test_hub_checkpoint_in_the_huggingface_cache_is_used(tmp_path, monkeypatch, fixtures_dir):
    """RouteLLM's checkpoint where huggingface_hub keeps it is loaded, not replaced."""
    snapshot = tmp_path / "hub" / "models--routellm--mf_gpt4_augmented" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    source = fixtures_dir / "parity" / "mf" / "checkpoint"
    for f in source.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        router = rf.MatrixFactorizationRouter("routellm/mf_gpt4_augmented")
    emb = np.load(fixtures_dir / "parity" / "mf" / "prompts.npy")[:4]
    np.testing.assert_array_equal(router.score_embeddings(emb), rf.MatrixFactorizationRouter(source).score_embeddings(emb))
    assert router.embedding_model == "text-embedding-3-small"


def test_routellms_causal_checkpoint_is_read_from_the_local_cache_only(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"routellm/causal_llm_gpt4_augmented is not in the local Hugging Face "
                                                r"cache \(nothing is downloaded\).*export-causal"):
        rf.Controller(["causal_llm"], STRONG, WEAK, config=ROUTELLM_CONFIG)


def run_python(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``script`` in a fresh interpreter with no OpenAI key and no network access to any hub."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True",
               PYTHONPATH=os.pathsep.join([str(Path(rf.__file__).parents[1]), env.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


@needs_routellm
def test_routellm_program_with_no_config_and_no_key_runs_offline():
    result = run_python("""
        import warnings
        import routellm_fast
        from routellm_fast.routers.shipped import default_bert_router, default_mf_router, default_sw_router
        routellm_fast.patch_routellm()          # no OPENAI_API_KEY: RouteLLM's import-time client is lazy now
        from routellm.controller import Controller
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ctl = Controller(routers=["mf", "sw_ranking", "random"], strong_model="gpt-4-1106-preview",
                             weak_model="mixtral-8x7b-instruct-v0.1")
        lines = [str(w.message) for w in caught if issubclass(w.category, routellm_fast.ShippedRouterWarning)]
        assert len(lines) == 2 and all("\\n" not in line for line in lines), lines
        for name, shipped in (("mf", default_mf_router()), ("sw_ranking", default_sw_router())):
            assert isinstance(ctl.routers[name], type(shipped)) and str(ctl.routers[name]) == name
            for prompt in ("Prove that there are infinitely many primes.", "hi"):
                assert ctl.routers[name].calculate_strong_win_rate(prompt) == shipped.calculate_strong_win_rate(prompt)
        assert ctl.route("hi", "sw_ranking", 0.0) == "gpt-4-1106-preview"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            bert = Controller(routers=["bert"], strong_model="gpt-4-1106-preview", weak_model="mixtral-8x7b-instruct-v0.1")
        assert isinstance(bert.routers["bert"], routellm_fast.BERTRouter)
        assert any("routellm/bert_gpt4_augmented" in str(w.message) for w in caught)
        try:  # ours, whose 8B checkpoint is read from the local Hugging Face cache only
            Controller(routers=["causal_llm"], strong_model="gpt-4-1106-preview", weak_model="mixtral-8x7b-instruct-v0.1")
        except FileNotFoundError as exc:
            message = str(exc)
        else:
            raise AssertionError("causal_llm was built offline")
        assert "routellm/causal_llm_gpt4_augmented" in message, message
        assert "nothing is downloaded" in message, message
        print("OK")
    """)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stderr[-3000:]


@needs_routellm
def test_patched_routellm_builds_our_causal_router(fixtures_dir):
    fixture = fixtures_dir / "causal" / "fp32"
    result = run_python(f"""
        import routellm_fast
        routellm_fast.patch_routellm()
        from routellm.controller import Controller
        ctl = Controller(routers=["causal_llm"], strong_model="gpt-4-1106-preview",
                         weak_model="mixtral-8x7b-instruct-v0.1", config={{"causal_llm": {{"checkpoint_path": "{fixture}"}}}})
        router = ctl.routers["causal_llm"]
        assert isinstance(router, routellm_fast.CausalLLMRouter)
        win = routellm_fast.CausalLLMRouter("{fixture}").calculate_strong_win_rate("What is 2+2?")
        assert ctl.route("What is 2+2?", "causal_llm", 0.5) == ("gpt-4-1106-preview" if win >= 0.5 else "mixtral-8x7b-instruct-v0.1")
        print("OK")
    """)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stderr[-3000:]


#: RouteLLM's MT Bench files, from the bundled copy, where its evaluation script reads them; then
#: `python -m routellm.evals.evaluate` on the patched routers, with RouteLLM's default config.
_EVALUATE = """
    import json, sys
    from pathlib import Path
    import routellm_fast
    from routellm_fast.evals.data import BundledEvalData

    data, out, fake_pandarallel = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "fake"
    routellm_fast.patch_routellm()
    source = BundledEvalData()
    (data / "mt_bench").mkdir(parents=True)
    rows = {"question.jsonl": source.mt_bench_questions(), "judgements.jsonl": source.mt_bench_judgements()[0],
            "contaminated_prompts.jsonl": [{"eval_prompt": p} for p in sorted(source.contaminated("mt-bench"))]}
    for name, items in rows.items():
        (data / "mt_bench" / name).write_text("".join(json.dumps(r) + "\\n" for r in items))
    if fake_pandarallel:
        # pandarallel does not import with this pandas; this stand-in does what it does to a router:
        # the function is pickled with dill and applied in forked worker processes.
        import multiprocessing, types
        import dill, pandas as pd

        def _apply(payload, chunk):
            return [dill.loads(payload)(x) for x in chunk]

        def parallel_apply(series, func):
            payload = dill.dumps(func)
            chunks = [list(series)[i::2] for i in range(2)]
            with multiprocessing.get_context("fork").Pool(2) as pool:
                parts = pool.starmap(_apply, [(payload, c) for c in chunks])
            values = [None] * len(series)
            for i, part in enumerate(parts):
                values[i::2] = part
            return pd.Series(values, index=series.index)

        module = types.ModuleType("pandarallel")
        # the workers unpickle _apply by name: from this module, not __main__ (the evaluation script's, run patched)
        module._apply, _apply.__module__ = _apply, "pandarallel"
        module.pandarallel = types.SimpleNamespace(
            initialize=lambda **kw: setattr(pd.Series, "parallel_apply", parallel_apply))
        sys.modules["pandarallel"] = module
    import routellm.evals.benchmarks as rl_benchmarks
    from routellm_fast.serve.routellm_patch import run_patched
    rl_benchmarks.CURRENT_DIR = str(data)
    # python -m routellm_fast.patched routellm.evals.evaluate ..., in this process (its data moved above)
    run_patched(["routellm.evals.evaluate", "--routers", "sw_ranking", "random", "--benchmark", "mt-bench",
                 "--output", out, "--parallel", "2", "--num-results", "5", "--random-iters", "2"])
"""


@needs_routellm
def test_routellm_evaluate_runs_on_the_patched_routers(tmp_path):
    """RouteLLM's evaluation scores sw_ranking with pandarallel, which pickles the router into worker
    processes (it crashed there). RouteLLM 0.2.0's script then ends in its own bug (it passes the
    strong model's name where the model pair belongs), after every router has been evaluated."""
    try:
        import pandarallel  # noqa: F401
        fake = "real"
    except ImportError:  # pandarallel 1.6 does not import with pandas >= 3
        fake = "fake"
    result = run_python(_EVALUATE, str(tmp_path / "data"), str(tmp_path), fake)
    evaluated = result.stdout.count("Evaluating router: sw_ranking with threshold")
    assert evaluated == 6, result.stdout[-2000:] + result.stderr[-3000:]  # 5 quantiles: 6 thresholds
    assert "72 questions for MT bench after decontamination" in result.stdout
    assert result.returncode == 0 or result.stderr.rstrip().endswith(
        "AttributeError: 'str' object has no attribute 'weak'"), result.stderr[-3000:]


def test_routellms_calibrate_threshold_runs_as_ours():
    """``python -m routellm_fast.patched routellm.calibrate_threshold`` with RouteLLM's flags: these
    routers' thresholds (RouteLLM's script reads win rates its own routers recorded on the hub)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(rf.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "routellm_fast.patched", "routellm.calibrate_threshold",
                             "--routers", "mf", "--strong-model-pct", "0.5", "--task", "calibrate"],
                            capture_output=True, text=True, env=env, timeout=300)
    expected = round(rf.calibrate_threshold(rf.Controller(["mf"], STRONG, WEAK).routers["mf"], None, 0.5), 5)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"For 50.0% strong model calls for mf, threshold = {expected}"
    usage = subprocess.run([sys.executable, "-m", "routellm_fast.patched"], capture_output=True, text=True, env=env)
    assert usage.returncode == 2 and "usage: python -m routellm_fast.patched MODULE" in usage.stderr


#: RouteLLM's Controller, patched: content parts, a share name and a RouteLLM threshold, completions
#: through LiteLLM (RouteLLM's import) to a local endpoint with no key anywhere.
_LOCAL = """
    import sys, warnings
    import routellm_fast
    from routellm_fast.decision.calibration import sample_win_rates, share_threshold
    routellm_fast.patch_routellm()
    from routellm.controller import Controller

    url, prompt = sys.argv[1], "Prove that there are infinitely many primes."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", routellm_fast.ShippedRouterWarning)
        ctl = Controller(routers=["mf"], strong_model="openai/gpt-4-1106-preview",
                         weak_model="openai/mixtral-8x7b-instruct-v0.1", api_base=url)
    mf = ctl.routers["mf"]
    half = share_threshold(sample_win_rates(mf), 0.5)
    strong = mf.calculate_strong_win_rate(prompt) >= half
    parts = [{"type": "text", "text": prompt}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answer = ctl.chat.completions.create(model="router-mf-50%", messages=[{"role": "user", "content": parts}])
        assert answer.model.endswith("gpt-4-1106-preview" if strong else "mixtral-8x7b-instruct-v0.1"), answer.model
        for _ in range(2):
            answer = ctl.chat.completions.create(model="router-mf-0.11593", messages=[{"role": "user", "content": "hi"}])
            assert answer.model.endswith("gpt-4-1106-preview"), answer.model
    lines = [str(w.message) for w in caught if issubclass(w.category, routellm_fast.ThresholdWarning)]
    assert len(lines) == 1 and "RouteLLM's 0.11593 is for 50% strong calls" in lines[0], lines
    assert f"router-mf-{round(half, 5)}" in lines[0], lines
    assert ctl.model_counts["mf"]  # counted as RouteLLM counts
    print("OK")
"""


@needs_routellm
def test_patched_controller_local_endpoint_content_parts_and_shares(echo_llm):
    """With LiteLLM installed (RouteLLM imports it) and no OPENAI_API_KEY, a local api_base answers:
    no "Missing credentials"."""
    pytest.importorskip("litellm")
    result = run_python(_LOCAL, echo_llm.url)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stderr[-3000:]


@needs_routellm
def test_python_m_patched_runs_routellms_openai_server(echo_llm, tmp_path):
    """RouteLLM's own server, run patched, with no OPENAI_API_KEY (it builds an OpenAI client at
    import) against a local endpoint, with content parts and a share name."""
    for module in ("fastapi", "shortuuid", "uvicorn", "httpx"):
        pytest.importorskip(module)
    import httpx

    from tests.helpers import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(HF_HUB_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True",
               PYTHONPATH=os.pathsep.join([str(Path(rf.__file__).parents[1]), env.get("PYTHONPATH", "")]))
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "routellm_fast.patched", "routellm.openai_server",
                               "--routers", "mf", "random", "--port", str(port), "--base-url", echo_llm.url,
                               "--strong-model", "openai/gpt-4-1106-preview",
                               "--weak-model", "openai/mixtral-8x7b-instruct-v0.1"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        for _ in range(600):  # up when it answers anything (RouteLLM 0.2.0 has no /health)
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
                time.sleep(0.2)
        parts = [{"type": "text", "text": "Prove that there are infinitely many primes."}]
        for model in ("router-mf-50%", "router-random-0.5"):
            response = httpx.post(url, json={"model": model, "messages": [{"role": "user", "content": parts}]},
                                  timeout=120)
            assert response.status_code == 200, (response.text, (tmp_path / "server.log").read_text()[-3000:])
            assert response.json()["model"].split("/")[-1] in (STRONG, WEAK)
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
