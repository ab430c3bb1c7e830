"""Regenerate the published evaluation reports (``docs/eval``) in one command:

    python -m routellm_fast.evals.publish --output docs/eval

* every shipped router on both local embedders (``mf``, ``sw_ranking``, ``knn`` on MiniLM and on the
  static embedder; ``bert``; ``random``) on MT Bench, MMLU, GSM8K and CRUX, with the length baseline,
  bootstrap 95% intervals and the paired test (1000 resamples, seed 0): ``<benchmark>.md``,
  ``-metrics.csv``, ``-curves.csv``, ``.png``, as ``routellm-fast eval`` writes them; routers
  that are not shipped on an embedder are left out with a note;
* ``summary.md``: every table, each router's mean APGR over the benchmarks, and the rule the default
  router is chosen by (README, "Which router is the default"): the best mean APGR is the reference; a
  router is *not worse* than it when, on every benchmark, the paired bootstrap 95% interval of its APGR
  minus the reference's reaches 0 or above; among those the fastest (``benchmarks/RESULTS.md``) is
  the default;
* routing among many models on ZeroEval's CRUX and MATH level 5 (:mod:`.many_models`).

``--output`` has no default: the reports in the repository are only rewritten when asked for.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..paths import eval_cache_dir
from .baselines import LENGTH
from .benchmarks import load_benchmark
from .metrics import EvalResult
from .report import markdown_table, write_report
from .scoring import run_eval

__all__ = ["BENCHMARKS_PUBLISHED", "main", "mean_apgr_table", "not_worse_table", "shipped_routers"]

#: The benchmarks of the published reports, in order.
BENCHMARKS_PUBLISHED = ("mt-bench", "mmlu", "gsm8k", "crux")


def shipped_routers(names: Sequence[str], embedders: Sequence[str]) -> tuple[dict, list[str]]:
    """The shipped routers ``names`` on each local embedder that has them (``mf-static`` etc. for
    the non-default ones; a router without an embedder choice once), and a note per one missing."""
    from ..routers import RandomRouter
    from ..routers.shipped import SHIPPED_ROUTERS

    routers: dict = {}
    notes: list[str] = []
    for name in names:
        if name not in SHIPPED_ROUTERS:
            raise ValueError(f"no shipped router {name!r}: choose among {', '.join(SHIPPED_ROUTERS)}")
        make = SHIPPED_ROUTERS[name]
        if name == "random":
            routers[name] = RandomRouter(seed=0)  # RouteLLM's random.seed(0)
            continue
        on_embedder = "embedder" in inspect.signature(make).parameters
        for embedder in embedders if on_embedder else [None]:
            label = name if embedder in (None, "minilm") else f"{name}-{embedder}"
            try:
                routers[label] = make(embedder=embedder) if embedder else make()
            except FileNotFoundError as exc:
                notes.append(f"{label}: not shipped ({exc})")
    return routers, notes


def mean_apgr_table(results: Sequence[EvalResult]) -> str:
    """Each method's APGR per benchmark and its mean over them (methods on every benchmark only),
    best mean first."""
    methods = [m for m in results[0].metrics if all(m in r.metrics for r in results)]
    rows = sorted(methods, key=lambda m: -np.mean([r.metrics[m].apgr for r in results]))
    head = "| router | " + " | ".join(r.benchmark for r in results) + " | mean |"
    lines = [head, "| --- |" + " ---: |" * (len(results) + 1)]
    for m in rows:
        values = [r.metrics[m].apgr for r in results]
        cells = []
        for r, v in zip(results, values):
            low, high = r.bootstrap.apgr[m] if r.bootstrap else (float("nan"), float("nan"))
            cells.append(f"{v:.3f} [{low:.3f}, {high:.3f}]" if r.bootstrap else f"{v:.3f}")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | **{np.mean(values):.3f}** |")
    return "\n".join(lines)


def _mean_apgr(results: Sequence[EvalResult], method: str) -> float:
    return float(np.mean([r.metrics[method].apgr for r in results]))


def not_worse_table(results: Sequence[EvalResult]) -> tuple[str, list[str]]:
    """The default-router rule: the router with the best mean APGR (the length baseline aside) is
    the reference; every other router's paired difference to it per benchmark (APGR difference and
    its 95% interval over the same resamples), and whether it is *not worse* on every benchmark
    (the interval's high end >= 0). Returns the table and the routers not worse (the reference first)."""
    if any(r.bootstrap is None for r in results):
        raise ValueError("the default-router rule needs bootstrap intervals (--bootstrap > 0)")
    methods = [m for m in results[0].metrics if m != LENGTH and all(m in r.metrics for r in results)]
    reference = max(methods, key=lambda m: _mean_apgr(results, m))
    head = f"| router (minus {reference}) | " + " | ".join(r.benchmark for r in results) + " | not worse |"
    lines = [head, "| --- |" + " ---: |" * len(results) + " :---: |"]
    not_worse = [reference]
    for m in sorted((m for m in methods if m != reference), key=lambda m: -_mean_apgr(results, m)):
        cells, ok = [], True
        for r in results:
            low, high = r.bootstrap.paired_interval(m, reference)
            ok &= bool(high >= 0)
            cells.append(f"{r.metrics[m].apgr - r.metrics[reference].apgr:+.3f} [{low:+.3f}, {high:+.3f}]")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {'yes' if ok else 'no'} |")
        if ok:
            not_worse.append(m)
    return "\n".join(lines), not_worse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routellm_fast.evals.publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True, help="the reports' folder (docs/eval to publish)")
    parser.add_argument("--routers", nargs="+", default=["random", "mf", "sw_ranking", "knn", "bert"])
    parser.add_argument("--embedders", nargs="+", default=["minilm", "static"])
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS_PUBLISHED))
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resamples (default 0)")
    parser.add_argument("--cache-dir", type=Path, default=eval_cache_dir(), help="win-rate and embedding cache")
    parser.add_argument("--no-many-models", action="store_true", help="leave out the many-model reports")
    args = parser.parse_args(argv)
    routers, notes = shipped_routers(args.routers, args.embedders)
    results = []
    for name in args.benchmarks:
        benchmark = load_benchmark(name)
        print(benchmark.describe(), file=sys.stderr)
        result = run_eval(routers, benchmark, cache_dir=args.cache_dir, progress=False, length_baseline=True,
                          bootstrap=args.bootstrap, seed=args.seed)
        write_report(result, args.output)
        results.append(result)
        print(markdown_table(result))
    lines = ["# Evaluation reports", "",
             f"Generated by `python -m routellm_fast.evals.publish --output {args.output}` "
             "(docs/evaluation.md explains them). Routers: " + ", ".join(routers) + f"; `{LENGTH}` is the "
             "prompt-length baseline.", ""]
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    lines += ["## Mean APGR over the benchmarks (95% intervals)", "", mean_apgr_table(results), ""]
    if args.bootstrap:
        table, not_worse = not_worse_table(results)
        lines += ["## Which routers are not worse than the best one", "",
                  f"Paired bootstrap ({args.bootstrap} resamples, seed {args.seed}): each router's APGR minus "
                  f"{not_worse[0]}'s (the best mean APGR) with its 95% interval; *not worse* when the interval "
                  "reaches 0 or above on every benchmark. Among these the fastest is the default "
                  "(README, \"Which router is the default\").", "", table, "",
                  "Not worse than the best: " + ", ".join(not_worse) + ".", ""]
    lines += [markdown_table(r) for r in results]
    (args.output / "summary.md").write_text("\n".join(lines))
    if not args.no_many_models:
        from . import many_models

        names = [n for n in args.routers if n in ("mf", "sw_ranking", "knn")]
        many_models.main(["--output", str(args.output), "--routers", *names, "--embedder", *args.embedders])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
