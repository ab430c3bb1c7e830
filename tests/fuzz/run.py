"""Run a fuzz target under atheris (libFuzzer): ``python tests/fuzz/run.py core|loaders|static [libFuzzer flags]``.

    python tests/fuzz/run.py loaders tests/fuzz/corpus/loaders -runs=1000000
    python tests/fuzz/run.py core tests/fuzz/corpus/core -max_total_time=600
    python tests/fuzz/run.py static tests/fuzz/corpus/static -runs=1000000

A finding (an exception no user is promised, a crash) stops the run with the input saved as
``crash-*``; libFuzzer's last line says how many inputs ran.
"""

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("core", "loaders", "static"):
        raise SystemExit(__doc__)
    with atheris.instrument_imports():  # coverage of the targets and the package's Python code
        from targets import TARGETS

    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
