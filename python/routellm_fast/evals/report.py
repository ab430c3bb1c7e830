"""Evaluation reports: the metrics as CSV and Markdown, the curves as CSV, and RouteLLM's plot."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from ..errors import require_extra
from .metrics import CPT_LEVELS, EvalResult

__all__ = ["markdown_table", "metrics_table", "write_report"]


def metrics_table(result: EvalResult) -> list[dict[str, Any]]:
    """One row per method: CPT(20/50/80%), AUC, APGR; with a bootstrap, APGR's 95% interval
    (``apgr_low``, ``apgr_high``) and the paired difference to the baseline (``vs_baseline``,
    ``vs_baseline_low``, ``vs_baseline_high``; empty for the baseline itself)."""
    rows = []
    boot = result.bootstrap
    for method, m in result.metrics.items():
        row: dict[str, Any] = {"method": method, **{f"cpt{int(level * 100)}": m.cpt[level] for level in CPT_LEVELS},
                               "auc": m.auc, "apgr": m.apgr}
        if boot is not None:
            row["apgr_low"], row["apgr_high"] = boot.apgr[method]
            if boot.baseline is not None:
                row["vs_baseline"], row["vs_baseline_low"], row["vs_baseline_high"] = boot.paired.get(method, ("", "", ""))
        rows.append(row)
    return rows


def markdown_table(result: EvalResult) -> str:
    boot = result.bootstrap
    paired = boot is not None and boot.baseline is not None
    lines = [
        (f"**{result.benchmark}** ({result.description}); {result.strong_model}: {result.strong_score:.3f}, "
         f"{result.weak_model}: {result.weak_score:.3f}; oracle APGR {result.oracle_apgr:.3f}"),
        "",
        "| router | CPT(20%) | CPT(50%) | CPT(80%) | AUC | APGR |" + (" APGR 95% CI |" if boot else "")
        + (f" vs {boot.baseline}: APGR difference [95% CI] |" if paired else ""),
        "| --- | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if boot else "") + (" ---: |" if paired else ""),
    ]
    for row in metrics_table(result):
        line = (f"| {row['method']} | {row['cpt20']:.2f}% | {row['cpt50']:.2f}% | {row['cpt80']:.2f}% | "
                f"{row['auc']:.3f} | {row['apgr']:.3f} |")
        if boot:
            line += f" [{row['apgr_low']:.3f}, {row['apgr_high']:.3f}] |"
        if paired:
            if row["method"] == boot.baseline:
                line += " (baseline) |"
            else:
                diff, low, high = boot.paired[row["method"]]
                mark = "**" if boot.excludes_zero(row["method"]) else ""
                line += f" {mark}{diff:+.3f} [{low:+.3f}, {high:+.3f}]{mark} |"
        lines.append(line)
    if result.notes:
        lines.append("")
        lines += [f"- {note}" for note in result.notes]
        if paired:
            lines.append(f"- bold: the interval of the difference to {boot.baseline} excludes 0")
    return "\n".join(lines) + "\n"


def write_report(result: EvalResult, output: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``<benchmark>.png`` (RouteLLM's plot), ``<benchmark>-metrics.csv``,
    ``<benchmark>-curves.csv`` and ``<benchmark>.md`` into ``output``; returns the paths."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    stem = result.benchmark
    paths = {"metrics": out / f"{stem}-metrics.csv", "curves": out / f"{stem}-curves.csv",
             "markdown": out / f"{stem}.md", "plot": out / f"{stem}.png"}
    rows = metrics_table(result)
    with open(paths["metrics"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(paths["curves"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "threshold", "strong_percentage", "score"])
        for method, curve in result.curves.items():
            writer.writerows([method, float(t), float(p), float(s)]
                             for t, p, s in zip(curve.thresholds, curve.strong_percentage, curve.score))
    paths["markdown"].write_text(markdown_table(result))
    _plot(result, paths["plot"])
    return paths


def _plot(result: EvalResult, path: Path) -> None:
    (matplotlib,) = require_extra("eval", "matplotlib", purpose="the evaluation plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for method, curve in result.curves.items():
        ax.plot(curve.strong_percentage, curve.score, label=method, marker=".", linestyle="-")
    ax.axhline(result.weak_score, color="grey", linestyle="--", label=result.weak_model)
    ax.axhline(result.strong_score, color="red", linestyle="--", label=result.strong_model)
    pct, score = zip(*result.optimal)
    ax.plot(pct, score, label="Optimal", marker="x", linestyle="-")
    ax.set_xlabel("Strong Model Calls (%)")
    ax.set_ylabel("Performance")
    ax.set_title(f"Router Performance ({result.benchmark})")
    ax.legend()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
