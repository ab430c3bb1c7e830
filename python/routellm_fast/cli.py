"""The ``routellm-fast`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import numpy as np

import routellm_fast as rf


def _info(args: argparse.Namespace) -> int:
    """Print the version, the SIMD path the CPU runs and the threads batched scoring uses."""
    info = rf.backend_info()
    print(f"routellm_fast {rf.__version__}: simd={info['simd']} (available: {', '.join(info['simd_available'])}), "
          f"threads={info['threads']}, {info.get('compiler', '')}")
    if args.json:
        print(json.dumps(info))
    return 0


def _route(args: argparse.Namespace) -> int:
    """Route one prompt with the shipped sw_ranking router: local embeddings, no key, no network."""
    from .defaults import default_sw_router, default_threshold

    router = default_sw_router(args.strong_model, args.weak_model)
    threshold = args.threshold if args.threshold is not None else default_threshold(args.strong_model_pct)
    win_rate = router.calculate_strong_win_rate(args.prompt)

    class Pair:
        strong, weak = args.strong_model, args.weak_model

    model = router.route(args.prompt, threshold, Pair)
    print(f"{model}\twin_rate={win_rate:.5f}\tthreshold={threshold:.5f}")
    return 0


def _score_embeddings(args: argparse.Namespace) -> int:
    """Win rates for a .npy matrix of prompt embeddings with an mf checkpoint."""
    router = rf.MatrixFactorizationRouter(args.checkpoint, args.strong_model, args.weak_model,
                                          hidden_size=args.hidden_size, text_dim=args.text_dim)
    emb = np.load(args.input, allow_pickle=False)
    start = time.perf_counter()
    scores = router.score_embeddings(emb)
    elapsed = time.perf_counter() - start
    np.save(args.output, scores)
    print(f"scored {len(scores)} prompts in {elapsed * 1e3:.2f} ms -> {args.output}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routellm-fast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="show the compiled backend (SIMD path, threads)")
    info.add_argument("--json", action="store_true", help="also print the backend info as JSON")
    info.set_defaults(func=_info)
    route = sub.add_parser("route", help="route a prompt with the shipped sw_ranking router (no key, no network)")
    route.add_argument("prompt", help="the prompt to route")
    group = route.add_mutually_exclusive_group()
    group.add_argument("--threshold", type=float, help="route to the strong model when its win rate is >= this")
    group.add_argument("--strong-model-pct", type=float, default=0.5,
                       help="use the shipped calibrated threshold for this share of strong-model calls (default 0.5)")
    route.add_argument("--strong-model", default="gpt-4-1106-preview")
    route.add_argument("--weak-model", default="mixtral-8x7b-instruct-v0.1")
    route.set_defaults(func=_route)
    score = sub.add_parser("score-embeddings", help="score precomputed prompt embeddings with an mf checkpoint")
    score.add_argument("--checkpoint", required=True, help="directory written by RouteLLM's MFModel.save_pretrained")
    score.add_argument("--input", required=True, help=".npy float matrix [n, text_dim]")
    score.add_argument("--output", required=True, help=".npy file for the float64 win rates")
    score.add_argument("--strong-model", default="gpt-4-1106-preview")
    score.add_argument("--weak-model", default="mixtral-8x7b-instruct-v0.1")
    score.add_argument("--hidden-size", type=int, default=128)
    score.add_argument("--text-dim", type=int, default=1536)
    score.set_defaults(func=_score_embeddings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"routellm-fast: error: {exc}", file=sys.stderr)
        return 2
