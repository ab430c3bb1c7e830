"""The routers that ship inside the package, ready to use offline: where their files are, how to load
them and their calibrated thresholds. Loading them imports no training or evaluation code; the
recipe that trains them is :mod:`routellm_fast.recipe`.

Both (mf and sw_ranking, pair ``gpt-4-1106-preview`` / ``mixtral-8x7b-instruct-v0.1``) score
all-MiniLM-L6-v2 embeddings made locally, so ``pip install`` + one command routes a prompt with no
key and no network. Each records its win rates on the bundled sample prompts
(``data/sample_prompts.jsonl``, the default prompts of ``routellm-fast calibrate``), which give the
threshold for any share of strong-model calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from .checkpoints import METADATA_FILE
from .models import DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL
from .policy import share_threshold
from .routers import (
    BERTRouter,
    MatrixFactorizationRouter,
    RandomRouter,
    Router,
    SWRankingRouter,
)

__all__ = [
    "CALIBRATED_ROUTERS",
    "DEFAULT_BERT",
    "DEFAULT_MF",
    "DEFAULT_SW_ARENA",
    "SHIPPED_ROUTERS",
    "default_bert_router",
    "default_mf_router",
    "default_sw_router",
    "default_threshold",
    "shipped_calibration",
]

DATA_DIR = Path(__file__).parent / "data"
#: The shipped mf checkpoint (RouteLLM's layout) and sw_ranking arena.
DEFAULT_MF = DATA_DIR / "default_mf"
DEFAULT_SW_ARENA = DATA_DIR / "default_sw_arena.npz"
#: The shipped bert router (routellm_fast.bert_recipe): model.onnx + tokenizer + metadata.
DEFAULT_BERT = DATA_DIR / "default_bert"


def default_mf_router(
    strong_model: str = DEFAULT_STRONG_MODEL, weak_model: str = DEFAULT_WEAK_MODEL, **kwargs
) -> MatrixFactorizationRouter:
    """The shipped matrix-factorisation router (local embeddings)."""
    return MatrixFactorizationRouter(DEFAULT_MF, strong_model, weak_model, **kwargs)


def default_sw_router(
    strong_model: str = DEFAULT_STRONG_MODEL, weak_model: str = DEFAULT_WEAK_MODEL, **kwargs
) -> SWRankingRouter:
    """The shipped sw_ranking router (local embeddings; its arena kept in float16, as shipped)."""
    return SWRankingRouter.from_arena(DEFAULT_SW_ARENA, strong_model, weak_model, **kwargs)


def default_bert_router(**kwargs) -> BERTRouter:
    """The shipped BERT router: all-MiniLM-L6-v2 with a 3-label head (int8; see README)."""
    return BERTRouter(DEFAULT_BERT, **kwargs)


#: Routers available with no config, by RouteLLM name.
SHIPPED_ROUTERS: dict[str, Callable[..., Router]] = {
    "random": RandomRouter, "mf": default_mf_router, "sw_ranking": default_sw_router,
    "bert": default_bert_router,
}
#: Shipped routers that carry calibrated thresholds.
CALIBRATED_ROUTERS = ("mf", "sw_ranking", "bert")


@lru_cache(maxsize=len(CALIBRATED_ROUTERS))
def shipped_calibration(router: str) -> dict:
    """A shipped router's calibration (``{"prompts": ..., "prompts_sha256": ..., "pair": ...,
    "win_rates": [...]}``: its win rates on the bundled sample prompts), read once; for sw_ranking
    without decompressing its arena."""
    if router == "sw_ranking":
        with np.load(DEFAULT_SW_ARENA, allow_pickle=False) as z:
            return json.loads(str(z["metadata"]))["calibration"]
    if router == "bert":
        return json.loads((DEFAULT_BERT / "routellm_fast_bert.json").read_text())["calibration"]
    if router == "mf":
        return json.loads((DEFAULT_MF / METADATA_FILE).read_text())["calibration"]
    raise ValueError(f"no shipped router {router!r} with a calibration (shipped: {', '.join(CALIBRATED_ROUTERS)})")


def default_threshold(strong_model_pct: float = 0.5, router: str = "sw_ranking") -> float:
    """The shipped ``router``'s threshold that sends ``strong_model_pct`` (any share in [0, 1]) of the
    bundled sample prompts to the strong model (default pair): what ``routellm-fast calibrate
    --strong-model-pct P`` and ``route --strong-model-pct P`` use."""
    return share_threshold(shipped_calibration(router)["win_rates"], strong_model_pct)
