#!/usr/bin/env bash
# Issue 32, item 2 on one lent GPU (the `device` tool; docs/gpu.md): does averaging the weights
# help the best preset's final protocol? Three arms of benchmarks/bench_final_protocol.py, each
# the default point trained as finalize trains it (30 epochs, flip TTA on the test set):
# `final` (neither), `final-with-swa` (the mean of the last 8 epochs' weights, batch norm
# recomputed), `final-with-ema` (momentum 0.999 per step), as many seeds as fit; arms of one seed
# share the split and the initial weights, so a seed's difference is paired.
#   1. one worker alone, 3 epochs of `final` on the whole split: the smoke check (a failure ends
#      the call in a minute) and the epoch time that sizes phase 2;
#   2. one process per (arm, seed), all at once on the one GPU (as gpu_h200.sh), as many seeds as
#      the time left holds (GPU_WA_SEEDS names them instead).
# One JSON, $OUT/weight_averaging.json (benchmarks/arms_summary.py): every row, a pair the time
# limit killed as missing (with its log's last epoch), and per arm the mean and standard
# deviation of test accuracy across seeds and the paired differences against `final`.
# The whole command stays under GPU_WA_SECONDS (default 420: a command of 10 minutes at most,
# under 9 with a machine start of a minute or two).
# Usage on the device, from the repository root: bash benchmarks/gpu_weight_averaging.sh
# Smoke check on a CPU (TensorFlow, tiny data):
#   KERAS_BACKEND=tensorflow GPU_WA_SUBSET=0.02 GPU_WA_EPOCHS=1 GPU_WA_SEEDS="1 2" \
#       bash benchmarks/gpu_weight_averaging.sh
set -u
START=$(date +%s)
# shellcheck source=benchmarks/gpu_env.sh
source benchmarks/gpu_env.sh /tmp/gpu-wa-out  # the wheels, the data, $OUT/env.txt; sets PY
LIMIT=${GPU_WA_SECONDS:-420}
SUBSET=${GPU_WA_SUBSET:-1.0}
EPOCHS=${GPU_WA_EPOCHS:-30}  # the best preset's final_epochs
ARMS="final final-with-swa final-with-ema"
W=/tmp/gpu-wa
rm -rf "$W"
mkdir -p "$W"
# XLA's compilations kept on disk: the arms' processes compile the same network at once (12 of
# them spent 148 s in their first epoch on the H200), and may find phase 1's there.
export JAX_COMPILATION_CACHE_DIR=$W/jax-cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0

echo "== phase 1: one worker, 3 epochs"
$PY benchmarks/bench_final_protocol.py --epochs 3 --seeds 99 --arms final --subset "$SUBSET" \
    --results-dir "$W/r1" --out "$OUT/single.json" > "$W/phase1.log" 2>&1
rc=$?
tail -8 "$W/phase1.log"
[ $rc -eq 0 ] || { cp "$W/phase1.log" "$OUT/"; exit 4; }
T1=$($PY -c "import json; print(json.load(open('$OUT/single.json'))['rows'][0]['seconds_per_epoch'])")
LEFT=$(( LIMIT - ($(date +%s) - START) ))
# Seeds: the most (1 to 5) whose 3 x seeds processes would end in the time left, by what the
# H200 showed (docs/gpu.md): N processes at once take ~T1 x (0.15 + 0.3 N) per epoch and ~12 N s
# in their first (compilation, all at once on the CPU), then ~30 + 3 N s to test and save.
SEEDS=${GPU_WA_SEEDS:-$($PY - "$T1" "$LEFT" "$EPOCHS" <<'PY'
import sys
t1, left, epochs = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def cost(n): return max(30, 12 * n) + (epochs - 1) * t1 * (0.15 + 0.3 * n) + 30 + 3 * n
fit = [s for s in range(1, 6) if cost(3 * s) <= left - 30]
print(" ".join(str(s) for s in range(1, (fit[-1] if fit else 1) + 1)))
PY
)}
echo "== phase 2: arms $ARMS x seeds $SEEDS at once (alone: $T1 s/epoch; $LEFT s left)"
PIDS=()
for seed in $SEEDS; do
    for arm in $ARMS; do
        timeout $(( LEFT - 25 )) $PY benchmarks/bench_final_protocol.py --seeds "$seed" \
            --arms "$arm" --subset "$SUBSET" --epochs "$EPOCHS" --results-dir "$W/r2" \
            --out "$W/fp_${arm}_${seed}.json" > "$W/log_${arm}_${seed}.txt" 2>&1 &
        PIDS+=($!)
    done
done
wait "${PIDS[@]}"
# shellcheck disable=SC2086  # ARMS and SEEDS are lists
$PY benchmarks/arms_summary.py "$W"/fp_*.json --logs "$W" --arms $ARMS --seeds $SEEDS \
    --extra "{\"backend\": \"$KERAS_BACKEND\", \"processes_at_once\": ${#PIDS[@]}, \"single_worker_seconds_per_epoch\": $T1, \"epochs\": $EPOCHS, \"subset\": $SUBSET}" \
    --out "$OUT/weight_averaging.json"
cp "$W"/log_*.txt "$OUT/" 2>/dev/null
echo "total $(( $(date +%s) - START )) s"
