"""routellm_fast: RouteLLM's routers with the same answers, scored by a compiled core."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from . import _core
from .decision.calibration import calibrate_threshold
from .decision.rule import Decision, ModelPair
from .embedders import (
    CachedEmbedder,
    Embedder,
    OnnxEmbedder,
    OpenAIEmbedder,
    StaticEmbedder,
    embed_all,
    embedder_for,
)
from .errors import (
    BadFileError,
    EmbeddingError,
    MissingExtraError,
    RouteLLMFastError,
    RoutingError,
    ShippedRouterWarning,
    ThresholdWarning,
)
from .formats.arena import Battles, load_battles, load_embeddings
from .formats.checkpoints import load_mf_checkpoint
from .formats.model_names import MODEL_IDS
from .routers import (
    NAME_TO_CLS,
    ROUTER_CLS,
    BERTRouter,
    CausalLLMRouter,
    EmbeddingRouter,
    KNNRouter,
    MatrixFactorizationRouter,
    RandomRouter,
    Router,
    SWRankingRouter,
)
from .serve.controller import Controller
from .serve.routellm_patch import patch_routellm

try:
    __version__ = version("routellm_fast")  # written once, in pyproject.toml
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# A library logs to its own logger and leaves output to the application: warnings reach users
# through the warnings module, and through logging where the application configures it.
logging.getLogger(__name__).addHandler(logging.NullHandler())


def backend_info() -> dict:
    """Which SIMD code path runs (``generic``, ``avx2``, ``avx512``), which this CPU supports, how
    many threads batched scoring uses, and whether a GPU is usable (``cuda_available``, the device,
    or ``cuda_reason``) and what ``device="auto"`` picks (``device``)."""
    from .backends.cuda import cuda_info, resolve_device

    info = dict(_core.backend_info())
    info.update(cuda_info())
    try:
        info["device"] = resolve_device("auto")
    except (RuntimeError, ValueError) as exc:  # $ROUTELLM_FAST_DEVICE asks for what is not there
        info["device"], info["device_error"] = "cpu", str(exc)
    return info


def set_num_threads(n: int) -> None:
    """Threads used by batched scoring (default: all cores, or ``ROUTELLM_FAST_NUM_THREADS``)."""
    _core.set_num_threads(n)


def set_simd(name: str) -> None:
    """Force a SIMD code path (``generic``, ``avx2``, ``avx512``); also ``ROUTELLM_FAST_SIMD``.
    Paths this CPU cannot run are refused with ValueError."""
    _core.set_simd(name)


__all__ = [
    "BERTRouter",
    "CausalLLMRouter",
    "BadFileError",
    "Battles",
    "CachedEmbedder",
    "Controller",
    "Decision",
    "ModelPair",
    "RoutingError",
    "patch_routellm",
    "Embedder",
    "EmbeddingError",
    "OnnxEmbedder",
    "OpenAIEmbedder",
    "EmbeddingRouter",
    "KNNRouter",
    "MODEL_IDS",
    "MatrixFactorizationRouter",
    "MissingExtraError",
    "NAME_TO_CLS",
    "ROUTER_CLS",
    "RandomRouter",
    "RouteLLMFastError",
    "Router",
    "SWRankingRouter",
    "ShippedRouterWarning",
    "StaticEmbedder",
    "ThresholdWarning",
    "backend_info",
    "calibrate_threshold",
    "embed_all",
    "embedder_for",
    "load_battles",
    "load_embeddings",
    "load_mf_checkpoint",
    "set_num_threads",
    "set_simd",
]
