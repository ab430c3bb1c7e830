"""Numbers and types checked at every boundary: a router whose model gives NaN or infinite win rates
raises RoutingError naming it (one check, in routers/base.py, for every router), never a route; a
prompt list must be a list (a dict, a set, a string or an iterator of non-str is refused); config
entries and checkpoint metadata are type-checked, naming the key; model tables must map names to
distinct rows the checkpoint has."""

from __future__ import annotations

import json
import shutil
from collections import deque

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast import cli
from routellm_fast.checks import check_prompts
from routellm_fast.errors import BadFileError, RoutingError
from routellm_fast.routers import ROUTER_CLS
from routellm_fast.serve.controller import Controller, load_config

from tests.helpers import FIXTURES, STRONG, WEAK
from tests.routers.test_mf import write_checkpoint

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402


def with_initializer(src, dst, name: str, change) -> None:
    """A copy of the ONNX router in ``src`` whose initializer ``name`` is ``change(array)``."""
    shutil.copytree(src, dst)
    model = onnx.load(dst / "model.onnx")
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.name == name:
            array = numpy_helper.to_array(tensor).copy()
            change(array)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(array, name))
            break
    else:
        raise AssertionError(f"no initializer {name}")
    onnx.save(model, dst / "model.onnx")


def test_a_bert_model_with_infinite_logits_is_an_error_naming_the_router(tmp_path):
    def inf(a):
        a[:] = np.inf

    with_initializer(FIXTURES / "bert", tmp_path / "bert", "classifier.bias", inf)
    router = rf.BERTRouter(tmp_path / "bert")
    for call in (lambda: router.score(["hello", "Prove that there are infinitely many primes."]),
                 lambda: router.calculate_strong_win_rate("hello"),
                 lambda: router.route("hello", 0.5, rf.serve.controller.ModelPair(STRONG, WEAK))):
        with pytest.raises(RoutingError, match=r"router bert gave non-finite win rates \(NaN or infinity\)"):
            call()
    controller = Controller(["bert"], STRONG, WEAK, config={"bert": {"checkpoint_path": str(tmp_path / "bert")}})
    with pytest.raises(RoutingError, match="router bert gave non-finite win rates"):
        controller.decide("hello", "bert", 0.5)


def test_a_causal_model_with_infinite_score_logits_is_an_error_naming_the_router(tmp_path):
    def inf_score_tokens(a):
        a[:, 1510:] = np.inf  # the lm head's columns of the five score tokens

    with_initializer(FIXTURES / "causal" / "fp32", tmp_path / "causal", "onnx::MatMul_590", inf_score_tokens)
    router = rf.CausalLLMRouter(tmp_path / "causal")
    with pytest.raises(RoutingError, match=r"router causal_llm gave non-finite win rates .* 2 of 2 prompts"):
        router.score(["hi", "What is 2+2?"])


def test_every_router_class_checks_its_answers():
    for name, cls in ROUTER_CLS.items():
        assert getattr(cls.score, "_finite_checked", False), name
        if hasattr(cls, "score_embeddings"):
            assert cls.score_embeddings._finite_checked and cls.score_models_embeddings._finite_checked, name


@pytest.mark.parametrize(("prompts", "message"), [
    ({"a": 1, "b": 2}, "got a dict"),
    ({"a", "b"}, "got a set"),
    (frozenset({"a"}), "got a frozenset"),
    ("hello", "single string"),
    (b"hello", r"single string \(bytes\)"),
    ((n for n in range(3)), "prompt 0 must be a str, got int"),
    (np.array([["a", "b"]]), "got a 2-D array"),
    (42, "got int"),
])
def test_prompt_lists_that_are_no_lists_are_refused(prompts, message, static_mf):
    with pytest.raises(TypeError, match=message):
        check_prompts(prompts)
    if not isinstance(prompts, type(n for n in ())):
        with pytest.raises(TypeError, match=message):
            static_mf.score(prompts)


def test_sequences_arrays_and_iterators_of_str_are_prompt_lists(static_mf):
    want = static_mf.score(["a cat", "a dog"])
    for prompts in (("a cat", "a dog"), deque(["a cat", "a dog"]), np.array(["a cat", "a dog"]),
                    (p for p in ["a cat", "a dog"])):
        np.testing.assert_array_equal(static_mf.score(prompts), want)


@pytest.mark.parametrize(("entry", "message"), [
    ({"checkpoint_path": 5}, r"config of router 'mf': checkpoint_path must be str \| os.PathLike\[str\], got int 5"),
    ({"checkpoint_path": "x", "use_proj": "yes"}, "use_proj must be bool, got str"),
    ({"checkpoint_path": "x", "hidden_size": True}, r"hidden_size must be int \| None, got bool"),
    ({"checkpoint_path": "x", "model_ids": [5, -3]}, "model_ids must be Mapping"),
    ({"checkpoint_path": "x", "strong_model": ["gpt-4"]}, "strong_model must be str, got list"),
])
def test_config_values_are_type_checked_naming_the_key(entry, message, tmp_path):
    with pytest.raises(TypeError, match=message):
        load_config({"mf": entry})
    (tmp_path / "config.yaml").write_text(json.dumps({"mf": entry}))
    with pytest.raises(TypeError, match=message):
        Controller(["mf"], STRONG, WEAK, config=tmp_path / "config.yaml")
    assert cli.main(["route", "hello", "--routers", "mf", "--config", str(tmp_path / "config.yaml"),
                        "--threshold", "0.5"]) == 2


@pytest.mark.parametrize(("model_ids", "exc", "message"), [
    (True, TypeError, "model_ids must map model names to rows .* got bool True"),
    ([5, -3], TypeError, r"got list \[5, -3\]"),
    ({"a": 5, "b": -3}, ValueError, r"model_ids\['b'\] is row -3, outside"),
    ({"a": 0, "b": 64}, ValueError, r"model_ids\['b'\] is row 64, outside the checkpoint's 64 models"),
    ({"a": 0, "b": True}, TypeError, r"model_ids\['b'\] must be a row number \(int\), got bool"),
    ({"a": 3, "b": 3}, ValueError, "'a' and 'b' both map to row 3"),
])
def test_model_tables_given_or_recorded_are_checked(tmp_path, model_ids, exc, message):
    write_checkpoint(tmp_path / "given", np.random.default_rng(1))
    with pytest.raises(exc, match=message):
        rf.MatrixFactorizationRouter(tmp_path / "given", "a", "b", hidden_size=16, text_dim=40, model_ids=model_ids)
    write_checkpoint(tmp_path / "recorded", np.random.default_rng(1))
    (tmp_path / "recorded" / "routellm_fast.json").write_text(json.dumps({"model_ids": model_ids}))
    with pytest.raises(BadFileError, match=r"routellm_fast.json: .*" + message.split(".*")[-1]):
        rf.MatrixFactorizationRouter(tmp_path / "recorded", "a", "b")


@pytest.mark.parametrize(("metadata", "message"), [
    ({"embedder": "all-MiniLM-L6-v2"}, "embedder must be an object, got str"),
    ({"embedder": {"name": 7}}, "embedder.name must be a string, got int"),
    ({"embedder": {"name": "e", "dim": -1}}, "embedder.dim must be a positive integer"),
    ({"calibration": [0.5]}, "calibration must be an object, got list"),
    ({"calibration": {"win_rates": [0.1, float("nan")]}}, "calibration.win_rates must be a list of finite numbers"),
    ({"calibration": {"pair": {"strong": 1}}}, "calibration.pair.strong must be a model name"),
    ({"format": 1}, "format must be a string, got int"),
])
def test_checkpoint_metadata_values_are_type_checked_naming_the_key(tmp_path, metadata, message):
    write_checkpoint(tmp_path, np.random.default_rng(2))
    (tmp_path / "routellm_fast.json").write_text(json.dumps(metadata))
    with pytest.raises(BadFileError, match=r"routellm_fast.json: " + message):
        rf.MatrixFactorizationRouter(tmp_path, hidden_size=16, text_dim=40)


def test_the_finite_check_on_large_batches():
    from routellm_fast.routers.base import _all_finite

    for n in (1, 16, 17, 5000):
        values = np.random.default_rng(n).random(n)
        assert _all_finite(values)
        for bad in (np.nan, np.inf, -np.inf):
            broken = values.copy()
            broken[n // 2] = bad
            assert not _all_finite(broken) and not _all_finite(broken.reshape(-1, 1))
    assert _all_finite(np.full(100, 1e200))  # the dot product overflows; every value is finite


def test_bert_metadata_calibration_is_type_checked(tmp_path):
    shutil.copytree(FIXTURES / "bert", tmp_path / "bert")
    meta_path = tmp_path / "bert" / "routellm_fast_bert.json"
    meta = json.loads(meta_path.read_text())
    meta["calibration"] = {"win_rates": [0.5, float("nan")]}  # JSON NaN: Python's json writes and reads it
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BadFileError, match=r"routellm_fast_bert.json: calibration.win_rates must be a list of finite"):
        rf.BERTRouter(tmp_path / "bert")
