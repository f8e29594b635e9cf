# Sourced, not run, by the benchmarks/gpu_*.sh scripts (from the repository root): what each of
# them does first on a machine lent through the `device` tool (docs/gpu.md).
#
# That machine's image has JAX but no TensorFlow and reaches no registry, so: Keras' JAX
# backend unless KERAS_BACKEND says otherwise (a smoke check on a CPU sets tensorflow); Keras
# and Keras Tuner installed from the wheels carried in .whl/ when the Python has no
# keras_tuner; the dataset's four files read from .gpudata/ when it was carried; the
# repository on PYTHONPATH; the machine's facts in $OUT/env.txt.
# Sets OUT (the caller's $OUT, else the first argument) and PY (GPU_PYTHON, else python3).
OUT=${OUT:-$1}
mkdir -p "$OUT"
PY=${GPU_PYTHON:-python3}
export PYTHONUNBUFFERED=1 KERAS_BACKEND=${KERAS_BACKEND:-jax} XLA_PYTHON_CLIENT_PREALLOCATE=false
if [ -d .gpudata ]; then
    export FMNIST_DATA=$PWD/.gpudata FMNIST_CACHE=/tmp/fmnist-cache
fi
if ! $PY -c "import keras_tuner" 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 3
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null; nproc
  $PY -c "import keras, keras_tuner, numpy; from fmnist_search import backend
print('backend', backend.name(), backend.version(), 'gpu', backend.has_gpu())
print('keras', keras.__version__, 'kt', keras_tuner.__version__, 'numpy', numpy.__version__)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
