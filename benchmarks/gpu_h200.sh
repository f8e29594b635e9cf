#!/usr/bin/env bash
# The GPU benchmark: one `device` call on a lent H200 (docs/gpu.md has what it measured).
#
# That machine's image has JAX but no TensorFlow, and nothing can be installed there from a
# registry, so the project runs under Keras' JAX backend with Keras and Keras Tuner carried as
# wheels (.whl/) and the dataset's four files carried in .gpudata/. Two phases, all under the
# command's 10-minute limit:
#   1. one worker alone: the default point, 3 epochs on the whole split (epoch time, one
#      worker per GPU; also the smoke check: a failure here ends the call in a minute);
#   2. the final-protocol A/B (benchmarks/bench_final_protocol.py: the control under the best
#      preset's final protocol, without random erasing, with an EMA of the weights, with the
#      hand-trained AdamW recipe), one process per (arm, seed) all at once on the one GPU: as
#      many as phase 1's epoch time says fit (epoch time with N workers per GPU).
# Usage (from the repository root, on the device): bash benchmarks/gpu_h200.sh
set -u
# shellcheck source=benchmarks/gpu_env.sh
source benchmarks/gpu_env.sh /tmp/gpu-out  # the wheels, the data, $OUT/env.txt; sets PY
START=$(date +%s)
LIMIT=${GPU_BENCH_SECONDS:-560}
# A smoke check on a CPU (no TensorFlow, JAX installed):
#   GPU_BENCH_SUBSET=0.02 GPU_BENCH_EPOCHS=1 GPU_BENCH_WORKERS=4 bash benchmarks/gpu_h200.sh
SUBSET=${GPU_BENCH_SUBSET:-1.0}
PHASE2_EPOCHS=${GPU_BENCH_EPOCHS:+--epochs $GPU_BENCH_EPOCHS}

echo "== phase 1: one worker, 3 epochs"
$PY benchmarks/bench_final_protocol.py --epochs 3 --seeds 9 --arms final --subset "$SUBSET" \
    --results-dir /tmp/r1 --out "$OUT/single.json" > /tmp/phase1.log 2>&1
rc=$?
tail -25 /tmp/phase1.log
[ $rc -eq 0 ] || { cp /tmp/phase1.log "$OUT/"; exit 4; }
T1=$($PY -c "import json; print(json.load(open('$OUT/single.json'))['rows'][0]['seconds_per_epoch'])")
ELAPSED=$(( $(date +%s) - START ))
LEFT=$(( LIMIT - ELAPSED ))
# Workers: as many (arm, seed) pairs as would finish their 30 epochs in the time left if the GPU
# gave no concurrency gain at all (a safe bound; small models usually gain), 4 to 12.
N=${GPU_BENCH_WORKERS:-$($PY -c "print(max(4, min(12, int(($LEFT - 60) / (30 * $T1 * 1.3)) // 4 * 4)))")}
echo "== phase 2: $N workers at once (alone: ${T1} s/epoch; ${LEFT} s left)"
PIDS=()
i=0
for seed in ${GPU_BENCH_SEEDS:-1 2 3}; do
    for arm in final final-without-erasing final-with-ema final-adamw; do
        [ $i -lt "$N" ] || break 2
        timeout $(( LEFT - 30 )) $PY benchmarks/bench_final_protocol.py --seeds $seed \
            --arms $arm --subset "$SUBSET" $PHASE2_EPOCHS --results-dir /tmp/r2 --out /tmp/fp_${arm}_${seed}.json \
            > /tmp/log_${arm}_${seed}.txt 2>&1 &
        PIDS+=($!)
        i=$((i + 1))
    done
done
wait "${PIDS[@]}"
$PY - "$N" "$T1" <<'PY'
import json, os, sys
from pathlib import Path
rows, machine = [], None
for f in sorted(Path("/tmp").glob("fp_*.json")):
    d = json.loads(f.read_text())
    rows += d["rows"]
    machine = machine or d["machine"]
out = Path(os.environ["OUT"]) / "final_protocol_gpu.json"
out.write_text(json.dumps({"benchmark": "final_protocol", "backend": "jax", "machine": machine,
                           "workers_per_gpu": int(sys.argv[1]),
                           "single_worker_seconds_per_epoch": float(sys.argv[2]),
                           "rows": rows}, indent=2, default=str))
for r in sorted(rows, key=lambda r: (r["arm"], r["seed"])):
    print(f"{r['arm']:<24} seed {r['seed']}  test {r['test_accuracy']:.4f}  "
          f"val {r['val_accuracy']:.4f}  {r['seconds_per_epoch']:.2f} s/epoch")
PY
tar czf "$OUT/runs.tar.gz" --exclude="*.keras" --exclude="*.png" -C /tmp r1 r2 $(cd /tmp && ls log_*.txt phase1.log) 2>/dev/null
echo "total $(( $(date +%s) - START )) s"
