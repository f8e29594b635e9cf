#!/usr/bin/env bash
# Issue 36, item 2 on one lent GPU (the `device` tool; docs/gpu.md), under Keras' JAX backend:
#   1. one epoch of model3 and of the ResNet-20-like point (the resnet space's default) under
#      the tool and under a plain Keras script of the same network (benchmarks/bench_epoch.py:
#      fp32 and the tool's `auto` precision, all contestants in one process, one epoch each in
#      turn, the first round left out as it holds XLA's compilation): the tool/plain ratios;
#   2. `fmnist-search run --space cnn --search quick --trials GPU_TVP_TRIALS --workers N
#      --workers-per-gpu N` for N = 1, 2, 4 on the one GPU (benchmarks/bench_workers.py: the
#      command a user types, start-up included; trials and epochs per hour, the median epoch),
#      the search benchmarks/results/workers.json measured on the 2-core CPU.
# One JSON, $OUT/tool_vs_plain.json ({"epoch": bench_epoch's, "workers": {N: bench_workers'}}),
# rewritten after each part, so a part the time limit cuts leaves the others. The whole command
# stays under GPU_TVP_SECONDS (default 420: under 8 device-minutes with a machine start).
# Usage on the device, from the repository root: bash benchmarks/gpu_tool_vs_plain.sh
# Smoke check on a CPU (TensorFlow, tiny data):
#   KERAS_BACKEND=tensorflow GPU_TVP_SUBSET=0.02 GPU_TVP_ROUNDS=2 GPU_TVP_TRIALS=2 \
#       GPU_TVP_WORKERS="1 2" bash benchmarks/gpu_tool_vs_plain.sh
set -u
START=$(date +%s)
# shellcheck source=benchmarks/gpu_env.sh
source benchmarks/gpu_env.sh /tmp/gpu-tvp-out  # the wheels, the data, $OUT/env.txt; sets PY
LIMIT=${GPU_TVP_SECONDS:-420}
SUBSET=${GPU_TVP_SUBSET:-1.0}
ROUNDS=${GPU_TVP_ROUNDS:-4}  # epochs per contestant; the first is warm-up
W=/tmp/gpu-tvp
rm -rf "$W"
mkdir -p "$W"
left() { echo $(( LIMIT - ($(date +%s) - START) )); }
collect() {
    $PY - "$W" "$OUT/tool_vs_plain.json" <<'PY'
import json, sys
from pathlib import Path
w, out = Path(sys.argv[1]), Path(sys.argv[2])
epoch = w / "epoch.json"
payload = {"benchmark": "tool_vs_plain",
           "epoch": json.loads(epoch.read_text()) if epoch.is_file() else None,
           "workers": {f.stem.split("_")[1]: json.loads(f.read_text())
                       for f in sorted(w.glob("workers_*.json"))}}
out.write_text(json.dumps(payload, indent=2))
e = payload["epoch"] or {"models": {}}
for name, m in e["models"].items():
    print(name, "s/epoch", {k: round(v, 2) for k, v in m["seconds_per_epoch"].items()},
          "tool/plain fp32", round(m["ratio_tool_over_plain_fp32"], 3),
          "auto", round(m["ratio_tool_over_plain_best"], 3))
for n, d in payload["workers"].items():
    r = d["runs"][0]
    median = r["median_seconds_per_epoch"]
    print(f"--workers {n}: exit {r['exit_status']}, {r['trials']} trials, {r['epochs']} epochs "
          f"in {r['wall_seconds']:.0f} s ({r['epochs_per_hour']:.0f} epochs/h), median epoch "
          + (f"{median:.2f} s" if median else "-"))
PY
}

echo "== part 1: one epoch, tool vs plain Keras ($ROUNDS rounds)"
timeout $(( $(left) * 2 / 3 )) $PY benchmarks/bench_epoch.py --models model3,resnet \
    --rounds "$ROUNDS" --subset "$SUBSET" --name gpu_epoch_time > "$W/epoch.log" 2>&1
echo "exit $?"
grep -v "^WARNING\|^I0000\|^E0000\|^W0000" "$W/epoch.log" | tail -8
cp benchmarks/results/gpu_epoch_time.json "$W/epoch.json" 2>/dev/null
collect > /dev/null
for n in ${GPU_TVP_WORKERS:-1 2 4}; do
    budget=$(( $(left) - 20 ))
    [ "$budget" -gt 30 ] || { echo "no time left for --workers $n"; break; }
    echo "== part 2: --workers $n ($budget s at most)"
    # shellcheck disable=SC2086  # the smoke check's subset, for the search's own
    timeout "$budget" $PY benchmarks/bench_workers.py --workers "$n" --gpu \
        --trials "${GPU_TVP_TRIALS:-4}" --out "$W/workers_$n.json" \
        ${GPU_TVP_SUBSET:+-- --subset $GPU_TVP_SUBSET} > "$W/workers_$n.log" 2>&1
    echo "exit $?"
    collect > /dev/null
done
collect
cp "$W"/*.log "$OUT/" 2>/dev/null
echo "total $(( $(date +%s) - START )) s"
