"""Kill `routellm-fast score` mid-run, many times, and check that nothing is lost: the previous output
is byte-identical afterwards, no temporary file is left, and the exit status is 128 + the signal.

Each run writes a 100,000-row prompt file's scores over a previous output (parquet, JSON lines or CSV
in turn), waits until the run's temporary output file appears, waits a random 0-1.5 s more (chunks are
being written), then sends SIGTERM or SIGINT (in turn). Every fourth run scores with the static mf
router, the others with the random router.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    clean = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with open(folder / "in.jsonl", "w") as f:
            for i in range(100_000):
                f.write(json.dumps({"id": i, "prompt": f"Write a short poem about the number {i}."}) + "\n")
        for run in range(args.runs):
            out = folder / ("out.parquet", "out.jsonl", "out.csv")[run % 3]
            sig = (signal.SIGTERM, signal.SIGINT)[run % 2]
            router = ["--routers", "mf", "--embedder", "static"] if run % 4 == 0 else ["--routers", "random"]
            previous = os.urandom(64) + f"previous output {run}".encode()
            out.write_bytes(previous)
            proc = subprocess.Popen([sys.executable, "-m", "routellm_fast", "score", "--input", str(folder / "in.jsonl"),
                                     "--output", str(out), "--chunk-size", "7", "--quiet", *router],
                                    stderr=subprocess.PIPE, text=True)
            while not any(p.name.startswith(".") for p in folder.iterdir()) and proc.poll() is None:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 1.5))
            proc.send_signal(sig)
            proc.communicate()
            leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
            same = out.read_bytes() == previous
            ok = same and not leftovers and proc.returncode == 128 + sig
            clean += ok
            print(f"run {run}: {out.name} {signal.Signals(sig).name} {router[1]}: exit {proc.returncode}, "
                  f"previous output {'byte-identical' if same else 'CHANGED'}, temporary files left: {leftovers}")
    print(f"{args.runs} runs: {clean} clean, {args.runs - clean} lost data or left a file")
    return 0 if clean == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
