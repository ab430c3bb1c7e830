"""The command line as a RouteLLM user writes it: ``route``'s prompt wherever it is, ``--version``,
help on every option, RouteLLM's ``calibrate``/``eval`` flags, one-line errors, and ``eval --output``
kept out of the committed files."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
import routellm_fast as rf
from routellm_fast.cli import build_parser, main
from routellm_fast.paths import PACKAGE_DIR

from tests.helpers import STRONG, WEAK

PROMPT = "Prove that there are infinitely many primes."
STATIC = ["--embedder", "static"]


def route_lines(argv, capsys) -> list[str]:
    assert main(argv) == 0
    return capsys.readouterr().out.splitlines()


def test_route_takes_its_prompt_wherever_it_is_written(capsys):
    expected = route_lines(["route", PROMPT, "--router", "mf", "sw_ranking", *STATIC], capsys)
    assert len(expected) == 2 and expected[0].endswith("router=mf") and expected[1].endswith("router=sw_ranking")
    for argv in (["route", "--router", "mf", "sw_ranking", PROMPT, *STATIC],
                 ["route", "--routers", "mf", "sw_ranking", PROMPT, *STATIC],
                 ["route", *STATIC, "--router", "mf", "sw_ranking", PROMPT],
                 ["route", "--router", "mf", "sw_ranking", *STATIC, "--", PROMPT],
                 ["route", *STATIC, "--router", "mf", "sw_ranking", "--", PROMPT]):
        assert route_lines(argv, capsys) == expected, argv
    # A prompt that is also a router's name is written after --.
    only = route_lines(["route", "--router", "mf", *STATIC, "--", "random"], capsys)
    assert len(only) == 1 and only[0].endswith("router=mf")


@pytest.mark.parametrize("argv, message", [
    (["route", "--router", "mf"], "route needs a prompt"),
    (["route"], "route needs a prompt"),
    (["route", "--router", "mf", "Prove", "it"], "route takes one prompt, got 2 words after the router names"),
    (["route", "--router", "mff", PROMPT], "invalid choice: 'mff': no router 'mff'"),
    (["route", PROMPT, "--router", "mf", "again"], "invalid choice: 'again'"),
    (["calibrate", "--strong-model-pct", "0.5", "--router", "mf", PROMPT], "invalid choice"),
])
def test_route_without_a_prompt_shows_the_forms_that_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    if "prompt" in message:
        assert 'routellm-fast route --router mf "PROMPT"' in err and 'routellm-fast route --router mf -- "PROMPT"' in err


def test_route_threshold_as_a_share_and_the_warning_for_a_routellm_threshold():
    run = [sys.executable, "-m", "routellm_fast", "route", PROMPT, "--router", "mf", *STATIC]
    share = subprocess.run([*run, "--threshold", "50%"], capture_output=True, text=True, check=True)
    pct = subprocess.run([*run, "--strong-model-pct", "0.5"], capture_output=True, text=True, check=True)
    assert share.stdout == pct.stdout and share.stderr == ""
    copied = subprocess.run([*run, "--threshold", "0.11593"], capture_output=True, text=True, check=True)
    assert copied.stdout.startswith(STRONG)
    lines = copied.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("routellm-fast: warning: threshold 0.11593 sends 100.0%")
    assert "or router-mf-50%" in lines[0] and "routellm-fast calibrate" in lines[0]


def test_static_embedder_is_exported_at_the_top_level():
    from routellm_fast.embedders import StaticEmbedder

    assert rf.StaticEmbedder is StaticEmbedder and "StaticEmbedder" in rf.__all__
    assert rf.ThresholdWarning.__mro__[1] is UserWarning


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"routellm-fast {rf.__version__}"


def _options(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        else:
            yield path, action


def test_every_option_of_every_command_has_help():
    seen = list(_options(build_parser()))
    assert len(seen) > 100
    missing = [f"{' '.join(path)} {'/'.join(a.option_strings) or a.dest}" for path, a in seen
               if not a.help or a.help == argparse.SUPPRESS]
    assert not missing, missing


def test_calibrate_takes_routellms_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ROUTELLM_FAST_CACHE", str(tmp_path / "cache"))
    battles = tmp_path / "battles.jsonl"  # Chatbot Arena's layout: prompts are JSON lists of turns
    rows = [{"prompt": json.dumps([p, "and a second turn"]), "model_a": STRONG, "model_b": WEAK}
            for p in (PROMPT, "hi", "Write a haiku about the sea.", "What is 2 + 2?")]
    battles.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "thresholds.csv"
    assert main(["calibrate", "--task", "generate", "--battles_dataset", str(battles), "--routers", "mf", "random",
                 "--output", str(out), "--parallel", "1", *STATIC]) == 0
    assert capsys.readouterr().out == ""  # generate prints no threshold
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(out)
    assert table.column_names == ["prompt", "mf", "random"]
    assert table.column("prompt").to_pylist()[0] == PROMPT  # the first turn
    mf = rf.Controller(["mf"], STRONG, WEAK, embedder="static").routers["mf"]
    first_turns = table.column("prompt").to_pylist()
    assert table.column("mf").to_pylist() == pytest.approx(mf.score(first_turns).tolist(), abs=1e-12)
    from routellm_fast.decision.calibration import share_threshold

    expected = round(share_threshold(mf.score(first_turns), 0.25), 5)
    for spelling in ("--battles_dataset", "--battles-dataset"):
        assert main(["calibrate", "--strong-model-pct", "0.25", spelling, str(battles), "--router", "mf",
                     "--task", "calibrate", *STATIC]) == 0
        assert capsys.readouterr().out.strip() == f"For 25.0% strong model calls for mf, threshold = {expected}"
    assert main(["calibrate", "--strong-model-pct", "0.25", "--battles_dataset", str(battles), "--router", "mf",
                 "--overwrite-cache", *STATIC]) == 0
    assert str(expected) in capsys.readouterr().out
    for argv, message in ((["--battles_dataset", str(tmp_path / "none.jsonl")], "is not a file"),
                          (["--parallel", "0"], "--parallel must be >= 1"),
                          ([], "calibrate needs --strong-model-pct")):
        assert main(["calibrate", "--router", "mf", *STATIC, *argv]
                    + (["--strong-model-pct", "0.5"] if argv else [])) == 2
        assert message in capsys.readouterr().err


def test_eval_takes_routellms_flags_and_keeps_out_of_committed_files(tmp_path, capsys):
    args = build_parser().parse_args(["eval", "--benchmark", "mt-bench", "--overwrite-cache", "mf", "random",
                                      "--parallel", "2"])
    assert args.overwrite_cache == ["mf", "random"] and args.parallel == 2
    assert build_parser().parse_args(["eval", "--benchmark", "mt-bench", "--overwrite_cache"]).overwrite_cache == []
    assert build_parser().parse_args(["eval", "--benchmark", "mt-bench"]).overwrite_cache is None
    committed = [PACKAGE_DIR / "data", PACKAGE_DIR]
    docs = PACKAGE_DIR.parents[1] / "docs"
    if docs.is_dir():
        committed += [docs / "eval", docs]
    for folder in committed:
        assert main(["eval", "--benchmark", "mt-bench", "--router", "random", "--output", str(folder)]) == 2
        err = capsys.readouterr().err
        assert "whose files are committed" in err and "--overwrite-committed" in err and "\n" == err[-1]
        assert err.count("\n") == 1


def test_user_mistakes_are_one_line_errors(tmp_path, capsys, monkeypatch):
    battles = tmp_path / "battles.csv"
    battles.write_text(f"prompt,model_a,model_b,winner\nhi,{STRONG},{WEAK},model_a\n")
    # An embedding service that cannot be reached (nothing listens on port 9): one line, no traceback.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code = main(["train", "mf", "--battles", str(battles), "--out", str(tmp_path / "out"), "--quiet",
                 "--embedder", "text-embedding-ada-002", "--val-share", "0"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and err[-1].startswith("routellm-fast: error: embedding request to"), err
    assert not any("Traceback" in line for line in err)
    # A file that is not a table: one line.
    (tmp_path / "prompts.txt").write_text("hello")
    assert main(["score", "--input", str(tmp_path / "prompts.txt"), "--output", str(tmp_path / "out.csv"),
                 "--quiet", *STATIC]) == 2
    err = capsys.readouterr().err
    assert err.startswith("routellm-fast: error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("module, args", [("routellm_fast.train.recipe", []), ("routellm_fast.train.bert_recipe", []),
                                          ("routellm_fast.evals.many_models", ["--alpaca-eval", "--output", "out"])])
def test_recipes_without_the_shared_data_say_so_in_one_line(module, args, tmp_path):
    """A clone without ../shared: the recipes and the AlpacaEval part of the many-models evaluation
    name what is missing and --data-dir, without a traceback."""
    result = subprocess.run([sys.executable, "-m", module, *args, "--data-dir", str(tmp_path / "no-shared")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "preference/alpaca_eval" in last and "pass --data-dir FOLDER" in last, result.stderr
