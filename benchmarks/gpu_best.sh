#!/usr/bin/env bash
# The ensemble issue's GPU item: the same `fmnist-search run --space resnet --search best` a user
# runs, on one lent GPU (the `device` tool), timed to the delivered model and tested: one call.
#
# That machine's image has JAX but no TensorFlow, so the tool runs under Keras' JAX backend
# with Keras and Keras Tuner carried as wheels (.whl/) and the dataset's four files in
# .gpudata/ (as benchmarks/gpu_h200.sh, docs/gpu.md). The run gets --max-time GPU_BEST_TIME
# (default 8m: the device command's limit is 10 minutes and a machine start costs one or two),
# writes benchmarks/bench_best.py's JSON (stages, parts, final table, ensemble, delivered model)
# and the ensemble ablation from its saved predictions into $OUT.
# Usage on the device, from the repository root: bash benchmarks/gpu_best.sh
# Smoke check on a CPU (TensorFlow, tiny data):
#   KERAS_BACKEND=tensorflow GPU_BEST_TIME=3m GPU_BEST_EXTRA="--subset 0.02 --trials 3" \
#       bash benchmarks/gpu_best.sh
set -u
GPU_PYTHON=${GPU_PYTHON:-${GPU_BEST_PYTHON:-python3}}
# shellcheck source=benchmarks/gpu_env.sh
source benchmarks/gpu_env.sh /tmp/gpu-best-out  # the wheels, the data, $OUT/env.txt; sets PY
TIME=${GPU_BEST_TIME:-8m}
ROOT=/tmp/gpu-best-results
rm -rf "$ROOT"
# shellcheck disable=SC2086  # GPU_BEST_EXTRA is a list of options
$PY benchmarks/bench_best.py --max-time "$TIME" --results-dir "$ROOT" --out "$OUT/best.json" \
    -- --seed "${GPU_BEST_SEED:-1}" ${GPU_BEST_EXTRA:-} 2>&1 | tail -40
$PY benchmarks/ensemble_ablation.py "$ROOT" --project best --out "$OUT/ablation.json" 2>&1 | tail -8
tar czf "$OUT/final.tar.gz" --exclude="*.keras" --exclude="*.h5" -C "$ROOT" finalized 2>/dev/null
