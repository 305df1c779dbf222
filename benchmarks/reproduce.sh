#!/usr/bin/env bash
# The papers' scale on real images available offline: DiT-gigant and InvAD's MLP (Table 8), trained by the
# papers' recipe on MVTec's hazelnut (../shared/data/hazelnut_toy; batch 8 and 64, raw and EMA weights) and on
# ELPV solar cells (image-level, the epochs that fit), every scorer, both InvAD timestep subsets; one table each.
# The grids are benchmarks/reproduce/{hazelnut,elpv}.yaml (what each axis is and why, deviations included).
#
# Usage: benchmarks/reproduce.sh          on one GPU: the papers' networks (budget: 8 minutes on an H100/H200)
#        benchmarks/reproduce.sh --cpu    anywhere: the same grids with tiny nets and 1-2 epochs (--quick), so CI
#                                         keeps the script working; its numbers say nothing about the methods
# Environment: OUT (logs, result rows and tables; default ./reproduce), DATA (the folder holding hazelnut_toy;
#   default ../shared/data), ELPV_EPOCHS (default: elpv.yaml's 15), ADBENCH (the command; default adbench),
#   STEP_LIMIT (seconds per grid; default 330 on a GPU, 600 on CPU).
# Each grid has its own time limit; a grid stopped by it keeps its finished cells (run the script again to
# resume them) and the table is still written from what finished. $OUT/summary.txt has each step's exit code
# and time, $OUT/trainings.txt the time of every training. Exit code 1 when a step failed or ran out of time;
# the hazelnut grid is skipped (with a line in the summary) where DATA holds no hazelnut_toy.
set -u
OUT=${OUT:-reproduce}
DATA=${DATA:-../shared/data}
ADBENCH=${ADBENCH:-adbench}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 COLUMNS=200 ADBENCH_CACHE=${ADBENCH_CACHE:-$OUT/cache}  # COLUMNS: unwrapped log lines
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = "--cpu" ]; then
  scale=(--quick --set runtime.device=cpu)
  limit=${STEP_LIMIT:-600}
else
  scale=()
  limit=${STEP_LIMIT:-330}
fi
elpv_epochs=()  # ELPV_EPOCHS replaces elpv.yaml's 15, with the warm-up at the recipe's 40/300 share
[ -n "${ELPV_EPOCHS:-}" ] && elpv_epochs=(--set "train.epochs=$ELPV_EPOCHS" \
  --set "train.warmup_epochs=$(( (ELPV_EPOCHS * 40 + 150) / 300 ))")
step() {  # step NAME LOG COMMAND...
  local name=$1 log=$2; shift 2
  local start=$SECONDS
  echo "=== $name: $*" >>"$OUT/$log"
  timeout "$limit" "$@" >>"$OUT/$log" 2>&1
  echo "$name: rc=$? (${limit} s limit), took $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

{ date -u +%FT%TZ; git -C "$here" rev-parse --short HEAD 2>/dev/null
  python3 -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name() \
if torch.cuda.is_available() else 'CPU', '|', torch.get_num_threads(), 'CPU threads')"; } >"$OUT/env.txt" 2>&1

for grid in hazelnut elpv; do
  if [ "$grid" = hazelnut ] && [ ! -d "$DATA/hazelnut_toy" ]; then
    echo "hazelnut: skipped, no $DATA/hazelnut_toy (set DATA to the folder that holds it)" | tee -a "$OUT/summary.txt"
    continue
  fi
  extra=(--set "data.root=$DATA")
  [ "$grid" = elpv ] && extra=("${elpv_epochs[@]}")
  step "$grid" "$grid.log" "$ADBENCH" grid "$here/reproduce/$grid.yaml" "${scale[@]}" "${extra[@]}" \
    --results-dir "$OUT/results"
  folder=$(ls -d "$OUT"/results/grid-reproduce-"$grid"* 2>/dev/null | head -1)
  [ -n "$folder" ] && step "$grid table" "$grid.log" "$ADBENCH" report "$folder" --out "$OUT/$grid" --format both
done
grep -h "trained .* steps on" "$OUT"/*.log >"$OUT/trainings.txt" 2>/dev/null
cat "$OUT/trainings.txt"
if grep -q "rc=[1-9]" "$OUT/summary.txt"; then
  echo "failed or out of time:"; grep "rc=[1-9]" "$OUT/summary.txt"; exit 1
fi
