#!/usr/bin/env bash
# The GPU backend's checks in one go, for a machine with an NVIDIA GPU (DEVELOPERS.md, "GPU checks"):
# build the extension in place, run tests/backends/test_cuda.py, then benchmarks/bench_cuda.py. Everything it
# prints and measures goes to OUT_DIR (default: $OUT where set, else gpu-check/), ready to copy into
# benchmarks/RESULTS.md.
#
#   bash scripts/gpu_check.sh [OUT_DIR] [extra bench_cuda.py arguments, e.g. --battles 55400]
#
# Needs python3 with numpy, pytest, pybind11, CuPy and this package's run-time dependencies that
# `import routellm_fast` uses (pyarrow, safetensors, onnxruntime, tokenizers, pyyaml, tqdm), cmake and
# a C++17 compiler. Without a usable GPU the tests skip their GPU cases and the benchmark exits 2.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check}}
shift || true
mkdir -p "$out"
py=$(command -v python3)
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  nvcc --version 2>&1 | tail -1
  "$py" -c 'import cupy, sys; print("python", sys.version.split()[0], "cupy", cupy.__version__)' 2>&1
} | tee "$out/device.txt"

build=build/gpu-check
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" \
  -DPython_EXECUTABLE="$py" >"$out/build.log" 2>&1 && cmake --build "$build" -j"$(nproc)" >>"$out/build.log" 2>&1 \
  || { echo "build failed: see $out/build.log"; tail -20 "$out/build.log"; exit 1; }
cp "$build"/_core*.so python/routellm_fast/

"$py" -c 'import routellm_fast as rf, json; print(json.dumps(rf.backend_info(), indent=1))' 2>&1 | tee "$out/backend_info.json"
"$py" -m pytest -q -p no:cacheprovider tests/backends/test_cuda.py 2>&1 | tee "$out/test_cuda.log"
tests=${PIPESTATUS[0]}
"$py" benchmarks/bench_cuda.py --json "$out/bench_cuda.json" "$@" 2>&1 | tee "$out/bench_cuda.md"
bench=${PIPESTATUS[0]}
echo "tests exit $tests, benchmark exit $bench"
exit $((tests != 0 ? tests : bench))
