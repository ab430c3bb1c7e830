"""Routers that ship inside the package, and the recipe that builds them.

The default sw_ranking router is an arena of real battles, embedded with the local default
embedder, so that ``pip install`` + one command routes a prompt with no key and no network:

* battles: ``preference/arena_bench_v1`` (300 hard Chatbot Arena prompts, GPT-4 grades of 15
  models, 30,966 battles; Apache-2.0, see its PROVENANCE.md), model names mapped to RouteLLM's
  spelling with :mod:`routellm_fast.model_aliases`;
* embeddings: all-MiniLM-L6-v2 (384-d) of each prompt, stored as float16;
* calibration: the win rates of AlpacaEval's 805 instructions (``preference/alpaca_eval``, none of
  them in the arena) give the threshold for each share of strong-model calls.

Rebuild with ``python -m routellm_fast.defaults --data-dir ../shared/data``; the same data and
model give the same file.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from .arena import ArenaFile, outcome_codes, save_arena
from .calibration import read_prompts
from .embedders import OnnxEmbedder
from .model_aliases import canonical_model_name
from .routers import DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL, SWRankingRouter

__all__ = ["DEFAULT_SW_ARENA", "build_default_sw_arena", "default_sw_router", "default_threshold"]

DEFAULT_SW_ARENA = Path(__file__).parent / "data" / "default_sw_arena.npz"
#: Shares of strong-model calls the shipped calibration covers.
CALIBRATED_PCTS = tuple(round(p, 2) for p in np.arange(0.05, 1.0, 0.05))


def default_sw_router(
    strong_model: str = DEFAULT_STRONG_MODEL, weak_model: str = DEFAULT_WEAK_MODEL, **kwargs
) -> SWRankingRouter:
    """The shipped sw_ranking router (local embeddings; see the module docstring)."""
    return SWRankingRouter.from_arena(DEFAULT_SW_ARENA, strong_model, weak_model, **kwargs)


def default_threshold(strong_model_pct: float = 0.5) -> float:
    """The shipped router's threshold that sends ``strong_model_pct`` of AlpacaEval prompts to the
    strong model (default pair), as RouteLLM's calibrate_threshold computes it."""
    calibration = _shipped_calibration()
    key = f"{strong_model_pct:.2f}"
    if key not in calibration["thresholds"]:
        raise ValueError(f"no shipped threshold for strong_model_pct={strong_model_pct}; have {sorted(calibration['thresholds'])}")
    return float(calibration["thresholds"][key])


@lru_cache(maxsize=1)
def _shipped_calibration() -> dict:
    """The shipped arena's calibration, read once, without decompressing its embeddings."""
    with np.load(DEFAULT_SW_ARENA, allow_pickle=False) as z:
        return json.loads(str(z["metadata"]))["calibration"]


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def build_default_sw_arena(data_dir: Path, out: Path = DEFAULT_SW_ARENA, embedder: OnnxEmbedder | None = None) -> ArenaFile:
    """Build the shipped arena from ``data_dir`` (the shared data folder) and write it to ``out``."""
    import pyarrow.csv as pcsv

    embedder = embedder or OnnxEmbedder()
    source = data_dir / "preference" / "arena_bench_v1"
    prompts = _read_jsonl(source / "prompts.jsonl")
    row_of = {p["question_id"]: i for i, p in enumerate(prompts)}
    battles = pcsv.read_csv(source / "battles.csv").to_pydict()
    names = [canonical_model_name(m) for m in battles["model_a"] + battles["model_b"]]
    models = list(dict.fromkeys(names))  # first appearance in model_a, then model_b, as RouteLLM
    index = {m: i for i, m in enumerate(models)}
    n = len(battles["winner"])
    embeddings = embedder.embed([p["prompt"] for p in prompts]).astype(np.float16)
    arena = ArenaFile(
        prompt_embeddings=embeddings,
        battle_prompt=np.array([row_of[q] for q in battles["question_id"]], dtype=np.int64),
        model_a=np.array([index[m] for m in names[:n]], dtype=np.int32),
        model_b=np.array([index[m] for m in names[n:]], dtype=np.int32),
        outcome=outcome_codes(battles["winner"], where=f"{source / 'battles.csv'} row"),
        models=models,
        metadata={
            "embedder": {"name": embedder.name, "dim": embedder.dim},
            "battles": "preference/arena_bench_v1 (arena-bench-v1, lmarena/arena-hard-auto, Apache-2.0)",
            "storage": "float16",
        },
    )
    save_arena(out, arena)

    # Calibrate on prompts the arena has never seen.
    router = SWRankingRouter.from_arena(out, DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL, embed=embedder)
    held_out = read_prompts(data_dir / "preference" / "alpaca_eval" / "prompts.jsonl")
    win_rates = router.score(held_out)
    arena.metadata["calibration"] = {
        "prompts": f"preference/alpaca_eval prompts.jsonl ({len(held_out)} instructions)",
        "pair": {"strong": DEFAULT_STRONG_MODEL, "weak": DEFAULT_WEAK_MODEL},
        "thresholds": {f"{p:.2f}": round(float(np.quantile(win_rates, 1 - p)), 5) for p in CALIBRATED_PCTS},
    }
    save_arena(out, arena)
    return arena


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routellm_fast.defaults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_SW_ARENA)
    args = parser.parse_args(argv)
    arena = build_default_sw_arena(args.data_dir, args.out)
    print(f"wrote {args.out}: {len(arena.outcome)} battles, {len(arena.prompt_embeddings)} prompts, "
          f"{len(arena.models)} models; 50% threshold {arena.metadata['calibration']['thresholds']['0.50']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
