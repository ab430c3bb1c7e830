"""The fuzz targets (tests/fuzz/targets.py): the committed corpus replays clean, and a short,
seeded, time-boxed atheris pass over each target finds nothing. The long runs behind RELIABILITY.md
use the same targets (``python -m tests.fuzz.run core|loaders ...``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="the fuzz extra (atheris) is not installed")

from tests.fuzz import targets  # noqa: E402  (imports atheris)

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parents[1]


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_corpus_replays_clean(name):
    corpus = sorted((FUZZ / "corpus" / name).iterdir())
    assert len(corpus) >= 20
    for path in corpus:
        targets.TARGETS[name](path.read_bytes())


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_short_fuzzing_pass(name, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in (FUZZ / "corpus" / name).iterdir():  # the run adds to its corpus: work on a copy
        (corpus / path.name).write_bytes(path.read_bytes())
    # `python -m tests.fuzz.run` in tmp_path (libFuzzer may write there): the checkout's root on the
    # path after whatever PYTHONPATH already holds (the package under test, e.g. .ci/sanitize's build)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))}
    result = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.run", name, str(corpus), "-seed=1", "-max_total_time=12", "-timeout=20",
         "-rss_limit_mb=6144",  # under AddressSanitizer (.ci/sanitize) the interpreter alone passes libFuzzer's 2 GB default
         f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env,
    )
    tail = "\n".join(result.stderr.splitlines()[-40:])
    assert result.returncode == 0, tail
    assert "Done" in result.stderr, tail
