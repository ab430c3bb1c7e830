"""The GPU backend: sw_ranking and mf scoring on an NVIDIA GPU through CuPy, optional at install
(``pip install "routellm_fast[cuda]"``) and at run time.

Which device a router scores on is chosen once, lazily: ``device="cpu"``, ``"cuda"`` or ``"auto"``
(the default: the GPU when CuPy is installed and sees one, else the CPU core). The environment
variable ``ROUTELLM_FAST_DEVICE`` forces (``cuda``) or forbids (``cpu``) the GPU for every router.
``"cuda"`` without a usable GPU is a RuntimeError saying why.

Both backends score from one build: the CPU core builds the arena and exports its tables
(``SwArena.device_tables()``, read-only views), which are copied to the GPU once. Per batch of
queries: their dot products with every arena prompt row (one cuBLAS GEMM through CuPy, in the
chosen precision), then ``kernels/sw_counts.cu`` sums each query's similarity-weighted counts per
(tier pair, outcome) slot in double precision, and the CPU core's Elo fit turns those into win
rates (``SwArena.score_counts``; a few hundred microseconds per query on the CPU threads). mf is
one float64 matrix-vector product with the pair vector the CPU core derived.

The kernels ship inside the package (``routellm_fast/kernels/*.cu``) and are compiled at run time
by NVRTC (``cupy.RawModule``), once per process. :func:`nvrtc_ptx` compiles them without a GPU (the
CI check).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import install_hint
from ..paths import kernels_dir

__all__ = ["DEVICE_ENV", "DEVICES", "CudaMfScorer", "CudaSwScorer", "cuda_info", "kernel_source", "nvrtc_ptx",
           "resolve_device"]

#: Environment variable that forces (``cuda``) or forbids (``cpu``) the GPU.
DEVICE_ENV = "ROUTELLM_FAST_DEVICE"
DEVICES = ("cpu", "cuda", "auto")
#: Precisions of the sw_ranking dot products on the GPU: float64 (equal to the CPU core to ~1e-12),
#: float32 (cuBLAS SGEMM without TF32) and float16 (tensor cores; the arena kept in half).
PRECISIONS = ("float64", "float32", "float16")
#: Queries per GEMM + kernel launch.
BATCH = 1024
_KERNEL_BLOCK = 256


def kernel_source(name: str = "sw_counts.cu") -> str:
    """The CUDA source of a kernel file shipped with the package."""
    path = kernels_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"CUDA kernel source {name} not found in {kernels_dir()}")
    return path.read_text()


@lru_cache(maxsize=1)
def cuda_info() -> dict[str, Any]:
    """Whether a GPU is usable here (CuPy installed, a device visible), its name, and why not."""
    if importlib.util.find_spec("cupy") is None:
        return {"cuda_available": False, "cuda_reason": f"CuPy is not installed ({install_hint('cuda')})"}
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            return {"cuda_available": False, "cuda_reason": "CuPy sees no CUDA device"}
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        return {"cuda_available": True, "cuda_device": name, "cuda_devices": count,
                "cuda_compute_capability": f"{props['major']}.{props['minor']}"}
    except Exception as exc:  # no driver, driver too old, ...: CuPy raises its own runtime errors
        return {"cuda_available": False, "cuda_reason": f"CUDA is not usable: {exc}"}


def resolve_device(device: str | None = "auto") -> str:
    """``"cpu"`` or ``"cuda"`` for a requested ``device`` (``"cpu"``, ``"cuda"``, ``"auto"``), after
    ``ROUTELLM_FAST_DEVICE``. Raises RuntimeError for ``"cuda"`` without a usable GPU."""
    requested = "auto" if device is None else device
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    env = os.environ.get(DEVICE_ENV, "").strip().lower()
    if env and env not in DEVICES:
        raise ValueError(f"${DEVICE_ENV} must be one of {', '.join(DEVICES)}, got {env!r}")
    if env == "cpu":
        if requested == "cuda":
            raise RuntimeError(f"device='cuda' was asked for, but ${DEVICE_ENV}=cpu forbids the GPU")
        return "cpu"
    if env == "cuda" and requested == "auto":
        requested = "cuda"
    info = cuda_info()
    if requested == "cuda" and not info["cuda_available"]:
        raise RuntimeError(f"device='cuda' needs a usable GPU: {info['cuda_reason']}")
    return "cuda" if info["cuda_available"] and requested != "cpu" else "cpu"


_module_lock = threading.Lock()
_modules: dict[str, Any] = {}


def _module(name: str = "sw_counts.cu") -> Any:
    """The kernel file compiled by NVRTC for the current device, once per process."""
    import cupy

    with _module_lock:
        if name not in _modules:
            _modules[name] = cupy.RawModule(code=kernel_source(name), options=("-std=c++17",
                                            f"-DSW_COUNTS_BLOCK={_KERNEL_BLOCK}"))
        return _modules[name]


def _query_factors(emb: np.ndarray) -> np.ndarray:
    """1 / ||query|| in float64, with the CPU core's checks and messages."""
    norms = np.sqrt(np.einsum("ij,ij->i", emb, emb, dtype=np.float64))
    bad = ~np.isfinite(norms)
    if bad.any():
        raise ValueError(f"query embedding row {int(np.argmax(bad))} contains NaN or inf")
    if (norms == 0).any():
        raise ValueError(f"query embedding row {int(np.argmax(norms == 0))} is a zero vector: "
                         "its cosine similarity is undefined")
    return 1.0 / norms


class CudaSwScorer:
    """An sw_ranking arena on the GPU: ``score(emb, strong, weak)`` gives the CPU core's win rates.

    ``arena``: the router's ``_core.SwArena``; its tables are copied to the GPU once. ``precision``:
    of the dot products (see :data:`PRECISIONS`); the weights and counts are always double.
    """

    def __init__(self, arena: Any, precision: str = "float32") -> None:
        import cupy as cp

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.arena, self.precision = arena, precision
        t = arena.device_tables()
        rows = np.asarray(t["prompt_rows"])
        dtype = {"float64": np.float64, "float32": np.float32, "float16": np.float16}[precision]
        # int8 rows carry their scale in row_factor, so their values are the integers themselves.
        self.rows = cp.asarray(rows.astype(dtype, copy=False))
        self.row_factor = cp.asarray(t["row_factor"])
        self.entry_begin = cp.asarray(t["entry_begin"])
        self.entry_slot = cp.asarray(t["entry_slot"])
        self.entry_count = cp.asarray(t["entry_count"])
        self.slots = int(t["count_slots"])
        self.dim = rows.shape[1]
        self._kernel = _module().get_function("sw_counts_f64" if precision == "float64" else "sw_counts_f32")
        self._dtype = dtype
        # One pinned (page-locked) host buffer for a batch's counts, reused by every batch.
        mem = cp.cuda.alloc_pinned_memory(BATCH * self.slots * 8)
        self._pinned = np.frombuffer(mem, np.float64, BATCH * self.slots).reshape(BATCH, self.slots)

    def counts(self, emb: np.ndarray) -> np.ndarray:
        """Each query's similarity-weighted counts, float64 ``[n, slots]`` (host)."""
        import cupy as cp

        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise ValueError(f"embeddings must be [n, {self.dim}], got shape {emb.shape}")
        qf_all = _query_factors(emb)
        out = np.empty((len(emb), self.slots), dtype=np.float64)
        stream = cp.cuda.get_current_stream()
        for start in range(0, len(emb), BATCH):
            batch = emb[start : start + BATCH]
            b = len(batch)
            q = cp.asarray(batch).astype(self._dtype, copy=False)
            dots = q @ self.rows.T  # [b, P]: cuBLAS
            if dots.dtype == cp.float16:
                dots = dots.astype(cp.float32)
            qf = cp.asarray(qf_all[start : start + b])
            # Poisoned: a slot or status the kernel failed to write shows up as NaN / -1, never as a count.
            counts = cp.full((b, self.slots), cp.nan, dtype=cp.float64)
            status = cp.full(b, -1, dtype=cp.int32)
            self._kernel((b,), (_KERNEL_BLOCK,),
                         (dots, np.int64(dots.shape[1]), self.row_factor, qf, self.entry_begin, self.entry_slot,
                          self.entry_count, np.int32(dots.shape[1]), np.int32(self.slots), counts, status),
                         shared_mem=(self.slots + 32) * 8)
            host = self._pinned[:b]
            counts.get(out=host, stream=stream)
            flags = status.get(stream=stream)
            stream.synchronize()
            if (flags < 0).any():
                raise RuntimeError(f"the sw_counts kernel did not finish query {start + int(np.argmax(flags < 0))}")
            if flags.any():
                row = start + int(np.argmax(flags))
                raise ValueError(f"query embedding row {row}: its largest cosine similarity to the arena is exactly 0, "
                                 "so the weights 10 ** (sim / max_sim) are undefined")
            out[start : start + b] = host
        return out

    def score(self, emb: np.ndarray, strong: int, weak: int) -> np.ndarray:
        """Win rates float64 ``[n]``: the GPU's counts, fitted by the CPU core."""
        return self.arena.score_counts(self.counts(emb), strong, weak)


class CudaMfScorer:
    """The mf pair on the GPU: the CPU core's pair vector (exported by its pickle state, hi + lo
    floats = the vector to ~48 bits), one float64 matrix-vector product per batch."""

    def __init__(self, pair_scorer: Any) -> None:
        import cupy as cp

        state = pair_scorer.__getstate__()
        hi_lo = np.asarray(state[1], dtype=np.float64)
        self.vector = cp.asarray(hi_lo[0] + hi_lo[1])
        self.dim = int(hi_lo.shape[1])

    def score(self, emb: np.ndarray) -> np.ndarray:
        import cupy as cp

        emb = np.ascontiguousarray(emb, dtype=np.float32)
        out = np.empty(len(emb), dtype=np.float64)
        for start in range(0, len(emb), 1 << 16):
            logits = cp.asarray(emb[start : start + (1 << 16)]).astype(cp.float64) @ self.vector
            out[start : start + len(logits)] = cp.asnumpy(logits)
        bad = ~np.isfinite(out)
        if bad.any():
            raise ValueError(f"prompt embedding row {int(np.argmax(bad))} contains NaN or inf "
                             "(or values so large the score overflows)")
        return 1.0 / (1.0 + np.exp(-out))


# -- compiling without a GPU (NVRTC through ctypes): what CI checks


def _load_nvrtc() -> ctypes.CDLL:
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib

        return ctypes.CDLL(load_nvidia_dynamic_lib("nvrtc").abs_path)
    except ImportError:
        pass
    spec = importlib.util.find_spec("nvidia.cuda_nvrtc")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        libs = sorted((Path(folder) / "lib").glob("libnvrtc*.so*"))
        for lib in libs:  # NVRTC opens its builtins library by name: load it first, globally
            if lib.name.startswith("libnvrtc-builtins.so"):
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
        for lib in libs:
            if lib.name.startswith("libnvrtc.so"):
                return ctypes.CDLL(str(lib))
    return ctypes.CDLL("libnvrtc.so")


def nvrtc_ptx(source: str, arch: str = "sm_90", options: tuple[str, ...] = ("-std=c++17",)) -> str:
    """Compile CUDA source to PTX with NVRTC (no GPU needed); raises RuntimeError with the log."""
    nvrtc = _load_nvrtc()
    prog = ctypes.c_void_p()
    check = nvrtc.nvrtcGetErrorString
    check.restype = ctypes.c_char_p

    def ok(code: int, what: str) -> None:
        if code != 0:
            raise RuntimeError(f"NVRTC {what}: {check(code).decode()}")

    ok(nvrtc.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"kernel.cu", 0, None, None), "create")
    try:
        opts = [f"--gpu-architecture={arch.replace('sm_', 'compute_')}".encode(), *(o.encode() for o in options)]
        argv = (ctypes.c_char_p * len(opts))(*opts)
        code = nvrtc.nvrtcCompileProgram(prog, len(opts), argv)
        if code != 0:
            size = ctypes.c_size_t()
            nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            nvrtc.nvrtcGetProgramLog(prog, log)
            raise RuntimeError(f"NVRTC could not compile the kernel ({check(code).decode()}):\n{log.value.decode()}")
        size = ctypes.c_size_t()
        ok(nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size)), "PTX size")
        ptx = ctypes.create_string_buffer(size.value)
        ok(nvrtc.nvrtcGetPTX(prog, ptx), "PTX")
        return ptx.value.decode()
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))
