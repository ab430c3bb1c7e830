"""Times RouteLLM's own routers; run by benchmarks/run.py inside the reference environment.

    <reference python> benchmarks/_reference_worker.py TASK.json

The environment has ``torch`` (CPU) and ``routellm==0.2.0``. Only RouteLLM's OpenAI embedding
client is replaced, by a lookup of the same fixed vectors routellm_fast receives; RouteLLM's router
classes run unmodified. Results (timings, win rates, peak RSS) go to the ``output`` path of the task.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

os.environ.setdefault("OPENAI_API_KEY", "unused")  # RouteLLM builds an OpenAI client at import
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import routellm.routers.matrix_factorization.model as rl_mf  # noqa: E402
import routellm.routers.routers as rl_routers  # noqa: E402
import routellm.routers.similarity_weighted.utils as rl_sw  # noqa: E402

VECTORS: dict[str, list[float]] = {}


class FixedEmbeddings:
    def create(self, input: list[str], model: str) -> SimpleNamespace:  # noqa: A002 - OpenAI's name
        return SimpleNamespace(data=[SimpleNamespace(embedding=VECTORS[t]) for t in input])


def patch_embedding_client() -> None:
    client = SimpleNamespace(embeddings=FixedEmbeddings())
    for module in (rl_routers, rl_mf, rl_sw):  # the client is imported by name in each
        module.OPENAI_CLIENT = client


def time_calls(fn, texts: list[str]) -> tuple[list[float], list[float]]:
    times, values = [], []
    for text in texts:
        start = time.perf_counter()
        values.append(float(fn(text)))
        times.append(time.perf_counter() - start)
    return times, values


def make_mf_checkpoint(task: dict) -> dict:
    import torch

    torch.manual_seed(task["seed"])
    model = rl_mf.MFModel(dim=128, num_models=64, text_dim=task["dim"], num_classes=1, use_proj=True)
    with torch.no_grad():
        model.classifier[0].weight.mul_(1000.0)  # spread win rates over (0.05, 0.95)
    model.save_pretrained(task["checkpoint"])
    return {}


def run_mf(task: dict) -> dict:
    queries = np.load(task["queries"])
    texts = [f"mf query {i}" for i in range(len(queries))]
    VECTORS.update({t: v.tolist() for t, v in zip(texts, queries)})
    start = time.perf_counter()
    router = rl_routers.MatrixFactorizationRouter(task["checkpoint"], task["strong"], task["weak"])
    build = time.perf_counter() - start
    router.calculate_strong_win_rate(texts[0])  # warm-up
    times, values = time_calls(router.calculate_strong_win_rate, texts)
    return {"build_s": build, "times_s": times, "win_rates": values}


def run_controller_batch(task: dict) -> dict:
    """RouteLLM's Controller.batch_calculate_win_rate over a pandas Series of prompts (mf router)."""
    import pandas as pd
    from routellm.controller import Controller

    queries = np.load(task["queries"])
    texts = [f"batch query {i}" for i in range(len(queries))]
    VECTORS.update({t: v.tolist() for t, v in zip(texts, queries)})
    controller = Controller(routers=["mf"], strong_model=task["strong"], weak_model=task["weak"],
                            config={"mf": {"checkpoint_path": task["checkpoint"]}})
    series = pd.Series(texts)
    controller.batch_calculate_win_rate(series[:10], "mf")  # warm-up
    start = time.perf_counter()
    values = controller.batch_calculate_win_rate(series, "mf")
    return {"batch_s": time.perf_counter() - start, "win_rates": [float(v) for v in values]}


def run_sw(task: dict) -> dict:
    queries = np.load(task["queries"])
    texts = [f"sw query {i}" for i in range(len(queries))]
    VECTORS.update({t: v.tolist() for t, v in zip(texts, queries)})
    start = time.perf_counter()
    router = rl_routers.SWRankingRouter(
        arena_battle_datasets=[task["battles"]], arena_embedding_datasets=[task["embeddings"]],
        strong_model=task["strong"], weak_model=task["weak"], num_tiers=10,
    )
    build = time.perf_counter() - start
    times, values = time_calls(router.calculate_strong_win_rate, texts)
    return {"build_s": build, "times_s": times, "win_rates": values,
            "model2tier": {m: int(t) for m, t in router.model2tier.items()}}


def main() -> int:
    import warnings

    warnings.filterwarnings("ignore")  # sklearn's FutureWarning on penalty=None, once per decision
    task = json.loads(Path(sys.argv[1]).read_text())
    patch_embedding_client()
    kinds = {"make_mf_checkpoint": make_mf_checkpoint, "mf": run_mf, "sw": run_sw, "controller_batch": run_controller_batch}
    result = kinds[task["kind"]](task)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(task["output"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
