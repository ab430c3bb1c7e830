"""routellm_fast against RouteLLM's own routers, on the same inputs, in one run.

    python benchmarks/run.py [--quick] [--reference-venv DIR | --reference-python PATH] [--out benchmarks/out]
                             [--skip bert causal_llm]

One run covers every router: mf, the Controller, sw_ranking in every storage (against RouteLLM,
embedding excluded on both sides), routing from text on one thread for every registered router
that ships, on every local embedder, and the embedders (``bench_text.py``, ours only: RouteLLM
embeds through OpenAI's API), bert fp32/int8 and causal_llm on random-weight checkpoints against
RouteLLM's torch routers (``bench_bert.py``, ``bench_causal.py``, run in the reference Python,
which has torch).

RouteLLM runs in its own Python (torch CPU + ``routellm==0.2.0``), in a subprocess
(``benchmarks/_reference_worker.py``) that exchanges inputs and outputs with this one through
.npy/.json/.parquet files in a temporary directory. ``--reference-venv DIR`` creates that
environment on first use (``pip install torch==2.13.0``, the CPU wheel, then ``routellm==0.2.0``)
and reuses it after; ``--reference-python`` names the Python of an existing one. RouteLLM runs
unmodified except for its OpenAI embedding client, which returns the same fixed vectors
routellm_fast receives. Without a reference Python only our side is timed, and the table says so.

Writes ``OUT/results.json`` and ``OUT/results.md``; a full run (no ``--quick``) also refreshes
``benchmarks/RESULTS.md``. Every row says whether both sides' answers matched within the parity
tolerances (mf 1e-6, sw_ranking 1e-3), so a speed-up never hides a wrong answer; the exit status
is 1 when one did not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import routellm_fast as rf

HERE = Path(__file__).resolve().parent
STRONG, WEAK = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"
DIM = 1536  # text-embedding-3-small, RouteLLM's embedding model
TOLERANCE = {"mf": 1e-6, "sw_ranking": 1e-3}
STORAGES = ("float32", "float16", "int8")
#: RouteLLM's sw_ranking router turns the embedding dataset into Python lists of floats, then a
#: float64 matrix: measured ~60 bytes per embedding element at its peak, plus ~1 GB of imports.
REFERENCE_SW_BYTES_PER_ELEMENT = 60
REFERENCE_BASE_MB = 1024

T = TypeVar("T")
Stats = dict[str, float]
Row = dict[str, Any]

_START = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr, with the seconds since the run started."""
    print(f"[{time.perf_counter() - _START:6.1f} s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- measurement helpers


def stats_ms(seconds: Sequence[float]) -> Stats:
    """Median, p90 and min in milliseconds of per-call times in seconds."""
    t = np.asarray(seconds, dtype=np.float64) * 1e3
    return {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "min_ms": float(t.min()),
            "n": len(t)}


def time_each(fn: Callable[[T], object], inputs: Iterable[T]) -> list[float]:
    """Wall time in seconds of ``fn(x)`` for each input, one call at a time."""
    out = []
    for x in inputs:
        start = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - start)
    return out


def _proc_status_kb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_mb() -> float | None:
    """Resident memory of this process now, in MB (None off Linux)."""
    kb = _proc_status_kb("VmRSS")
    return None if kb is None else kb / 1024


def release_freed_memory() -> None:
    """Hand memory this process freed but still holds back to the OS (pyarrow's pool, glibc's
    heap), so that one case's peak RSS does not include what earlier cases left behind."""
    gc.collect()
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> None:
    """Start a new peak-RSS window for this process (Linux: ``/proc/self/clear_refs``; elsewhere the
    peak stays the whole run's)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """Peak resident memory of this process since the last :func:`reset_peak_rss`, in MB."""
    hwm = _proc_status_kb("VmHWM")
    if hwm is not None:
        return hwm / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def available_memory_mb() -> float | None:
    """MemAvailable from /proc/meminfo in MB, or None where there is no such file."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def read_bandwidth_gbs(threads: int, nbytes: int = 1 << 30, repeats: int = 9) -> float:
    """Streaming read bandwidth in GB/s, STREAM-style (best of ``repeats``): ``threads`` threads each
    OR-reduce their share of a buffer far larger than the caches as 64-bit words (numpy releases
    the GIL; an OR costs less than the load, so the loop is bound by memory, not arithmetic)."""
    words = np.ones(nbytes // 8, dtype=np.uint64)
    parts = np.array_split(words, threads)
    times = []
    for _ in range(repeats):
        workers = [threading.Thread(target=np.bitwise_or.reduce, args=(p,)) for p in parts]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        times.append(time.perf_counter() - start)
    return words.nbytes / min(times) / 1e9


def load_average() -> tuple[float, float, float] | None:
    """The 1/5/15-minute load averages, or None where the OS has none."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """CPU model, cores, the threads and SIMD path routellm_fast uses, Python and package versions."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = rf.backend_info()
    mem = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": mem, "threads": info["threads"],
            "simd": info["simd"], "compiler": info.get("compiler"), "python": platform.python_version(),
            "numpy": np.__version__, "routellm_fast": rf.__version__}


# ---------------------------------------------------------------- inputs


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` random unit vectors (float32)."""
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def clustered(
    rng: np.random.Generator, centers: np.ndarray, n: int, noise: float = 1.2
) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors near random topic centres, so cosine similarities spread as real prompts' do
    (about 0.4 between two prompts of one topic, about 0 across); returns the vectors and each
    one's topic."""
    cluster = rng.integers(len(centers), size=n)
    x = np.empty((n, centers.shape[1]), dtype=np.float32)
    scale = np.float32(noise / np.sqrt(centers.shape[1]))
    for start in range(0, n, 16_384):  # in chunks: no float64 temporaries the size of the arena
        stop = min(n, start + 16_384)
        block = rng.standard_normal((stop - start, centers.shape[1]), dtype=np.float32)
        block *= scale
        block += centers[cluster[start:stop]]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        x[start:stop] = block
    return x, cluster


def write_arena(directory: Path, n_battles: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Write a synthetic arena over RouteLLM's 64 model names: battles in the
    lmsys-arena-human-preference-55k columns and one embedding row per battle in RouteLLM's
    embedding-dataset format, each a ``train.parquet`` in its own directory (both
    ``datasets.load_dataset`` and routellm_fast read them). Outcomes follow a per-topic
    Bradley-Terry model with 25 % ties. Returns the topic centres, to draw queries from."""
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
        # RouteLLM keeps a battle only if its first turn is at least 16 characters long
        "prompt": [json.dumps([f"benchmark prompt number {i}, long enough to keep"]) for i in range(n_battles)],
        "winner_model_a": a_wins.astype(np.int64), "winner_model_b": (~tie & ~a_wins).astype(np.int64),
        "winner_tie": tie.astype(np.int64),
    }), directory / "battles" / "train.parquet")
    flat = pa.array(emb.reshape(-1), pa.float32())
    del emb
    offsets = pa.array(np.arange(0, (n_battles + 1) * dim, dim, dtype=np.int32))  # < 2**31 floats up to 1.4M battles
    pq.write_table(pa.table({"embeddings": pa.ListArray.from_arrays(offsets, flat)}),
                   directory / "embeddings" / "train.parquet")
    return centers


# ---------------------------------------------------------------- the reference side


class Reference:
    """RouteLLM in a subprocess of the reference Python; each task is one worker process, so its
    peak RSS is the task's own."""

    def __init__(self, python: str | None, workdir: Path) -> None:
        self.python, self.workdir, self.calls = python, workdir, 0
        self.why_not = None if python else "no --reference-python or --reference-venv given"
        if python and not (Path(python).is_file() and os.access(python, os.X_OK)):
            self.python, self.why_not = None, f"reference Python {python} not found"

    @property
    def available(self) -> bool:
        return self.python is not None

    def run(self, task: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
        """Run one worker task; returns its JSON result (timings, win rates, peak RSS)."""
        assert self.python is not None
        self.calls += 1
        task = dict(task, output=str(self.workdir / f"ref_out_{self.calls}.json"))
        path = self.workdir / f"ref_task_{self.calls}.json"
        path.write_text(json.dumps(task))
        env = dict(os.environ, OPENAI_API_KEY=os.environ.get("OPENAI_API_KEY") or "unused",
                   HF_DATASETS_CACHE=str(self.workdir / "hf_datasets_cache"),  # deleted with the temp dir
                   HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        proc = subprocess.run([self.python, str(HERE / "_reference_worker.py"), str(path)],
                              capture_output=True, text=True, timeout=timeout, env=env, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"reference worker failed ({task['kind']}):\n{proc.stderr[-3000:]}")
        shutil.rmtree(self.workdir / "hf_datasets_cache", ignore_errors=True)
        return json.loads(Path(task["output"]).read_text())


def reference_large_ok(mode: str, n_battles: int) -> tuple[bool, str]:
    """Whether RouteLLM can be built on an arena this large here (``mode`` auto/yes/no)."""
    need_mb = n_battles * DIM * REFERENCE_SW_BYTES_PER_ELEMENT / 2**20 + REFERENCE_BASE_MB
    if mode == "no":
        return False, "skipped (--reference-large no)"
    avail = available_memory_mb()
    if mode == "auto" and avail is not None and avail < need_mb:
        return False, f"skipped: RouteLLM needs ~{need_mb / 1024:.0f} GB here, {avail / 1024:.0f} GB available"
    return True, ""


def diff_fields(ref_scores: Sequence[float], ours: np.ndarray, router: str) -> dict[str, Any]:
    """Max abs difference of our win rates from RouteLLM's on the prompts both scored."""
    ref = np.asarray(ref_scores, dtype=np.float64)
    diff = float(np.max(np.abs(ref - ours[: len(ref)])))
    return {"max_abs_diff_vs_routellm": diff, "tolerance": TOLERANCE[router], "matched": diff <= TOLERANCE[router],
            "compared_prompts": len(ref)}


# ---------------------------------------------------------------- cases


def bench_mf(work: Path, ref: Reference, quick: bool) -> list[Row]:
    """mf: a random-weight checkpoint from RouteLLM's own ``MFModel.save_pretrained``; single
    decisions, a large batch, and ``Controller.batch_calculate_win_rate`` over 1,000 prompts."""
    rng = np.random.default_rng(0)
    ckpt = work / "mf_checkpoint"
    if ref.available:
        ref.run({"kind": "make_mf_checkpoint", "checkpoint": str(ckpt), "dim": DIM, "seed": 0})
        source = "RouteLLM's MFModel.save_pretrained"
    else:  # the same tensors and layout, written without torch
        from safetensors.numpy import save_file

        ckpt.mkdir()
        save_file({"P.weight": rng.normal(size=(64, 128)).astype(np.float32),
                   "text_proj.0.weight": rng.uniform(-1, 1, (128, DIM)).astype(np.float32) / np.sqrt(DIM),
                   "classifier.0.weight": 30 * rng.uniform(-1, 1, (1, 128)).astype(np.float32)},
                  str(ckpt / "model.safetensors"))
        source = "numpy (no reference Python)"
    n_single, n_batch = (200, 10_000) if quick else (1000, 100_000)
    queries = unit_rows(rng, n_batch, DIM)
    release_freed_memory()
    reset_peak_rss()
    router = rf.MatrixFactorizationRouter(ckpt, STRONG, WEAK)
    singles = [queries[i : i + 1] for i in range(n_single)]
    time_each(router.score_embeddings, singles[:50])  # warm-up
    single = stats_ms(time_each(router.score_embeddings, singles))
    batch_s = float(np.median(time_each(router.score_embeddings, [queries] * 5)))
    ours = router.score_embeddings(queries[:n_single])
    row: Row = {"case": f"mf ({DIM}-d, 64 models)", "router": "mf", "checkpoint": source, "ours_single": single,
                "batch_size": n_batch, "ours_batch_per_decision_ms": batch_s / n_batch * 1e3,
                "ours_batch_decisions_per_s": n_batch / batch_s, "ours_peak_rss_mb": peak_rss_mb()}
    if ref.available:
        np.save(work / "mf_queries.npy", queries[:n_single])
        log(f"RouteLLM mf: {n_single} decisions")
        r = ref.run({"kind": "mf", "checkpoint": str(ckpt), "queries": str(work / "mf_queries.npy"),
                     "strong": STRONG, "weak": WEAK})
        row.update({"ref_single": stats_ms(r["times_s"]), "ref_build_s": r["build_s"],
                    "ref_rss_after_build_mb": r["rss_after_build_mb"], "ref_peak_rss_mb": r["peak_rss_mb"],
                    **diff_fields(r["win_rates"], ours, "mf")})
    else:
        row["ref_not_run"] = ref.why_not
    controller_queries = queries[:1000].copy()
    del queries, singles, router
    release_freed_memory()
    return [row, bench_controller_batch(work, ref, ckpt, controller_queries)]


def bench_controller_batch(work: Path, ref: Reference, ckpt: Path, queries: np.ndarray) -> Row:
    """``Controller.batch_calculate_win_rate`` over 1,000 prompts with the mf router, a whole call
    timed on each side; both sides get the same fixed embedding per prompt text."""
    texts = [f"batch query {i}" for i in range(len(queries))]
    lookup = {t: i for i, t in enumerate(texts)}

    def embed(prompts: Sequence[str]) -> np.ndarray:
        return queries[[lookup[p] for p in prompts]]

    release_freed_memory()
    reset_peak_rss()
    controller = rf.Controller(["mf"], STRONG, WEAK, config={"mf": {"checkpoint_path": str(ckpt), "embed": embed}})
    controller.batch_calculate_win_rate(texts[:10], "mf")  # warm-up
    times = time_each(lambda t: controller.batch_calculate_win_rate(t, "mf"), [texts] * 5)
    ours = np.asarray(controller.batch_calculate_win_rate(texts, "mf"), dtype=np.float64)
    row: Row = {"case": f"Controller.batch_calculate_win_rate, mf, {len(texts):,} prompts (one call)",
                "router": "mf", "whole_call": True, "ours_single": stats_ms(times), "batch_size": len(texts),
                "ours_peak_rss_mb": peak_rss_mb()}
    if ref.available:
        np.save(work / "batch_queries.npy", queries)
        log(f"RouteLLM Controller.batch_calculate_win_rate: {len(texts)} prompts")
        r = ref.run({"kind": "controller_batch", "checkpoint": str(ckpt), "queries": str(work / "batch_queries.npy"),
                     "strong": STRONG, "weak": WEAK})
        row.update({"ref_single": stats_ms(r["times_s"]), "ref_peak_rss_mb": r["peak_rss_mb"],
                    **diff_fields(r["win_rates"], ours, "mf")})
    else:
        row["ref_not_run"] = ref.why_not
    return row


def bench_sw(work: Path, ref: Reference, n_battles: int, quick: bool, reference_large: str) -> list[Row]:
    """sw_ranking on a synthetic arena of ``n_battles``: our build from the parquet files, single
    decisions and a batch of 64 in each storage; RouteLLM's build and a few decisions on the same
    files (it refits a logistic regression over every battle per decision)."""
    rng = np.random.default_rng(n_battles)
    arena_dir = work / f"arena_{n_battles}"
    log(f"writing a {n_battles:,}-battle arena")
    centers = write_arena(arena_dir, n_battles, DIM, rng)
    queries, _ = clustered(rng, centers, 64)
    n_single = 10 if quick else 20
    rows: list[Row] = []
    exact: np.ndarray | None = None
    tiers: dict[str, int] = {}
    for storage in STORAGES:
        log(f"routellm_fast sw_ranking {n_battles:,} battles, {storage}")
        release_freed_memory()
        rss_before = current_rss_mb()
        reset_peak_rss()
        start = time.perf_counter()
        router = rf.SWRankingRouter(arena_dir / "battles", arena_dir / "embeddings", STRONG, WEAK, storage=storage)
        build_s = time.perf_counter() - start
        resident = current_rss_mb()
        router.score_embeddings(queries[:1])  # warm-up
        single = stats_ms(time_each(router.score_embeddings, [queries[i : i + 1] for i in range(n_single)]))
        batch_s = float(np.median(time_each(router.score_embeddings, [queries] * (1 if quick else 3))))
        scores = router.score_embeddings(queries)
        peak = peak_rss_mb()
        release_freed_memory()  # after the timings: what the router itself holds, without allocator caches
        resident_released = current_rss_mb()
        if storage == "float32":
            exact, tiers = scores, dict(router.model2tier)
        assert exact is not None
        rows.append({
            "case": f"sw_ranking {n_battles:,} battles x {DIM}-d, {storage}", "router": "sw_ranking",
            "n_battles": n_battles, "storage": storage, "arena_bytes": router.arena_bytes, "ours_build_s": build_s,
            "ours_single": single, "batch_size": len(queries),
            "ours_batch_per_decision_ms": batch_s / len(queries) * 1e3,
            "ours_batch_decisions_per_s": len(queries) / batch_s,
            "max_abs_diff_vs_float32": float(np.max(np.abs(scores - exact))),
            "ours_rss_before_mb": rss_before, "ours_rss_after_build_mb": resident,
            "ours_rss_after_release_mb": resident_released, "ours_peak_rss_mb": peak, "_scores": scores,
        })
        del router
    run_ref, why = reference_large_ok(reference_large, n_battles) if n_battles > 55_400 else (True, "")
    if ref.available and run_ref:
        n_ref = 2 if quick else 3
        np.save(work / "sw_queries.npy", queries[:n_ref])
        log(f"RouteLLM sw_ranking {n_battles:,} battles: build + {n_ref} decisions")
        release_freed_memory()
        r = ref.run({"kind": "sw", "battles": str(arena_dir / "battles"), "embeddings": str(arena_dir / "embeddings"),
                     "queries": str(work / "sw_queries.npy"), "strong": STRONG, "weak": WEAK})
        for row in rows:
            row.update({"ref_single": stats_ms(r["times_s"]), "ref_build_s": r["build_s"],
                        "ref_rss_after_build_mb": r["rss_after_build_mb"], "ref_peak_rss_mb": r["peak_rss_mb"],
                        **diff_fields(r["win_rates"], row["_scores"], "sw_ranking")})
            if row["storage"] == "float32":
                row["tiers_match"] = r["model2tier"] == tiers
            else:
                row["matched"] = None  # compressed storage is judged by its documented error, not parity
    else:
        for row in rows:
            row["ref_not_run"] = ref.why_not or why
    for row in rows:
        del row["_scores"]
    shutil.rmtree(arena_dir)
    return rows


def add_floor(rows: list[Row], bandwidth_gbs: float) -> None:
    """The memory floor of an sw decision: it must stream the arena's embeddings once."""
    for row in rows:
        if row["router"] == "sw_ranking":
            median_s = row["ours_single"]["median_ms"] / 1e3
            row["ours_gbs"] = row["arena_bytes"] / median_s / 1e9
            row["floor_ms"] = row["arena_bytes"] / (bandwidth_gbs * 1e9) * 1e3
            row["x_floor"] = row["ours_single"]["median_ms"] / row["floor_ms"]


def bench_text(quick: bool) -> dict[str, Any]:
    """Routing from text and the embedders, one thread (ours only: ``bench_text.py``), or the
    error that prevented it."""
    sys.path.insert(0, str(HERE))
    try:
        from bench_text import measure

        return measure(60 if quick else 300)
    except Exception as exc:  # noqa: BLE001 - a missing model must not cost the rest of the run
        return {"error": f"{type(exc).__name__}: {exc}"}


#: The heading of RESULTS.md's GPU section, which a run keeps as it is (bench_cuda.py fills it on a GPU machine).
GPU_SECTION = "## GPU backend"
#: The torch routers' benchmarks, run in the reference Python (they export with torch and time
#: RouteLLM's own router): script and its arguments, full run / --quick.
TORCH_BENCHES = {
    "bert": ("bench_bert.py", ["--tokens", "24", "--repeats", "15"], ["--tokens", "24", "--repeats", "3"]),
    "causal_llm": ("bench_causal.py", ["--sizes", "160m", "--weights", "fp32", "int8", "--prompt-words", "20",
                                       "--repeats", "3", "--reference-repeats", "2"],
                   ["--sizes", "tiny", "--weights", "fp32", "int8", "--prompt-words", "20", "--repeats", "2"]),
}


def bench_torch_router(name: str, ref: Reference, quick: bool, work: Path) -> dict[str, Any]:
    """One of :data:`TORCH_BENCHES` in the reference Python: its JSON results, or why not."""
    if not ref.available:
        return {"not_run": ref.why_not}
    script, full, short = TORCH_BENCHES[name]
    out = work / f"{name}.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent / "python"), os.environ.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    proc = subprocess.run([ref.python, str(HERE / script), *(short if quick else full), "--json", str(out)],
                          capture_output=True, text=True, env=env, check=False, timeout=1800)
    if proc.returncode != 0 or not out.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"{script} failed (exit {proc.returncode}): {last}"}
    return {**json.loads(out.read_text()), "wall_s": time.perf_counter() - start,
            "command": f"{script} {' '.join(short if quick else full)}"}


# ---------------------------------------------------------------- report


def fmt(x: float | None, spec: str = ".2f", missing: str = "–") -> str:
    """``format(x, spec)``, or ``missing`` for None."""
    return missing if x is None else format(x, spec)


def fmt_ms(ms: float) -> str:
    """A duration in ms with precision that suits its size."""
    if ms < 0.01:
        return f"{ms * 1e3:.2f} µs"
    if ms < 1:
        return f"{ms * 1e3:.0f} µs"
    if ms < 100:
        return f"{ms:.2f} ms"
    return f"{ms:,.0f} ms"


def _match_cell(row: Row) -> str:
    if "ref_single" not in row:
        return "not run"
    diff = f"{row['max_abs_diff_vs_routellm']:.1e}"
    if row["matched"] is None:
        return f"n/a, lossy storage: {diff} (vs our float32: {row['max_abs_diff_vs_float32']:.1e})"
    cell = f"yes: {diff} ≤ {row['tolerance']:g}" if row["matched"] else f"**NO**: {diff} > {row['tolerance']:g}"
    return cell if row.get("tiers_match", True) else cell + ", **tiers differ**"


def _speedup(ref_ms: float | None, ours_ms: float | None) -> str:
    return "–" if ref_ms is None or ours_ms is None else f"{ref_ms / ours_ms:,.0f}x"


def at_a_glance(rows: Sequence[Row]) -> str:
    """One line: speed-ups of the exact (float32) cases, whether every answer matched, distance to
    the memory floor."""
    parts = []
    for row in rows:
        if row.get("storage", "float32") == "float32" and "ref_single" in row:
            name = row["case"].split(" (")[0].replace(" x 1536-d, float32", "")
            parts.append(f"{name} {row['ref_single']['median_ms'] / row['ours_single']['median_ms']:,.0f}x")
    speed = "speed-up per decision: " + "; ".join(parts) if parts else "RouteLLM not run: no speed-ups"
    checked = [row for row in rows if row.get("matched") is not None]
    bad = [row["case"] for row in checked if not row["matched"] or row.get("tiers_match") is False]
    answers = (f"answers: **{len(bad)} case(s) differ from RouteLLM** ({'; '.join(bad)})" if bad
               else f"answers: all {len(checked)} exact cases match RouteLLM within tolerance" if checked
               else "answers: not compared")
    floors = [f"{row['x_floor']:.2f}x" for row in rows if row.get("storage") == "float32"]
    floor = f"float32 sw decision at {' / '.join(floors)} the memory floor" if floors else ""
    return "**At a glance:** " + ". ".join(p for p in (speed, answers, floor) if p) + "."


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: machine, main table, memory-floor table, routing from text and the
    embedders, bert and causal_llm against RouteLLM, notes."""
    m = report["machine"]
    bw = report["bandwidth"]
    load = report["load_average"]
    lines = [
        f"# routellm_fast vs routellm — {report['date']}",
        "",
        (f"**Machine:** {m['cpu']}, {m['cores']} cores, {fmt(m['memory_gib'], '.0f')} GiB RAM; routellm_fast "
        f"{m['routellm_fast']} with {m['threads']} threads, SIMD path `{m['simd']}` ({m['compiler']}); "
        f"Python {m['python']}, numpy {m['numpy']}.  "),
        f"**Reference:** {report['reference']}.  ",
        (f"**Streaming read bandwidth** (measured in this run, {m['threads']} threads, best of 9): "
        f"{bw['start_gbs']:.1f} GB/s at the start, {bw['end_gbs']:.1f} GB/s at the end; the floor uses "
        f"{bw['used_gbs']:.1f} GB/s.  "),
        (f"**Load average** (1 min) before the run: {fmt(load['start'], '.2f')} (after: {fmt(load['end'], '.2f')}, "
        f"the run's own threads included); whole run {report['wall_s']:.0f} s."),
        "",
        f"Made by `{report['command']}` in one run; the machine is named above: compare ratios within a run.",
        "",
        at_a_glance(report["rows"]),
        "",
        "## mf and sw_ranking against RouteLLM, embedding excluded",
        "",
        ("One decision = one prompt embedding in, one strong-model win rate out; embedding time is excluded on "
        "both sides (RouteLLM gets its vectors from a stub of its OpenAI client). RouteLLM has no batched path "
        "(its batch is a loop of single decisions), so *speed-up batched* = RouteLLM median / our batched time "
        "per decision."),
        "",
        ("| case | ours median | ours p90 | ours min | RouteLLM median (n) | speed-up | ours batched / decision "
        "| speed-up batched | answers match RouteLLM (max abs diff) | peak RSS ours / RouteLLM |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["rows"]:
        s, r = row["ours_single"], row.get("ref_single")
        ref_ms = r["median_ms"] if r else None
        ref_cell = f"{fmt_ms(ref_ms)} ({r['n']})" if r else "not run"
        if row.get("whole_call"):
            batch, batch_speedup = "(row times one whole call)", "–"
        else:
            per = row["ours_batch_per_decision_ms"]
            batch = f"{fmt_ms(per)} (batch {row['batch_size']:,}: {row['ours_batch_decisions_per_s']:,.0f}/s)"
            batch_speedup = _speedup(ref_ms, per)
        lines.append(
            f"| {row['case']} | {fmt_ms(s['median_ms'])} | {fmt_ms(s['p90_ms'])} | {fmt_ms(s['min_ms'])} | "
            f"{ref_cell} | "
            f"{_speedup(ref_ms, s['median_ms'])} | {batch} | {batch_speedup} | {_match_cell(row)} | "
            f"{row['ours_peak_rss_mb']:,.0f} / {fmt(row.get('ref_peak_rss_mb'), ',.0f')} MB |"
        )
    skipped = sorted({row["ref_not_run"] for row in report["rows"] if row.get("ref_not_run")})
    for why in skipped:
        cases = [row["case"] for row in report["rows"] if row.get("ref_not_run") == why]
        which = "any case" if len(cases) == len(report["rows"]) else "; ".join(cases)
        lines += ["", f"RouteLLM not run for {which}: {why}."]

    lines += ["", ("sw_ranking against the memory floor: a single decision streams the arena's embeddings once, so "
              "*floor* = arena bytes / measured bandwidth and *x floor* = our median / floor (1.0 would be the "
              "fastest this machine can read the arena)."), "",
              ("| case | arena | ours median | ours effective GB/s | floor | x floor | build from the parquet files, "
              "ours / RouteLLM | resident after build, ours (after freeing allocator caches) / RouteLLM |"),
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in report["rows"]:
        if row["router"] != "sw_ranking":
            continue
        ref_build = fmt(row.get("ref_build_s"), ".1f")
        lines.append(
            f"| {row['case']} | {row['arena_bytes'] / 1e6:,.0f} MB | {fmt_ms(row['ours_single']['median_ms'])} | "
            f"{row['ours_gbs']:.1f} | {fmt_ms(row['floor_ms'])} | {row['x_floor']:.2f} | "
            f"{row['ours_build_s']:.1f} s / {ref_build} s | "
            f"{fmt(row['ours_rss_after_build_mb'], ',.0f')} ({fmt(row['ours_rss_after_release_mb'], ',.0f')}) / "
            f"{fmt(row.get('ref_rss_after_build_mb'), ',.0f')} MB |"
        )

    text = report.get("text") or {}
    lines += ["", "## Routing from text, one thread", ""]
    if "error" in text:
        lines.append(f"Not measured: {text['error']}.")
    elif text:
        sys.path.insert(0, str(HERE))
        from bench_text import markdown as text_markdown

        t = text["tokens"]
        lines += [(f"`route(prompt)` end to end (tokenise + embed + score + threshold) for every registered router "
                   f"that ships, on every local embedder, one thread, distinct prompts of exactly {t['short']} word "
                   f"pieces ({text['repeats']} calls per MiniLM or bert case, 10x that for static and random); "
                   "*scoring* is `score_embeddings` on a ready vector. Then the embedders alone on one prompt. "
                   "Ours only: RouteLLM embeds through OpenAI's API (its scoring alone is in the first table)."), ""]
        lines += text_markdown(text)
    lines += torch_router_sections(report.get("torch_routers") or {})

    lines += ["", "Notes:", ""] + [f"- {note}" for note in report["notes"]] + [""]
    return "\n".join(lines)


def torch_router_sections(results: dict[str, Any]) -> list[str]:
    """The bert and causal_llm tables (RouteLLM's torch router against ours on one checkpoint)."""
    lines: list[str] = []
    bert = results.get("bert")
    if bert is not None:
        lines += ["", "## bert against RouteLLM", ""]
        if "rows" not in bert:
            lines.append(f"Not run: {bert.get('not_run') or bert.get('error')}.")
        else:
            lines += [(f"RouteLLM's `BERTRouter` (torch {bert['torch']}) and ours on one random-weight bert-base "
                       f"checkpoint (110M parameters, RouteLLM's `routellm/bert*` shape), exported by "
                       f"`export-bert` (fp32, `--int8`); the shipped bert router (MiniLM, int8) beside them. "
                       f"{bert['threads']} threads, median of {bert['repeats']} single decisions; batched = "
                       f"`score` over 64 prompts / 64 (`{bert['command']}`)."), "",
                      "| router | tokens | one decision | batched, per decision | speed-up vs RouteLLM (one decision) |",
                      "| --- | ---: | --- | --- | --- |"]
            for row in bert["rows"]:
                one = (f" (1 thread: {fmt_ms(row['single_one_thread_ms'])})" if "single_one_thread_ms" in row else "")
                lines.append(f"| {row['router']} | {row['tokens']} | {fmt_ms(row['single_ms'])}{one} | "
                             f"{fmt_ms(row['batched_ms']) if 'batched_ms' in row else '–'} | "
                             f"{_speedup(row.get('reference_ms'), row['single_ms']) if not row.get('reference') else '1x'} |")
    causal = results.get("causal_llm")
    if causal is not None:
        lines += ["", "## causal_llm against RouteLLM", ""]
        if "rows" not in causal:
            lines.append(f"Not run: {causal.get('not_run') or causal.get('error')}.")
        else:
            lines += [(f"RouteLLM's `CausalLLMRouter` (torch {causal['torch']}, float32 on the CPU) and ours "
                       f"(onnxruntime) on one random-weight Llama-shaped checkpoint with Llama-3's vocabulary, its "
                       f"score-token rows scaled by {causal['score_rows_scale']:g} so it answers as a trained router "
                       f"does; {causal['threads']} threads (`{causal['command']}`; docs/benchmarks.md has larger "
                       "shapes). *steps*: decoding steps ours ran."), "",
                      "| shape | weights | prompt tokens | steps | RouteLLM | ours | speed-up | batch of 8, per prompt "
                      "| win-rate diff vs RouteLLM |",
                      "| --- | --- | ---: | ---: | --- | --- | --- | --- | --- |"]
            for row in causal["rows"]:
                lines.append(f"| {row['size']} ({row['params'] / 1e6:,.0f}M) | {row['weights']} | {row['prompt_tokens']} | "
                             f"{row['steps']} | {fmt_ms(row['reference_ms'])} | {fmt_ms(row['single_ms'])} | "
                             f"{_speedup(row['reference_ms'], row['single_ms'])} | {fmt_ms(row['batched_ms'])} | "
                             f"{row['win_rate_diff']:.1e} |")
    return lines


def ensure_reference_venv(directory: Path) -> str:
    """The Python of a venv with torch (CPU) and routellm==0.2.0, created on first use."""
    python = directory / "bin" / "python"
    if not python.exists():
        log(f"creating the reference environment in {directory} (torch CPU + routellm==0.2.0)")
        subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run(pip + ["torch==2.13.0"], check=True)  # first, so routellm does not pull a CUDA build
        subprocess.run(pip + ["routellm==0.2.0", "pyarrow"], check=True)
    return str(python)


def notes(quick: bool, ref: Reference, sizes: Sequence[int]) -> list[str]:
    """What the table does not say by itself: how many decisions each side timed, and what is in RSS."""
    n_mf, n_sw = (200, 10) if quick else (1000, 20)
    out = [
        (f"Decisions timed: ours mf {n_mf} single + 5 batches; ours sw_ranking {n_sw} single + "
        f"{1 if quick else 3} batch(es) of 64 per storage; the Controller row 5 calls."),
        ("Peak RSS is per case: ours is this process's peak while the case ran (after handing back what earlier "
        "cases freed; its inputs included, e.g. the 10,000-100,000 mf query embeddings), RouteLLM's the peak of "
        "the worker process that ran it (torch and datasets imports included). *Resident after build* is the "
        "process's RSS with the router built, i.e. what serving with it costs; in brackets, ours once "
        "pyarrow's memory pool and the C heap have handed back what they freed but kept (the router itself)."),
        ("float16/int8 rows are lossy storage options of ours: they are judged by their difference from "
        "our float32 and from RouteLLM, not by the parity tolerance; RouteLLM itself computes in float64."),
        ("Synthetic arenas: unit vectors around 200 topic centres, outcomes from per-topic Bradley-Terry "
        "strengths over RouteLLM's 64 model names, 25 % ties; the same parquet files feed both sides."),
    ]
    if ref.available:
        out.insert(1, f"RouteLLM decisions timed: mf {n_mf}; Controller 3 calls; sw_ranking "
                      f"{2 if quick else 3} per arena size ({', '.join(f'{n:,}' for n in sizes)} battles): "
                      "each one refits scikit-learn's LogisticRegression over every battle, so only a few are timed.")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one small arena (5,540 battles), fewer repetitions")
    parser.add_argument("--reference-venv", type=Path, help="venv for RouteLLM, created on first use")
    parser.add_argument("--reference-python", default=os.environ.get("ROUTELLM_REFERENCE_PYTHON"),
                        help="Python with torch + routellm==0.2.0 (also $ROUTELLM_REFERENCE_PYTHON)")
    parser.add_argument("--reference-large", choices=("auto", "yes", "no"), default="auto",
                        help="RouteLLM on the 164,400-battle arena (~16 GB RAM, ~90 s): auto = if the memory is there")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="where results.json and results.md go")
    parser.add_argument("--skip", nargs="+", choices=list(TORCH_BENCHES), default=[],
                        help="leave out these torch-router benchmarks (they need the reference Python's torch)")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    if args.reference_venv is not None:
        args.reference_python = ensure_reference_venv(args.reference_venv.resolve())
    info = machine()
    load_start = load_average()
    log("measuring streaming read bandwidth")
    bandwidth_start = read_bandwidth_gbs(info["threads"])
    sizes = [5_540] if args.quick else [55_400, 164_400]
    with tempfile.TemporaryDirectory(prefix="routellm_fast_bench_") as tmp:
        ref = Reference(args.reference_python, Path(tmp))
        if not ref.available:
            log(f"RouteLLM will not run: {ref.why_not}")
        log("mf")
        rows = bench_mf(Path(tmp), ref, args.quick)
        for n in sizes:
            rows += bench_sw(Path(tmp), ref, n, args.quick, args.reference_large)
        log("routing from text, one thread")
        text = bench_text(args.quick)
        torch_routers = {}
        for name in TORCH_BENCHES:
            if name not in args.skip:
                log(f"{name} against RouteLLM (in the reference Python)")
                torch_routers[name] = bench_torch_router(name, ref, args.quick, Path(tmp))
    gc.collect()
    bandwidth_end = read_bandwidth_gbs(info["threads"])
    bandwidth = max(bandwidth_start, bandwidth_end)  # the floor from the best the machine did
    add_floor(rows, bandwidth)
    load_end = load_average()
    report = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "quick": args.quick,
        "machine": info,
        "bandwidth": {"start_gbs": bandwidth_start, "end_gbs": bandwidth_end, "used_gbs": bandwidth,
                      "method": f"{info['threads']} threads OR-reducing a 1 GiB buffer as uint64, best of 9"},
        "load_average": {"start": load_start and load_start[0], "end": load_end and load_end[0]},
        "reference": ("routellm==0.2.0 with torch on the CPU, in its own Python environment (DEVELOPERS.md, "
                      "\"The reference environment\")" if ref.available
                      else f"**RouteLLM not run ({ref.why_not}): routellm_fast only**"),
        "rows": rows, "text": text, "torch_routers": torch_routers, "notes": notes(args.quick, ref, sizes),
        "command": "python benchmarks/run.py --reference-venv .bench-venv" + (" --quick" if args.quick else ""),
        "wall_s": time.perf_counter() - _START,
    }
    (args.out / "results.json").write_text(json.dumps(report, indent=1))
    text = markdown(report)
    (args.out / "results.md").write_text(text)
    if not args.quick:
        results = HERE / "RESULTS.md"
        old = results.read_text() if results.is_file() else ""
        # The GPU section is measured elsewhere (scripts/gpu_check.sh, on a GPU machine): keep it.
        gpu = old.find(GPU_SECTION)
        results.write_text(text + ("\n" + old[gpu:] if gpu >= 0 else ""))
    print(text)
    failed = [row["case"] for row in rows if row.get("matched") is False or row.get("tiers_match") is False]
    if failed:
        print(f"ANSWERS DIFFER from RouteLLM beyond tolerance: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
