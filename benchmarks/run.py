"""routellm_fast against RouteLLM's own routers, on the same inputs, in one run.

    python benchmarks/run.py [--quick] [--reference-venv DIR | --reference-python PATH] [--out benchmarks/out]

RouteLLM runs in its own virtual environment: ``--reference-venv DIR`` creates it on first use
(``pip install torch==2.13.0``, the CPU wheel, then ``routellm==0.2.0``) and reuses it after;
``--reference-python`` names the Python of an existing one. RouteLLM runs there unmodified except
for its OpenAI embedding client, which returns the same fixed vectors routellm_fast receives
(benchmarks/_reference_worker.py). Without either, only our side is timed.

Writes ``OUT/results.json`` and ``OUT/results.md``; a full run (no ``--quick``) also refreshes
``benchmarks/RESULTS.md``. Every row says whether both sides' answers matched within the parity
tolerances (mf 1e-6, sw_ranking 1e-3), so a speed-up never hides a wrong answer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import routellm_fast as rf

HERE = Path(__file__).resolve().parent
STRONG, WEAK = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"
TOLERANCE = {"mf": 1e-6, "sw_ranking": 1e-3}


# ---------------------------------------------------------------- measurement helpers


def stats_ms(seconds: list[float]) -> dict:
    t = np.asarray(seconds) * 1e3
    return {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "min_ms": float(t.min()), "n": len(t)}


def time_each(fn, inputs) -> list[float]:
    out = []
    for x in inputs:
        start = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - start)
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_bandwidth_gbs(threads: int, nbytes: int = 512 << 20, repeats: int = 5) -> float:
    """Streaming read bandwidth: every thread sums its share of a buffer far larger than the caches."""
    buf = np.ones(nbytes // 4, dtype=np.float32)
    parts = np.array_split(buf, threads)
    best = []
    for _ in range(repeats):
        workers = [threading.Thread(target=np.add.reduce, args=(p,)) for p in parts]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best.append(time.perf_counter() - start)
    return nbytes / float(np.median(best)) / 1e9


def machine() -> dict:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = rf.backend_info()
    return {"cpu": model, "cores": os.cpu_count(), "threads": info["threads"], "simd": info["simd"],
            "python": platform.python_version(), "routellm_fast": rf.__version__}


# ---------------------------------------------------------------- inputs


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def clustered(rng: np.random.Generator, centers: np.ndarray, n: int, noise: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors near random topic centres, so similarities spread as real prompts' do."""
    cluster = rng.integers(len(centers), size=n)
    dim = centers.shape[1]
    x = centers[cluster] + (noise / np.sqrt(dim)) * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), cluster


def write_arena(directory: Path, n_battles: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic arena over RouteLLM's 64 model names in the lmsys-arena-human-preference-55k
    format (battles) and RouteLLM's embedding-dataset format; returns the topic centres."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    models = list(rf.MODEL_IDS)
    centers = unit_rows(rng, 200, dim)
    emb, cluster = clustered(rng, centers, n_battles)
    strength = rng.normal(0, 1, len(models))
    offset = rng.normal(0, 0.7, (len(centers), len(models)))
    a = rng.integers(0, len(models), n_battles)
    b = (a + rng.integers(1, len(models), n_battles)) % len(models)
    p_a = 1 / (1 + np.exp(-(strength[a] - strength[b] + offset[cluster, a] - offset[cluster, b])))
    tie = rng.random(n_battles) < 0.25
    a_wins = ~tie & (rng.random(n_battles) < p_a)
    (directory / "battles").mkdir(parents=True)
    (directory / "embeddings").mkdir(parents=True)
    pq.write_table(pa.table({
        "model_a": [models[i] for i in a], "model_b": [models[i] for i in b],
        "prompt": [json.dumps([f"benchmark prompt number {i}, long enough to keep"]) for i in range(n_battles)],
        "winner_model_a": a_wins.astype(np.int64), "winner_model_b": (~tie & ~a_wins).astype(np.int64),
        "winner_tie": tie.astype(np.int64),
    }), directory / "battles" / "train.parquet")
    flat = pa.array(emb.reshape(-1), pa.float32())
    offsets = pa.array(np.arange(0, (n_battles + 1) * dim, dim, dtype=np.int32))
    pq.write_table(pa.table({"embeddings": pa.ListArray.from_arrays(offsets, flat)}), directory / "embeddings" / "train.parquet")
    return centers


# ---------------------------------------------------------------- the reference side


class Reference:
    def __init__(self, python: str | None, workdir: Path) -> None:
        self.python, self.workdir, self.calls = python, workdir, 0

    @property
    def available(self) -> bool:
        return self.python is not None

    def run(self, task: dict, timeout: float = 3600) -> dict:
        self.calls += 1
        task = dict(task, output=str(self.workdir / f"ref_out_{self.calls}.json"))
        path = self.workdir / f"ref_task_{self.calls}.json"
        path.write_text(json.dumps(task))
        proc = subprocess.run([self.python, str(HERE / "_reference_worker.py"), str(path)],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"reference worker failed ({task['kind']}):\n{proc.stderr[-3000:]}")
        return json.loads(Path(task["output"]).read_text())


# ---------------------------------------------------------------- cases


def bench_mf(work: Path, ref: Reference, quick: bool) -> list[dict]:
    rng = np.random.default_rng(0)
    dim = 1536
    ckpt = work / "mf_checkpoint"
    if ref.available:
        ref.run({"kind": "make_mf_checkpoint", "checkpoint": str(ckpt), "dim": dim, "seed": 0})
    else:  # the same layout, written without torch
        from safetensors.numpy import save_file

        ckpt.mkdir()
        save_file({"P.weight": rng.normal(size=(64, 128)).astype(np.float32),
                   "text_proj.0.weight": rng.uniform(-1, 1, (128, dim)).astype(np.float32) / np.sqrt(dim),
                   "classifier.0.weight": 30 * rng.uniform(-1, 1, (1, 128)).astype(np.float32)},
                  str(ckpt / "model.safetensors"))
    n_single, n_batch = (200, 10_000) if quick else (1000, 100_000)
    queries = unit_rows(rng, n_batch, dim)
    router = rf.MatrixFactorizationRouter(ckpt, STRONG, WEAK)
    singles = [queries[i : i + 1] for i in range(n_single)]
    time_each(router.score_embeddings, singles[:50])  # warm-up
    single = stats_ms(time_each(router.score_embeddings, singles))
    batch_times = time_each(router.score_embeddings, [queries] * 5)
    ours = router.score_embeddings(queries[:n_single])
    row = {"case": "mf (1536-d, 64 models)", "router": "mf", "ours_single": single,
           "ours_batch_per_decision_us": float(np.median(batch_times)) / n_batch * 1e6,
           "ours_batch_decisions_per_s": n_batch / float(np.median(batch_times)), "batch_size": n_batch}
    if ref.available:
        np.save(work / "mf_queries.npy", queries[:n_single])
        r = ref.run({"kind": "mf", "checkpoint": str(ckpt), "queries": str(work / "mf_queries.npy"),
                     "strong": STRONG, "weak": WEAK})
        row.update(reference_fields(r, ours, "mf"))
    return [row, bench_controller_batch(work, ref, ckpt, queries[:1000])]


def bench_controller_batch(work: Path, ref: Reference, ckpt: Path, queries: np.ndarray) -> dict:
    """Controller.batch_calculate_win_rate over 1,000 prompts with the mf router; both sides get
    the same fixed embedding per prompt text."""
    texts = [f"batch query {i}" for i in range(len(queries))]
    lookup = {t: i for i, t in enumerate(texts)}
    controller = rf.Controller(["mf"], STRONG, WEAK, config={"mf": {
        "checkpoint_path": str(ckpt), "embed": lambda prompts: queries[[lookup[p] for p in prompts]]}})
    controller.batch_calculate_win_rate(texts[:10], "mf")  # warm-up
    times = time_each(lambda t: controller.batch_calculate_win_rate(t, "mf"), [texts] * 5)
    ours = np.asarray(controller.batch_calculate_win_rate(texts, "mf"))
    row = {"case": f"Controller.batch_calculate_win_rate, mf, {len(texts):,} prompts", "router": "mf",
           "ours_single": stats_ms(times), "batch_size": len(texts)}
    if ref.available:
        np.save(work / "batch_queries.npy", queries)
        r = ref.run({"kind": "controller_batch", "checkpoint": str(ckpt), "queries": str(work / "batch_queries.npy"),
                     "strong": STRONG, "weak": WEAK})
        diff = float(np.max(np.abs(np.asarray(r["win_rates"]) - ours)))
        row.update({"ref_single": stats_ms([r["batch_s"]]), "max_abs_diff_vs_routellm": diff,
                    "matched": diff <= TOLERANCE["mf"]})
    return row


def reference_fields(r: dict, ours: np.ndarray, router: str) -> dict:
    diff = float(np.max(np.abs(np.asarray(r["win_rates"]) - ours[: len(r["win_rates"])])))
    return {"ref_single": stats_ms(r["times_s"]), "ref_build_s": r["build_s"], "ref_peak_rss_mb": r["peak_rss_mb"],
            "max_abs_diff_vs_routellm": diff, "matched": diff <= TOLERANCE[router]}


def bench_sw(work: Path, ref: Reference, n_battles: int, quick: bool, run_reference: bool,
             bandwidth_gbs: float) -> list[dict]:
    rng = np.random.default_rng(n_battles)
    dim = 1536
    arena_dir = work / f"arena_{n_battles}"
    centers = write_arena(arena_dir, n_battles, dim, rng)
    queries, _ = clustered(rng, centers, 64)
    n_single = 5 if quick else 10
    rows, exact = [], None
    for storage in ("float32", "float16", "int8"):
        start = time.perf_counter()
        router = rf.SWRankingRouter([arena_dir / "battles"], [arena_dir / "embeddings"], STRONG, WEAK, storage=storage)
        build = time.perf_counter() - start
        router.score_embeddings(queries[:1])  # warm-up
        single = stats_ms(time_each(router.score_embeddings, [queries[i : i + 1] for i in range(n_single)]))
        batch = float(np.median(time_each(router.score_embeddings, [queries] * (1 if quick else 3))))
        scores = router.score_embeddings(queries)
        exact = scores if storage == "float32" else exact
        floor_ms = router.arena_bytes / (bandwidth_gbs * 1e9) * 1e3
        rows.append({
            "case": f"sw_ranking {n_battles:,} battles x {dim}-d, {storage}", "router": "sw_ranking",
            "storage": storage, "arena_mb": router.arena_bytes / 1e6, "ours_build_s": build, "ours_single": single,
            "ours_gbs": router.arena_bytes / (single["median_ms"] / 1e3) / 1e9, "floor_ms": floor_ms,
            "x_floor": single["median_ms"] / floor_ms, "ours_batch_per_decision_ms": batch / len(queries) * 1e3,
            "batch_size": len(queries), "max_abs_diff_vs_float32": float(np.max(np.abs(scores - exact))),
            "scores": scores,
        })
        del router
    if run_reference and ref.available:
        n_ref = 2 if quick else 3
        np.save(work / "sw_queries.npy", queries[:n_ref])
        r = ref.run({"kind": "sw", "battles": str(arena_dir / "battles"), "embeddings": str(arena_dir / "embeddings"),
                     "queries": str(work / "sw_queries.npy"), "strong": STRONG, "weak": WEAK})
        for row in rows:
            row.update(reference_fields(r, row["scores"], "sw_ranking"))
            if row["storage"] != "float32":
                row["matched"] = None  # compressed storage is judged by its documented error, not parity
    for row in rows:
        del row["scores"]
    shutil.rmtree(arena_dir)
    return rows


# ---------------------------------------------------------------- report


def fmt(x, spec=".2f", missing="–"):
    return missing if x is None else format(x, spec)


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# routellm_fast vs routellm — {report['date']}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; routellm_fast {m['routellm_fast']} with {m['threads']} threads, "
        f"SIMD path `{m['simd']}`; Python {m['python']}. Reference: {report['reference']}.",
        f"Measured streaming read bandwidth: {report['bandwidth_gbs']:.1f} GB/s ({m['threads']} threads).",
        "",
        "Per decision = one prompt embedding in, one win rate out (embedding time excluded on both sides); "
        "the Controller row times one whole call.",
        "",
        "| case | ours median | ours p90 | ours min | RouteLLM median | speed-up | ours batched / decision | answers match RouteLLM (max abs diff) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["rows"]:
        s, r = row["ours_single"], row.get("ref_single")
        speedup = r["median_ms"] / s["median_ms"] if r else None
        if "ours_batch_per_decision_us" in row:
            batch = f"{row['ours_batch_per_decision_us']:.3f} µs ({row['ours_batch_decisions_per_s'] / 1e6:.1f} M/s)"
        elif "ours_batch_per_decision_ms" in row:
            batch = f"{row['ours_batch_per_decision_ms']:.2f} ms"
        else:  # the row times a whole batch call
            batch = "(the whole call)"
        if "matched" not in row:
            match = "not run"
        elif row["matched"] is None:
            match = f"n/a (vs our fp32: {row['max_abs_diff_vs_float32']:.1e}; vs RouteLLM: {row['max_abs_diff_vs_routellm']:.1e})"
        else:
            match = f"{'yes' if row['matched'] else 'NO'} ({row['max_abs_diff_vs_routellm']:.1e})"
        lines.append(
            f"| {row['case']} | {fmt(s['median_ms'], '.3f')} ms | {fmt(s['p90_ms'], '.3f')} ms | {fmt(s['min_ms'], '.3f')} ms | "
            f"{fmt(r and r['median_ms'], '.1f')} ms | {fmt(speedup, ',.0f')}x | {batch} | {match} |"
        )
    lines += ["", "sw_ranking and the memory floor (single decision: the arena is streamed once):", "",
              "| case | arena | ours median | GB/s | floor (bytes / bandwidth) | x floor | build from files (ours / RouteLLM) | peak RSS RouteLLM |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in report["rows"]:
        if row["router"] != "sw_ranking":
            continue
        lines.append(
            f"| {row['case']} | {row['arena_mb']:.0f} MB | {row['ours_single']['median_ms']:.1f} ms | {row['ours_gbs']:.1f} | "
            f"{row['floor_ms']:.1f} ms | {row['x_floor']:.2f} | {row['ours_build_s']:.1f} s / {fmt(row.get('ref_build_s'), '.1f')} s | "
            f"{fmt(row.get('ref_peak_rss_mb'), ',.0f')} MB |"
        )
    emb = report.get("embedder")
    if emb:
        lines += ["", "The local embedder and end-to-end routing (ours only: RouteLLM embeds through OpenAI's API). "
                  "One prompt runs on one thread; a batch on all cores:", "",
                  "| case | median | p90 |", "| --- | --- | --- |"]
        labels = {"embed_short": f"embed one prompt, {emb['tokens']['short']} tokens",
                  "embed_long": f"embed one prompt, {emb['tokens']['long']} tokens",
                  "embed_batch64": f"embed a batch of 64 (half short, half long): {emb['embed_batch64']['prompts_per_s']:.0f} prompts/s",
                  "route_short_end_to_end": f"route(prompt) end to end, {emb['tokens']['short']} tokens (tokenize + embed + score)",
                  "score_only": "of which scoring (shipped sw_ranking router, 300 prompts / 30,966 battles)"}
        for key, label in labels.items():
            lines.append(f"| {label} | {emb[key]['median_ms']:.2f} ms | {emb[key]['p90_ms']:.2f} ms |")
    lines += ["", f"Peak RSS of the routellm_fast process over the whole run: {report['ours_peak_rss_mb']:,.0f} MB.",
              "RouteLLM decisions timed per case: " + report["reference_decisions"] + ".", ""]
    return "\n".join(lines)


def ensure_reference_venv(directory: Path) -> str:
    """The Python of a venv with torch (CPU) and routellm==0.2.0, created on first use."""
    python = directory / "bin" / "python"
    if not python.exists():
        print(f"creating the reference environment in {directory} (torch CPU + routellm==0.2.0) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run(pip + ["torch==2.13.0"], check=True)  # first, so routellm does not pull a CUDA build
        subprocess.run(pip + ["routellm==0.2.0", "pyarrow"], check=True)
    return str(python)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small arenas, few repetitions: a smoke run")
    parser.add_argument("--reference-venv", type=Path, help="venv for RouteLLM, created on first use")
    parser.add_argument("--reference-python", default=os.environ.get("ROUTELLM_REFERENCE_PYTHON"),
                        help="Python with torch + routellm==0.2.0 (also $ROUTELLM_REFERENCE_PYTHON)")
    parser.add_argument("--reference-large", action="store_true",
                        help="also run RouteLLM on the 164,400-battle arena (needs ~10 GB RAM and many minutes)")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    if args.reference_venv is not None:
        args.reference_python = ensure_reference_venv(args.reference_venv.resolve())
    info = machine()
    bandwidth = read_bandwidth_gbs(info["threads"])
    sizes = [5_540] if args.quick else [55_400, 164_400]
    with tempfile.TemporaryDirectory(prefix="routellm_fast_bench_") as tmp:
        ref = Reference(args.reference_python, Path(tmp))
        rows = bench_mf(Path(tmp), ref, args.quick)
        for n in sizes:
            rows += bench_sw(Path(tmp), ref, n, args.quick, run_reference=(n <= 55_400 or args.reference_large),
                             bandwidth_gbs=bandwidth)
    sys.path.insert(0, str(HERE))
    from bench_embedder import measure as measure_embedder

    embedder = measure_embedder(10 if args.quick else 50)
    report = {
        "embedder": embedder,
        "date": dt.date.today().isoformat(), "machine": info, "bandwidth_gbs": bandwidth,
        "reference": ("routellm==0.2.0 via " + args.reference_python) if ref.available else "not run (no --reference-python)",
        "reference_decisions": ("mf: 1000 (200 with --quick); sw_ranking: 3 at 55,400 battles (2 with --quick), "
                                "none at 164,400 unless --reference-large"),
        "ours_peak_rss_mb": peak_rss_mb(), "rows": rows,
    }
    (args.out / "results.json").write_text(json.dumps(report, indent=1))
    text = markdown(report)
    (args.out / "results.md").write_text(text)
    if not args.quick:
        (HERE / "RESULTS.md").write_text(text)
    print(text)
    failed = [row["case"] for row in rows if row.get("matched") is False]
    if failed:
        print(f"ANSWERS DIFFER from RouteLLM beyond tolerance: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
