"""Batch scoring, scaled out: prompts/s in-process, in a ``multiprocessing`` pool and on Ray Data,
on 1 and 2 CPUs of this machine.

    python benchmarks/bench_scaleout.py [--static-prompts 1000000] [--minilm-prompts 2000] [--json out.json]

For the shipped mf router on the static embedder (``--static-prompts``, default 1,000,000) and on
all-MiniLM-L6-v2 (``--minilm-prompts``, default 2,000), prompts are the bundled sample (805 real
prompts) repeated; each engine scores all of them and its win rates are checked against one
in-process ``router.score`` call (to 1e-12) before its time counts:

* in-process: n threads (the core's and the ONNX embedder's), ``router.score`` over chunks of
  ``--batch-size`` prompts, as ``routellm-fast score`` reads, scores and writes a file (one call
  for a million prompts would fill a gigabyte of embeddings first, and runs slower);
* ``multiprocessing``: a spawn pool of n processes, the router pickled into each (its initializer
  sets one thread), ``pool.map`` over chunks of ``--batch-size`` prompts; the pool is started and
  warmed before the clock starts;
* Ray: a local cluster of n CPUs (``ray.init(num_cpus=n)``, started before the clock),
  ``score_dataset`` with n actors of 1 CPU (and, at 2 CPUs, 1 actor of 2 CPUs) over an in-memory
  dataset of ``--batch-size``-row blocks (put in the object store before the clock). Every Ray run
  starts its actors and builds the routers in them: ``startup`` is what a run of next to nothing
  costs (the least of two such runs), and the scoring time is the run's time less that (for the
  pool: starting and warming it). ``with startup`` counts both.

Scaling is prompts/s at 2 CPUs over prompts/s at 1 CPU of the same engine. The machine's load
average is printed with the table (a shared machine's other work shows in the numbers).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

_worker_router = None


def _use_threads(router, n: int) -> None:
    """Score on ``n`` threads: the compiled core's, and the ONNX embedder's (whose default is every
    CPU of the process, as an actor's is not: score_dataset caps it to the actor's CPUs)."""
    import routellm_fast as rf

    rf.set_num_threads(n)
    embedder = router.embedder if hasattr(router, "embedding_model") else None
    if isinstance(getattr(embedder, "threads", None), int):
        embedder.threads = n


def _init_worker(router) -> None:  # runs in each pool process: the router arrives pickled
    global _worker_router
    _use_threads(router, 1)
    _worker_router = router


def _score_chunk(prompts: list[str]) -> np.ndarray:
    return _worker_router.score(prompts)  # type: ignore[union-attr]


def _chunks(prompts: list[str], size: int) -> list[list[str]]:
    return [prompts[i : i + size] for i in range(0, len(prompts), size)]


def bench_inprocess(router, prompts, cpus: int, batch: int):
    _use_threads(router, cpus)
    router.score(prompts[:64])  # warm: the embedder is loaded
    start = time.perf_counter()
    got = np.concatenate([router.score(chunk) for chunk in _chunks(prompts, batch)])
    elapsed = time.perf_counter() - start
    return 0.0, elapsed, got


def bench_multiprocessing(router, prompts, cpus: int, batch: int):
    ctx = mp.get_context("spawn")
    begin = time.perf_counter()
    with ctx.Pool(cpus, initializer=_init_worker, initargs=(router,)) as pool:
        pool.map(_score_chunk, [prompts[:8]] * cpus, chunksize=1)  # started and warm (embedder loaded)
        start = time.perf_counter()
        parts = pool.map(_score_chunk, _chunks(prompts, batch), chunksize=1)
        elapsed = time.perf_counter() - start
    return start - begin, elapsed, np.concatenate(parts)


def bench_ray(spec, embedder: str, prompts, cpus: int, actors: int, batch: int):
    import pyarrow as pa
    import ray
    from routellm_fast.serve.ray import score_dataset

    ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)

        def run(prompts, batch):
            table = pa.table({"prompt": prompts})
            ds = ray.data.from_arrow([table.slice(i, batch) for i in range(0, len(prompts), batch)])
            scored = score_dataset(ds, spec, embedder=embedder, batch_size=batch, concurrency=actors,
                                   num_cpus_per_actor=cpus // actors)
            start = time.perf_counter()
            batches = scored.iter_batches(batch_size=None, batch_format="pyarrow")
            parts = [b.column("win_rate_mf").to_numpy() for b in batches]
            return time.perf_counter() - start, np.concatenate(parts)

        # what a run of next to nothing costs (starting the actors, building the routers): the least of two
        startup = min(run(prompts[: 8 * actors], 8)[0] for _ in range(2))
        total, got = run(prompts, batch)
    finally:
        ray.shutdown()
    return startup, max(total - startup, 1e-3), got


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--static-prompts", type=int, default=1_000_000)
    parser.add_argument("--minilm-prompts", type=int, default=2_000)
    parser.add_argument("--static-batch-size", type=int, default=8192, help="rows per chunk/block (static)")
    parser.add_argument("--minilm-batch-size", type=int, default=500, help="rows per chunk/block (MiniLM)")
    parser.add_argument("--no-ray", action="store_true", help="skip Ray (no ray extra)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()

    from routellm_fast.formats.tables import read_prompts
    from routellm_fast.routers.shipped import default_mf_router

    sample = read_prompts()
    rows = []
    for embedder, n, batch in (("static", args.static_prompts, args.static_batch_size),
                               ("minilm", args.minilm_prompts, args.minilm_batch_size)):
        prompts = (sample * (n // len(sample) + 1))[:n]
        router = default_mf_router(embedder=embedder)
        _use_threads(router, 2)
        want = router.score(prompts)
        runs = []
        for cpus in (1, 2):
            runs.append(("in-process", cpus, f"{cpus} thread{'s' * (cpus > 1)}", *bench_inprocess(router, prompts, cpus, batch)))
        for cpus in (1, 2):
            runs.append(("multiprocessing", cpus, f"{cpus} process{'es' * (cpus > 1)}",
                         *bench_multiprocessing(router, prompts, cpus, batch)))
        if not args.no_ray:
            for cpus, actors in ((1, 1), (2, 2), (2, 1)):
                runs.append(("ray", cpus, f"{actors} actor{'s' * (actors > 1)} x {cpus // actors} CPU",
                             *bench_ray(["mf"], embedder, prompts, cpus, actors, batch)))
        one_cpu = {}
        for engine, cpus, how, startup, elapsed, got in runs:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=f"{engine} {how}")
            rate, end_to_end = n / elapsed, n / (elapsed + startup)
            if cpus == 1:
                one_cpu[engine] = rate
            rows.append({"router": f"mf ({embedder})", "prompts": n, "engine": engine, "cpus": cpus, "how": how,
                         "seconds": elapsed, "prompts_per_s": rate, "scaling": rate / one_cpu[engine],
                         "startup_s": startup, "end_to_end_prompts_per_s": end_to_end})
            print(f"{embedder:6} {engine:15} {how:18} {elapsed:8.3f} s {rate:12,.0f} prompts/s "
                  f"(startup {startup:.2f} s)", file=sys.stderr)

    load = os.getloadavg()
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average "
          f"{load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} (1, 5, 15 min)\n")
    print("| router | prompts | engine | CPUs | how | scoring s | prompts/s | x vs 1 CPU | startup s "
          "| with startup, prompts/s |")
    print("|---|---:|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        startup = f"{r['startup_s']:.2f}" if r["engine"] != "in-process" else "-"
        print(f"| {r['router']} | {r['prompts']:,} | {r['engine']} | {r['cpus']} | {r['how']} | {r['seconds']:.2f} "
              f"| {r['prompts_per_s']:,.0f} | {r['scaling']:.2f} | {startup} | {r['end_to_end_prompts_per_s']:,.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"load_average": load, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
