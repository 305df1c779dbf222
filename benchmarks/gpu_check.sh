#!/usr/bin/env bash
# The GPU checklist in one script: the test suite, `adbench fps` (fp32 and bf16, with and without
# --compile), the quick grid on CUDA and on CPU (same machine, numbers compared), and the CUDA-path
# probes. Every step has its own time limit; logs go to $OUT (default ./gpu-check).
# Usage: benchmarks/gpu_check.sh [steps...]
#   steps: env probes cuda-tests fps fps-fp32 fps-compile fps-compile-fp32 train-speed grid grid-cpu suite
#   (default: all),
#   run in that order. The suite comes last (its time varies most); a step's time limit never loses earlier
#   logs, and -v names each test as it ends, so a stopped suite still says what failed. The suite pins its
#   numbers on the CPU (ADBENCH_DEVICE=cpu); tests/test_cuda.py is what runs on the GPU.
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
if run_if probes; then
  step probes 100 probes.log python3 benchmarks/gpu_probes.py
  step "feature cache" 60 probes.log python3 benchmarks/feature_cache.py --backbone efficientnet_b4 --images 256 \
    --batch-size 64
fi
if run_if cuda-tests; then
  step "cuda tests" 120 suite.log python3 -m pytest -q -p no:cacheprovider -rfE tests/test_cuda.py
fi
if run_if fps; then
  step "fps bf16" 90 fps.log adbench fps $FPS
fi
if run_if fps-fp32; then
  step "fps fp32" 90 fps.log adbench fps $FPS --precision fp32 --warmup 1 --iters 3
fi
if run_if fps-compile; then
  step "fps bf16 compile" 150 fps.log adbench fps $FPS --compile --warmup 2 --iters 5
fi
if run_if fps-compile-fp32; then
  step "fps fp32 compile" 150 fps.log adbench fps $FPS --compile --precision fp32 --warmup 1 --iters 3
fi
if run_if train-speed; then  # eager vs compiled training step, FLOPs and share of the measured peak
  step "train speed" 300 train.log python3 benchmarks/train_speed.py --noise-nets ${TRAIN_NETS:-dit_gigant mlp_large}
fi
if run_if grid; then
  step "grid cuda" 90 grid.log adbench grid registry/osd_irf_table1.yaml --quick --results-dir $RES/grid-cuda
  step "grid cuda fp32" 90 grid.log adbench grid registry/osd_irf_table1.yaml --quick --set noise_net.precision=fp32 \
    --results-dir $RES/grid-cuda-fp32
fi
if run_if grid-cpu; then
  step "grid cpu" 60 grid.log adbench grid registry/osd_irf_table1.yaml --quick --set runtime.device=cpu \
    --results-dir $RES/grid-cpu
fi
if run_if suite; then
  # pytest-xdist spreads the suite over the machine's cores (one torch thread per worker) where it is installed
  workers=$(python3 -c "import xdist" 2>/dev/null && echo "-n ${SUITE_WORKERS:-12}")
  step suite "${SUITE_LIMIT:-200}" suite.log env OMP_NUM_THREADS=1 python3 -m pytest -v -p no:cacheprovider -rfE \
    --timeout 120 --durations 10 $workers tests
fi
if ls "$RES" | grep -qv '^cache$'; then  # fps records and grid folders
  tar -czf "$OUT/results-$$.tar.gz" -C "$RES" --exclude cache . 2>/dev/null
fi
