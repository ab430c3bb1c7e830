"""The GPU backend against the CPU core, in one run, on a synthetic arena of RouteLLM's size.

    python benchmarks/bench_cuda.py [--battles 164400] [--dim 1536] [--json out.json]

Needs an NVIDIA GPU and ``pip install "routellm_fast[cuda]"``; without one it says so and exits 2.
Times, for sw_ranking over ``--battles`` battles of ``--dim``-d embeddings (RouteLLM's 1536-d
text-embedding-3-small shape, clustered like real prompts, as benchmarks/run.py builds them): one
decision and batches of 1,024 on the GPU in each precision, and one decision and a batch of 64 on
the CPU core; for mf (1536-d, 64 models): batches of 1,000,000 on the GPU and on the CPU core. Each
GPU row states the answers' largest difference from the CPU core's. Floors: the arena's bytes and
the GEMM's FLOPs per batch, printed next to the times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import routellm_fast as rf

sys.path.insert(0, str(Path(__file__).parent))
from run import clustered, unit_rows  # noqa: E402

STRONG, WEAK = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"


def median_s(fn, repeats: int) -> float:
    fn()  # warm-up (and, on the GPU, the one-time table copy and kernel compilation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def synthetic_sw(n_battles: int, dim: int, rng: np.random.Generator, **kw) -> tuple[rf.SWRankingRouter, np.ndarray]:
    models = list(rf.MODEL_IDS)
    centers = unit_rows(rng, 200, dim)
    emb, cluster = clustered(rng, centers, n_battles)
    strength = rng.normal(0, 1, len(models))
    offset = rng.normal(0, 0.5, (len(centers), len(models)))
    a = rng.integers(len(models), size=n_battles)
    b = (a + rng.integers(1, len(models), size=n_battles)) % len(models)
    p = 1 / (1 + np.exp(-(strength[a] - strength[b] + offset[cluster, a] - offset[cluster, b])))
    winner = np.where(rng.random(n_battles) < 0.25, "tie", np.where(rng.random(n_battles) < p, "model_a", "model_b"))
    router = rf.SWRankingRouter.from_battles([models[i] for i in a], [models[i] for i in b], list(winner), emb,
                                             STRONG, WEAK, **kw)
    queries, _ = clustered(rng, centers, 1024)
    return router, queries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--battles", type=int, default=164_400)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    info = rf.backend_info()
    if not info["cuda_available"]:
        print(f"no GPU: {info['cuda_reason']}", file=sys.stderr)
        return 2
    rows: list[dict] = []
    rng = np.random.default_rng(0)
    cpu, queries = synthetic_sw(args.battles, args.dim, rng, device="cpu", storage="float32")
    P = cpu.num_prompts
    print(f"arena: {args.battles:,} battles, {P:,} distinct prompts, {args.dim}-d; {info.get('cuda_device')}", file=sys.stderr)
    want = cpu.score_embeddings(queries[:64])
    rows.append({"case": "sw_ranking CPU core, 1 decision (fp32 rows)", "s": median_s(lambda: cpu.score_embeddings(queries[:1]), 5), "n": 1})
    rows.append({"case": "sw_ranking CPU core, batch of 64", "s": median_s(lambda: cpu.score_embeddings(queries[:64]), 2), "n": 64})
    for precision in ("float64", "float32", "float16"):
        gpu, _ = synthetic_sw(args.battles, args.dim, np.random.default_rng(0), device="cuda", storage="float32",
                              gpu_precision=precision)
        diff = float(np.max(np.abs(gpu.score_embeddings(queries[:64]) - want)))
        rows.append({"case": f"sw_ranking GPU {precision}, 1 decision", "n": 1, "max_diff_vs_cpu": diff,
                     "s": median_s(lambda g=gpu: g.score_embeddings(queries[:1]), 20)})
        rows.append({"case": f"sw_ranking GPU {precision}, batch of 1,024", "n": 1024, "max_diff_vs_cpu": diff,
                     "s": median_s(lambda g=gpu: g.score_embeddings(queries), 5),
                     "floor": f"GEMM {2 * 1024 * P * args.dim / 1e9:.0f} GFLOP; arena {P * args.dim * {'float64': 8, 'float32': 4, 'float16': 2}[precision] / 1e9:.2f} GB"})
        del gpu
    # mf: RouteLLM's shape (1536-d, 64 models), random weights
    import tempfile

    from safetensors.numpy import save_file

    with tempfile.TemporaryDirectory() as tmp:
        save_file({"P.weight": rng.normal(size=(64, 128)).astype(np.float32),
                   "text_proj.0.weight": (rng.uniform(-1, 1, (128, 1536)) / np.sqrt(1536)).astype(np.float32),
                   "classifier.0.weight": rng.uniform(-1, 1, (1, 128)).astype(np.float32)}, f"{tmp}/model.safetensors")
        mf_cpu = rf.MatrixFactorizationRouter(tmp, STRONG, WEAK, device="cpu")
        mf_gpu = rf.MatrixFactorizationRouter(tmp, STRONG, WEAK, device="cuda")
        emb = unit_rows(rng, 1_000_000, 1536)
        diff = float(np.max(np.abs(mf_gpu.score_embeddings(emb[:100_000]) - mf_cpu.score_embeddings(emb[:100_000]))))
        rows.append({"case": "mf CPU core, batch of 1,000,000", "n": len(emb), "s": median_s(lambda: mf_cpu.score_embeddings(emb), 3)})
        rows.append({"case": "mf GPU (float64 GEMV), batch of 1,000,000", "n": len(emb), "max_diff_vs_cpu": diff,
                     "s": median_s(lambda: mf_gpu.score_embeddings(emb), 3), "floor": f"{emb.nbytes / 1e9:.1f} GB host->device"})
    print("| case | per call | decisions/s | max diff vs CPU | floor |\n| --- | ---: | ---: | ---: | --- |")
    for r in rows:
        print(f"| {r['case']} | {r['s'] * 1e3:.3f} ms | {r['n'] / r['s']:,.0f} | {r.get('max_diff_vs_cpu', '')} | {r.get('floor', '')} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
