"""RouteLLM's evaluation: how much of the strong model's quality a router keeps per strong call.

Benchmarks (``../shared/data/routellm-evals``, RouteLLM's golden-label data; or any file of your
own with :func:`load_golden_file`):

* **MMLU**: 57 domains, 14,042 questions; score = % answered correctly by the routed model;
* **GSM8K**: 1,319 grade-school maths questions; the same score;
* **MT Bench**: 80 two-turn questions, routed on the first turn; score = mean GPT-4 judgement
  (1-10) of the routed model's answers to both turns.

Prompts that RouteLLM's ``contaminated_prompts.jsonl`` lists (they also occur in its training
data) are dropped exactly as RouteLLM drops them, and so are prompts a router was trained on
(routers record their training prompts; :meth:`Benchmark.excluding`).

The procedure is RouteLLM's (``routellm/evals/evaluate.py``, ``benchmarks.py``): win rates for
every prompt; ``num_results`` quantile thresholds of them (``pd.qcut(..., retbins=True)``); at each
threshold the share of strong-model calls and the score, the last threshold strict (``>``) so
that it calls the strong model for no prompt; the random router averaged over ``random_iters``
runs; then CPT(20/50/80%): the strong-call percentage reaching that share of the strong-weak
quality gap, by linear interpolation; AUC by the trapezoid rule; APGR, the area between the curve
and the weak model's line over the area between the two models' lines.

Two deliberate differences, each where RouteLLM has no answer or a wrong one: duplicate quantile
edges are dropped (``pd.qcut`` raises on them), and MT Bench's optimal-router curve is computed over
the decontaminated questions (RouteLLM's mixes all 80 questions' judgements with the decontaminated
count). Win rates are cached per router *configuration* (a fingerprint of its weights or arena,
model pair and embedder), never served stale after a router changes.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .embedders import embed_all, prompt_key
from .model_aliases import canonical_model_name

__all__ = [
    "BENCHMARKS",
    "MMLU_DOMAINS",
    "Benchmark",
    "EvalResult",
    "MethodMetrics",
    "RoutingCurve",
    "evaluate_win_rates",
    "load_benchmark",
    "load_golden_file",
    "load_gsm8k",
    "load_mmlu",
    "load_mt_bench",
    "router_win_rates",
    "run_eval",
    "write_report",
]

#: RouteLLM's evaluation pair, in RouteLLM's router spelling.
EVAL_STRONG_MODEL = "gpt-4-1106-preview"
EVAL_WEAK_MODEL = "mixtral-8x7b-instruct-v0.1"
#: MMLU's 57 domains in the order RouteLLM's evaluation reads them (``ALL_MMLU_DOMAINS``): prompts,
#: win rates and results follow it.
MMLU_DOMAINS = (
    "high_school_european_history", "business_ethics", "clinical_knowledge", "medical_genetics",
    "high_school_us_history", "high_school_physics", "high_school_world_history", "virology",
    "high_school_microeconomics", "econometrics", "college_computer_science", "high_school_biology",
    "abstract_algebra", "professional_accounting", "philosophy", "professional_medicine", "nutrition",
    "global_facts", "machine_learning", "security_studies", "public_relations", "professional_psychology",
    "prehistory", "anatomy", "human_sexuality", "college_medicine", "high_school_government_and_politics",
    "college_chemistry", "logical_fallacies", "high_school_geography", "elementary_mathematics", "human_aging",
    "college_mathematics", "high_school_psychology", "formal_logic", "high_school_statistics",
    "international_law", "high_school_mathematics", "high_school_computer_science", "conceptual_physics",
    "miscellaneous", "high_school_chemistry", "marketing", "professional_law", "management", "college_physics",
    "jurisprudence", "world_religions", "sociology", "us_foreign_policy", "high_school_macroeconomics",
    "computer_security", "moral_scenarios", "moral_disputes", "electrical_engineering", "astronomy",
    "college_biology",
)
#: Shares of the quality gap the CPT metrics are taken at.
CPT_LEVELS = (0.2, 0.5, 0.8)


# --------------------------------------------------------------------------- benchmarks


@dataclass(frozen=True)
class Benchmark:
    """Golden-label items routed between two models.

    ``strong_scores`` / ``weak_scores`` hold each item's score for either model (1/0 correctness
    for MMLU and GSM8K, the mean judgement over both turns for MT Bench); a routed set's score is
    ``mean(where(strong call, strong, weak)) * scale``.
    """

    name: str
    prompts: list[str]
    strong_scores: np.ndarray
    weak_scores: np.ndarray
    strong_model: str
    weak_model: str
    scale: float = 1.0
    #: MT Bench counts whole strong calls in the optimal router (``int(n * share)``); the
    #: correctness benchmarks allow a fractional count.
    whole_strong_calls: bool = False
    #: How many items the source had, and what was dropped on the way (in order).
    num_source: int = 0
    dropped: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        n = len(self.prompts)
        for label, scores in (("strong", self.strong_scores), ("weak", self.weak_scores)):
            if scores.shape != (n,):
                raise ValueError(f"{self.name}: {label} scores have shape {scores.shape}, expected ({n},)")
            if not np.all(np.isfinite(scores)):
                raise ValueError(f"{self.name}: {label} scores contain NaN or inf")
        if n == 0:
            raise ValueError(f"{self.name}: no items left to evaluate ({self.describe()})")

    def __len__(self) -> int:
        return len(self.prompts)

    def describe(self) -> str:
        """e.g. ``mmlu: 14037 of 14042 items (dropped 5 contaminated)``."""
        drops = ", ".join(f"{n} {why}" for why, n in self.dropped if n)
        return f"{self.name}: {len(self.prompts)} of {self.num_source} items" + (f" (dropped {drops})" if drops else "")

    def routed_score(self, strong_call: np.ndarray) -> float:
        """The benchmark score when the items marked in ``strong_call`` go to the strong model."""
        return float(np.where(strong_call, self.strong_scores, self.weak_scores).sum() / len(self) * self.scale)

    def model_score(self, model: str) -> float:
        """The score of sending every item to ``model`` (the strong or the weak one)."""
        if _same_model(model, self.strong_model):
            return self.routed_score(np.ones(len(self), dtype=bool))
        if _same_model(model, self.weak_model):
            return self.routed_score(np.zeros(len(self), dtype=bool))
        raise ValueError(f"{self.name} routes between {self.strong_model!r} and {self.weak_model!r}, not {model!r}")

    def optimal_score(self, strong_share: float) -> float:
        """The best score reachable with ``strong_share`` of the items sent to the strong model:
        an oracle sends the items where the strong model gains most."""
        calls = len(self) * strong_share
        if self.whole_strong_calls:
            calls = float(int(calls))
        gains = np.sort((self.strong_scores - self.weak_scores)[self.strong_scores > self.weak_scores])[::-1]
        whole = min(int(calls), len(gains))
        gain = gains[:whole].sum() + (calls - int(calls)) * (gains[whole] if whole < len(gains) else 0.0)
        return float((self.weak_scores.sum() + gain) / len(self) * self.scale)

    def excluding(self, keys: set[bytes], why: str) -> Benchmark:
        """This benchmark without the prompts whose :func:`~routellm_fast.embedders.prompt_key` is in ``keys``."""
        keep = np.array([prompt_key(p) not in keys for p in self.prompts], dtype=bool)
        return self._subset(keep, why)

    def _subset(self, keep: np.ndarray, why: str) -> Benchmark:
        return replace(
            self,
            prompts=[p for p, k in zip(self.prompts, keep) if k],
            strong_scores=self.strong_scores[keep],
            weak_scores=self.weak_scores[keep],
            dropped=self.dropped + ((why, int((~keep).sum())),),
        )


def _same_model(a: str, b: str) -> bool:
    return canonical_model_name(a) == canonical_model_name(b)


def _model_column(columns: Sequence[str], model: str, where: str) -> str:
    """The column of ``model``, whatever alias of it the file uses."""
    for column in columns:
        if _same_model(column, model):
            return column
    raise ValueError(f"{where} has no column for model {model!r} (columns: {', '.join(columns)})")


def _read_jsonl(path: Path) -> list[dict]:
    from .preference import _read_jsonl as read

    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (pass --data-dir, the folder holding routellm-evals/)")
    return read(path)


def _contaminated(path: Path) -> set[str]:
    return {row["eval_prompt"] for row in _read_jsonl(path)}


def _evals_dir(data_dir: str | os.PathLike[str]) -> Path:
    root = Path(data_dir)
    return root / "routellm-evals" if (root / "routellm-evals").is_dir() else root


def _correctness_benchmark(
    name: str, tables: list[tuple[Any, Path]], contaminated: set[str], strong_model: str, weak_model: str
) -> Benchmark:
    prompts: list[str] = []
    strong: list[np.ndarray] = []
    weak: list[np.ndarray] = []
    for table, source in tables:
        columns = table.column_names
        if "prompt" not in columns:
            raise ValueError(f"{source} has no 'prompt' column (columns: {', '.join(columns)})")
        prompts += table.column("prompt").to_pylist()
        strong.append(_correctness(table.column(_model_column(columns, strong_model, str(source))).to_pylist(), source))
        weak.append(_correctness(table.column(_model_column(columns, weak_model, str(source))).to_pylist(), source))
    bench = Benchmark(name, prompts, np.concatenate(strong), np.concatenate(weak), strong_model, weak_model,
                      scale=100.0, num_source=len(prompts))
    return bench._subset(np.array([p not in contaminated for p in prompts], dtype=bool), "contaminated")


def _correctness(values: list, source: Path) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            v = v.strip().lower() == "true"
        if not isinstance(v, (bool, int, float, np.bool_)) or v not in (0, 1):
            raise ValueError(f"{source} row {i}: correctness must be True/False or 1/0, got {v!r}")
        out[i] = float(v)
    return out


def _read_csv(path: Path):
    from .arena import _read_table

    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (pass --data-dir, the folder holding routellm-evals/)")
    return _read_table(path)


def load_mmlu(
    data_dir: str | os.PathLike[str], strong_model: str = EVAL_STRONG_MODEL, weak_model: str = EVAL_WEAK_MODEL
) -> Benchmark:
    """MMLU's 57 domains in RouteLLM's order (:data:`MMLU_DOMAINS`), decontaminated as RouteLLM does."""
    root = _evals_dir(data_dir) / "mmlu"
    files = [root / "responses" / f"mmlu_{domain}.csv" for domain in MMLU_DOMAINS]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{root / 'responses'} lacks {len(missing)} MMLU domain files, e.g. {missing[0]}")
    return _correctness_benchmark("mmlu", [(_read_csv(f), f) for f in files],
                                  _contaminated(root / "contaminated_prompts.jsonl"), strong_model, weak_model)


def load_gsm8k(
    data_dir: str | os.PathLike[str], strong_model: str = EVAL_STRONG_MODEL, weak_model: str = EVAL_WEAK_MODEL
) -> Benchmark:
    """GSM8K's test questions with both models' correctness, decontaminated as RouteLLM does."""
    root = _evals_dir(data_dir) / "gsm8k"
    source = root / "gsm8k_responses.csv"
    return _correctness_benchmark("gsm8k", [(_read_csv(source), source)],
                                  _contaminated(root / "contaminated_prompts.jsonl"), strong_model, weak_model)


def load_mt_bench(
    data_dir: str | os.PathLike[str], strong_model: str = EVAL_STRONG_MODEL, weak_model: str = EVAL_WEAK_MODEL
) -> Benchmark:
    """MT Bench: route on the first turn; a question's score is the routed model's mean judgement
    over both turns. Questions with either turn contaminated are dropped (RouteLLM's rule)."""
    root = _evals_dir(data_dir) / "mt_bench"
    questions = _read_jsonl(root / "question.jsonl")
    contaminated = _contaminated(root / "contaminated_prompts.jsonl")
    scores: dict[tuple[int, str], list[float]] = {}
    for row in _read_jsonl(root / "judgements.jsonl"):
        scores.setdefault((row["question_id"], canonical_model_name(row["model"])), []).append(float(row["score"]))

    def per_question(model: str) -> np.ndarray:
        out = []
        for q in questions:
            turns = scores.get((q["question_id"], canonical_model_name(model)))
            if not turns:
                raise ValueError(f"{root / 'judgements.jsonl'} has no judgement of {model!r} on question {q['question_id']}")
            out.append(sum(turns) / len(turns))
        return np.array(out, dtype=np.float64)

    bench = Benchmark("mt-bench", [q["turns"][0] for q in questions], per_question(strong_model),
                      per_question(weak_model), strong_model, weak_model, whole_strong_calls=True,
                      num_source=len(questions))
    keep = np.array([not (set(q["turns"][:2]) & contaminated) for q in questions], dtype=bool)
    return bench._subset(keep, "contaminated")


def load_golden_file(
    path: str | os.PathLike[str],
    strong_model: str = EVAL_STRONG_MODEL,
    weak_model: str = EVAL_WEAK_MODEL,
    name: str | None = None,
) -> Benchmark:
    """Your own golden-label benchmark: a CSV / JSON lines / parquet file with a ``prompt`` column
    and one column per model (any alias of its name) holding either correctness (True/False,
    scored as % correct like MMLU) or a numeric score (averaged, like MT Bench's judgements)."""
    from .arena import _read_table

    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"benchmark file {str(path)!r} does not exist")
    table = _read_table(source)
    if "prompt" not in table.column_names:
        raise ValueError(f"{source} has no 'prompt' column (columns: {', '.join(table.column_names)})")
    prompts = table.column("prompt").to_pylist()
    if any(not isinstance(p, str) for p in prompts):
        raise ValueError(f"{source}: every 'prompt' must be a string")
    columns = [table.column(_model_column(table.column_names, m, str(source))).to_pylist() for m in (strong_model, weak_model)]
    boolean = all(isinstance(v, (bool, np.bool_)) or (isinstance(v, str) and v.lower() in ("true", "false"))
                  for col in columns for v in col)
    if boolean:
        strong, weak = (_correctness(col, source) for col in columns)
    else:
        try:
            strong, weak = (np.array(col, dtype=np.float64) for col in columns)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: model columns must be True/False or numbers ({exc})") from None
    return Benchmark(name or source.stem, prompts, strong, weak, strong_model, weak_model,
                     scale=100.0 if boolean else 1.0, num_source=len(prompts))


#: Built-in benchmarks by their command-line name.
BENCHMARKS: dict[str, Callable[..., Benchmark]] = {"mmlu": load_mmlu, "gsm8k": load_gsm8k, "mt-bench": load_mt_bench}


def load_benchmark(
    name_or_file: str, data_dir: str | os.PathLike[str], strong_model: str = EVAL_STRONG_MODEL,
    weak_model: str = EVAL_WEAK_MODEL,
) -> Benchmark:
    """A built-in benchmark (``mmlu``, ``gsm8k``, ``mt-bench``) or a golden-label file."""
    if name_or_file in BENCHMARKS:
        return BENCHMARKS[name_or_file](data_dir, strong_model, weak_model)
    if Path(name_or_file).is_file():
        return load_golden_file(name_or_file, strong_model, weak_model)
    raise ValueError(f"unknown benchmark {name_or_file!r}: use one of {', '.join(BENCHMARKS)} or a file path")


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class RoutingCurve:
    """Strong-call percentage and score at each threshold, sorted by strong-call percentage."""

    thresholds: np.ndarray
    strong_percentage: np.ndarray
    score: np.ndarray


@dataclass(frozen=True)
class MethodMetrics:
    cpt: dict[float, float]  # share of the quality gap -> % strong calls needed
    auc: float
    apgr: float


@dataclass
class EvalResult:
    """Everything RouteLLM's evaluation reports for one benchmark."""

    benchmark: str
    description: str
    strong_model: str
    weak_model: str
    strong_score: float
    weak_score: float
    curves: dict[str, RoutingCurve]
    metrics: dict[str, MethodMetrics]
    optimal: list[tuple[float, float]] = field(default_factory=list)  # (% strong calls, score)


def quantile_thresholds(win_rates: np.ndarray, num_results: int) -> np.ndarray:
    """``pd.qcut(win_rates, num_results, retbins=True)[1]``: linear-interpolated quantiles at
    0, 1/n, ..., 1, with duplicate edges dropped (where pandas raises)."""
    levels = np.linspace(0, 1, num_results + 1)
    # pandas (>= 2.2) rounds levels that are not exact in binary up by one ulp; so do we, to agree
    # with it to the last bit
    inexact = num_results * levels != np.arange(num_results + 1)
    levels[inexact] = np.nextafter(levels[inexact], 1)
    return np.unique(np.quantile(win_rates, levels))


def routing_curve(benchmark: Benchmark, win_rates: np.ndarray, num_results: int) -> RoutingCurve:
    """Score and strong-call share at each quantile threshold (the last one strict)."""
    thresholds = quantile_thresholds(win_rates, num_results)
    pct, score = [], []
    for i, threshold in enumerate(thresholds):
        strong = win_rates > threshold if i == len(thresholds) - 1 else win_rates >= threshold
        pct.append(np.count_nonzero(strong) / len(win_rates) * 100)
        score.append(benchmark.routed_score(strong))
    order = np.argsort(pct, kind="stable")
    return RoutingCurve(thresholds[order], np.array(pct)[order], np.array(score)[order])


def _averaged_curve(curves: list[RoutingCurve]) -> RoutingCurve:
    """RouteLLM's random router: rows of all runs grouped by strong-call percentage, averaged."""
    pct = np.concatenate([c.strong_percentage for c in curves])
    keys, group = np.unique(pct, return_inverse=True)
    counts = np.bincount(group)

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=values) / counts

    return RoutingCurve(mean(np.concatenate([c.thresholds for c in curves])), keys,
                        mean(np.concatenate([c.score for c in curves])))


def curve_metrics(curve: RoutingCurve, strong_score: float, weak_score: float) -> MethodMetrics:
    """CPT at 20/50/80% of the quality gap, AUC and APGR of one curve (RouteLLM's formulas)."""
    x = curve.strong_percentage / 100
    cpt = {level: float(np.interp(level * (strong_score - weak_score) + weak_score, curve.score, curve.strong_percentage))
           for level in CPT_LEVELS}
    auc = float(np.trapezoid(curve.score, x))
    weak_auc = float(np.trapezoid(np.full(len(x), weak_score), x))
    strong_auc = float(np.trapezoid(np.full(len(x), strong_score), x))
    return MethodMetrics(cpt, auc, (auc - weak_auc) / (strong_auc - weak_auc))


def evaluate_win_rates(
    benchmark: Benchmark, win_rates: Mapping[str, np.ndarray | Sequence[np.ndarray]], num_results: int = 10
) -> EvalResult:
    """RouteLLM's metrics from win rates: per method one array ``[len(benchmark)]``, or a list of
    arrays (runs of a random router, averaged as RouteLLM averages them)."""
    if num_results < 1:
        raise ValueError(f"num_results must be >= 1, got {num_results}")
    strong, weak = benchmark.model_score(benchmark.strong_model), benchmark.model_score(benchmark.weak_model)
    if strong == weak:
        raise ValueError(f"{benchmark.name}: both models score {strong}, so there is no quality gap to recover")
    curves: dict[str, RoutingCurve] = {}
    for method, value in win_rates.items():
        runs = [value] if isinstance(value, np.ndarray) and value.ndim == 1 else list(value)
        checked = [_check_win_rates(r, len(benchmark), method) for r in runs]
        if not checked:
            raise ValueError(f"{method}: no win rates given")
        per_run = [routing_curve(benchmark, r, num_results) for r in checked]
        curves[method] = per_run[0] if len(per_run) == 1 else _averaged_curve(per_run)
    metrics = {m: curve_metrics(c, strong, weak) for m, c in curves.items()}
    order = sorted(metrics, key=lambda m: -metrics[m].apgr)
    optimal = [(float(p), benchmark.optimal_score(p / 100)) for p in range(0, 101, 10)]
    return EvalResult(benchmark.name, benchmark.describe(), benchmark.strong_model, benchmark.weak_model, strong, weak,
                      {m: curves[m] for m in order}, {m: metrics[m] for m in order}, optimal)


def _check_win_rates(values: Any, n: int, method: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise ValueError(f"{method}: expected {n} win rates, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{method}: win rates contain NaN or inf")
    return array


# --------------------------------------------------------------------------- routers


def _cache_path(cache_dir: Path, benchmark: Benchmark, router: Any, method: str) -> Path | None:
    fingerprint = getattr(router, "fingerprint", None)
    if not fingerprint:
        return None
    digest = hashlib.blake2b(digest_size=12)
    digest.update(fingerprint.encode())
    for p in benchmark.prompts:
        digest.update(prompt_key(p))
    return cache_dir / "win_rates" / f"{benchmark.name}-{method}-{digest.hexdigest()}.npy"


def router_win_rates(
    routers: Mapping[str, Any],
    benchmark: Benchmark,
    *,
    random_iters: int = 10,
    cache_dir: str | os.PathLike[str] | None = None,
    overwrite_cache: bool = False,
    progress: bool = True,
) -> dict[str, np.ndarray | list[np.ndarray]]:
    """Win rates of each router on the benchmark's prompts, reusing cached ones.

    Routers on the same embedder share one embedding pass (and, with ``cache_dir``, a file of
    prompt embeddings). The random router is scored ``random_iters`` times and never cached; other
    routers without a ``fingerprint`` are scored afresh each time.
    """
    from .routers import EmbeddingRouter, RandomRouter

    cache = Path(cache_dir) if cache_dir is not None else None
    out: dict[str, np.ndarray | list[np.ndarray]] = {}
    embedded: dict[tuple[str, int], np.ndarray] = {}
    for method, router in routers.items():
        if isinstance(router, RandomRouter):
            out[method] = [router.score(benchmark.prompts) for _ in range(random_iters)]
            continue
        path = _cache_path(cache, benchmark, router, method) if cache is not None else None
        if path is not None and path.is_file() and not overwrite_cache:
            out[method] = np.load(path)
            continue
        if isinstance(router, EmbeddingRouter):
            key = (router.embedding_model, router.embedding_dim)
            if key not in embedded:
                cache_file = cache / f"embeddings-{key[0].replace('/', '_')}-{key[1]}.npz" if cache else None
                embedded[key] = embed_all(router.embedder, benchmark.prompts, cache_file=cache_file, progress=progress,
                                          desc=f"embedding {benchmark.name}")
            rates = router.score_embeddings(embedded[key])
        else:
            rates = np.asarray(router.score(benchmark.prompts), dtype=np.float64)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, rates)
        out[method] = rates
    return out


def run_eval(
    routers: Mapping[str, Any],
    benchmark: Benchmark,
    *,
    num_results: int = 10,
    random_iters: int = 10,
    exclude_training_prompts: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    overwrite_cache: bool = False,
    progress: bool = True,
) -> EvalResult:
    """Evaluate routers on a benchmark, RouteLLM's way. Prompts any of the routers was trained on
    are dropped first (``exclude_training_prompts``), so every router is measured on unseen items."""
    if exclude_training_prompts:
        seen: set[bytes] = set()
        for router in routers.values():
            seen.update(getattr(router, "training_prompt_keys", ()) or ())
        if seen:
            benchmark = benchmark.excluding(seen, "seen in training")
    rates = router_win_rates(routers, benchmark, random_iters=random_iters, cache_dir=cache_dir,
                             overwrite_cache=overwrite_cache, progress=progress)
    return evaluate_win_rates(benchmark, rates, num_results)


# --------------------------------------------------------------------------- report


def metrics_table(result: EvalResult) -> list[dict[str, Any]]:
    """One row per method: CPT(20/50/80%), AUC, APGR; the rows a CSV or Markdown table shows."""
    return [
        {"method": method, **{f"cpt{int(level * 100)}": m.cpt[level] for level in CPT_LEVELS}, "auc": m.auc, "apgr": m.apgr}
        for method, m in result.metrics.items()
    ]


def markdown_table(result: EvalResult) -> str:
    lines = [
        (f"**{result.benchmark}** ({result.description}); {result.strong_model}: {result.strong_score:.3f}, "
         f"{result.weak_model}: {result.weak_score:.3f}"),
        "",
        "| router | CPT(20%) | CPT(50%) | CPT(80%) | AUC | APGR |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in metrics_table(result):
        lines.append(f"| {row['method']} | {row['cpt20']:.2f}% | {row['cpt50']:.2f}% | {row['cpt80']:.2f}% | "
                     f"{row['auc']:.3f} | {row['apgr']:.3f} |")
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
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the evaluation plot needs matplotlib: pip install 'routellm-fast[eval]'") from None

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
