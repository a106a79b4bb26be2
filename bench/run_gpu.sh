#!/usr/bin/env bash
# Builds the CUDA kernels, runs the kernel tests and the microbenchmarks on a GPU machine; results go to $OUT
# (or bench/results/gpu when OUT is unset). Usage: bash bench/run_gpu.sh [pytest -k filter for the benches]
set -uo pipefail
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  nvcc --version | tail -1
} 2>&1 | tee "$OUT/machine.txt"
# The device image's default g++ (/opt/gcc) binds libstdc++'s ostream inserters inside the extension, which then
# crash when an error message formats a number; the system g++ links them from libstdc++.so like torch does.
if [ -x /usr/bin/g++ ]; then export CXX=/usr/bin/g++ CUDAHOSTCXX=/usr/bin/g++; fi
TOKASAURUS_CUDA=1 MAX_JOBS=16 TORCH_CUDA_ARCH_LIST="8.0 9.0a" python3 setup.py build_ext --inplace \
  > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
timeout 300 python3 -m pytest tests/kernels -q -p no:cacheprovider -k "cuda" 2>&1 | tee "$OUT/cuda_tests.txt" | tail -25
FILTER=${1:-}
timeout 200 python3 -m pytest bench/test_attention_bench.py --device cuda --rounds 20 -q ${FILTER:+-k "$FILTER"} \
  --benchmark-json "$OUT/attention_cuda.json" > "$OUT/attention_bench.log" 2>&1 || tail -30 "$OUT/attention_bench.log"
timeout 60 python3 -m pytest bench/test_kv_bench.py --device cuda --rounds 20 -q \
  --benchmark-json "$OUT/kv_cuda.json" > "$OUT/kv_bench.log" 2>&1 || tail -30 "$OUT/kv_bench.log"
python3 bench/summarize.py "$OUT/attention_cuda.json" "$OUT/kv_cuda.json" | tee "$OUT/summary.md"
