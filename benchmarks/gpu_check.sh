#!/usr/bin/env bash
# The GPU checklist in one script: the test suite, `adbench fps` (fp32 and bf16, with and without
# --compile), the quick grid on CUDA and on CPU (same machine, numbers compared), and the CUDA-path
# probes. Every step has its own time limit; logs go to $OUT (default ./gpu-check).
# Usage: benchmarks/gpu_check.sh [steps...]   steps: env suite fps fps-compile grid probes (default: all)
set -u
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 ADBENCH_CACHE=$RES/cache
FPS="--backbone efficientnet_b4 --noise-net dit_gigant -s osd_irf_mean -s invad:steps=3 --results-dir $RES/fps"
step() {  # step NAME SECONDS LOG COMMAND...
  local name=$1 limit=$2 log=$3; shift 3
  local start=$SECONDS
  echo "=== $name" >>"$OUT/$log"
  timeout "$limit" "$@" >>"$OUT/$log" 2>&1
  echo "$name: rc=$? ${limit}s limit, took $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}
steps=" $* "
run_if() { [ "$steps" = "  " ] || [[ "$steps" == *" $1 "* ]]; }

if run_if env; then
  { nvidia-smi; python3 -c "import torch, timm, sys; print(sys.version, torch.__version__, torch.version.cuda, \
timm.__version__, torch.cuda.get_device_name(), torch.cuda.get_device_capability())"; } >"$OUT/env.txt" 2>&1
fi
if run_if suite; then
  step suite "${SUITE_LIMIT:-200}" suite.log python3 -m pytest -q -p no:cacheprovider -rfE --timeout 120 tests
fi
if run_if fps; then
  step "fps bf16" 90 fps.log adbench fps $FPS
  step "fps fp32" 120 fps.log adbench fps $FPS --precision fp32 --warmup 1 --iters 3
fi
if run_if fps-compile; then
  step "fps bf16 compile" 200 fps.log adbench fps $FPS --compile --warmup 2 --iters 5
  step "fps fp32 compile" 200 fps.log adbench fps $FPS --compile --precision fp32 --warmup 1 --iters 3
fi
if run_if grid; then
  step "grid cuda" 120 grid.log adbench grid registry/osd_irf_table1.yaml --quick --results-dir $RES/grid-cuda
  step "grid cpu" 120 grid.log adbench grid registry/osd_irf_table1.yaml --quick --set device=cpu \
    --results-dir $RES/grid-cpu
fi
if run_if probes; then
  step probes 150 probes.log python3 benchmarks/gpu_probes.py
fi
tar -czf "$OUT/results.tar.gz" -C "$RES" --exclude cache . 2>/dev/null
