#!/usr/bin/env bash
# Issue 35's benchmark on one lent GPU (the `device` tool; docs/gpu.md), under Keras' JAX
# backend: benchmarks/bench_pareto.py's protocol unchanged (benchmarks/pareto_cnn.toml, its
# subset, trials and epochs; seeds 1 and 2; the same reference point), its parts at once:
#   1. a smoke check (a failure ends the call in about a minute): one MO-TPE run of 2 trials
#      on 2% of the split and model1 for 1 epoch, then bench_pareto.py --aggregate on it;
#   2. one bench_pareto.py process per (arm, seed), 6 of them, and one per seed for the
#      report's models (the reference), all at once on the one GPU, each with its own results
#      directory and JSON; at GPU_PARETO_SECONDS from the start (default 470) what still runs
#      is stopped as Ctrl-C stops it (SIGTERM to its `fmnist-search` child, which ends at a
#      clean point): its part is recorded with that exit status and the trials it finished,
#      and bench_pareto.py's summary leaves it out;
#   3. bench_pareto.py --aggregate over the parts: $OUT/pareto.json and $OUT/pareto.png, the
#      JSON and figure the CPU benchmark writes; $OUT/runs.tar.gz: the logs and trial records
#      (no models).
# On a machine still warm from an earlier call the parts resume (bench_pareto.py skips what
# ended with exit 0 and resumes the rest) and phase 1 is skipped; GPU_PARETO_FRESH=1 starts over.
# Usage on the device, from the repository root: bash benchmarks/gpu_pareto.sh
# Smoke check on a CPU (TensorFlow, tiny data, one seed):
#   KERAS_BACKEND=tensorflow GPU_PARETO_SUBSET=0.02 GPU_PARETO_TRIALS=3 GPU_PARETO_SEEDS=1 \
#       GPU_PARETO_BASELINES=model1 GPU_PARETO_BASELINE_EPOCHS=1 bash benchmarks/gpu_pareto.sh
set -u
START=$(date +%s)
# shellcheck source=benchmarks/gpu_env.sh
source benchmarks/gpu_env.sh /tmp/gpu-pareto-out  # the wheels, the data, $OUT/env.txt; sets PY
LIMIT=${GPU_PARETO_SECONDS:-470}
GRACE=${GPU_PARETO_GRACE:-40}  # after the stop: to end the epoch, save, record, then a kill
SEEDS=${GPU_PARETO_SEEDS:-1 2}
ARMS=${GPU_PARETO_ARMS:-motpe bohb random}
BASELINES=${GPU_PARETO_BASELINES:-model1 model2 model3 model4 model6}
# The protocol's options: empty means bench_pareto.py's defaults (the preset's), as on the CPU.
PROTOCOL=()
[ -n "${GPU_PARETO_SUBSET:-}" ] && PROTOCOL+=(--subset "$GPU_PARETO_SUBSET")
[ -n "${GPU_PARETO_TRIALS:-}" ] && PROTOCOL+=(--trials "$GPU_PARETO_TRIALS")
[ -n "${GPU_PARETO_BASELINE_EPOCHS:-}" ] && PROTOCOL+=(--baseline-epochs "$GPU_PARETO_BASELINE_EPOCHS")
W=/tmp/gpu-pareto
[ "${GPU_PARETO_FRESH:-0}" = 1 ] && rm -rf "$W"
RESUMED=0
[ -d "$W/parts" ] && RESUMED=1
mkdir -p "$W/parts" "$W/logs"
# Eight processes share the GPU: memory taken as needed (gpu_env.sh), each at most this share.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.1}
# XLA's compilations kept on disk: a promoted trial (the same network, longer) and the arms
# of one seed that draw the same configuration find theirs there.
export JAX_COMPILATION_CACHE_DIR=$W/jax-cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
quiet() { grep -v "^WARNING\|^I0000\|^E0000\|^W0000" "$@"; }

if [ $RESUMED = 0 ]; then
    echo "== phase 1: smoke (motpe, 2 trials on 2%; model1, 1 epoch; aggregate)"
    rm -rf "$W/smoke"
    timeout "${GPU_PARETO_SMOKE_SECONDS:-150}" $PY benchmarks/bench_pareto.py --arms motpe --seeds 99 --trials 2 --subset 0.02 \
        --baselines model1 --baseline-epochs 1 --results-dir "$W/smoke" \
        --out "$W/smoke/part.json" > "$W/logs/phase1.log" 2>&1 \
        && $PY benchmarks/bench_pareto.py --aggregate "$W/smoke/part.json" \
            --out "$OUT/smoke.json" >> "$W/logs/phase1.log" 2>&1
    rc=$?
    quiet "$W/logs/phase1.log" | tail -6
    [ $rc -eq 0 ] || { cp "$W/logs/phase1.log" "$OUT/"; exit 4; }
    echo "phase 1: $(( $(date +%s) - START )) s"
else
    echo "== resuming the parts in $W (phase 1 skipped)"
fi

echo "== phase 2: arms $ARMS x seeds $SEEDS, the reference per seed, at once"
PIDS=()
NAMES=()
start_part() {  # name, then bench_pareto.py's options
    local name=$1
    shift
    $PY benchmarks/bench_pareto.py "$@" "${PROTOCOL[@]}" --results-dir "$W/runs/$name" \
        --out "$W/parts/$name.json" >> "$W/logs/$name.log" 2>&1 &
    PIDS+=($!)
    NAMES+=("$name")
}
for seed in $SEEDS; do
    # shellcheck disable=SC2086  # BASELINES is a list
    start_part "ref-s$seed" --seeds "$seed" --arms --baselines $BASELINES
    for arm in $ARMS; do
        start_part "$arm-s$seed" --seeds "$seed" --arms "$arm" --baselines
    done
done
running() {
    local n=0 pid
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && n=$((n + 1)); done
    echo $n
}
while [ "$(running)" -gt 0 ] && [ $(( $(date +%s) - START )) -lt "$LIMIT" ]; do
    sleep 5
done
if [ "$(running)" -gt 0 ]; then
    echo "== time limit ($LIMIT s): stopping $(running) parts"
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && pkill -TERM -P "$pid"  # its fmnist-search child
    done
    END=$(( $(date +%s) + GRACE ))
    while [ "$(running)" -gt 0 ] && [ "$(date +%s)" -lt $END ]; do sleep 2; done
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            pkill -KILL -P "$pid"
            kill -KILL "$pid"
        fi
    done
fi
wait "${PIDS[@]}" 2>/dev/null
echo "phase 2 ended at $(( $(date +%s) - START )) s"

echo "== phase 3: aggregate"
PARTS=()
for name in "${NAMES[@]}"; do
    if [ -s "$W/parts/$name.json" ]; then
        PARTS+=("$W/parts/$name.json")
    else
        echo "$name: no JSON (killed before its first record); its log's end:"
        quiet "$W/logs/$name.log" | tail -3
    fi
done
[ ${#PARTS[@]} -gt 0 ] && $PY benchmarks/bench_pareto.py --aggregate "${PARTS[@]}" \
    --out "$OUT/pareto.json" > "$W/logs/aggregate.log" 2>&1
rc=$?
quiet "$W/logs/aggregate.log" | tail -4
[ -s "$OUT/pareto.json" ] && $PY - "$OUT/pareto.json" "$RESUMED" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("resumed call" if sys.argv[2] == "1" else "first call", "| settings", d["settings"])
for name, r in sorted(d["runs"].items()):
    print(f"{name:<10} exit {r['exit_status']:>4}  trials {r['trials']}  screening epochs "
          f"{r['screening_epochs']:>3}  hv {r['hypervolume_normalised']:.4f}  front "
          f"{len(r['front'])}  {r['wall_seconds']:.0f} s")
for seed, ref in sorted(d["references"].items()):
    print(f"reference s{seed}:", {n: (m["exit_status"], m.get("val_accuracy"))
                                 for n, m in ref.items()})
print("summary", json.dumps(d["summary"]["seeds"]))
PY
tar czf "$OUT/runs.tar.gz" --exclude="*.keras" --exclude="*.h5" --exclude="jax-cache" \
    -C "$W" parts logs runs 2>/dev/null
echo "total $(( $(date +%s) - START )) s"
exit $rc
