"""The routers that ship inside the package, ready to use offline: where their files are, how to load
them and their calibrated thresholds. Loading them imports no training or evaluation code; the
recipe that trains them is :mod:`routellm_fast.train.recipe`.

mf, sw_ranking and knn (pair ``gpt-4-1106-preview`` / ``mixtral-8x7b-instruct-v0.1``) ship twice, once per
local embedder (:data:`SHIPPED_EMBEDDERS`): on all-MiniLM-L6-v2 (``"minilm"``) and on the static embedder
distilled from it (``"static"``: microseconds per prompt), so ``pip install`` + one command routes a
prompt with no key and no network. Unless told otherwise each comes on the embedder it routes best on
(:data:`BEST_EMBEDDER`: the higher mean held-out APGR in ``docs/eval/summary.md``): knn on static, mf
and sw_ranking on MiniLM. :data:`DEFAULT_ROUTER` is the router of ``route``, ``score``, ``calibrate``
and ``serve`` when none is named (README, "Which router is the default"). Each records its win rates on the bundled sample prompts
(``data/sample_prompts.jsonl``, the default prompts of ``routellm-fast calibrate``), which give the
threshold for any share of strong-model calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from ..decision.calibration import share_threshold
from ..formats.model_names import DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL
from ..paths import (
    BERT_METADATA_FILE,
    DEFAULT_BERT,
    MF_METADATA_FILE,
    shipped_files,
    shipped_knn_file,
)
from . import (
    BERTRouter,
    KNNRouter,
    MatrixFactorizationRouter,
    RandomRouter,
    Router,
    SWRankingRouter,
)

__all__ = [
    "BEST_EMBEDDER",
    "CALIBRATED_ROUTERS",
    "DEFAULT_ROUTER",
    "EMBEDDER_ROUTERS",
    "SHIPPED_ROUTERS",
    "best_embedder",
    "default_bert_router",
    "default_knn_router",
    "default_mf_router",
    "default_sw_router",
    "default_threshold",
    "shipped_calibration",
]


#: The router used when none is named: among the shipped routers whose held-out APGR is not worse than
#: the best one's on any benchmark (paired bootstrap, docs/eval/summary.md), the fastest from text
#: (benchmarks/RESULTS.md): knn on the static embedder.
DEFAULT_ROUTER = "knn"
#: The local embedder each shipped router comes on unless one is named: the one with its higher mean
#: held-out APGR (docs/eval/summary.md).
BEST_EMBEDDER = {"mf": "minilm", "sw_ranking": "minilm", "knn": "static"}


def best_embedder(router: str, embedder: str | None = None) -> str:
    """``embedder``, or the one ``router`` routes best on when None (:data:`BEST_EMBEDDER`)."""
    return BEST_EMBEDDER[router] if embedder is None else embedder


def default_mf_router(
    strong_model: str = DEFAULT_STRONG_MODEL, weak_model: str = DEFAULT_WEAK_MODEL, *, embedder: str | None = None,
    **kwargs,
) -> MatrixFactorizationRouter:
    """The shipped matrix-factorisation router on local ``embedder`` (``"minilm"``, the default, or ``"static"``)."""
    return MatrixFactorizationRouter(shipped_files(best_embedder("mf", embedder))[0], strong_model, weak_model,
                                     **kwargs)


def default_sw_router(
    strong_model: str = DEFAULT_STRONG_MODEL, weak_model: str = DEFAULT_WEAK_MODEL, *, embedder: str | None = None,
    **kwargs,
) -> SWRankingRouter:
    """The shipped sw_ranking router on local ``embedder`` (``"minilm"``, the default, or ``"static"``;
    its arena kept in float16, as shipped)."""
    return SWRankingRouter.from_arena(shipped_files(best_embedder("sw_ranking", embedder))[1], strong_model,
                                      weak_model, **kwargs)


def default_knn_router(
    strong_model: str = DEFAULT_STRONG_MODEL, weak_model: str = DEFAULT_WEAK_MODEL, *, embedder: str | None = None,
    **kwargs,
) -> KNNRouter:
    """The shipped nearest-neighbour router on local ``embedder`` (``"static"``, the default, or
    ``"minilm"``): labelled prompts from golden labels and battles, int8 rows (docs/routers.md, "knn")."""
    return KNNRouter(shipped_knn_file(best_embedder("knn", embedder)), strong_model, weak_model, **kwargs)


def default_bert_router(**kwargs) -> BERTRouter:
    """The shipped BERT router: all-MiniLM-L6-v2 with a 3-label head (int8; docs/routers.md, "BERT router")."""
    return BERTRouter(DEFAULT_BERT, **kwargs)


#: Routers available with no config, by RouteLLM name.
SHIPPED_ROUTERS: dict[str, Callable[..., Router]] = {
    "random": RandomRouter, "mf": default_mf_router, "sw_ranking": default_sw_router,
    "bert": default_bert_router, "knn": default_knn_router,
}
#: Shipped routers that carry calibrated thresholds.
CALIBRATED_ROUTERS = ("mf", "sw_ranking", "bert", "knn")
#: Shipped routers that come on each of SHIPPED_EMBEDDERS (bert embeds its prompts itself).
EMBEDDER_ROUTERS = ("mf", "sw_ranking", "knn")


@lru_cache(maxsize=2 * len(CALIBRATED_ROUTERS))
def shipped_calibration(router: str, embedder: str | None = None) -> dict:
    """A shipped router's calibration (``{"prompts": ..., "prompts_sha256": ..., "pair": ...,
    "win_rates": [...]}``: its win rates on the bundled sample prompts), read once; for sw_ranking
    and knn without decompressing their rows. ``embedder``: which of the shipped mf/sw_ranking/knn
    (``"minilm"`` or ``"static"``; None: the one it comes on by default, :data:`BEST_EMBEDDER`)."""
    if router not in CALIBRATED_ROUTERS:
        raise ValueError(f"no shipped router {router!r} with a calibration (shipped: {', '.join(CALIBRATED_ROUTERS)})")
    if router == "bert":
        return json.loads((DEFAULT_BERT / BERT_METADATA_FILE).read_text())["calibration"]
    embedder = best_embedder(router, embedder)
    if router == "knn":
        with np.load(shipped_knn_file(embedder), allow_pickle=False) as z:
            return json.loads(str(z["metadata"]))["calibration"]
    mf_dir, arena_path = shipped_files(embedder)
    if router == "sw_ranking":
        with np.load(arena_path, allow_pickle=False) as z:
            return json.loads(str(z["metadata"]))["calibration"]
    return json.loads((mf_dir / MF_METADATA_FILE).read_text())["calibration"]


def default_threshold(strong_model_pct: float = 0.5, router: str = DEFAULT_ROUTER, embedder: str | None = None) -> float:
    """The shipped ``router``'s threshold that sends ``strong_model_pct`` (any share in [0, 1]) of the
    bundled sample prompts to the strong model (default pair): what ``routellm-fast calibrate
    --strong-model-pct P`` and ``route --strong-model-pct P`` use."""
    return share_threshold(shipped_calibration(router, embedder)["win_rates"], strong_model_pct)
