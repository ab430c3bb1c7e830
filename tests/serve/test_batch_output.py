"""`routellm-fast score` never loses data: its output is written whole or not at all. A signal
(SIGTERM, SIGINT) or a bad row half-way leaves the previous output byte for byte as it was and no
temporary file behind; an error names the row's number in the input file; an output that is the
input under another name (hard link, symbolic link) or a directory is refused before any work."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from routellm_fast import cli
from routellm_fast.formats.tables import read_table

PREVIOUS = b"the previous output, which must survive\n"


def write_prompts(path: Path, rows: int, bad_row: int | None = None) -> None:
    with open(path, "w") as f:
        for i in range(rows):
            prompt = None if i + 1 == bad_row else f"prompt number {i}"
            f.write(json.dumps({"id": i, "prompt": prompt}) + "\n")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def score(tmp_path: Path, *extra: str, output: str = "out.jsonl", source: str = "in.jsonl") -> int:
    return cli.main(["score", "--input", str(tmp_path / source), "--output", str(tmp_path / output), "--quiet",
                     "--routers", "random", *extra])


@pytest.mark.parametrize(("sig", "output"), [(signal.SIGTERM, "out.parquet"), (signal.SIGINT, "out.jsonl")])
def test_a_signal_mid_run_leaves_the_previous_output_and_no_temporary_file(tmp_path, sig, output):
    """A real `python -m routellm_fast score` process, signalled once its temporary output exists
    (it is then writing rows: 200,000 rows in chunks of 2 take far longer than the test waits)."""
    write_prompts(tmp_path / "in.jsonl", 200_000)
    (tmp_path / output).write_bytes(PREVIOUS)
    proc = subprocess.Popen([sys.executable, "-m", "routellm_fast", "score", "--input", str(tmp_path / "in.jsonl"),
                             "--output", str(tmp_path / output), "--routers", "random", "--chunk-size", "2",
                             "--quiet"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not leftovers(tmp_path):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no temporary output appeared"
            time.sleep(0.02)
        (tmp,) = leftovers(tmp_path)
        assert tmp.startswith(f".{output}.") and tmp.endswith(".tmp")  # hidden, beside the output
        time.sleep(0.3)  # some chunks written
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + sig, err
    assert f"interrupted by {signal.Signals(sig).name}" in err and "Traceback" not in err
    assert (tmp_path / output).read_bytes() == PREVIOUS
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("output", ["out.jsonl", "out.parquet", "out.csv"])
def test_a_bad_row_half_way_names_its_row_in_the_file_and_loses_nothing(tmp_path, output, capsys):
    write_prompts(tmp_path / "in.jsonl", 2500, bad_row=1703)
    (tmp_path / output).write_bytes(PREVIOUS)
    assert score(tmp_path, "--chunk-size", "500", output=output) == 2
    err = capsys.readouterr().err
    assert "in.jsonl: row 1703: prompt must be a str, got NoneType" in err
    assert (tmp_path / output).read_bytes() == PREVIOUS
    assert leftovers(tmp_path) == []


def test_a_row_that_does_not_fit_the_columns_names_its_line(tmp_path, capsys):
    rows = [{"prompt": f"prompt {i}"} for i in range(30)]
    rows[23]["prompt"] = 17
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "out.jsonl").write_bytes(PREVIOUS)
    assert score(tmp_path, "--chunk-size", "10") == 2
    assert "in.jsonl: rows do not form a table at line 24" in capsys.readouterr().err
    assert (tmp_path / "out.jsonl").read_bytes() == PREVIOUS and leftovers(tmp_path) == []


def test_errors_from_a_router_name_the_row_in_the_file(tmp_path, capsys, fixtures_dir):
    """A prompt past the causal_llm router's context in the third chunk: the router's own message,
    numbered in its chunk, is renumbered by the row in the file."""
    rows = [{"prompt": f"Is {i} prime?"} for i in range(12)]
    rows[9]["prompt"] = "word " * 3000
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "config.json").write_text(json.dumps({"causal_llm": {"checkpoint_path": str(fixtures_dir / "causal/fp32")}}))
    assert cli.main(["score", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"), "--quiet",
                     "--routers", "causal_llm", "--config", str(tmp_path / "config.json"), "--chunk-size", "4"]) == 2
    err = capsys.readouterr().err
    assert "in.jsonl: row 10 is " in err and "tokens in the classifier's template" in err, err
    assert not (tmp_path / "out.jsonl").exists() and leftovers(tmp_path) == []


def test_a_successful_run_replaces_the_output_whole(tmp_path):
    write_prompts(tmp_path / "in.jsonl", 25)
    out = tmp_path / "out.jsonl"
    out.write_bytes(PREVIOUS)
    os.chmod(out, 0o640)
    assert score(tmp_path, "--chunk-size", "4") == 0
    table = read_table(out)
    assert table.column("id").to_pylist() == list(range(25)) and "win_rate_random" in table.column_names
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # the file it replaced kept its permissions
    assert leftovers(tmp_path) == []


def test_an_output_linked_to_the_input_is_refused(tmp_path, capsys):
    """The same file by a hard link or a symbolic link: refused before any work, the input intact."""
    write_prompts(tmp_path / "in.jsonl", 5)
    original = (tmp_path / "in.jsonl").read_bytes()
    os.link(tmp_path / "in.jsonl", tmp_path / "hard.jsonl")
    os.symlink(tmp_path / "in.jsonl", tmp_path / "soft.jsonl")
    os.symlink("soft.jsonl", tmp_path / "chain.jsonl")
    for name in ("hard.jsonl", "soft.jsonl", "chain.jsonl"):
        assert score(tmp_path, output=name) == 2
        assert "is the input file" in capsys.readouterr().err
    # and the other way round: the input given through a link to the output
    assert score(tmp_path, output="in.jsonl", source="hard.jsonl") == 2
    assert "is the input file" in capsys.readouterr().err
    assert (tmp_path / "in.jsonl").read_bytes() == original and (tmp_path / "hard.jsonl").stat().st_nlink == 2


def test_a_symbolic_link_to_another_file_is_written_through(tmp_path):
    write_prompts(tmp_path / "in.jsonl", 5)
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "real.jsonl"
    target.write_bytes(PREVIOUS)
    (tmp_path / "link.jsonl").symlink_to(target)
    assert score(tmp_path, output="link.jsonl") == 0
    assert (tmp_path / "link.jsonl").is_symlink() and read_table(target).num_rows == 5
    assert leftovers(tmp_path / "data") == []


def test_a_directory_or_a_missing_folder_as_output_is_a_clear_error(tmp_path, capsys):
    write_prompts(tmp_path / "in.jsonl", 5)
    (tmp_path / "dir.jsonl").mkdir()
    assert score(tmp_path, output="dir.jsonl") == 2
    assert "dir.jsonl is a directory" in capsys.readouterr().err
    assert score(tmp_path, output="no/such/folder/out.jsonl") == 2
    err = capsys.readouterr().err
    assert "the folder" in err and "does not exist" in err and "Traceback" not in err


def test_a_write_that_fails_leaves_the_output_and_no_temporary_file(tmp_path, monkeypatch, capsys):
    """The disk fills up while rows are written (ENOSPC from the writer): one line, exit 1, the
    previous output as it was."""
    import errno

    from routellm_fast.formats import tables

    write_prompts(tmp_path / "in.jsonl", 50)
    (tmp_path / "out.jsonl").write_bytes(PREVIOUS)
    real_write = tables.TableWriter.write
    calls = []

    def full_disk(self, table):
        calls.append(table.num_rows)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, table)

    monkeypatch.setattr(tables.TableWriter, "write", full_disk)
    assert score(tmp_path, "--chunk-size", "10") == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "out.jsonl was left as it was" in err
    assert (tmp_path / "out.jsonl").read_bytes() == PREVIOUS and leftovers(tmp_path) == []


def test_a_signal_held_back_during_the_rename_says_the_output_was_written(tmp_path):
    """A signal that arrives while the file is moved into place is held back until the rename is
    done: the run then reports the interruption, and that the new output is whole (it stays)."""
    import pyarrow as pa
    from routellm_fast.formats import tables
    from routellm_fast.serve.batch import Interrupted, write_chunks

    out = tmp_path / "out.jsonl"
    out.write_bytes(PREVIOUS)
    real_fsync = tables._fsync

    def signalled_fsync(path, directory=False):
        if not directory:
            os.kill(os.getpid(), signal.SIGTERM)  # held back: the commit is under a signal mask
        real_fsync(path, directory)

    tables._fsync = signalled_fsync
    try:
        with pytest.raises(Interrupted) as stop:
            write_chunks(out, [pa.table({"prompt": ["a", "b"]})])
    finally:
        tables._fsync = real_fsync
    assert stop.value.committed and stop.value.signum == signal.SIGTERM
    assert read_table(out).num_rows == 2 and leftovers(tmp_path) == []
