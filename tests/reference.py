"""Plain float64 NumPy references for the routers' math, written from RouteLLM's definitions.

They build RouteLLM's design matrix row by row (every battle twice, ties as one win each way,
model_b's feature written over model_a's when both are the same player) and solve the weighted
logistic regression with full-matrix Newton steps using the pseudo-inverse, which converges to the
minimum-norm optimum that sklearn's L-BFGS reaches from zero. Slow and obviously right.
"""

from __future__ import annotations

import math

import numpy as np

LN10 = math.log(10.0)


def design(model_a: np.ndarray, model_b: np.ndarray, outcome: np.ndarray, n_players: int):
    n = len(outcome)
    a = np.concatenate([model_a, model_a])
    b = np.concatenate([model_b, model_b])
    x = np.zeros((2 * n, n_players))
    x[np.arange(2 * n), a] = LN10
    x[np.arange(2 * n), b] = -LN10
    y = np.zeros(2 * n)
    y[np.concatenate([outcome, outcome]) == 0] = 1.0
    tie_first = np.concatenate([outcome == 2, np.zeros(n, dtype=bool)])
    y[tie_first] = 1.0
    return x, y


def weighted_logistic_mle(x: np.ndarray, y: np.ndarray, w: np.ndarray, iters: int = 100) -> np.ndarray:
    beta = np.zeros(x.shape[1])
    for _ in range(iters):
        z = x @ beta
        p = 1.0 / (1.0 + np.exp(-z))
        grad = x.T @ (w * (p - y))
        hess = (x * (w * p * (1 - p))[:, None]).T @ x
        step = np.linalg.pinv(hess, rcond=1e-12, hermitian=True) @ grad
        beta -= step
        if np.max(np.abs(step)) < 1e-13:
            break
    return beta


def elo_ratings(model_a, model_b, outcome, n_players, weights=None):
    """RouteLLM's compute_elo_mle_with_tie in Elo units (before any anchor shift)."""
    x, y = design(np.asarray(model_a), np.asarray(model_b), np.asarray(outcome), n_players)
    w = np.ones(len(y)) if weights is None else np.concatenate([weights, weights])
    return 400.0 * weighted_logistic_mle(x, y, w) + 1000.0


def sw_win_rate(query, arena_emb, tier_a, tier_b, outcome, n_tiers, strong_tier, weak_tier):
    """RouteLLM's SWRankingRouter.calculate_strong_win_rate for one query, in float64."""
    arena = np.asarray(arena_emb, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    sims = arena @ q / (np.linalg.norm(arena, axis=1) * np.linalg.norm(q))
    weights = 10 * 10 ** (sims / np.max(sims))
    ratings = elo_ratings(tier_a, tier_b, outcome, n_tiers, weights)
    return 1 - 1 / (1 + 10 ** ((ratings[strong_tier] - ratings[weak_tier]) / 400))


def mf_win_rate(emb, p, proj, classifier, strong, weak):
    """RouteLLM's MFModel.pred_win_rate in float64."""
    p = np.asarray(p, dtype=np.float64)
    pn = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    t = np.asarray(emb, dtype=np.float64) @ proj.T.astype(np.float64) if proj is not None else emb
    logits = (pn[[strong, weak]] * t[:, None, :]) @ classifier.astype(np.float64)
    return 1 / (1 + np.exp(-(logits[:, 0] - logits[:, 1])))
