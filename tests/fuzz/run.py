"""Run a fuzz target under atheris (libFuzzer), from the repository root:
``python -m tests.fuzz.run core|loaders|static [libFuzzer flags]``.

    python -m tests.fuzz.run loaders tests/fuzz/corpus/loaders -runs=1000000
    python -m tests.fuzz.run core tests/fuzz/corpus/core -max_total_time=600
    python -m tests.fuzz.run static tests/fuzz/corpus/static -runs=1000000

A finding (an exception no user is promised, a crash) stops the run with the input saved as
``crash-*``; libFuzzer's last line says how many inputs ran.
"""

import sys

import atheris

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("core", "loaders", "static"):
        raise SystemExit(__doc__)
    with atheris.instrument_imports():  # coverage of the targets and the package's Python code
        from tests.fuzz.targets import TARGETS

    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
