"""Routing among many models, evaluated: cost-quality curves and AIQ (RouterBench's average
improvement in quality) on prompts with a graded answer from every candidate model.

Data: AlpacaEval's GPT-4-Turbo annotations (``../shared/data/preference/alpaca_eval``, annotator
``weighted_alpaca_eval_gpt4_turbo``): for each of its 805 instructions and each judged model, the
probability that GPT-4-Turbo (the judge) prefers the model's answer to gpt-4-1106-preview's (the
reference; judged against itself it scores ~0.5). That is a quality per (prompt, model) for every
candidate that has annotations on all 805 instructions and a place in the router's model table.

For a router, every prompt's per-model scores (``router.score_models``) are turned into choices by
:func:`routellm_fast.decision.rule.choose_models` along a sweep of the cost weight lambda (and of the
threshold rule's t); each setting gives one point (mean cost per prompt, mean quality). Next to
it: every single model, random choice (each prompt to a random candidate, cheaper ones more often
as the budget falls: the mixture of the cheapest and the dearest model), and the oracle (each
prompt's true best quality-minus-lambda-cost choice). AIQ is the area under the curve's upper hull
over the cost range [cheapest model, dearest model], divided by that range: the mean quality the
router buys over all budgets.

The evaluation prompts are the half of AlpacaEval's instructions that
:func:`routellm_fast.formats.preference.training_split` holds out (by a hash of the text). The shipped
sw_ranking routers never saw AlpacaEval; the shipped mf trained on all of it, so ``main`` trains an
mf the recipe's way (:mod:`routellm_fast.train.recipe`, static embedder) without the held-out half's
battles and evaluates that. Prompts a router was trained on are left out for it in any case.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..decision.rule import CostWeight, choose_models
from ..formats.model_names import canonical_model_name
from ..paths import BUNDLED_QUALITY, DEFAULT_SHARED_DATA, shared_folder

__all__ = ["ALPACA_CANDIDATES", "CostQualityResult", "aiq", "alpaca_quality", "evaluate_many_models"]

#: Candidates with AlpacaEval GPT-4-Turbo annotations on all 805 instructions that the shipped
#: routers know, and their list price in $ per 1M output tokens at release (OpenAI's and
#: Anthropic's price pages): any relative cost works the same way.
ALPACA_CANDIDATES: dict[str, float] = {
    "gpt-4-1106-preview": 30.0,
    "claude-2.1": 24.0,
    "claude-1": 24.0,
    "claude-instant-1": 2.4,
    "gpt-3.5-turbo-1106": 2.0,
}
ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
REFERENCE = "gpt-4-1106-preview"


def bundle_alpaca_quality(data_dir: str | os.PathLike[str], out: Path = BUNDLED_QUALITY) -> Path:
    """Write the bundled copy of :func:`alpaca_quality` for :data:`ALPACA_CANDIDATES` from the shared data."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    prompts, quality = alpaca_quality(list(ALPACA_CANDIDATES), data_dir)
    table = pa.table({"prompt": prompts, **{m: quality[:, i] for i, m in enumerate(ALPACA_CANDIDATES)}})
    pq.write_table(table, out, compression="zstd")
    return out


def alpaca_quality(models: Sequence[str], data_dir: str | os.PathLike[str] | None = None) -> tuple[list[str], np.ndarray]:
    """The instructions and the quality ``[n, len(models)]`` of each model's answer (probability the
    judge prefers it to gpt-4-1106-preview's), over the instructions every model has. With no
    ``data_dir``, the bundled copy (the candidates of :data:`ALPACA_CANDIDATES`)."""
    from ..formats.tables import read_jsonl, read_table

    if data_dir is None:
        table = read_table(BUNDLED_QUALITY)
        missing = [m for m in models if m not in table.column_names]
        if missing:
            raise ValueError(f"the bundled AlpacaEval quality has no {', '.join(missing)}: pass data_dir")
        return [str(p) for p in table.column("prompt").to_pylist()], np.column_stack(
            [table.column(m).to_numpy() for m in models]).astype(np.float64)
    folder = shared_folder(data_dir, "alpaca_eval")
    battles = read_table(folder / "battles.csv").to_pandas()
    battles = battles[(battles["annotator"] == ANNOTATOR)
                      & (battles["model_a"].map(canonical_model_name) == REFERENCE)].copy()
    battles["model"] = battles["model_b"].map(canonical_model_name)
    battles = battles[battles["model"].isin(models)]
    missing = sorted(set(models) - set(battles["model"]))
    if missing:
        raise ValueError(f"no {ANNOTATOR} annotations for {', '.join(missing)} in {folder}")
    # preference in [1, 2]: 2 = the judged model wins; a model annotated twice on a prompt: the mean.
    table = battles.pivot_table(index="prompt_id", columns="model", values="preference", aggfunc="mean")[list(models)]
    table = table.dropna()
    prompts = {int(r["prompt_id"]): str(r["prompt"]) for r in read_jsonl(folder / "prompts.jsonl")}
    return [prompts[int(i)] for i in table.index], table.to_numpy(dtype=np.float64) - 1.0


def _upper_hull(points: np.ndarray) -> np.ndarray:
    """The non-dominated, concave upper hull of (cost, quality) points, by cost."""
    pts = points[np.lexsort((-points[:, 1], points[:, 0]))]
    hull: list[np.ndarray] = []
    for p in pts:
        if hull and p[1] <= hull[-1][1]:
            continue  # no better than a cheaper point
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (y2 - y1) * (p[0] - x1) <= (p[1] - y1) * (x2 - x1):
                hull.pop()  # the middle point lies under the chord
            else:
                break
        hull.append(p)
    return np.array(hull)


def aiq(points: np.ndarray, cost_range: tuple[float, float]) -> float:
    """RouterBench's AIQ: the area under the upper hull of (mean cost, mean quality) points over
    ``cost_range``, divided by its width. Below the hull's cheapest point quality is taken as 0
    (nothing affordable); past its dearest point, flat."""
    lo, hi = cost_range
    hull = _upper_hull(np.asarray(points, dtype=np.float64))
    xs = np.linspace(lo, hi, 2001)
    ys = np.interp(xs, hull[:, 0], hull[:, 1], left=0.0, right=hull[-1, 1])
    ys[xs < hull[0, 0]] = 0.0
    return float(np.trapezoid(ys, xs) / (hi - lo)) if hi > lo else float(ys[0])


@dataclass
class CostQualityResult:
    """One router's cost-quality curve on a set of prompts, with the baselines on the same prompts."""

    router: str
    models: dict[str, float]
    prompts: int
    curve: np.ndarray  # [points, 2]: (mean cost per prompt, mean quality), cost-weight sweep
    threshold_curve: np.ndarray  # the threshold rule's sweep
    single: dict[str, tuple[float, float]]
    oracle: np.ndarray
    random: np.ndarray
    aiq: dict[str, float] = field(default_factory=dict)


def _sweep(scores: np.ndarray, quality: np.ndarray, costs: np.ndarray, rules: Sequence) -> np.ndarray:
    rows = np.arange(len(scores))
    points = []
    for rule in rules:
        pick = choose_models(scores, costs, rule)
        points.append((costs[pick].mean(), quality[rows, pick].mean()))
    return np.array(points)


def evaluate_many_models(router_name: str, router, prompts: Sequence[str], quality: np.ndarray,
                         models: Mapping[str, float]) -> CostQualityResult:
    """The cost-quality curve of ``router`` on ``prompts`` (those it was not trained on) with the
    true per-model ``quality``, and the baselines on the same prompts."""
    from ..embedders import prompt_key

    keep = np.array([prompt_key(p) not in router.training_prompt_keys for p in prompts])
    prompts = [p for p, k in zip(prompts, keep) if k]
    quality = quality[keep]
    names, costs = list(models), np.array(list(models.values()), dtype=np.float64)
    scores = router.score_models(prompts, names)
    lambdas = np.concatenate([[0.0], np.geomspace(1e-3, 10.0, 60)])
    curve = _sweep(scores, quality, costs, [CostWeight(float(x)) for x in lambdas])
    threshold_curve = _sweep(scores, quality, costs, list(np.linspace(0.0, 1.0, 61)))
    rows = np.arange(len(prompts))
    top = costs.max()
    oracle = np.array([
        (costs[pick].mean(), quality[rows, pick].mean())
        for pick in (np.argmax(quality - x * costs / top - 1e-12 * costs, axis=1) for x in lambdas)
    ])
    single = {m: (float(costs[i]), float(quality[:, i].mean())) for i, m in enumerate(names)}
    # Random choice: each prompt to a model drawn at random; the best mixtures of single models
    # lie on the upper hull of their points.
    random = _upper_hull(np.array(list(single.values())))
    span = (float(costs.min()), float(costs.max()))
    result = CostQualityResult(router_name, dict(models), len(prompts), curve, threshold_curve, single, oracle, random)
    result.aiq = {
        "router (cost weight)": aiq(curve, span), "router (threshold)": aiq(threshold_curve, span),
        "oracle": aiq(oracle, span), "random": aiq(random, span),
    }
    return result


def plot(results: Sequence[CostQualityResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    first = results[0]
    ax.plot(*first.oracle.T, "k--", lw=1, label=f"oracle (AIQ {first.aiq['oracle']:.3f})")
    ax.plot(*first.random.T, ":", color="grey", label=f"random (AIQ {first.aiq['random']:.3f})")
    for r in results:
        ax.plot(*r.curve.T, "-", marker=".", ms=3, label=f"{r.router} (AIQ {r.aiq['router (cost weight)']:.3f}, "
                f"{r.prompts} prompts)")
    for m, (c, q) in first.single.items():
        ax.scatter([c], [q], marker="s", s=30, zorder=5)
        ax.annotate(m, (c, q), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xlabel("mean cost per prompt ($ per 1M output tokens of the chosen model)")
    ax.set_ylabel("mean quality (judge prefers it to gpt-4-1106-preview)")
    ax.set_title("Routing among 5 models on AlpacaEval (GPT-4-Turbo judge)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(results: Sequence[CostQualityResult]) -> str:
    lines = ["| router | prompts | AIQ, cost weight | AIQ, threshold rule | random choice | oracle |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        a = r.aiq
        lines.append(f"| {r.router} | {r.prompts} | **{a['router (cost weight)']:.3f}** | {a['router (threshold)']:.3f} | "
                     f"{a['random']:.3f} | {a['oracle']:.3f} |")
    lines += ["", "| model | cost ($ / 1M output tokens) | mean quality |", "| --- | ---: | ---: |"]
    lines += [f"| {m} | {c:g} | {q:.3f} |" for m, (c, q) in results[0].single.items()]
    return "\n".join(lines)


def held_out_mf(data_dir: Path, held_out: set[str], out: Path) -> Path:
    """An mf trained as the shipped one (:mod:`routellm_fast.train.recipe`, static embedder) on every source
    but the AlpacaEval battles of the ``held_out`` prompts."""
    from ..formats.model_names import DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL
    from ..train import recipe
    from ..train.fit import train_mf_router

    sources = recipe.default_training_data(data_dir)
    alpaca = sources["alpaca_eval"]
    sources["alpaca_eval"] = alpaca.where(np.array([alpaca.prompts[i] not in held_out for i in alpaca.prompt_index]))
    train_mf_router(recipe.mf_training_data(sources), out, recipe.local_embedder("static"), config=recipe.MF_CONFIG,
                    ties=recipe.MF_TIES, val_share=recipe.VAL_SHARE, pair=(DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL),
                    progress=False)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routellm_fast.evals.many_models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_SHARED_DATA, help="the shared data folder")
    parser.add_argument("--output", type=Path, default=Path("docs/eval"), help="where to write many_models.{md,json,png}")
    args = parser.parse_args(argv)
    import tempfile

    from ..formats.preference import training_split
    from ..routers import MatrixFactorizationRouter
    from ..routers.shipped import default_sw_router

    models = ALPACA_CANDIDATES
    prompts, quality = alpaca_quality(list(models), args.data_dir)
    held_out = ~training_split(prompts, 0.5, salt="many-models:")
    prompts, quality = [p for p, h in zip(prompts, held_out) if h], quality[held_out]
    with tempfile.TemporaryDirectory() as tmp:
        mf_dir = held_out_mf(args.data_dir, set(prompts), Path(tmp) / "mf")
        routers = {"sw_ranking (minilm, shipped)": default_sw_router(embedder="minilm"),
                   "sw_ranking (static, shipped)": default_sw_router(embedder="static"),
                   "mf (static, without the held-out half)": MatrixFactorizationRouter(mf_dir)}
        results = [evaluate_many_models(name, router, prompts, quality, models) for name, router in routers.items()]
    args.output.mkdir(parents=True, exist_ok=True)
    table = markdown(results)
    (args.output / "many_models.md").write_text(table + "\n")
    (args.output / "many_models.json").write_text(json.dumps([
        {"router": r.router, "prompts": r.prompts, "models": r.models, "aiq": r.aiq, "single": r.single,
         "curve": r.curve.tolist(), "threshold_curve": r.threshold_curve.tolist()} for r in results], indent=1))
    plot(results, args.output / "many_models.png")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
