"""Latency of the local embedder and of end-to-end routing (tokenize + embed + score).

    python benchmarks/bench_embedder.py [--repeats 50] [--json out.json]

Reports median and p90 per call for one prompt of ~30 and ~200 word-piece tokens on one thread
(the default for single prompts), batch-64 throughput on all cores, and ``route(prompt)`` with the
shipped sw_ranking router. The two prompts are fixed (below), so runs compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import routellm_fast as rf
from routellm_fast.routers.shipped import default_sw_router, default_threshold

SHORT = "Write a short poem about the sea and the sky, with rhymes, for a child who turns seven today."
LONG = (
    "I am building a web service in Python that receives uploaded CSV files, validates each row against a "
    "schema, stores valid rows in PostgreSQL and reports errors back to the user. The files can be large, "
    "up to a few hundred megabytes, and several users upload at the same time. Explain how to structure "
    "the upload endpoint so that it streams the file instead of loading it in memory, how to validate rows "
    "efficiently, how to batch inserts, how to report partial failures, and how to test all of this. "
    "Please include code examples for FastAPI and asyncpg, discuss transaction boundaries and what happens "
    "when the client disconnects halfway through the upload, and compare it with a background job queue. "
    "Finally, explain how you would monitor the service in production, which metrics matter, and how to "
    "alert on a growing backlog of unprocessed uploads without paging anyone at night for nothing."
)


def timed(fn, repeats: int) -> dict:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    t = np.array(times) * 1e3
    return {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "min_ms": float(t.min())}


def measure(repeats: int = 50) -> dict:
    """Timings of the local embedder and of end-to-end routing with the shipped router."""
    embedder = rf.OnnxEmbedder()
    tokens = {name: len(embedder._tokenizer.encode(text).ids) for name, text in (("short", SHORT), ("long", LONG))}
    results: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), **rf.backend_info()},
        "tokens": tokens,
    }
    results["embed_short"] = timed(lambda: embedder.embed([SHORT]), repeats)
    results["embed_long"] = timed(lambda: embedder.embed([LONG]), repeats)
    batch = [SHORT, LONG] * 32
    stats = timed(lambda: embedder.embed(batch), max(3, repeats // 10))
    results["embed_batch64"] = {**stats, "prompts_per_s": 64 / (stats["median_ms"] / 1e3)}

    router = default_sw_router(embed=embedder)
    threshold = default_threshold(0.5)

    class Pair:
        strong, weak = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"

    results["route_short_end_to_end"] = timed(lambda: router.route(SHORT, threshold, Pair), repeats)
    vector = embedder.embed([SHORT])
    results["score_only"] = timed(lambda: router.score_embeddings(vector), repeats)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = measure(args.repeats)
    tokens = results["tokens"]

    print(f"{'case':28s} {'median ms':>10s} {'p90 ms':>10s}")
    for key, value in results.items():
        if isinstance(value, dict) and "median_ms" in value:
            print(f"{key:28s} {value['median_ms']:10.2f} {value['p90_ms']:10.2f}")
    print(f"tokens: {tokens}; batch-64: {results['embed_batch64']['prompts_per_s']:.0f} prompts/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
