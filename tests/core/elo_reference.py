"""An independent reference for the sw_ranking Elo fit: scipy's optimiser on the same likelihood.

RouteLLM fits, per query, sklearn's LogisticRegression(fit_intercept=False, penalty=None) on rows
with +ln(10) in model_a's column and -ln(10) in model_b's (model_b's written over model_a's when they
share a tier), every battle twice (a tie is one win each way), weighted by 10 * 10 ** (sim / max sim).
Here the same likelihood is summed per distinct design row and minimised by scipy's trust-region
Newton ("trust-exact", then MINPACK's hybrid method on the stationarity equations) with a vanishing
ridge ``eps * sum(s_p * u_p ** 2)`` in Jacobi-scaled coordinates ``beta_p = u_p / sqrt(H_pp)``. The
ridge picks a point when the maximum is not finite: as eps -> 0 the fit follows the likelihood
towards its supremum, so a pair's win rate converges to its limit when it has one. Refitting with a
randomly shaped ridge (another ``s``) tells whether it has one (the answers agree) or whether the
likelihood leaves it free (they differ).

Ratings are then moved to sklearn's gauge (its L-BFGS starts at 0 and its gradients sum to zero
over each connected group of players without battles inside one tier): zero sum over each such
group. Nothing else is shared with the C++ solver: no strongly connected components, no limits
worked out by hand; the ridge finds them.

``fit_mp`` is the same reference in mpmath's arbitrary precision with a plain damped Newton, for
weights spanning more orders of magnitude than float64 optimisers resolve (the property script's
"extreme_weights" arenas). It needs mpmath, which the test suite does not use.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize, root

LN10 = math.log(10.0)
CODES = {"model_a": 0, "model_b": 1, "tie": 2}


class Design:
    """Distinct design rows of RouteLLM's Elo regression over players (tiers or models)."""

    def __init__(self, player_a, player_b, outcome, n_players: int):
        a = np.asarray(player_a, dtype=np.int64)
        b = np.asarray(player_b, dtype=np.int64)
        outcome = np.asarray(outcome)
        # Self rows (a == b): only model_b's -ln(10) survives; encode the missing +ln(10) column as n.
        a_col = np.where(a == b, n_players, a)
        keys, self.inverse = np.unique(a_col * (n_players + 1) + b, return_inverse=True)
        self.row_a, self.row_b = keys // (n_players + 1), keys % (n_players + 1)  # row_a == n: self row
        self.x = np.zeros((len(keys), n_players))
        rows = np.arange(len(keys))
        has_a = self.row_a < n_players
        self.x[rows[has_a], self.row_a[has_a]] = LN10
        self.x[rows, self.row_b] = -LN10
        # Per battle, duplicated: model_a win -> two "1" rows, tie -> one each, model_b -> two "0" rows.
        self.c1 = np.select([outcome == 0, outcome == 2], [2.0, 1.0], 0.0)
        self.c0 = np.select([outcome == 1, outcome == 2], [2.0, 1.0], 0.0)
        self.n_players = n_players

    def counts(self, weights=None):
        w = np.ones(len(self.inverse)) if weights is None else np.asarray(weights, dtype=np.float64)
        y1 = np.bincount(self.inverse, w * self.c1, minlength=self.x.shape[0])
        y0 = np.bincount(self.inverse, w * self.c0, minlength=self.x.shape[0])
        return y1, y0

    def regauge(self, beta, y1, y0):
        """sklearn's gauge: zero sum over each connected group of players that has no self row."""
        n = self.n_players
        parent = list(range(n + 1))  # n: the fixed zero that self rows play against

        def find(v):
            while parent[v] != v:
                parent[v] = parent[parent[v]]
                v = parent[v]
            return v

        used = np.zeros(n, dtype=bool)
        for k in np.flatnonzero((y1 + y0) > 0):
            a, b = int(self.row_a[k]), int(self.row_b[k])
            parent[find(a)] = find(b)
            used[b] = True
            if a < n:
                used[a] = True
        beta = np.array(beta, dtype=object if isinstance(beta[0], _mp_types()) else np.float64)
        groups: dict[int, list[int]] = {}
        for p in range(n):
            if used[p]:
                groups.setdefault(find(p), []).append(p)
            else:
                beta[p] = 0 * beta[p]
        for root_, members in groups.items():
            if root_ == find(n):
                continue  # tied to the fixed zero
            mean = sum(beta[p] for p in members) / len(members)
            for p in members:
                beta[p] = beta[p] - mean
        return beta


def _mp_types():
    try:
        import mpmath

        return (mpmath.mpf,)
    except ImportError:  # pragma: no cover
        return ()


def _softplus(z):
    return np.logaddexp(0.0, z)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def fit(design: Design, y1, y0, eps: float = 1e-12, shape=None) -> np.ndarray:
    """Ratings beta in sklearn's gauge (log10 units: P(i beats j) = 1 / (1 + 10 ** -(beta_i - beta_j)))."""
    x = design.x
    keep = (y1 + y0) > 0
    x, y1k, y0k = x[keep], y1[keep], y0[keep]
    total = float(np.sum(y1k + y0k))
    y1k, y0k = y1k / total, y0k / total
    c = y1k + y0k
    h0 = np.einsum("k,kp,kp->p", c / 4.0, x, x)  # Hessian diagonal at 0
    active = h0 > 0
    d = np.zeros(design.n_players)
    d[active] = 1.0 / np.sqrt(h0[active])
    xs = x * d  # design in the scaled coordinates u
    s = np.ones(design.n_players) if shape is None else np.asarray(shape, dtype=np.float64)

    def f(u):
        z = xs @ u
        return float(np.sum(y1k * _softplus(-z) + y0k * _softplus(z)) + eps * np.sum(s * u * u))

    def grad(u):
        z = xs @ u
        return xs.T @ (c * _sigmoid(z) - y1k) + 2 * eps * s * u

    def hess(u):
        z = xs @ u
        h = c * _sigmoid(z) * _sigmoid(-z)
        return (xs * h[:, None]).T @ xs + np.diag(2 * eps * s)

    # The trust region's ratio test compares objective values, which rounding blurs near the
    # optimum (changes ~1e-18 of a sum ~1); MINPACK's hybrid method then polishes the stationarity
    # equations grad = 0 directly.
    res = minimize(f, np.zeros(design.n_players), jac=grad, hess=hess, method="trust-exact",
                   options={"gtol": 1e-9, "maxiter": 5000})
    sol = root(grad, res.x, jac=hess, method="hybr", options={"xtol": 1e-14})
    u = sol.x if np.max(np.abs(grad(sol.x))) <= np.max(np.abs(grad(res.x))) else res.x
    if not np.all(np.isfinite(u)) or np.max(np.abs(grad(u))) > 1e-11:
        raise RuntimeError(f"reference fit did not converge: {res.message} / {sol.message}")
    return design.regauge(u * d, y1, y0)


def fit_mp(design: Design, weights, eps: float | str = 1e-30, shape=None, dps: int = 120) -> list:
    """``fit`` in mpmath precision for battle weights ``weights``: damped Newton with exact objective
    comparisons, continued from equal weights through ``weights ** alpha``, alpha = 0, 0.05, .., 1
    (each stage starts from the previous optimum, so no stage starts far from its own)."""
    import mpmath as mp

    mp.mp.dps = dps
    n = design.n_players
    ln10 = mp.log(10)
    s = [mp.mpf(1)] * n if shape is None else [mp.mpf(float(v)) for v in shape]
    y1, y0 = design.counts(weights)
    keep = np.flatnonzero((y1 + y0) > 0)
    pairs_ = [(int(design.row_a[k]), int(design.row_b[k])) for k in keep]

    def z_of(beta, a, b):
        return ln10 * ((beta[a] if a < n else 0) - beta[b])

    def stage_rows(alpha):
        c1, c0 = design.counts(np.asarray(weights, dtype=np.float64) ** alpha)
        rows = [(a, b, mp.mpf(float(c1[k])), mp.mpf(float(c0[k]))) for (a, b), k in zip(pairs_, keep)]
        total = sum(r[2] + r[3] for r in rows)
        return [(a, b, p / total, q / total) for a, b, p, q in rows]

    final = stage_rows(1.0)
    h0 = [mp.mpf(0)] * n  # the ridge's scale per player, from the final weights
    for a, b, p, q in final:
        for v in (a, b):
            if v < n:
                h0[v] += (p + q) * ln10**2 / 4
    active = [p for p in range(n) if h0[p] > 0]
    ridge = [mp.mpf(eps) * s[p] * h0[p] for p in range(n)]

    def solve(beta, rows, tol):
        def f(b_):
            out = sum(ridge[p] * b_[p] ** 2 for p in range(n))
            for a, b, p, q in rows:
                z = z_of(b_, a, b)
                out += p * mp.log1p(mp.exp(-z)) + q * mp.log1p(mp.exp(z))
            return out

        current = f(beta)
        for _ in range(3000):
            g = [2 * ridge[p] * beta[p] for p in range(n)]
            H = mp.zeros(n, n)
            for p in range(n):
                H[p, p] = 2 * ridge[p]
            for a, b, p, q in rows:
                z = z_of(beta, a, b)
                sig = 1 / (1 + mp.exp(-z))
                dz, h = ((p + q) * sig - p) * ln10, (p + q) * sig * (1 - sig) * ln10**2
                g[b] -= dz
                H[b, b] += h
                if a < n:
                    g[a] += dz
                    H[a, a] += h
                    H[a, b] -= h
                    H[b, a] -= h
            sub = mp.matrix([[H[i, j] for j in active] for i in active])
            step_active = mp.lu_solve(sub, mp.matrix([-g[i] for i in active]))
            step = [mp.mpf(0)] * n
            for k, p in enumerate(active):
                step[p] = step_active[k]
            if max(abs(v) for v in step) < tol:
                return beta
            # No row's logit moves by more than 30 per step: longer steps can push light rows so
            # far that Newton needs ages to bring them back.
            move = max(abs(z_of(step, a, b)) for a, b, _, _ in rows)
            t_max = min(mp.mpf(1), 30 / move)
            t, trial = t_max, None
            while t > mp.mpf(10) ** -(dps // 2):  # backtrack until the objective decreases...
                cand = [beta[p] + t * step[p] for p in range(n)]
                value = f(cand)
                if value < current:
                    trial = (cand, value)
                    break
                t /= 2
            if trial is None:
                raise RuntimeError("mpmath reference fit: no decrease along the Newton direction")
            while t == t_max and t_max < 30 / move:  # ...or double while it keeps decreasing
                t_max = min(2 * t_max, 30 / move)
                cand = [beta[p] + t_max * step[p] for p in range(n)]
                value = f(cand)
                if not value < trial[1]:
                    break
                trial, t = (cand, value), t_max
            beta, current = trial
        raise RuntimeError("mpmath reference fit did not converge")

    beta = [mp.mpf(0)] * n
    for k in range(21):
        alpha = k / 20
        beta = solve(beta, final if k == 20 else stage_rows(alpha), mp.mpf(10) ** (-40 if k == 20 else -6))
    return list(design.regauge(beta, y1, y0))


def win_rate(beta, strong: int, weak: int) -> float:
    diff = beta[strong] - beta[weak]
    return float(1 / (1 + 10 ** (-diff)))


def win_rates(design: Design, y1, y0, pairs, seed: int = 0, weights=None):
    """Win rate limit per (strong, weak) player pair, or None where the likelihood leaves it free.

    With battle ``weights`` (which must give y1 and y0), fit_mp solves instead, with a ridge far
    below the lightest rows: eps = 1e-30 * (smallest weight / largest)."""
    shape = np.random.default_rng(seed).uniform(0.2, 5.0, design.n_players)
    if weights is not None:
        span = float(np.min(weights) / np.max(weights))
        decades = int(-math.log10(max(span, 1e-300)))
        eps, dps = f"1e-{30 + decades}", 90 + 2 * decades  # a string: below float64's range
        plain = fit_mp(design, weights, eps=eps, dps=dps)
        shaped = fit_mp(design, weights, eps=eps, shape=shape, dps=dps)
    else:
        plain, shaped = fit(design, y1, y0), fit(design, y1, y0, shape=shape)
    out = []
    for s, w in pairs:
        a, b = win_rate(plain, s, w), win_rate(shaped, s, w)
        out.append(a if abs(a - b) <= 1e-6 else None)
    return out


def has_finite_maximum(design: Design, y1, y0) -> bool:
    """Whether the ratings have a finite maximum: shrinking the ridge 100-fold barely moves them."""
    a, b = fit(design, y1, y0, eps=1e-10), fit(design, y1, y0, eps=1e-12)
    return bool(np.max(np.abs(a - b)) < 1e-4)


def similarity_weights(battle_embeddings, query) -> np.ndarray:
    """RouteLLM's get_weightings in float64: 10 * 10 ** (sim / max sim)."""
    e = np.asarray(battle_embeddings, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    sims = e @ q / (np.linalg.norm(e, axis=1) * np.linalg.norm(q))
    return 10.0 * 10.0 ** (sims / np.max(sims))


def tier_design(router, model_a, model_b, winner) -> Design:
    """The per-query tier-level design of a built router (players are RouteLLM's tier numbers)."""
    tier = router.model2tier
    outcome = np.array([CODES[w] for w in winner])
    return Design([tier[m] for m in model_a], [tier[m] for m in model_b], outcome, max(tier.values()) + 1)


def model_design(models, model_a, model_b, winner) -> Design:
    index = {m: i for i, m in enumerate(models)}
    outcome = np.array([CODES[w] for w in winner])
    return Design([index[m] for m in model_a], [index[m] for m in model_b], outcome, len(models))


# ---------------------------------------------------------------------------------------------
# Seeded random arenas for the property check (scripts/elo_property_check.py) and its CI sample.

#: Arena kinds compared with the scipy reference; "extreme_weights" needs fit_mp.
KINDS = ("position", "strength", "lopsided", "ties", "small", "wide_weights", "anchor", "disconnected")
PRECISE_KINDS = ("extreme_weights",)


def _queries_with_max_similarity(rng, emb, base, targets):
    """Queries pointing away from the arena's common direction ``base`` until their largest
    cosine similarity is the target: weights 10 ** (sim / max sim) then span many decades."""
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    out = []
    for target in targets:
        v = rng.normal(size=emb.shape[1])
        v /= np.linalg.norm(v)
        lo, hi = 0.0, 50.0
        for _ in range(200):  # the largest similarity decreases as t grows
            t = 0.5 * (lo + hi)
            q = v - t * base
            lo, hi = (t, hi) if np.max(unit @ q) / np.linalg.norm(q) > target else (lo, t)
        out.append(v - hi * base)
    return np.array(out)


def random_arena(seed: int, kind: str | None = None, big: bool = False) -> dict:
    """A seeded arena of varied size, model count, tier count and outcome mix.

    ``big`` gives the tracker's shape: 55,400 battles, 12 models, 10 tiers, position-biased outcomes
    (model_a wins 45%, model_b 35%, tie 20%, whatever the models).
    """
    rng = np.random.default_rng(seed)
    if big:
        kind, n, m, tiers, dim, clusters = "big_position", 55_400, 12, 10, 16, 8
    else:
        kinds = KINDS + PRECISE_KINDS
        kind = kind or kinds[seed % len(kinds)]
        m = int(rng.integers(3, 17))
        tiers = int(rng.integers(2, 13))
        dim = int(rng.integers(3, 33))
        clusters = int(rng.integers(1, 9))
        n = int(rng.integers(8, 120)) if kind == "small" else int(np.exp(rng.uniform(np.log(200), np.log(12_000))))
    centers = rng.normal(size=(clusters, dim))
    cluster = rng.integers(0, clusters, n)
    emb = centers[cluster] + rng.uniform(0.3, 1.2) * rng.normal(size=(n, dim))
    if rng.random() < 0.3:  # some battles share a prompt (and its embedding row)
        shared = np.flatnonzero(rng.random(n) < 0.3)
        shared = shared[shared > 0]
        source = (rng.random(len(shared)) * shared).astype(int)
        emb[shared], cluster[shared] = emb[source], cluster[source]
    if kind == "disconnected":  # two halves of the models never meet
        m = max(m, 4)
        half = m // 2
        lower = rng.random(n) < 0.5
        a = np.where(lower, rng.integers(0, half, n), rng.integers(half, m, n))
        b = np.where(lower, (a + rng.integers(1, half, n)) % half,
                     half + (a - half + rng.integers(1, m - half, n)) % (m - half))
    else:
        a = rng.integers(0, m, n)
        b = (a + rng.integers(1, m, n)) % m
    if kind not in ("position", "big_position") and rng.random() < 0.2:  # a model against itself
        same = rng.random(n) < 0.05
        b[same] = a[same]
    if kind in ("position", "big_position"):
        u = rng.random(n)
        outcome = np.where(u < 0.45, 0, np.where(u < 0.80, 1, 2))
    else:
        spread = {"lopsided": 3.0, "small": 1.5}.get(kind, 1.0)
        tie_rate = rng.uniform(0.4, 0.8) if kind == "ties" else rng.choice([0.0, 0.1, 0.2, 0.3])
        strength = rng.normal(0, spread, m)
        offset = rng.normal(0, 0.8, (clusters, m))
        logit = strength[a] - strength[b] + offset[cluster, a] - offset[cluster, b] + rng.normal(0, 0.3)
        p = 1 / (1 + np.exp(-logit))
        outcome = np.where(rng.random(n) < tie_rate, 2, np.where(rng.random(n) < p, 0, 1))
    names = [f"m{i}" for i in range(m)]
    queries = centers[rng.integers(0, clusters, 4)] + 0.6 * rng.normal(size=(4, dim))
    if kind in ("wide_weights", "extreme_weights"):
        base = rng.normal(size=dim)
        base /= np.linalg.norm(base)
        emb = emb + 4.0 * np.sqrt(dim) * base
        # wide: largest similarity 0.15-0.5 (weights over ~2-7 decades); extreme: 0.005-0.05 (20-120).
        low, high = (0.15, 0.5) if kind == "wide_weights" else (0.005, 0.05)
        queries = _queries_with_max_similarity(rng, emb, base, rng.uniform(low, high, 4))
    arena = {
        "kind": kind,
        "seed": seed,
        "num_tiers": tiers,
        "model_a": [names[i] for i in a],
        "model_b": [names[i] for i in b],
        "winner": list(np.array(["model_a", "model_b", "tie"])[outcome]),
        "embeddings": emb.astype(np.float32),
        "queries": queries.astype(np.float32),
        "names": names,
    }
    if kind == "anchor":
        _one_sided_inside_tiers(arena, "model_a" if rng.random() < 0.5 else "model_b")
    return arena


def _one_sided_inside_tiers(arena: dict, winner: str) -> None:
    """Makes every battle inside one tier a win for the same side: the per-query fits then have no
    finite maximum (RouteLLM's same-tier rows all point one way), but every pair's win rate has a
    limit. Tiers are recomputed after the change until they stop moving."""
    import routellm_fast as rf

    for _ in range(4):
        try:
            router = rf.SWRankingRouter.from_battles(arena["model_a"], arena["model_b"], arena["winner"],
                                                     arena["embeddings"], arena["names"][0], arena["names"][1],
                                                     num_tiers=arena["num_tiers"])
        except ValueError:
            return
        tier = router.model2tier
        inside = [i for i, (x, y) in enumerate(zip(arena["model_a"], arena["model_b"])) if tier[x] == tier[y]]
        if all(arena["winner"][i] == winner for i in inside):
            return
        for i in inside:
            arena["winner"][i] = winner


def check_arena(arena: dict, max_pairs: int = 12, precise: bool | None = None, allow_precise: bool = True) -> dict:
    """Builds the router and compares every query x tier pair (up to ``max_pairs``) with the reference.

    Queries whose weights span more than 6 decades are checked with ``fit_mp`` (mpmath), or skipped
    when ``allow_precise`` is false.

    Returns counts: pairs compared, refusals where the reference has a limit (must be 0), refusals
    where it has none (correct), answers where it has none (must be 0), the largest win-rate
    difference, and whether construction was refused (correct only without finite model ratings).
    """
    import routellm_fast as rf

    precise = arena["kind"] in PRECISE_KINDS if precise is None else precise
    out = {"seed": arena["seed"], "kind": arena["kind"], "compared": 0, "bad_refusals": 0, "good_refusals": 0,
           "missed_refusals": 0, "max_diff": 0.0, "construction_refused": False, "bad_construction": False,
           "ratings_diff": 0.0, "precise": 0, "messages": []}
    ma, mb, win, emb = arena["model_a"], arena["model_b"], arena["winner"], arena["embeddings"]
    models = list(dict.fromkeys(list(ma) + list(mb)))
    mdesign = model_design(models, ma, mb, win)
    try:
        router = rf.SWRankingRouter.from_battles(ma, mb, win, emb, models[0], models[-1],
                                                 num_tiers=arena["num_tiers"])
    except ValueError as e:
        out["construction_refused"] = True
        if "no finite maximum-likelihood" not in str(e) or has_finite_maximum(mdesign, *mdesign.counts()):
            out["bad_construction"] = True
            out["messages"].append(f"construction: {e}")
        return out
    # Global ratings (Elo) against the reference, both in sklearn's gauge.
    theirs = 400.0 * fit(mdesign, *mdesign.counts()) + 1000.0
    ours = np.array([router.ratings[m] for m in models])
    out["ratings_diff"] = float(np.max(np.abs(ours - theirs)))
    if out["ratings_diff"] > 1e-6:
        out["messages"].append(f"global ratings differ by {out['ratings_diff']}")

    design, tier = tier_design(router, ma, mb, win), router.model2tier
    rep: dict[int, str] = {}
    for m in models:
        rep.setdefault(tier[m], m)
    pairs = [(s, w) for s in sorted(rep) for w in sorted(rep) if s < w]
    if len(pairs) > max_pairs:
        rng = np.random.default_rng(arena["seed"] + 1)
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), max_pairs, replace=False))]
    if not pairs:
        return out
    for q_index, q in enumerate(arena["queries"]):
        weights = similarity_weights(emb, q)
        if not np.all(np.isfinite(weights)):
            continue  # RouteLLM's own formula overflows here; nothing to compare with
        # float64 optimisers resolve weights over ~6 decades to 1e-8 in win rate; beyond, mpmath.
        span = float(np.min(weights) / np.max(weights))
        if (precise or span < 1e-6) and not allow_precise:
            continue
        use_mp = precise or span < 1e-6
        ref = win_rates(design, *design.counts(weights), pairs, seed=arena["seed"],
                        weights=weights if use_mp else None)
        out["precise"] += use_mp
        for (s, w), want in zip(pairs, ref):
            try:
                got = float(router.score_pair(q[None, :], rep[s], rep[w])[0])
            except ValueError as e:
                if want is None:
                    out["good_refusals"] += 1
                else:
                    out["bad_refusals"] += 1
                    out["messages"].append(f"query {q_index} tiers {s}/{w}: refused ({e}); reference {want}")
                continue
            if want is None:
                out["missed_refusals"] += 1
                out["messages"].append(f"query {q_index} tiers {s}/{w}: answered {got}, reference has no limit")
                continue
            out["compared"] += 1
            out["max_diff"] = max(out["max_diff"], abs(got - want))
            if abs(got - want) > 1e-8:
                out["messages"].append(f"query {q_index} tiers {s}/{w}: {got!r} vs reference {want!r}")
    return out
