"""Routers with RouteLLM's interface, scored by the compiled core; ``ROUTER_CLS`` maps RouteLLM's
names to them."""

from __future__ import annotations

from .base import (
    NAME_TO_CLS,
    NOT_IMPLEMENTED,
    ROUTER_CLS,
    EmbeddingRouter,
    Router,
    register,
    unknown_router,
)
from .bert import BERTRouter
from .causal_llm import CausalLLMRouter
from .knn import KNNRouter
from .mf import ROUTELLM_EMBEDDING_MODEL, MatrixFactorizationRouter
from .random import RandomRouter
from .sw_ranking import SWRankingRouter

__all__ = [
    "BERTRouter",
    "CausalLLMRouter",
    "NAME_TO_CLS",
    "NOT_IMPLEMENTED",
    "ROUTELLM_EMBEDDING_MODEL",
    "ROUTER_CLS",
    "EmbeddingRouter",
    "KNNRouter",
    "MatrixFactorizationRouter",
    "RandomRouter",
    "Router",
    "SWRankingRouter",
    "register",
    "unknown_router",
]
