#!/usr/bin/env bash
# The GPU checks in one go, for a lent device machine (BENCHMARKS.md section 5):
# bench_gpu.py (epoch times vs goals), bench_loader.py --device cuda (>= 5x target) and
# bench_sweep.py --gpu (Ray, jobs_per_gpu 1, 4, 8 on one GPU; >= 4x at 8).
# Wheels carried in .whl/ (hydra-core, omegaconf, antlr4, dlhw itself and, for the sweep, ray,
# hydra-ray-launcher and their dependencies) are installed first.
# Logs go to $OUT (the device tool's folder) or ./gpu-checks.
set -uo pipefail
out=${OUT:-gpu-checks}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"; } \
    2>&1 | tee "$out/gpu.txt"
timeout "${GPU_BENCH_S:-300}" python3 scripts/bench_gpu.py 2>&1 | tee "$out/bench_gpu.txt"
timeout "${LOADER_BENCH_S:-200}" python3 scripts/bench_loader.py --device cuda --repeats 3 2>&1 \
    | tee "$out/bench_loader_cuda.txt"
timeout "${SWEEP_BENCH_S:-400}" python3 scripts/bench_sweep.py --gpu --repeats 1 --jobs 16 --epochs 2 2>&1 \
    | tee "$out/bench_sweep_gpu.txt"
grep -h -E "ratio|goal|skipped|faster|throughput" "$out"/bench_*.txt
