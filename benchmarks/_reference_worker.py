"""Times RouteLLM's own routers; run by benchmarks/run.py inside the reference environment.

    <reference python> benchmarks/_reference_worker.py TASK.json

The environment has ``torch`` (CPU) and ``routellm==0.2.0``. Only RouteLLM's OpenAI embedding
client is replaced, by a lookup of the same fixed vectors routellm_fast receives; RouteLLM's router
and controller classes run unmodified. Inputs come as .npy files and parquet dataset directories
named in the task; results (timings, win rates, peak RSS) go to the task's ``output`` JSON path.

Tasks (``kind``): ``make_mf_checkpoint`` (a random-weight ``MFModel`` written with its own
``save_pretrained``), ``mf`` (``MatrixFactorizationRouter.calculate_strong_win_rate`` per query),
``controller_batch`` (``Controller.batch_calculate_win_rate`` over all queries, mf router) and
``sw`` (``SWRankingRouter`` built from the arena datasets, then per-query decisions).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

os.environ.setdefault("OPENAI_API_KEY", "unused")  # RouteLLM builds an OpenAI client at import
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import routellm.routers.matrix_factorization.model as rl_mf
import routellm.routers.routers as rl_routers
import routellm.routers.similarity_weighted.utils as rl_sw

Result = dict[str, Any]

#: prompt text -> the fixed embedding the stub client returns for it
VECTORS: dict[str, list[float]] = {}


class FixedEmbeddings:
    """Stands in for ``OpenAI().embeddings``: ``create`` answers from :data:`VECTORS`."""

    def create(self, input: list[str], model: str) -> SimpleNamespace:
        return SimpleNamespace(data=[SimpleNamespace(embedding=VECTORS[t]) for t in input])


def patch_embedding_client() -> None:
    """Replace the OpenAI client in each module that imported it by name; nothing else changes."""
    client = SimpleNamespace(embeddings=FixedEmbeddings())
    for module in (rl_routers, rl_mf, rl_sw):
        module.OPENAI_CLIENT = client


def register_queries(path: str, prefix: str) -> list[str]:
    """Load query embeddings from ``path`` (.npy) and give each a prompt text the stub resolves."""
    queries = np.load(path)
    texts = [f"{prefix} query {i}" for i in range(len(queries))]
    VECTORS.update({t: v.tolist() for t, v in zip(texts, queries)})
    return texts


def _status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MB, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ``ru_maxrss``: Linux carries ``ru_maxrss`` over from the
    parent across fork + exec, so a small worker of a big parent would report the parent's peak."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_calls(fn: Callable[[str], float], texts: list[str]) -> tuple[list[float], list[float]]:
    """Per-call wall times (s) and return values of ``fn`` over ``texts``, one call at a time."""
    times, values = [], []
    for text in texts:
        start = time.perf_counter()
        values.append(float(fn(text)))
        times.append(time.perf_counter() - start)
    return times, values


def make_mf_checkpoint(task: Result) -> Result:
    """A random-weight MFModel (RouteLLM's shapes: 128 hidden, 64 models) saved by its own
    ``save_pretrained``; the classifier is scaled so win rates spread over (0.05, 0.95)."""
    import torch

    torch.manual_seed(task["seed"])
    model = rl_mf.MFModel(dim=128, num_models=64, text_dim=task["dim"], num_classes=1, use_proj=True)
    with torch.no_grad():
        model.classifier[0].weight.mul_(1000.0)
    model.save_pretrained(task["checkpoint"])
    return {}


def run_mf(task: Result) -> Result:
    """Build RouteLLM's MatrixFactorizationRouter and time one decision per query."""
    texts = register_queries(task["queries"], "mf")
    start = time.perf_counter()
    router = rl_routers.MatrixFactorizationRouter(task["checkpoint"], task["strong"], task["weak"])
    build = time.perf_counter() - start
    resident = _status_mb("VmRSS")
    router.calculate_strong_win_rate(texts[0])  # warm-up
    times, values = time_calls(router.calculate_strong_win_rate, texts)
    return {"build_s": build, "rss_after_build_mb": resident, "times_s": times, "win_rates": values}


def run_controller_batch(task: Result, repeats: int = 3) -> Result:
    """Time RouteLLM's Controller.batch_calculate_win_rate over a pandas Series of all queries
    (mf router), ``repeats`` whole calls."""
    import pandas as pd
    from routellm.controller import Controller

    texts = register_queries(task["queries"], "batch")
    controller = Controller(routers=["mf"], strong_model=task["strong"], weak_model=task["weak"],
                            config={"mf": {"checkpoint_path": task["checkpoint"]}})
    series = pd.Series(texts)
    controller.batch_calculate_win_rate(series[:10], "mf")  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        values = controller.batch_calculate_win_rate(series, "mf")
        times.append(time.perf_counter() - start)
    return {"times_s": times, "win_rates": [float(v) for v in values]}


def run_sw(task: Result) -> Result:
    """Build RouteLLM's SWRankingRouter from the arena dataset directories (``datasets.load_dataset``
    reads their parquet) and time one decision per query."""
    texts = register_queries(task["queries"], "sw")
    start = time.perf_counter()
    router = rl_routers.SWRankingRouter(
        arena_battle_datasets=[task["battles"]], arena_embedding_datasets=[task["embeddings"]],
        strong_model=task["strong"], weak_model=task["weak"], num_tiers=10,
    )
    build = time.perf_counter() - start
    resident = _status_mb("VmRSS")
    times, values = time_calls(router.calculate_strong_win_rate, texts)
    return {"build_s": build, "rss_after_build_mb": resident, "times_s": times, "win_rates": values,
            "model2tier": {m: int(t) for m, t in router.model2tier.items()}}


TASKS: dict[str, Callable[[Result], Result]] = {
    "make_mf_checkpoint": make_mf_checkpoint, "mf": run_mf, "controller_batch": run_controller_batch, "sw": run_sw,
}


def main() -> int:
    warnings.filterwarnings("ignore")  # sklearn's FutureWarning on penalty=None, once per decision
    task = json.loads(Path(sys.argv[1]).read_text())
    patch_embedding_client()
    result = TASKS[task["kind"]](task)
    result["peak_rss_mb"] = peak_rss_mb()
    Path(task["output"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
