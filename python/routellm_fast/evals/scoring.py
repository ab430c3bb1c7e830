"""Routers' win rates on a benchmark, cached per router configuration, and the evaluation run.

Win rates are cached per router *configuration* (its ``fingerprint``: a digest of its weights or
arena, model pair and embedder), so a retrained router is never served stale results; routers on one
embedder share one embedding pass and an on-disk embedding cache.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..embedders import embed_all, prompt_key
from ..routers import EmbeddingRouter, RandomRouter
from .baselines import LENGTH, length_baseline_for
from .benchmarks import Benchmark
from .metrics import EvalResult, evaluate_win_rates

__all__ = ["router_win_rates", "run_eval"]


#: Embedded to tell two computations of one embedding model apart (float32 vs int8, say): the
#: caches of embeddings and win rates are keyed by what the embedder returns for it, not its name alone.
_PROBE = "routellm-fast evaluation cache probe: 12 + 30 = 42?"


def _embedder_key(embedder: Any) -> str:
    vector = np.asarray(embedder.embed([_PROBE]), dtype=np.float32)
    return hashlib.blake2b(np.round(vector, 4).tobytes(), digest_size=6).hexdigest()


def _cache_path(cache_dir: Path, benchmark: Benchmark, router: Any, method: str, embedder_key: str = "") -> Path | None:
    fingerprint = getattr(router, "fingerprint", None)
    if not fingerprint:
        return None
    digest = hashlib.blake2b(digest_size=12)
    digest.update(fingerprint.encode())
    digest.update(embedder_key.encode())
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
    prompt embeddings). The random router is scored ``random_iters`` times from its seed (so its
    results on a benchmark do not depend on what was evaluated before) and never cached; other
    routers without a ``fingerprint`` are scored afresh each time.
    """
    cache = Path(cache_dir) if cache_dir is not None else None
    out: dict[str, np.ndarray | list[np.ndarray]] = {}
    embedded: dict[tuple[str, int], np.ndarray] = {}
    probes: dict[tuple[str, int], str] = {}
    for method, router in routers.items():
        if isinstance(router, RandomRouter):  # from its seed on every benchmark, as RouteLLM's random.seed(0)
            runner = router.restarted()
            out[method] = [runner.score(benchmark.prompts) for _ in range(random_iters)]
            continue
        key = (router.embedding_model, router.embedding_dim) if isinstance(router, EmbeddingRouter) else None
        if cache is not None and key is not None and key not in probes:
            probes[key] = _embedder_key(router.embedder)
        probe = probes.get(key, "") if key is not None else ""
        path = _cache_path(cache, benchmark, router, method, probe) if cache is not None else None
        # overwrite_cache: True (every router) or the names of the routers to score again (RouteLLM's list)
        overwrite = overwrite_cache is True or (not isinstance(overwrite_cache, bool) and method in overwrite_cache)
        if path is not None and path.is_file() and not overwrite:
            out[method] = np.load(path)
            continue
        if key is not None:
            if key not in embedded:
                cache_file = cache / f"embeddings-{key[0].replace('/', '_')}-{key[1]}-{probe}.npz" if cache else None
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
    length_baseline: bool = False,
    bootstrap: int = 0,
    seed: int = 0,
) -> EvalResult:
    """Evaluate routers on a benchmark, RouteLLM's way. The training half of a benchmark that has
    one (MMLU, GSM8K, the ZeroEval sets) and prompts any of the routers was trained on are dropped
    first (``exclude_training_prompts``), so every router is measured on unseen items.

    ``length_baseline``: add the prompt-length baseline (:mod:`routellm_fast.evals.baselines`, method
    ``"length"``), fitted on the benchmark's training half, which is then left out whatever
    ``exclude_training_prompts`` says. ``bootstrap`` > 0: that many resamples (from ``seed``) give
    every method's 95% APGR interval and, with the baseline, each router's paired difference to it
    (:class:`~routellm_fast.evals.metrics.Bootstrap`)."""
    routers = dict(routers)
    notes: list[str] = []
    if length_baseline:
        if LENGTH in routers:
            raise ValueError(f"a router is named {LENGTH!r}, the name of the length baseline")
        baseline = length_baseline_for(benchmark, num_results)
        routers[LENGTH] = baseline
        notes.append(baseline.describe())
        if not exclude_training_prompts and baseline.training_prompt_keys:
            benchmark = benchmark.excluding(set(baseline.training_prompt_keys), "length baseline's training half")
    if exclude_training_prompts and benchmark.training_salt is not None:
        benchmark = benchmark.held_out_half()  # the half any router may have trained on
    if exclude_training_prompts:
        seen: set[bytes] = set()
        for router in routers.values():
            seen.update(getattr(router, "training_prompt_keys", ()) or ())
        if seen:
            benchmark = benchmark.excluding(seen, "seen in training")
    rates = router_win_rates(routers, benchmark, random_iters=random_iters, cache_dir=cache_dir,
                             overwrite_cache=overwrite_cache, progress=progress)
    result = evaluate_win_rates(benchmark, rates, num_results, bootstrap=bootstrap, seed=seed,
                                baseline=LENGTH if length_baseline else None)
    if bootstrap:
        notes.append(f"95% intervals: {bootstrap} bootstrap resamples of the {len(benchmark)} items, seed {seed}"
                     + (f"; {result.bootstrap.no_gap} resamples without a quality gap left out"
                        if result.bootstrap and result.bootstrap.no_gap else ""))
    result.notes = notes
    return result
