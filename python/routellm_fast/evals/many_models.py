"""Routing among many models, evaluated: cost-quality curves and AIQ (RouterBench's average
improvement in quality) on prompts with a graded answer from every candidate model.

Data:

* **ZeroEval** (the default; :mod:`routellm_fast.evals.zeroeval`, bundled): every model's 1/0
  correctness on CRUXEval-O and MATH level 5. The candidates are the models with a price in
  ``data/model_prices.json`` (:func:`load_prices`: public $ per 1M input/output tokens with source
  and date; where a model has no public price, the file names what stands in and why). A model's
  cost per prompt is its price for the set's mean prompt (characters / 4 tokens) and
  :data:`OUTPUT_TOKENS` generated tokens, in $ per 1,000 prompts. Evaluated on the held-out half
  (the training half is what :func:`~routellm_fast.evals.zeroeval.zeroeval_training_half` gives
  training code).
* **AlpacaEval** (``--alpaca-eval``, needs the shared data): GPT-4-Turbo's judgement of five models'
  answers against gpt-4-1106-preview's on 805 instructions, with the models' output prices.

For a router, every prompt's per-model scores (``router.score_models``: mf, sw_ranking, knn; any
object with that method) are turned into choices by :func:`routellm_fast.decision.rule.choose_models`
along a sweep of the cost weight lambda (and of the threshold rule's t); each setting gives one point
(mean cost per prompt, mean quality). A router is evaluated among the candidates it can score. Next
to it, on the same prompts and candidates: every single model, random choice (each prompt to a random
candidate: the best mixtures of single models, the upper hull of their points), and the oracle (each
prompt's model chosen knowing every answer: :func:`oracle_frontier`, exact). AIQ is the area under the curve's upper hull
over the cost range [cheapest model, dearest model], divided by that range: the mean quality the
router buys over all budgets. ``beats`` lists the single models whose point lies under the router's
hull (the router reaches at least their quality for at most their cost).

Prompts a router was trained on are left out for it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..decision.rule import CostWeight, choose_models
from ..errors import RoutingError
from ..formats.model_names import canonical_model_name
from ..paths import (
    BUNDLED_QUALITY,
    DEFAULT_SHARED_DATA,
    MODEL_PRICES,
    require_shared_data,
    shared_folder,
)
from .zeroeval import ZEROEVAL_SETS, load_zeroeval

__all__ = [
    "ALPACA_CANDIDATES",
    "OUTPUT_TOKENS",
    "CostQualityResult",
    "ModelPrice",
    "aiq",
    "alpaca_quality",
    "evaluate_many_models",
    "load_prices",
    "model_costs",
    "oracle_frontier",
    "routable_models",
    "zeroeval_candidates",
]

#: Generated tokens assumed per answer when pricing a call (ZeroEval asks for a short reasoning and
#: the answer in JSON; o1's hidden reasoning tokens, billed as output, are not counted).
OUTPUT_TOKENS = 500
#: Characters per token when a prompt's tokens are estimated from its length.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class ModelPrice:
    """A model's public list price in $ per 1M tokens, where it comes from and when."""

    model: str
    input: float
    output: float
    provider: str
    source: str
    date: str
    stand_in: str | None = None  # the model whose price stands in, where this one has none
    why: str | None = None


def load_prices(path: str | os.PathLike[str] = MODEL_PRICES) -> dict[str, ModelPrice]:
    """The price file (``data/model_prices.json``), checked: every entry has finite prices >= 0, an
    https source, a date (YYYY-MM or YYYY-MM-DD), and a reason wherever another model's price stands in."""
    source = Path(path)
    try:
        data = json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the price file {source}: {exc}") from None
    if not isinstance(data, dict) or data.get("unit") != "per 1M tokens" or not isinstance(data.get("models"), dict):
        raise ValueError(f"{source}: expected an object with unit 'per 1M tokens' and a 'models' object")
    out = {}
    for model, entry in data["models"].items():
        where = f"{source}: {model}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object")
        for key in ("input", "output"):
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{where}: {key!r} must be a price >= 0, got {value!r}")
        for key in ("provider", "source", "date"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ValueError(f"{where}: {key!r} must be a non-empty string")
        if not entry["source"].startswith("https://"):
            raise ValueError(f"{where}: source must be an https URL, got {entry['source']!r}")
        if not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", entry["date"]):
            raise ValueError(f"{where}: date must be YYYY-MM or YYYY-MM-DD, got {entry['date']!r}")
        stand_in, why = entry.get("stand_in"), entry.get("why")
        if stand_in is not None and not (isinstance(stand_in, str) and isinstance(why, str) and why):
            raise ValueError(f"{where}: a stand_in needs the model it names and a 'why'")
        out[model] = ModelPrice(model, float(entry["input"]), float(entry["output"]), entry["provider"],
                                entry["source"], entry["date"], stand_in, why)
    return out


def model_costs(prices: Mapping[str, ModelPrice], models: Sequence[str], prompts: Sequence[str],
                output_tokens: int = OUTPUT_TOKENS) -> dict[str, float]:
    """Each model's cost in $ per 1,000 prompts: its price for the prompts' mean length in tokens
    (characters / :data:`CHARS_PER_TOKEN`) and ``output_tokens`` generated tokens."""
    if not prompts:
        raise ValueError("no prompts to price")
    tokens_in = float(np.mean([len(p) for p in prompts])) / CHARS_PER_TOKEN
    missing = [m for m in models if m not in prices]
    if missing:
        raise ValueError(f"no price for {', '.join(missing)}")
    return {m: (prices[m].input * tokens_in + prices[m].output * output_tokens) / 1e6 * 1000 for m in models}


def zeroeval_candidates(name: str, prices: Mapping[str, ModelPrice], data_dir: str | os.PathLike[str] | None = None,
                        ) -> tuple[list[str], list[str], np.ndarray]:
    """The held-out half of ZeroEval set ``name``: its prompts, the candidates (models with a price)
    and their correctness ``[n, len(candidates)]``."""
    matrix = load_zeroeval(name, data_dir).held_out_half()
    models = [m for m in matrix.models if m in prices]
    if len(models) < 2:
        raise ValueError(f"{name}: fewer than two of its models have a price")
    return matrix.prompts, models, matrix.correct[:, [matrix.index(m) for m in models]]


def routable_models(router, models: Sequence[str]) -> list[str]:
    """The models among ``models`` that ``router.score_models`` knows."""
    known = []
    for m in models:
        try:
            router.score_models(["a prompt"], [canonical_model_name(m)])
        except (ValueError, KeyError, RoutingError):
            continue
        known.append(m)
    return known

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
    #: The single models whose (cost, quality) lies on or under the router's hull (cost weight rule).
    beats: list[str] = field(default_factory=list)


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
    scores = router.score_models(prompts, [canonical_model_name(n) for n in names])
    # up to 1e4: with prices 300x apart, only a large weight makes the cheapest model worth its quality
    lambdas = np.concatenate([[0.0], np.geomspace(1e-3, 1e4, 85)])
    curve = _sweep(scores, quality, costs, [CostWeight(float(x)) for x in lambdas])
    threshold_curve = _sweep(scores, quality, costs, list(np.linspace(0.0, 1.0, 61)))
    oracle = oracle_frontier(quality, costs)
    single = {m: (float(costs[i]), float(quality[:, i].mean())) for i, m in enumerate(names)}
    # Random choice: each prompt to a model drawn at random; the best mixtures of single models
    # lie on the upper hull of their points.
    random = _upper_hull(np.array(list(single.values())))
    span = (float(costs.min()), float(costs.max()))
    result = CostQualityResult(router_name, dict(models), len(prompts), curve, threshold_curve, single, oracle, random)
    result.aiq = {
        "router (cost weight)": aiq(curve, span), "router (threshold)": aiq(threshold_curve, span),
        "oracle": aiq(oracle, span), "random": aiq(random, span),
        **{f"single: {m}": aiq(np.array([point]), span) for m, point in single.items()},
    }
    result.beats = [m for m, (c, q) in single.items() if hull_quality(curve, c) >= q - 1e-12]
    return result


def oracle_frontier(quality: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """The oracle's cost-quality frontier, exactly: the best mean quality for every mean cost when
    each prompt's model is chosen knowing every answer. Each prompt's own frontier is the upper hull
    of its (cost, quality) points; the mean of the prompts' choices moves along the steepest of their
    remaining hull segments first (the Minkowski sum of the prompts' hulls, divided by their number)."""
    n = len(quality)
    start = np.zeros(2)
    steps = []
    for row in quality:
        hull = _upper_hull(np.column_stack([costs, row]))
        start += hull[0]
        steps.append(np.diff(hull, axis=0))
    step = np.concatenate(steps) if steps else np.empty((0, 2))
    step = step[np.argsort(-step[:, 1] / step[:, 0], kind="stable")] if len(step) else step
    return np.vstack([start, start + np.cumsum(step, axis=0)]) / max(n, 1)


def hull_quality(points: np.ndarray, cost: float) -> float:
    """The quality the upper hull of ``points`` reaches at ``cost`` (0 below its cheapest point)."""
    hull = _upper_hull(np.asarray(points, dtype=np.float64))
    if cost < hull[0, 0]:
        return 0.0
    return float(np.interp(cost, hull[:, 0], hull[:, 1]))


def plot(results: Sequence[CostQualityResult], path: Path, title: str, xlabel: str, ylabel: str) -> None:
    """The routers' curves with the oracle, random choice and every single model (the first result's
    candidates)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    first = max(results, key=lambda r: len(r.models))
    ax.plot(*first.oracle.T, "k--", lw=1, label=f"oracle (AIQ {first.aiq['oracle']:.3f})")
    ax.plot(*first.random.T, ":", color="grey", label=f"random choice (AIQ {first.aiq['random']:.3f})")
    for r in results:
        ax.plot(*r.curve.T, "-", marker=".", ms=3, label=f"{r.router} (AIQ {r.aiq['router (cost weight)']:.3f}, "
                f"{len(r.models)} models, {r.prompts} prompts)")
    for m, (c, q) in first.single.items():
        ax.scatter([c], [q], marker="s", s=20, zorder=5)
        ax.annotate(m, (c, q), textcoords="offset points", xytext=(4, -8), fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(results: Sequence[CostQualityResult], cost_unit: str = "$ / 1M output tokens",
             prices: Mapping[str, ModelPrice] | None = None) -> str:
    """The routers' AIQ beside random choice, the oracle and the best single model, then the models."""
    lines = ["| router | models | prompts | AIQ, cost weight | AIQ, threshold rule | random choice | best single model "
             "| oracle | single models it beats |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        a = r.aiq
        best = max((v, k.removeprefix("single: ")) for k, v in a.items() if k.startswith("single: "))
        lines.append(f"| {r.router} | {len(r.models)} | {r.prompts} | **{a['router (cost weight)']:.3f}** | "
                     f"{a['router (threshold)']:.3f} | {a['random']:.3f} | {best[0]:.3f} ({best[1]}) | "
                     f"{a['oracle']:.3f} | {len(r.beats)} of {len(r.models)} |")
    first = max(results, key=lambda r: len(r.models))
    head = f"| model | cost ({cost_unit}) | mean quality | AIQ alone |"
    lines += ["", head + (" price $/1M in, out | source, date |" if prices else ""),
              "| --- | ---: | ---: | ---: |" + (" ---: | --- |" if prices else "")]
    for m, (c, q) in sorted(first.single.items(), key=lambda item: item[1][0]):
        row = f"| {m} | {c:.4g} | {q:.3f} | {first.aiq['single: ' + m]:.3f} |"
        if prices:
            p = prices[m]
            stand = f"; price of {p.stand_in} stands in: {p.why}" if p.stand_in else ""
            row += f" {p.input:g}, {p.output:g} | {p.provider}, <{p.source}>, {p.date}{stand} |"
        lines.append(row)
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


def _routers(names: Sequence[str], embedders: Sequence[str]) -> tuple[dict, list[str]]:
    from ..routers.shipped import EMBEDDER_ROUTERS, SHIPPED_ROUTERS

    out, missing = {}, []
    for name in names:
        if name not in SHIPPED_ROUTERS:
            raise ValueError(f"no shipped router {name!r}: choose among {', '.join(SHIPPED_ROUTERS)}")
        for embedder in embedders if name in EMBEDDER_ROUTERS else [None]:
            label = f"{name} ({embedder}, shipped)" if embedder else f"{name} (shipped)"
            try:
                out[label] = SHIPPED_ROUTERS[name](embedder=embedder) if embedder else SHIPPED_ROUTERS[name]()
            except FileNotFoundError:
                missing.append(f"{label}: not shipped")
    return out, missing


def evaluate_zeroeval(name: str, routers: Mapping[str, object], prices: Mapping[str, ModelPrice],
                      data_dir: str | os.PathLike[str] | None = None) -> tuple[list[CostQualityResult], list[str]]:
    """Every router among the ZeroEval candidates of set ``name`` it can score, on the held-out half;
    and a note per router that can score fewer than two of them."""
    prompts, models, quality = zeroeval_candidates(name, prices, data_dir)
    costs = model_costs(prices, models, prompts)
    results, notes = [], []
    for label, router in routers.items():
        known = routable_models(router, models)
        if len(known) < 2:
            notes.append(f"{label}: knows {len(known)} of the {len(models)} candidates ({', '.join(known) or 'none'}); "
                         "not evaluated")
            continue
        cols = [models.index(m) for m in known]
        results.append(evaluate_many_models(label, router, prompts, quality[:, cols], {m: costs[m] for m in known}))
    return results, notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routellm_fast.evals.many_models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=list(ZEROEVAL_SETS), default=list(ZEROEVAL_SETS),
                        help="ZeroEval sets to route on (default: all)")
    parser.add_argument("--routers", nargs="+", default=["mf", "sw_ranking"],
                        help="shipped routers that score many models (default: mf sw_ranking; knn where shipped)")
    parser.add_argument("--embedder", nargs="+", default=["minilm", "static"], help="their embedders (default: both)")
    parser.add_argument("--data-dir", type=Path, help="the shared data folder (default: the bundled ZeroEval copy)")
    parser.add_argument("--alpaca-eval", action="store_true",
                        help="also AlpacaEval's five models (needs the shared data: --data-dir, default ../shared/data)")
    parser.add_argument("--output", type=Path, required=True,
                        help="where to write many_models.{md,json} and many_models-<set>.png")
    args = parser.parse_args(argv)
    if args.alpaca_eval:
        try:
            require_shared_data(args.data_dir or DEFAULT_SHARED_DATA, "alpaca_eval")
        except FileNotFoundError as exc:
            parser.error(str(exc))
    prices = load_prices()
    routers, missing = _routers(args.routers, args.embedder)
    sections, records = [], []
    args.output.mkdir(parents=True, exist_ok=True)
    for name in args.sets:
        results, notes = evaluate_zeroeval(name, routers, prices, args.data_dir)
        notes += missing
        if not results:
            sections.append(f"## {name}\n\nno router can score two of its candidates\n" + "".join(f"\n- {n}" for n in notes))
            continue
        cost_unit = f"$ per 1,000 prompts: mean prompt, {OUTPUT_TOKENS} output tokens"
        sections.append(f"## {name} (held-out half, {results[0].prompts} prompts)\n\n"
                        + markdown(results, cost_unit, prices) + "".join(f"\n\n- {n}" for n in notes))
        plot(results, args.output / f"many_models-{name}.png", f"Routing among ZeroEval models on {name} (held-out half)",
             f"cost ({cost_unit}, log scale)", "share answered correctly")
        records += [{"set": name, **_record(r)} for r in results]
    if args.alpaca_eval:
        sections.append(_alpaca_section(args.data_dir or DEFAULT_SHARED_DATA, args.output, records))
    text = "\n\n".join(sections) + "\n"
    (args.output / "many_models.md").write_text(text)
    (args.output / "many_models.json").write_text(json.dumps(records, indent=1))
    print(text)
    return 0


def _record(r: CostQualityResult) -> dict:
    return {"router": r.router, "prompts": r.prompts, "models": r.models, "aiq": r.aiq, "beats": r.beats,
            "single": r.single, "curve": r.curve.tolist(), "threshold_curve": r.threshold_curve.tolist()}


def _alpaca_section(data_dir: Path, output: Path, records: list) -> str:
    import tempfile

    from ..formats.preference import training_split
    from ..routers import MatrixFactorizationRouter
    from ..routers.shipped import default_sw_router

    if not shared_folder(data_dir, "alpaca_eval").is_dir():
        raise FileNotFoundError(f"--alpaca-eval trains an mf without the held-out half: it needs the shared data "
                                f"({shared_folder(data_dir, 'alpaca_eval')} is missing; pass --data-dir)")
    models = ALPACA_CANDIDATES
    prompts, quality = alpaca_quality(list(models), data_dir)
    held_out = ~training_split(prompts, 0.5, salt="many-models:")
    prompts, quality = [p for p, h in zip(prompts, held_out) if h], quality[held_out]
    with tempfile.TemporaryDirectory() as tmp:
        mf_dir = held_out_mf(data_dir, set(prompts), Path(tmp) / "mf")
        routers = {"sw_ranking (minilm, shipped)": default_sw_router(embedder="minilm"),
                   "sw_ranking (static, shipped)": default_sw_router(embedder="static"),
                   "mf (static, without the held-out half)": MatrixFactorizationRouter(mf_dir)}
        results = [evaluate_many_models(name, router, prompts, quality, models) for name, router in routers.items()]
    plot(results, output / "many_models-alpaca-eval.png", "Routing among 5 models on AlpacaEval (GPT-4-Turbo judge)",
         "mean cost per prompt ($ per 1M output tokens of the chosen model)",
         "mean quality (judge prefers it to gpt-4-1106-preview)")
    records += [{"set": "alpaca-eval", **_record(r)} for r in results]
    return f"## alpaca-eval (held-out half, {results[0].prompts} prompts)\n\n" + markdown(results)


if __name__ == "__main__":
    raise SystemExit(main())
