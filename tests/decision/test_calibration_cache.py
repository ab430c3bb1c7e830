"""A router of one's own (``--config``) is calibrated once: its win rates on the calibration prompts
are kept in ``$ROUTELLM_FAST_CACHE/calibration/``, keyed by what its answers depend on and by the
prompts, written atomically, and reused by later runs (the CLI, the Controller, ``/v1/models``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast.cli import main
from routellm_fast.decision.calibration import (
    calibration_cache_file,
    known_win_rates,
    prompts_digest,
    sample_win_rates,
    share_threshold,
    win_rates_on,
)
from routellm_fast.paths import DATA_DIR

from tests.helpers import STRONG, WEAK


@pytest.fixture
def own_mf(tmp_path, monkeypatch):
    """A config for an mf router of one's own: the shipped static-embedder mf without its recorded
    calibration, so it must be calibrated; the cache in a folder of the test's own."""
    folder = tmp_path / "my_mf"
    shutil.copytree(DATA_DIR / "default_mf_static", folder)
    meta = json.loads((folder / "routellm_fast.json").read_text())
    del meta["calibration"]
    (folder / "routellm_fast.json").write_text(json.dumps(meta))
    monkeypatch.setenv("ROUTELLM_FAST_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "config.yaml"
    config.write_text(f"mf:\n  checkpoint_path: {folder}\n")
    return config


def test_a_config_router_is_calibrated_once_and_reused(own_mf, tmp_path):
    ctl = rf.Controller(["mf"], STRONG, WEAK, config=own_mf)
    router = ctl.routers["mf"]
    path = calibration_cache_file(router)
    assert router.calibration is None and known_win_rates(router) is None and not path.exists()
    rates = sample_win_rates(router)
    assert path.is_file() and rates.shape == (805,)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # written atomically: no temporary left
    # A later run (a new Controller, a new router object) reads the cache instead of scoring: a cache
    # file holding other values is what it returns.
    planted = np.linspace(0.0, 1.0, 805)
    np.save(path, planted)
    again = rf.Controller(["mf"], STRONG, WEAK, config=own_mf)
    np.testing.assert_array_equal(known_win_rates(again.routers["mf"]), planted)
    assert again.share_threshold("mf", 0.5) == pytest.approx(0.5)
    # A cache file that is not what this cache writes is scored again.
    path.write_bytes(b"not a numpy file")
    fresh = rf.Controller(["mf"], STRONG, WEAK, config=own_mf)
    np.testing.assert_array_equal(sample_win_rates(fresh.routers["mf"]), rates)


def test_the_key_follows_the_router_and_the_prompts(own_mf, tmp_path):
    router = rf.Controller(["mf"], STRONG, WEAK, config=own_mf).routers["mf"]
    shipped = rf.Controller(["mf"], STRONG, WEAK, embedder="static").routers["mf"]
    entry = {"checkpoint_path": str(tmp_path / "my_mf"), "weak_model": "gpt-3.5-turbo-1106"}
    other_pair = rf.Controller(["mf"], STRONG, "gpt-3.5-turbo-1106", config={"mf": entry}).routers["mf"]
    assert calibration_cache_file(router) != calibration_cache_file(other_pair)
    assert calibration_cache_file(router) == calibration_cache_file(shipped)  # same weights, same answers
    prompts = ["hi", "Prove Fermat's little theorem."]
    assert calibration_cache_file(router, prompts_digest(prompts)) != calibration_cache_file(router)
    assert prompts_digest(prompts) != prompts_digest(prompts[::-1])
    rates = win_rates_on(router, prompts)
    assert calibration_cache_file(router, prompts_digest(prompts)).is_file()
    np.testing.assert_array_equal(rates, router.score(prompts))
    assert calibration_cache_file(rf.Controller(["random"], STRONG, WEAK).routers["random"]) is None


def test_route_and_calibrate_reuse_the_cache(own_mf, capsys):
    assert main(["calibrate", "--strong-model-pct", "0.5", "--config", str(own_mf), "--router", "mf"]) == 0
    first = capsys.readouterr()
    assert "calibrating mf on the sample prompts" in first.err
    assert main(["route", "hello", "--config", str(own_mf), "--router", "mf"]) == 0
    second = capsys.readouterr()
    assert "calibrating" not in second.err  # kept from the calibrate run
    router = rf.Controller(["mf"], STRONG, WEAK, config=own_mf).routers["mf"]
    expected = round(share_threshold(known_win_rates(router), 0.5), 5)
    assert f"threshold = {expected}" in first.out and f"threshold={expected:.5f}" in second.out
    # --overwrite-cache scores again.
    assert main(["calibrate", "--strong-model-pct", "0.5", "--config", str(own_mf), "--router", "mf",
                 "--overwrite-cache", "mf"]) == 0
    assert f"threshold = {expected}" in capsys.readouterr().out


def test_v1_models_shows_the_calibrated_threshold(own_mf):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from routellm_fast.serve.server import create_app

    ctl = rf.Controller(["mf", "random"], STRONG, WEAK, config=own_mf)
    with TestClient(create_app(ctl)) as client:
        data = client.get("/v1/models").json()["data"]
    thresholds = ctl.calibrated_thresholds("mf")
    assert data[0]["id"] == f"router-mf-{thresholds[0.5]}" and thresholds[0.5] != 0.5
    assert data[0]["calibrated_thresholds"] == {f"{p:.0%}": t for p, t in thresholds.items()}
    assert data[1]["id"] == "router-random-0.5" and data[1]["calibrated_thresholds"]["10%"] == 0.9
