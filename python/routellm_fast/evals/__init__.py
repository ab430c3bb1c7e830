"""RouteLLM's evaluation: how much of the strong model's quality a router keeps per strong call.

Benchmarks (RouteLLM's golden-label data, bundled in the package, or RouteLLM's own files with
``data_dir``: :mod:`routellm_fast.evals.data`; or any file of your own with :func:`load_golden_file`):

* **MMLU**: 57 domains, 14,042 questions; score = % answered correctly by the routed model;
* **GSM8K**: 1,319 grade-school maths questions; the same score;
* **MT Bench**: 80 two-turn questions, routed on the first turn; score = mean GPT-4 judgement
  (1-10) of the routed model's answers to both turns;
* **CRUX** (CRUXEval-O) and **MATH level 5**: ZeroEval's golden labels of many models
  (:mod:`routellm_fast.evals.zeroeval`), evaluated on their held-out half.

Beside random and the oracle, every report can carry the prompt-length baseline
(:mod:`routellm_fast.evals.baselines`, fitted on training items only), bootstrap 95% intervals of
every APGR and a paired bootstrap of each router against the baseline
(:func:`~routellm_fast.evals.metrics.bootstrap_apgr`).

Prompts that RouteLLM's ``contaminated_prompts.jsonl`` lists (they also occur in its training
data) are dropped exactly as RouteLLM drops them, and so are prompts a router was trained on
(routers record their training prompts; :meth:`Benchmark.excluding`).

The procedure is RouteLLM's (``routellm/evals/evaluate.py``, ``benchmarks.py``): win rates for
every prompt; ``num_results`` quantile thresholds of them (``pd.qcut(..., retbins=True)``); at each
threshold the share of strong-model calls and the score, the last threshold strict (``>``) so
that it calls the strong model for no prompt; the random router averaged over ``random_iters``
runs (each benchmark from its seed); then CPT(20/50/80%): the strong-call percentage reaching that share of the strong-weak
quality gap, by linear interpolation; AUC by the trapezoid rule; APGR, the area between the curve
and the weak model's line over the area between the two models' lines.

Two deliberate differences, each where RouteLLM has no answer or a wrong one: duplicate quantile
edges are dropped (``pd.qcut`` raises on them), and MT Bench's optimal-router curve is computed over
the decontaminated questions (RouteLLM's mixes all 80 questions' judgements with the decontaminated
count). Win rates are cached per router *configuration* (a fingerprint of its weights or arena,
model pair and embedder), never served stale after a router changes.
"""

from ..paths import BUNDLED_EVALS
from .baselines import LENGTH, LengthBaseline, fit_length_baseline, length_baseline_for
from .benchmarks import (
    BENCHMARKS,
    EVAL_STRONG_MODEL,
    EVAL_WEAK_MODEL,
    MMLU_DOMAINS,
    Benchmark,
    load_benchmark,
    load_golden_file,
    load_gsm8k,
    load_mmlu,
    load_mt_bench,
)
from .data import bundle_eval_data, eval_data
from .metrics import (
    CPT_LEVELS,
    Bootstrap,
    EvalResult,
    MethodMetrics,
    RoutingCurve,
    bootstrap_apgr,
    bootstrap_indices,
    curve_metrics,
    evaluate_win_rates,
    quantile_thresholds,
    routing_curve,
)
from .report import markdown_table, metrics_table, write_report
from .scoring import router_win_rates, run_eval
from .zeroeval import (
    ZEROEVAL_SETS,
    ZEROEVAL_STRONG_MODEL,
    GoldenMatrix,
    bundle_zeroeval,
    load_crux,
    load_math_l5,
    load_zeroeval,
    zeroeval_training_half,
)

__all__ = [
    "BENCHMARKS",
    "BUNDLED_EVALS",
    "CPT_LEVELS",
    "EVAL_STRONG_MODEL",
    "EVAL_WEAK_MODEL",
    "LENGTH",
    "MMLU_DOMAINS",
    "ZEROEVAL_SETS",
    "ZEROEVAL_STRONG_MODEL",
    "Benchmark",
    "Bootstrap",
    "EvalResult",
    "GoldenMatrix",
    "LengthBaseline",
    "MethodMetrics",
    "RoutingCurve",
    "bootstrap_apgr",
    "bootstrap_indices",
    "bundle_eval_data",
    "bundle_zeroeval",
    "curve_metrics",
    "eval_data",
    "evaluate_win_rates",
    "fit_length_baseline",
    "length_baseline_for",
    "load_benchmark",
    "load_crux",
    "load_golden_file",
    "load_gsm8k",
    "load_math_l5",
    "load_mmlu",
    "load_mt_bench",
    "load_zeroeval",
    "markdown_table",
    "metrics_table",
    "quantile_thresholds",
    "router_win_rates",
    "routing_curve",
    "run_eval",
    "write_report",
    "zeroeval_training_half",
]
