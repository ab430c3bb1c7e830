"""Every command the user pages show still works: README.md, docs/*.md (not the generated docs/eval/),
DEVELOPERS.md and benchmarks/README.md.

Fenced ```bash and ```python blocks are read from the pages. A block runs here unless the line before
it says why it cannot, as ``<!-- check: parse-only (needs a GPU) -->``:

- run: each bash command runs in a fresh folder holding a few input files (``prompts.jsonl``,
  ``my_battles.jsonl``, ...: :func:`inputs`), with ``routellm-fast`` and ``python`` meaning this
  interpreter, no network, caches in the folder; it must exit 0, and a ``#> text`` line under a
  command is output it must print (whitespace aside). A python block runs as a script there.
- parse-only, and every run block before it runs: each command's program must exist and accept its
  arguments. ``routellm-fast`` arguments go through the CLI's own parser (``cli.build_parser``);
  ``python -m MODULE`` and ``python SCRIPT.py`` through the module's or script's argparse parser,
  stopped right after parsing; ``pip install ".[extra]"`` must name extras in pyproject.toml;
  ``pytest``, ``ruff`` and ``bash`` must name files that exist. A python block must compile, its
  ``routellm_fast`` imports and attributes must exist, and its calls of routellm_fast functions and
  classes must fit their signatures.

Outside the blocks, inline code is checked by name: ``routellm-fast SUB --flag`` (the subcommand and
its flags), ``python -m MODULE``, ``python SCRIPT.py --flag``, a lone ``--flag`` (some parser on the
page has it), ``routellm_fast.x.y`` and ``rf.x`` (they resolve), and repository paths (they exist).
Links between the pages must reach a file, and a heading where they name one.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.util
import inspect
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "DEVELOPERS.md", ROOT / "benchmarks" / "README.md",
         *sorted((ROOT / "docs").glob("*.md"))]
PACKAGE = ROOT / "python" / "routellm_fast"

MARKER = re.compile(r"^<!--\s*check:\s*(?P<mode>run|parse-only)\s*(?:\((?P<why>[^)]+)\))?\s*-->$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
CHECKED_LANGS = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python"}
#: Programs whose arguments say nothing this test can check (shell built-ins and build tools).
UNCHECKED_PROGRAMS = {"cd", "cp", "echo", "export", "mkdir", "printf", "source", ".", "cmake", "curl", "ray"}
#: Flags of other programs' plugins that the pages name on their own (pytest-benchmark's).
OTHER_FLAGS = {"--benchmark-only", "--benchmark-autosave", "--benchmark-compare"}
#: Repository paths the pages name as outputs (git-ignored, made by a run).
OUTPUT_PATHS = {"benchmarks/out/"}
COMMAND_TIMEOUT_S = 300


# ----------------------------------------------------------------------------------------------
# Reading the pages


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str  # "bash" or "python"
    text: str
    mode: str  # "run" or "parse-only"
    why: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass
class Command:
    line: int
    text: str  # one logical line, continuations joined
    expected: list[str] = field(default_factory=list)  # its "#>" lines


def read_blocks(page: Path) -> tuple[list[Block], list[str]]:
    """The page's checked blocks, and the problems with its markers (one that no block follows, a
    parse-only block without a reason)."""
    blocks, problems, lines = [], [], page.read_text().splitlines()
    i, previous, previous_line = 0, "", 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            if lines[i].strip():
                if MARKER.match(previous.strip()):
                    problems.append(f"{page.relative_to(ROOT)}:{previous_line}: marker not followed by a block")
                previous, previous_line = lines[i], i + 1
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), len(lines))
        marker = MARKER.match(previous.strip())
        lang = CHECKED_LANGS.get(fence["lang"])
        if lang is not None:
            mode = marker["mode"] if marker else "run"
            why = (marker["why"] or "").strip() if marker else ""
            if mode == "parse-only" and not why:
                problems.append(f"{page.relative_to(ROOT)}:{i + 1}: parse-only marker without a reason in brackets")
            blocks.append(Block(page, i + 1, lang, "\n".join(lines[i + 1:end]), mode, why))
        elif marker:
            problems.append(f"{page.relative_to(ROOT)}:{i + 1}: marker before a ```{fence['lang']} block, which is not checked")
        previous, previous_line, i = "", 0, end + 1
    return blocks, problems


def prose(page: Path) -> str:
    """The page without its fenced blocks (their lines blanked, so line numbers stay)."""
    out, inside = [], False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            inside = not inside
            out.append("")
        else:
            out.append("" if inside else line)
    return "\n".join(out)


def inline_spans(page: Path) -> list[str]:
    """Inline code spans, whitespace runs (line breaks too) made one space; ``\\|`` (a pipe inside a
    table cell) made ``|``."""
    text = prose(page)
    return [" ".join(m.group(1).replace("\\|", "|").split()) for m in re.finditer(r"`([^`]+)`", text)]


def bash_commands(block: Block) -> list[Command]:
    """The block's commands: one per logical line, comment lines skipped, ``#>`` lines attached to the
    command above them."""
    commands, pending, start = [], "", 0
    for n, raw in enumerate(block.text.splitlines(), block.line + 1):
        line = raw.rstrip()
        if not pending:
            if line.lstrip().startswith("#>"):
                assert commands, f"{block.name}: expected output with no command above it"
                commands[-1].expected.append(line.lstrip()[2:].strip())
                continue
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append(Command(start, pending + line))
        pending = ""
    assert not pending, f"{block.name}: a command ends with a line continuation"
    return commands


def simple_commands(text: str) -> list[list[str]]:
    """A shell line split into simple commands (at ``&&``, ``||``, ``;`` and ``|``), each an argv with
    leading ``VAR=value`` assignments and redirections dropped."""
    out, argv = [], []
    tokens = shlex.split(text, comments=True)
    skip_next = False
    for tok in tokens:
        if skip_next:
            skip_next = False
            continue
        if tok in ("&&", "||", ";", "|"):
            out.append(argv)
            argv = []
            continue
        if re.fullmatch(r"\d*>>?|<", tok):
            skip_next = True
            continue
        if re.match(r"\d*>", tok) or tok.startswith("<"):
            continue
        if not argv and re.fullmatch(r"[A-Za-z_]\w*=.*", tok):
            continue
        argv.append(tok)
    out.append(argv)
    return [a for a in out if a]


# ----------------------------------------------------------------------------------------------
# Checking one command without running it


class Stale(AssertionError):
    """A documented command names something that does not exist or is not accepted."""


def cli_parser():
    from routellm_fast.cli import build_parser

    return build_parser()


def subparsers(parser) -> dict:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def parser_options(parser) -> set[str]:
    """Every option string of a parser and of its subparsers, all the way down."""
    opts = set(parser._option_string_actions)
    for sub in subparsers(parser).values():
        opts |= parser_options(sub)
    return opts


def exact(parser):
    """The parser with abbreviations refused, here and in its subparsers: a documented flag must be
    spelled in full (argparse would take ``--ray-actor`` for ``--ray-actors``)."""
    parser.allow_abbrev = False
    for sub in subparsers(parser).values():
        exact(sub)
    return parser


def check_cli(args: list[str]) -> None:
    """``routellm-fast ARGS``, parsed by the CLI's own parser (not run)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            exact(cli_parser()).parse_args(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise Stale(f"routellm-fast {shlex.join(args)}: {err.getvalue().strip()}") from None


HARNESS = r'''
import argparse, json, runpy, sys
mode, kind, target, *argv = sys.argv[1:]
class Parsed(BaseException):
    pass
parse = argparse.ArgumentParser.parse_args
def options(parser):
    opts = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                opts |= options(sub)
    return opts
def exact(parser):
    parser.allow_abbrev = False  # a documented flag must be spelled in full
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                exact(sub)
def parse_args(self, args=None, namespace=None):
    exact(self)
    if mode == "options":
        print("\n@@OPTIONS " + json.dumps(sorted(options(self))), flush=True)
    else:
        parse(self, args, namespace)
        print("\n@@PARSED", flush=True)
    raise Parsed
argparse.ArgumentParser.parse_args = parse_args
sys.argv = [target, *argv]
try:
    if kind == "module":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:  # the script's folder is first on the import path (PYTHONPATH), as `python SCRIPT` has it
        runpy.run_path(target, run_name="__main__")
except Parsed:
    sys.exit(0)
sys.exit("@@NO_PARSER")
'''


def module_source(kind: str, target: str) -> str:
    """The source a ``python SCRIPT`` or ``python -m MODULE`` runs (a package's ``__init__`` and
    ``__main__``); Stale if there is none."""
    if kind == "script":
        path = ROOT / target
        if not path.is_file():
            raise Stale(f"python {target}: no such script")
        return path.read_text()
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise Stale(f"python -m {target}: no such module")
    origin = Path(spec.origin)
    main = origin.parent / "__main__.py" if spec.submodule_search_locations else None
    if main is not None and not main.is_file():
        raise Stale(f"python -m {target}: a package without __main__")
    return origin.read_text() + (main.read_text() if main else "")


def harness(mode: str, kind: str, target: str, args: list[str]) -> subprocess.CompletedProcess:
    if "parse_args(" not in module_source(kind, target):
        raise Stale(f"{target}: no argparse parser to check its arguments with (teach tests/docs/test_commands.py how)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTELLM_FAST_")}
    if kind == "script":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str((ROOT / target).parent), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", HARNESS, mode, kind, target, *args], check=False, cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def check_parsed(kind: str, target: str, args: list[str]) -> None:
    """``python -m MODULE ARGS`` or ``python SCRIPT ARGS``: its own argparse parser takes ARGS."""
    done = harness("parse", kind, target, args)
    if done.returncode != 0 or not ("@@PARSED" in done.stdout or "usage:" in done.stdout):
        what = f"python -m {target}" if kind == "module" else f"python {target}"
        raise Stale(f"{what} {shlex.join(args)}: {(done.stderr or done.stdout).strip()[-1500:]}")


@functools.cache
def options_of(kind: str, target: str) -> frozenset[str]:
    if target == "routellm_fast":
        return frozenset(parser_options(cli_parser()))
    done = harness("options", kind, target, [])
    found = re.search(r"^@@OPTIONS (.*)$", done.stdout, re.MULTILINE)
    if found is None:
        raise Stale(f"{target}: could not read its parser's options: {(done.stderr or done.stdout).strip()[-800:]}")
    return frozenset(json.loads(found.group(1)))


def fuzz_targets() -> set[str]:
    """The targets tests/fuzz/run.py accepts (``if ... sys.argv[1] not in ("core", ...)``)."""
    found = re.search(r"not in \(([^)]*)\)", (ROOT / "tests" / "fuzz" / "run.py").read_text())
    if found is None:
        raise Stale("tests/fuzz/run.py: cannot read its targets (teach tests/docs/test_commands.py how)")
    return set(re.findall(r'"(\w+)"', found.group(1)))


def check_fuzz_run(args: list[str]) -> None:
    """``python -m tests.fuzz.run TARGET CORPUS [-libfuzzer_flag=value ...]`` (no argparse: libFuzzer's)."""
    if not args:
        raise Stale("tests/fuzz/run.py needs a target")
    for target in args[0].split("|"):
        if target not in fuzz_targets():
            raise Stale(f"tests/fuzz/run.py: no fuzz target {target!r} (targets: {sorted(fuzz_targets())})")
    if len(args) > 1 and "<" not in args[1] and not (ROOT / args[1]).is_dir():
        raise Stale(f"tests/fuzz/run.py: no corpus folder {args[1]}")
    for flag in args[2:]:
        if not re.fullmatch(r"-\w+=\S+", flag):
            raise Stale(f"tests/fuzz/run.py: {flag!r} is not a libFuzzer flag (-name=value)")


def check_stage_script(script: str, args: list[str]) -> None:
    """Scripts that take one stage name (``usage: ... train|reference``)."""
    found = re.search(r"usage: \{sys\.argv\[0\]\} ([\w|]+)", (ROOT / script).read_text())
    if found is None:
        raise Stale(f"{script}: cannot read its stages (teach tests/docs/test_commands.py how)")
    stages = found.group(1).split("|")
    for stage in args[0].split("|") if args else []:
        if stage not in stages:
            raise Stale(f"{script}: no stage {stage!r} (stages: {stages})")


def check_no_arguments(module: str) -> Callable[[list[str]], None]:
    """A module run with no arguments (``python -m tests.fuzz.make_corpus``): it must exist."""
    def check(args: list[str]) -> None:
        module_source("module", module)
        if args:
            raise Stale(f"python -m {module} takes no arguments, got {shlex.join(args)}")
    return check


#: RouteLLM's scripts ``python -m routellm_fast.patched`` runs, and the parser that takes the arguments
#: of the one it runs as ``routellm-fast calibrate`` (the others are RouteLLM's: checked where it is installed).
ROUTELLM_SCRIPTS = {"routellm.openai_server": None, "routellm.evals.evaluate": None,
                    "routellm.calibrate_threshold": "calibrate"}


def check_patched(args: list[str]) -> None:
    """``python -m routellm_fast.patched MODULE ARGS``: one of RouteLLM's scripts, with arguments its
    parser takes (``routellm.calibrate_threshold``: ``routellm-fast calibrate``'s)."""
    module_source("module", "routellm_fast.patched")
    if not args or args[0] not in ROUTELLM_SCRIPTS:
        raise Stale(f"python -m routellm_fast.patched {shlex.join(args)}: runs one of {sorted(ROUTELLM_SCRIPTS)}")
    if ROUTELLM_SCRIPTS[args[0]] is not None:
        check_cli([ROUTELLM_SCRIPTS[args[0]], *args[1:]])
    elif installed("routellm") and args[0] == "routellm.evals.evaluate":
        check_parsed("module", args[0], args[1:])


#: Modules without an argparse parser, and how their arguments are checked.
SPECIAL_MODULES = {
    "routellm_fast.patched": check_patched,
    "tests.fuzz.run": check_fuzz_run,
    "tests.fuzz.make_corpus": check_no_arguments("tests.fuzz.make_corpus"),
}
SPECIAL_SCRIPTS = {
    "tests/fixtures/make_trained_mf_fixture.py": lambda args: check_stage_script(
        "tests/fixtures/make_trained_mf_fixture.py", args),
}


@functools.cache
def extras() -> frozenset[str]:
    text = (ROOT / "pyproject.toml").read_text()
    section = re.search(r"^\[project\.optional-dependencies\]\n(.*?)(?=^\[)", text, re.MULTILINE | re.DOTALL).group(1)
    return frozenset(re.findall(r"^([\w-]+)\s*=", section, re.MULTILINE))


def check_pip(args: list[str]) -> None:
    if not args or args[0] not in ("install", "uninstall"):
        raise Stale(f"pip {shlex.join(args)}: only pip install/uninstall are documented")
    for req in args[1:]:
        if req.startswith("-"):
            continue
        local = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", req)
        if local and local.group(1):
            for extra in local.group(1).split(","):
                if extra not in extras():
                    raise Stale(f"pip install {req}: no extra {extra!r} in pyproject.toml ({sorted(extras())})")


def check_paths(program: str, args: list[str], value_options: tuple[str, ...]) -> None:
    """The path arguments of pytest/ruff/bash exist (``file.py::test`` names its file)."""
    previous = ""
    for tok in args:
        if not tok.startswith("-") and previous not in value_options and not (ROOT / tok.split("::")[0]).exists():
            raise Stale(f"{program}: no such file or folder {tok}")
        previous = tok


def installed(module: str) -> bool:
    return importlib.util.find_spec(module.split(".")[0]) is not None


def is_python(program: str) -> bool:
    return re.fullmatch(r"(?:.*/)?python3?(?:\.\d+)?", program) is not None


def check_argv(argv: list[str]) -> None:
    """One simple command, checked without running it."""
    program, args = argv[0], argv[1:]
    if program == "routellm-fast":
        check_cli(args)
    elif is_python(program):
        if args[:1] == ["-c"]:
            compile(args[1], "<python -c>", "exec")
        elif args[:1] == ["-m"]:
            module, rest = args[1], args[2:]
            if module == "routellm_fast":
                check_cli(rest)
            elif module == "pytest":
                check_paths("pytest", rest, ("-p", "-k", "-m", "-o", "-c", "--rootdir"))
            elif module == "pip":
                check_pip(rest)
            elif module in SPECIAL_MODULES:
                SPECIAL_MODULES[module](rest)
            else:
                check_parsed("module", module, rest)
        else:
            script, rest = args[0], args[1:]
            if script in SPECIAL_SCRIPTS and "parse_args(" not in module_source("script", script):
                SPECIAL_SCRIPTS[script](rest)
            else:
                check_parsed("script", script, rest)
    elif program.endswith("pip"):
        check_pip(args)
    elif program.endswith("pytest"):
        check_paths("pytest", args, ("-p", "-k", "-m", "-o", "-c", "--rootdir"))
    elif program == "ruff":
        if args[:1] != ["check"]:
            raise Stale(f"ruff {shlex.join(args)}: only `ruff check` is documented")
        check_paths("ruff", args[1:], ("--select", "--ignore", "--config"))
    elif program == "bash":
        script = ROOT / args[0]
        if not script.is_file():
            raise Stale(f"bash {args[0]}: no such script")
        syntax = subprocess.run(["bash", "-n", str(script)], check=False, capture_output=True, text=True)
        if syntax.returncode:
            raise Stale(f"bash -n {args[0]}: {syntax.stderr.strip()}")
    elif program not in UNCHECKED_PROGRAMS:
        raise Stale(f"{shlex.join(argv)}: unknown program {program!r} (teach tests/docs/test_commands.py about it)")


# ----------------------------------------------------------------------------------------------
# Python snippets, checked without running them


@functools.cache
def top_level_names(module: str) -> frozenset[str] | None:
    """Names a module's source defines or imports at its top level (for a module that cannot be
    imported here, e.g. for want of an extra)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    names = set()
    for node in ast.parse(Path(spec.origin).read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return frozenset(names)


class Unknown:
    """A value whose type this check does not follow."""


def import_module(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(name)


def resolve_dotted(dotted: str) -> object:
    """``routellm_fast.a.b.c``: the longest importable module, then attributes; Stale if a part is
    missing. A module that cannot be imported for want of a third-party package is read instead."""
    parts = dotted.split(".")
    obj, i = None, len(parts)
    while i > 0:
        name = ".".join(parts[:i])
        try:
            obj = import_module(name)
            break
        except ModuleNotFoundError as exc:
            if exc.name and not exc.name.startswith("routellm_fast") and importlib.util.find_spec(name):
                defined = top_level_names(name)  # importable but for an extra: check by reading it
                if i < len(parts) and defined is not None and parts[i] not in defined:
                    raise Stale(f"{dotted}: {name} has no {parts[i]}") from None
                return Unknown()
            i -= 1
        except ImportError:
            i -= 1
    if obj is None:
        raise Stale(f"{dotted}: no such module")
    for part in parts[i:]:
        if not hasattr(obj, part):
            where = getattr(obj, "__name__", type(obj).__name__)
            raise Stale(f"{dotted}: {where} has no attribute {part!r}")
        obj = getattr(obj, part)
    return obj


@dataclass
class Instance:
    cls: type


@dataclass
class Method:
    cls: type
    name: str


@functools.cache
def instance_attributes(cls: type) -> frozenset[str] | None:
    """The attributes a class's methods (and its bases') assign on ``self``, its annotated fields
(dataclasses) and slots; None where a class's source cannot be read (compiled classes)."""
    names = set()
    for klass in cls.__mro__[:-1]:
        names |= set(vars(klass).get("__annotations__", {})) | set(vars(klass).get("__slots__", ()))
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            return None
        names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                  and isinstance(n.value, ast.Name) and n.value.id == "self"}
    return frozenset(names)


def returned_class(func) -> type | None:
    """The class a function's return annotation names, if it names one."""
    try:
        hint = typing.get_type_hints(func).get("return")
    except Exception:  # annotations this check cannot evaluate
        return None
    return hint if inspect.isclass(hint) and hint.__module__.startswith("routellm_fast") else None


class SnippetChecker:
    """Follows names bound to routellm_fast objects through a snippet's statements."""

    def __init__(self) -> None:
        self.names: dict[str, object] = {}

    def check(self, code: str, where: str) -> None:
        compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        for statement in ast.parse(code).body:
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "routellm_fast":
                    module = resolve_dotted(alias.name)  # `import a.b` binds a; `import a.b as c` binds a.b
                    self.names[alias.asname or "routellm_fast"] = module if alias.asname else resolve_dotted("routellm_fast")
            return
        if isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] == "routellm_fast" and not node.level:
                for alias in node.names:
                    self.names[alias.asname or alias.name] = resolve_dotted(f"{node.module}.{alias.name}")
            return
        for child in ast.walk(node):  # every attribute chain and call in the statement
            if isinstance(child, (ast.Attribute, ast.Call)):
                self.value(child)
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = self.value(node.value)
            if value is not None:
                self.names[node.targets[0].id] = value

    def value(self, node: ast.expr) -> object | None:
        """What an expression is, where it is a routellm_fast object (or an instance of one of its
        classes); None where unknown. Stale for a missing attribute or a call its signature refuses."""
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.value(node.value)
            if base is None or isinstance(base, Unknown):
                return None
            if isinstance(base, Instance):
                attr = inspect.getattr_static(base.cls, node.attr, None)
                if attr is None:
                    assigned = instance_attributes(base.cls)
                    if assigned is not None and node.attr not in assigned:
                        raise Stale(f"{ast.unparse(node)}: {base.cls.__name__} has no attribute {node.attr!r}")
                    return None  # set in __init__: not followed
                return None if isinstance(attr, property) else Method(base.cls, node.attr)
            if isinstance(base, Method):
                return None
            if not hasattr(base, node.attr):
                raise Stale(f"{ast.unparse(node)}: {getattr(base, '__name__', base)!s} has no attribute {node.attr!r}")
            return getattr(base, node.attr)
        if isinstance(node, ast.Call):
            func = self.value(node.func)
            if func is None or isinstance(func, Unknown):
                return None
            starred = any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords)
            args = [None] * len(node.args)
            kwargs = {k.arg: None for k in node.keywords if k.arg}
            target = func
            if isinstance(func, Method):  # called on an instance: self comes first
                target, args = getattr(func.cls, func.name), [None, *args]
                if isinstance(inspect.getattr_static(func.cls, func.name), (staticmethod, classmethod)):
                    args = args[1:]
            if not starred and callable(target):
                try:
                    signature = inspect.signature(target)
                except (TypeError, ValueError):
                    signature = None
                if signature is not None:
                    try:
                        signature.bind(*args, **kwargs)
                    except TypeError as exc:
                        raise Stale(f"{ast.unparse(node)}: {exc}") from None
            if inspect.isclass(func):
                return Instance(func)
            made = returned_class(target) if callable(target) else None
            return Instance(made) if made is not None else None
        return None


# ----------------------------------------------------------------------------------------------
# Running


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> Path:
    """The input files the pages' commands name: prompts (the first 8 bundled sample prompts) as
    JSON lines and parquet, battles between the default pair on 40 of them, and a config naming the
    mf checkpoint `train mf --out my_mf/` writes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("doc-inputs")
    sample = [json.loads(line)["prompt"] for line in (PACKAGE / "data" / "sample_prompts.jsonl").read_text().splitlines()]
    prompts = "".join(json.dumps({"prompt": p}) + "\n" for p in sample[:8])
    (folder / "prompts.jsonl").write_text(prompts)
    (folder / "my_traffic.jsonl").write_text(prompts)
    pq.write_table(pa.table({"prompt": sample[:8]}), folder / "prompts.parquet")
    winners = ["model_a", "model_b", "tie"]
    (folder / "my_battles.jsonl").write_text("".join(
        json.dumps({"prompt": p, "model_a": "gpt-4-1106-preview", "model_b": "mixtral-8x7b-instruct-v0.1",
                    "winner": winners[i % 3]}) + "\n" for i, p in enumerate(sample[:40])))
    (folder / "my_config.yaml").write_text("mf:\n  checkpoint_path: my_mf/\n")
    return folder


def run_env(folder: Path) -> dict[str, str]:
    """This interpreter as `python` and `routellm-fast`; caches in ``folder``; nothing from the
    developer's environment that steers the package."""
    shims = folder / ".bin"
    shims.mkdir()
    for name, line in (("python", f'exec "{sys.executable}" "$@"'), ("python3", f'exec "{sys.executable}" "$@"'),
                       ("routellm-fast", f'exec "{sys.executable}" -m routellm_fast "$@"')):
        (shims / name).write_text(f"#!/bin/sh\n{line}\n")
        (shims / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ROUTELLM_FAST_", "HF_", "OPENAI_", "RAY_")) and k != "HUGGINGFACE_HUB_CACHE"}
    cache = folder / ".cache"
    env.update(PATH=f"{shims}{os.pathsep}{env.get('PATH', '')}", XDG_CACHE_HOME=str(cache),
               ROUTELLM_FAST_CACHE=str(cache / "routellm_fast"), HF_HOME=str(cache / "huggingface"),
               HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    return env


NUMBER = re.compile(r"(-?\d+(?:\.\d+)?)")


def same_output(expected: str, printed: str) -> bool:
    """One printed line matches a documented one: the same words (whitespace aside) and the same
    numbers to the digits shown, give or take one in the last (a float rounded on another CPU)."""
    want, got = NUMBER.split(" ".join(expected.split())), NUMBER.split(" ".join(printed.split()))
    if len(want) != len(got):
        return False
    for i, (a, b) in enumerate(zip(want, got)):
        if i % 2 == 0:  # text between numbers
            if a != b:
                return False
        elif a != b:
            digits = len(a.partition(".")[2])
            if len(b.partition(".")[2]) != digits or abs(float(a) - float(b)) > 1.01 * 10 ** -digits:
                return False
    return True


def run_bash(block: Block, folder: Path) -> None:
    env = run_env(folder)
    for command in bash_commands(block):
        done = subprocess.run(["bash", "-c", f"set -eo pipefail\n{command.text}"], check=False, cwd=folder,
                              env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
        assert done.returncode == 0, (f"{block.page.name}:{command.line}: {command.text}\nexit {done.returncode}\n"
                                      f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        for expected in command.expected:
            assert any(same_output(expected, line) for line in done.stdout.splitlines()), (
                f"{block.page.name}:{command.line}: {command.text}\nshould print: {expected}\nprinted:\n{done.stdout}")


def run_python(block: Block, folder: Path) -> None:
    done = subprocess.run([sys.executable, "-c", block.text], check=False, cwd=folder, env=run_env(folder),
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    assert done.returncode == 0, f"{block.name}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


# ----------------------------------------------------------------------------------------------
# The tests


def all_blocks() -> list[Block]:
    return [b for page in PAGES for b in read_blocks(page)[0]]


BLOCKS = all_blocks()


def check_block(block: Block) -> None:
    if block.lang == "python":
        SnippetChecker().check(block.text, block.name)
        return
    for command in bash_commands(block):
        for argv in simple_commands(command.text):
            try:
                check_argv(argv)
            except Stale as exc:
                raise Stale(f"{block.page.relative_to(ROOT)}:{command.line}: {exc}") from None


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_block(block: Block, inputs: Path, tmp_path: Path) -> None:
    check_block(block)
    if block.mode == "run":
        for command in bash_commands(block) if block.lang == "bash" else []:
            for argv in simple_commands(command.text):
                assert argv[0] not in ("pip",) and argv[1:2] != ["-m", "pip"], (
                    f"{block.name}: `pip` installs: mark the block parse-only")
        folder = tmp_path / "run"
        shutil.copytree(inputs, folder)
        (run_bash if block.lang == "bash" else run_python)(block, folder)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_markers(page: Path) -> None:
    assert read_blocks(page)[1] == []


def test_the_fresh_machine_commands_are_in_readme() -> None:
    """CI and the project's rules depend on these two lines, exactly."""
    texts = [b.text for b in read_blocks(ROOT / "README.md")[0]]
    assert 'pip install . && routellm-fast route "Prove that there are infinitely many primes."' in texts
    assert 'pip install ".[test]" && python -m pytest' in texts


PROGRAM_SPAN = re.compile(r"^(?:[A-Za-z_]\w*=\S+ )*(?P<program>\S+)(?: (?P<rest>.*))?$")
REPO_PATH = re.compile(r"(?<![\w./-])((?:tests|benchmarks|scripts|kernels|csrc|docs|python|\.ci)/[\w./*{}<>-]*|"
                       r"(?:routellm_fast/)?data/[\w./-]+)")
DOTTED = re.compile(r"(?<![\w.])(routellm_fast(?:\.[A-Za-z_]\w*)+)")
RF = re.compile(r"(?<![\w.])rf((?:\.[A-Za-z_]\w*)+)")
FILE_SUFFIXES = {"json", "py", "md", "npz", "npy", "onnx", "txt", "yaml", "so", "pth", "data"}


def flags_in(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"(?<![\w-])(--[a-z][\w-]*)", text)]


def check_cli_names(rest: str) -> None:
    """``routellm-fast SUB [SUBSUB] ... --flags``: the subcommand(s) and every flag exist."""
    words = rest.split()
    parser = cli_parser()
    choices = subparsers(parser)
    if len(words) == 1 and words[0] in parser_options(parser):  # a top-level flag: `routellm-fast --version`
        return
    if not words or words[0] not in choices:
        raise Stale(f"routellm-fast {rest}: no subcommand {words[0] if words else ''!r} ({sorted(choices)})")
    targets = [choices[words[0]]]
    nested = subparsers(targets[0])
    if nested and len(words) > 1 and not words[1].startswith("-"):
        names = words[1].split("|")
        for name in names:
            if name not in nested:
                raise Stale(f"routellm-fast {rest}: no subcommand {words[0]} {name!r} ({sorted(nested)})")
        targets = [nested[n] for n in names]
    known = set().union(*(parser_options(t) for t in targets))
    for flag in flags_in(rest):
        if flag not in known:
            raise Stale(f"routellm-fast {rest}: {words[0]} has no flag {flag}")


def program_target(program: str, rest: str) -> tuple[str, str, str] | None:
    """(kind, target, arguments) of an inline ``python ...`` span; None for other programs."""
    if not is_python(program):
        return None
    module = re.match(r"-m (\S+) ?(.*)$", rest)
    if module:
        return "module", module.group(1), module.group(2)
    script = re.match(r"(\S+\.py) ?(.*)$", rest)
    if script:
        return "script", script.group(1), script.group(2)
    return None


def page_parsers(page: Path) -> set[tuple[str, str]]:
    """Every module and script this page runs (fenced or inline), for its lone flags."""
    found = {("module", "routellm_fast")}
    texts = [b.text for b in read_blocks(page)[0] if b.lang == "bash"]
    for text in texts:
        for command in bash_commands(Block(page, 0, "bash", text, "run", "")):
            for argv in simple_commands(command.text):
                hit = program_target(argv[0], " ".join(argv[1:]))
                if hit and hit[1] not in ("pytest", "pip", "venv") and hit[1] not in SPECIAL_SCRIPTS:
                    found.add(hit[:2])
    for span in inline_spans(page):
        m = PROGRAM_SPAN.match(span)
        hit = m and program_target(m["program"], m["rest"] or "")
        if hit and hit[1] not in ("pytest", "pip", "venv") and hit[1] not in SPECIAL_SCRIPTS:
            if hit[0] == "script" and not (ROOT / hit[1]).is_file():
                continue  # reported by test_inline_code
            found.add(hit[:2])
    return found


def check_span(span: str, page_flags: set[str]) -> None:
    m = PROGRAM_SPAN.match(span)
    program, rest = (m["program"], m["rest"] or "") if m else ("", "")
    hit = program_target(program, rest)
    if program == "routellm-fast" and rest:
        check_cli_names(rest)
    elif hit and hit[:2] == ("module", "routellm_fast"):
        if hit[2]:
            check_cli_names(hit[2])
    elif hit and hit[1] in ("pytest", "venv", "pip"):
        pass
    elif hit and hit[0] == "module" and hit[1].split(".")[0] != "routellm_fast" and not installed(hit[1]):
        pass  # another project's module (RouteLLM's), not installed here
    elif hit and hit[1].startswith("../"):
        pass  # outside this repository (../shared/tools), which a user's clone does not have
    elif hit and hit[1] in SPECIAL_SCRIPTS and "parse_args(" not in module_source("script", hit[1]):
        SPECIAL_SCRIPTS[hit[1]](hit[2].split())
    elif hit:
        module_source(hit[0], hit[1])
        opts = options_of(hit[0], hit[1]) if flags_in(hit[2]) else frozenset()
        for flag in flags_in(hit[2]):
            if flag not in opts:
                raise Stale(f"{span}: {hit[1]} has no flag {flag}")
    elif program == "bash" and rest:
        if not (ROOT / rest.split()[0]).is_file():
            raise Stale(f"{span}: no such script")
    elif span.startswith("--"):
        flag = flags_in(span)[0]
        if flag not in page_flags and flag not in OTHER_FLAGS:
            raise Stale(f"{span}: no command on this page has the flag {flag}")
    elif re.fullmatch(r"[a-z][\w-]*", program) and flags_in(rest) and not (
            program in UNCHECKED_PROGRAMS or program in ("pip", "pytest", "ruff") or is_python(program)):
        check_cli_names(span)  # a subcommand on its own: `route --strong-model-pct P`
    for path in REPO_PATH.findall(span):
        path = path.rstrip(".,;:)")
        if "<" in path or "{" in path or path in OUTPUT_PATHS:
            continue
        local = ROOT / path if not path.startswith(("data/", "routellm_fast/")) else (
            PACKAGE.parent / path if path.startswith("routellm_fast/") else PACKAGE / path)
        if "*" in path:
            if not list(local.parent.glob(local.name)):
                raise Stale(f"{span}: nothing matches {path}")
        elif not local.exists():
            raise Stale(f"{span}: no such file or folder {path}")
    for dotted in DOTTED.findall(span):
        if dotted.rsplit(".", 1)[-1] not in FILE_SUFFIXES:
            resolve_dotted(dotted)
    for chain in RF.findall(span):
        resolve_dotted("routellm_fast" + chain)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_inline_code(page: Path) -> None:
    """Inline commands, flags, module paths and file paths name things that exist."""
    page_flags = set(OTHER_FLAGS)
    for kind, target in page_parsers(page):
        try:
            page_flags |= options_of(kind, target)
        except Stale:
            pass  # a missing module or script is reported where it is named
    problems = []
    for span in inline_spans(page):
        try:
            check_span(span, page_flags)
        except Stale as exc:
            problems.append(str(exc))
    assert not problems, f"{page.relative_to(ROOT)}:\n" + "\n".join(problems)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower().replace("`", ""))
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@functools.cache
def anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(page).splitlines():
        m = re.match(r"^#{1,6} (.+?)\s*#*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            out.add(base if n == 0 else f"{base}-{n}")
            seen[base] = n + 1
    return frozenset(out)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_links(page: Path) -> None:
    """Relative links reach a file, and the heading they name."""
    problems = []
    for m in re.finditer(r"!?\[[^\]]*\]\(([^)\s]+)\)", prose(page)):
        target = m.group(1)
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            problems.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            problems.append(f"{target}: {file.relative_to(ROOT)} has no heading #{anchor}")
    assert not problems, f"{page.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_no_reliability_page_at_the_root() -> None:
    """docs/reliability.md is the one copy."""
    assert not (ROOT / "RELIABILITY.md").exists()
    assert (ROOT / "docs" / "reliability.md").is_file()


@pytest.mark.parametrize("command", [
    "routellm-fast route hi --no-such-flag",
    "routellm-fast no-such-command",
    "routellm-fast route hi --router no_such_router",
    "python -m routellm_fast.recipe --data-dir ../shared/data",
    "python -m routellm_fast.train.recipe --no-such-flag",
    "python benchmarks/no_such_bench.py",
    "python benchmarks/run.py --no-such-flag",
    'pip install ".[no-such-extra]"',
    "python -m pytest tests/no_such_test.py",
    "bash scripts/no_such.sh",
    "python -m tests.fuzz.run no_such_target tests/fuzz/corpus/core",
    "no-such-program --flag",
])
def test_a_stale_command_fails(command: str) -> None:
    """The checks above catch a module, subcommand, flag, extra or file that does not exist."""
    with pytest.raises(Stale):
        for argv in simple_commands(command):
            check_argv(argv)


@pytest.mark.parametrize("span", [
    "routellm-fast train mf|rf --battles FILE",
    "routellm-fast calibrate --no-such-flag",
    "python -m routellm_fast.recipe",
    "python benchmarks/bench_static.py --no-such-flag",
    "routellm_fast.policy.CostWeight",
    "rf.policy.calibrate_models",
    "tests/test_bert.py",
    "--no-such-flag",
])
def test_a_stale_name_fails(span: str) -> None:
    with pytest.raises(Stale):
        check_span(span, set(OTHER_FLAGS))


def test_output_lines_match_to_the_digits_shown() -> None:
    line = "gpt-4-1106-preview\twin_rate=0.62290\tthreshold=0.61797\trouter=sw_ranking"
    assert same_output("gpt-4-1106-preview win_rate=0.62290 threshold=0.61797 router=sw_ranking", line)
    assert same_output("gpt-4-1106-preview win_rate=0.62291 threshold=0.61797 router=sw_ranking", line)
    assert not same_output("gpt-4-1106-preview win_rate=0.62293 threshold=0.61797 router=sw_ranking", line)
    assert not same_output("gpt-4-1106-preview win_rate=0.6229 threshold=0.61797 router=sw_ranking", line)
    assert not same_output("mixtral-8x7b-instruct-v0.1 win_rate=0.62290 threshold=0.61797 router=sw_ranking", line)
    assert same_output("| mf | 20.14% | 8.804 | 0.558 |", "| mf | 20.15% | 8.804 | 0.558 |")


def test_a_stale_snippet_fails() -> None:
    checker = SnippetChecker()
    with pytest.raises(Stale):
        checker.check("import routellm_fast as rf\nrf.policy.CostWeight(0.2)\n", "<snippet>")
    with pytest.raises(Stale):
        checker.check("import routellm_fast as rf\nrf.Controller(['mf'], 'a', 'b', no_such_argument=1)\n", "<snippet>")
    with pytest.raises(Stale):
        checker.check("from routellm_fast.policy import CostWeight\n", "<snippet>")
    with pytest.raises(Stale):
        checker.check("import routellm_fast as rf\nc = rf.Controller(['mf'], 'a', 'b')\nc.route('p')\n", "<snippet>")
    with pytest.raises(Stale):  # followed through a function's return annotation
        checker.check("from routellm_fast.routers.shipped import default_mf_router\n"
                      "mf = default_mf_router()\nmf.score_embedding([[0.0]])\n", "<snippet>")
