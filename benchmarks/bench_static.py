"""Routing from text with the static embedder, against MiniLM routing and RouteLLM's mf, in one run.

    python benchmarks/bench_static.py [--repeats 2000] [--reference-python PATH | --reference-venv DIR] [--json out.json]

Times, on this machine:

* ``route(prompt)`` end to end (tokenise + embed + score + threshold) on one thread, for a prompt of
  24 and one of 200 word-piece tokens, with the shipped mf and sw_ranking on the static embedder and
  the same routers on all-MiniLM-L6-v2 (the default), median and p99 over ``--repeats`` calls;
* ``score(prompts)`` from text on all cores: 100,000 distinct 24-token prompts, prompts/s;
* RouteLLM's mf (``routellm==0.2.0`` in the reference Python, as ``benchmarks/run.py`` runs it):
  ``calculate_strong_win_rate`` per prompt with its embedding answered from a table, i.e. its
  scoring only. Its real embedding is an OpenAI API call (tens to hundreds of ms over the network),
  which is not timed, so the ratio to it is a lower bound.

Prompts are cut from the bundled sample prompts to the exact token counts, so runs compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import routellm_fast as rf
from routellm_fast.decision.rule import ModelPair
from routellm_fast.embedders import embedder_for
from routellm_fast.formats.tables import read_prompts
from routellm_fast.routers.shipped import (
    default_mf_router,
    default_sw_router,
    default_threshold,
)

HERE = Path(__file__).parent
PAIR = ModelPair(strong="gpt-4-1106-preview", weak="mixtral-8x7b-instruct-v0.1")


def prompts_of(tokens: int, count: int) -> list[str]:
    """``count`` prompts of exactly ``tokens`` word pieces (the static embedder's tokenizer, which is
    MiniLM's): windows of consecutive words of the bundled sample prompts, cut to the count and
    padded with ``a``; the distinct windows repeat when ``count`` is larger (nothing is cached)."""
    static = embedder_for("static")
    words = " ".join(read_prompts()).split()
    out: list[str] = []
    for start in range(0, len(words) - tokens, 7):
        window = words[start : start + tokens]
        ids = static.token_ids([" ".join(window)])[0]
        while len(ids) > tokens:  # words of several pieces: drop words, then pad
            window = window[:-1]
            ids = static.token_ids([" ".join(window)])[0]
        out.append(" ".join(window) + " a" * (tokens - len(ids)))
        if len(out) == count:
            break
    assert all(len(ids) == tokens for ids in static.token_ids(out[:100]))
    return (out * (count // len(out) + 1))[:count]


def percentiles_us(seconds: list[float]) -> dict:
    t = np.asarray(seconds) * 1e6
    return {"p50_us": float(np.median(t)), "p99_us": float(np.percentile(t, 99)), "calls": len(t)}


def time_route(router, prompt: str, threshold: float, repeats: int) -> dict:
    for _ in range(max(10, repeats // 20)):  # warm-up
        router.route(prompt, threshold, PAIR)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        router.route(prompt, threshold, PAIR)
        times.append(time.perf_counter() - start)
    return percentiles_us(times)


def reference_mf(python: str, repeats: int) -> dict:
    """RouteLLM's mf scoring per prompt (its embedding answered from a table), via run.py's worker."""
    sys.path.insert(0, str(HERE))
    from run import DIM, STRONG, WEAK, Reference, unit_rows

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ref = Reference(python, work)
        if not ref.available:
            return {"not_run": ref.why_not}
        ckpt = work / "mf_checkpoint"
        ref.run({"kind": "make_mf_checkpoint", "checkpoint": str(ckpt), "dim": DIM, "seed": 0})
        np.save(work / "q.npy", unit_rows(np.random.default_rng(0), repeats, DIM))
        r = ref.run({"kind": "mf", "checkpoint": str(ckpt), "queries": str(work / "q.npy"), "strong": STRONG,
                     "weak": WEAK})
        return {**percentiles_us(r["times_s"]), "what": f"RouteLLM mf calculate_strong_win_rate, {DIM}-d "
                "text-embedding-3-small-shaped vectors from a table: scoring only, the OpenAI embedding call not timed"}


def measure(repeats: int, reference_python: str | None) -> dict:
    results: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                 "load_average": os.getloadavg(), **rf.backend_info()}}
    prompts = {24: prompts_of(24, 1)[0], 200: prompts_of(200, 1)[0]}
    threads = rf.backend_info()["threads"]
    rf.set_num_threads(1)
    try:
        for embedder in ("static", "minilm"):
            n = repeats if embedder == "static" else max(50, repeats // 20)
            for name, factory in (("mf", default_mf_router), ("sw_ranking", default_sw_router)):
                router = factory(embedder=embedder)
                threshold = default_threshold(0.5, name, embedder)
                for tokens, prompt in prompts.items():
                    results[f"route/{embedder}/{name}/{tokens}"] = time_route(router, prompt, threshold, n)
    finally:
        rf.set_num_threads(threads)
    batch = prompts_of(24, 100_000)
    for name, factory in (("mf", default_mf_router), ("sw_ranking", default_sw_router)):
        router = factory(embedder="static")
        router.score(batch[:1000])
        times = []
        for _ in range(3):
            start = time.perf_counter()
            router.score(batch)
            times.append(time.perf_counter() - start)
        results[f"score/static/{name}/24"] = {"prompts_per_s": len(batch) / float(np.median(times)),
                                              "prompts": len(batch), "threads": threads}
    results["routellm_mf"] = reference_mf(reference_python, 1000) if reference_python else {
        "not_run": "no --reference-python or --reference-venv given"}
    return results


def report(results: dict) -> str:
    lines = ["| route(prompt), one thread | tokens | static p50 / p99 (µs) | MiniLM p50 / p99 (µs) | MiniLM / static |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name in ("mf", "sw_ranking"):
        for tokens in (24, 200):
            s, m = results[f"route/static/{name}/{tokens}"], results[f"route/minilm/{name}/{tokens}"]
            lines.append(f"| {name} | {tokens} | {s['p50_us']:.1f} / {s['p99_us']:.1f} | {m['p50_us']:.0f} / "
                         f"{m['p99_us']:.0f} | {m['p50_us'] / s['p50_us']:.0f}x |")
    ref = results["routellm_mf"]
    if "p50_us" in ref:
        s = results["route/static/mf/24"]
        lines.append(f"| RouteLLM mf, scoring only (embedding call not timed) | – | {ref['p50_us']:.0f} / "
                     f"{ref['p99_us']:.0f} (RouteLLM) | | RouteLLM / static {ref['p50_us'] / s['p50_us']:.0f}x |")
    else:
        lines.append(f"| RouteLLM mf | – | not run: {ref['not_run']} | | |")
    lines.append("")
    for name in ("mf", "sw_ranking"):
        r = results[f"score/static/{name}/24"]
        lines.append(f"score(prompts), static {name}, {r['prompts']:,} prompts of 24 tokens, {r['threads']} threads: "
                     f"{r['prompts_per_s']:,.0f} prompts/s")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2000, help="route() calls per static case (MiniLM: 1/20)")
    parser.add_argument("--reference-python", help="a Python with torch and routellm==0.2.0")
    parser.add_argument("--reference-venv", type=Path, help="venv for RouteLLM, created on first use (see run.py)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.reference_venv is not None:
        sys.path.insert(0, str(HERE))
        from run import ensure_reference_venv

        args.reference_python = ensure_reference_venv(args.reference_venv.resolve())
    results = measure(args.repeats, args.reference_python)
    print(report(results))
    print(f"load average {results['machine']['load_average']}, {results['machine']['simd']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
