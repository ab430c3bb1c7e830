"""Batch scoring on Ray Data (routellm_fast.serve.ray, `score --engine ray`) on a local Ray cluster
started here with 2 CPUs: the win rates equal in-process `router.score`, rows in input order."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from routellm_fast.formats.tables import read_prompts, read_table
from routellm_fast.paths import SAMPLE_PROMPTS

ray = pytest.importorskip("ray", reason="the ray extra (ray[data]) is not installed")
pytestmark = [
    pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                       reason="Ray's own processes do not run under a preloaded AddressSanitizer"),
    # Ray Data warns about its own settings (DataContext() sets a deprecated field in Ray 2.60)
    pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\."),
]

N = 2000


@pytest.fixture(scope="module")
def cluster():
    import logging

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, object_store_memory=300 << 20)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def prompts():
    base = read_prompts()  # the bundled sample: 805 real prompts
    return (base * (N // len(base) + 1))[:N]


@pytest.fixture(scope="module")
def static_routers(static_mf, static_sw):
    return {"mf": static_mf, "sw_ranking": static_sw}


@pytest.fixture(scope="module")
def want(prompts, static_routers):
    """In-process win rates: one batched score call per router."""
    return {name: router.score(prompts) for name, router in static_routers.items()}


def _dataset(prompts, column="prompt", block=250):
    import pyarrow as pa

    # several blocks, so that two actors score them concurrently and order could be lost
    table = pa.table({"id": list(range(len(prompts))), column: prompts})
    return ray.data.from_arrow([table.slice(i, block) for i in range(0, len(prompts), block)])


def _check(rows, prompts, want, atol=1e-12):
    assert rows["id"] == list(range(len(prompts)))
    assert rows["prompt"] == prompts
    for name, scores in want.items():
        got = np.asarray(rows[f"win_rate_{name}"], dtype=np.float64)
        np.testing.assert_allclose(got, scores, rtol=0, atol=atol, err_msg=name)


def test_import_routellm_fast_does_not_import_ray():
    script = "import sys, routellm_fast, routellm_fast.cli; assert 'ray' not in sys.modules, 'ray imported'"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_without_ray_an_import_error_names_the_extra(monkeypatch):
    from routellm_fast import cli
    from routellm_fast.serve.ray import import_ray, score_dataset

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"routellm_fast\[ray\]"):
        import_ray()
    with pytest.raises(ImportError, match=r"routellm_fast\[ray\]"):
        score_dataset(object(), ["mf"])
    assert cli.main(["score", "--input", str(SAMPLE_PROMPTS),
                     "--output", "/nonexistent/x.parquet", "--engine", "ray"]) == 2


def test_score_dataset_by_router_names(cluster, prompts, want):
    """Actors build the shipped routers from their names once each; results in input order."""
    from routellm_fast.serve.ray import score_dataset

    scored = score_dataset(_dataset(prompts), ["mf", "sw_ranking"], embedder="static", batch_size=200,
                           concurrency=2)
    assert scored.context.execution_options.preserve_order
    _check(_rows(scored), prompts, want)


def test_score_dataset_with_pickled_routers(cluster, prompts, static_routers, want):
    """Router objects are pickled in the driver and unpickled once per actor (one actor, 2 CPUs:
    2 scoring threads)."""
    from routellm_fast.serve.ray import score_dataset

    ds = _dataset(prompts, "text")
    scored = score_dataset(ds, static_routers, prompt_column="text", batch_size=512, num_cpus_per_actor=2)
    rows = _rows(scored)
    rows["prompt"] = rows.pop("text")
    _check(rows, prompts, want)


def test_score_dataset_minilm(cluster, prompts, shipped_mf):
    """The default embedder (all-MiniLM-L6-v2, ONNX): a small run."""
    from routellm_fast.serve.ray import score_dataset

    few = prompts[:48]
    scored = score_dataset(_dataset(few, block=16), ["mf"], batch_size=16, concurrency=2)
    _check(_rows(scored), few, {"mf": shipped_mf.score(few)}, atol=1e-12)


def test_score_dataset_checks_its_arguments(cluster, prompts):
    from routellm_fast.serve.ray import score_dataset

    ds = _dataset(prompts[:10])
    with pytest.raises(ValueError, match="no column 'text'"):
        score_dataset(ds, ["mf"], prompt_column="text")
    with pytest.raises(ValueError, match="invalid router 'mff'"):
        score_dataset(ds, ["mff"])
    with pytest.raises(ValueError, match="batch_size"):
        score_dataset(ds, ["mf"], batch_size=0)
    with pytest.raises(ValueError, match="embedder"):
        score_dataset(ds, ["mf"], embedder="large")


def test_an_error_in_an_actor_reaches_the_caller(cluster):
    """What a router raises in an actor (here: prompts that are not strings) ends the run with Ray's
    exception for it (the CLI checks the prompt column before Ray runs: test_cli_engine_ray_errors)."""
    import pyarrow as pa
    from routellm_fast.serve.ray import score_dataset

    ds = ray.data.from_arrow(pa.table({"prompt": [1, 2, 3]}))
    with pytest.raises(ray.exceptions.RayError):
        _rows(score_dataset(ds, ["mf"], embedder="static", concurrency=1))


def _rows(ds) -> dict:
    """The dataset's rows as columns, in the order Ray hands them back."""
    import pyarrow as pa

    return pa.concat_tables(list(ds.iter_batches(batch_size=None, batch_format="pyarrow"))).to_pydict()


@pytest.mark.parametrize(("source", "output"), [("in.parquet", "out.parquet"), ("in.jsonl", "out.jsonl")])
def test_cli_score_engine_ray(cluster, tmp_path, prompts, want, source, output):
    """`score --engine ray` writes the file `--engine local` writes: same columns, same rows, same
    order, win rates equal to in-process scoring."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from routellm_fast import cli

    table = pa.table({"id": list(range(len(prompts))), "prompt": prompts})
    if source.endswith(".parquet"):
        pq.write_table(table, tmp_path / source, row_group_size=300)
    else:
        (tmp_path / source).write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    common = ["score", "--input", str(tmp_path / source), "--chunk-size", "300", "--quiet",
              "--routers", "mf", "sw_ranking", "--embedder", "static"]
    assert cli.main([*common, "--output", str(tmp_path / output), "--engine", "ray", "--ray-actors", "2"]) == 0
    assert cli.main([*common, "--output", str(tmp_path / f"local-{output}")]) == 0
    got, local = read_table(tmp_path / output), read_table(tmp_path / f"local-{output}")
    assert got.column_names == local.column_names == ["id", "prompt", "win_rate_mf", "win_rate_sw_ranking"]
    assert got.equals(local)
    _check(got.to_pydict(), prompts, want)


def test_score_dataset_among_models(cluster, tmp_path, prompts, static_routers):
    """With models and a rule: per-model score columns and the chosen model, equal to in-process
    score_columns; and `score --models --engine ray` writes what the local engine writes."""
    from routellm_fast import cli
    from routellm_fast.decision.rule import CostWeight
    from routellm_fast.serve.batch import score_columns
    from routellm_fast.serve.ray import score_dataset

    few = prompts[:600]
    models = {"gpt-4-1106-preview": 10.0, "mixtral-8x7b-instruct-v0.1": 0.6, "claude-2.1": 8.0}
    want = score_columns(static_routers, few, models, CostWeight(0.3))
    rows = _rows(score_dataset(_dataset(few), static_routers, models=models, rule=CostWeight(0.3), concurrency=2))
    assert list(rows)[2:] == list(want)
    for name, values in want.items():
        if values.dtype == object:
            assert rows[name] == values.tolist(), name
        else:
            np.testing.assert_allclose(rows[name], values, rtol=0, atol=1e-12, err_msg=name)
    with pytest.raises(ValueError, match="rule chooses among models"):
        score_dataset(_dataset(few), static_routers, rule=0.5)
    with pytest.raises(ValueError, match="threshold must be in"):
        score_dataset(_dataset(few), static_routers, models=models, rule=1.5)

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in few))
    common = ["score", "--input", str(source), "--chunk-size", "200", "--quiet", "--routers", "mf",
              "--embedder", "static", "--models", *(f"{m}={c}" for m, c in models.items()), "--threshold", "0.3"]
    out_ray, out_local = source.with_name("ray.parquet"), source.with_name("local.parquet")
    assert cli.main([*common, "--output", str(out_ray), "--engine", "ray", "--ray-actors", "2"]) == 0
    assert cli.main([*common, "--output", str(out_local)]) == 0
    assert read_table(out_ray).equals(read_table(out_local))


def test_cli_engine_ray_errors(cluster, tmp_path):
    from routellm_fast import cli

    (tmp_path / "in.jsonl").write_text('{"text": "hello"}\n')
    args = ["score", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"), "--engine", "ray"]
    assert cli.main(args) == 2 and not (tmp_path / "out.jsonl").exists()
    (tmp_path / "in.jsonl").write_text('{"prompt": "hello"}\n{"prompt": null}\n')
    assert cli.main(args) == 2 and not (tmp_path / "out.jsonl").exists()
    assert cli.main([*args[:-2], "--engine", "ray", "--ray-actors", "0"]) == 2
