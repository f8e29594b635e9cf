"""The Keras backend in use and what it offers: the one module that asks TensorFlow, JAX or
PyTorch directly.

Keras 3 runs the same models on any of the three; the project pins and tests TensorFlow, and
everything else goes through Keras. The GPU benchmark (``benchmarks/gpu_h200.sh``) runs under
JAX on a machine whose image has JAX but no TensorFlow, so only these few questions differ.
It is also the one place that touches a TensorFlow internal (its gradient registry, below), as
``tuning/kt_compat.py`` is for Keras Tuner's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def name() -> str:
    import keras

    return keras.backend.backend()


def version() -> str:
    """The backend library's version (``tensorflow``'s, ``jax``'s or ``torch``'s)."""
    import importlib

    return str(getattr(importlib.import_module(name()), "__version__", "unknown"))


def has_gpu() -> bool:
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if backend == "torch":
        import torch

        return bool(torch.cuda.is_available())
    return False


def gpu_compute_capability() -> tuple[int, int] | None:
    """The first GPU's CUDA compute capability ((8, 0) for an A100, (9, 0) for an H100), or
    None without a GPU or where the backend does not say."""
    backend = name()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            found = tf.config.experimental.get_device_details(gpus[0]).get(
                "compute_capability") if gpus else None
        elif backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            found = getattr(gpus[0], "compute_capability", None) if gpus else None
        elif backend == "torch":
            import torch

            found = torch.cuda.get_device_capability() if torch.cuda.is_available() else None
        else:
            found = None
    except (RuntimeError, ValueError, IndexError, AttributeError):
        return None
    if isinstance(found, str):  # JAX: "9.0"
        major, _, minor = found.partition(".")
        found = (int(major), int(minor or 0))
    return (int(found[0]), int(found[1])) if found else None


# Read once, when the backend starts. TensorFlow otherwise reserves all the memory of every
# visible GPU for one process; JAX 75% of its GPU per process, so that two workers on one GPU
# run out of memory (its preallocation is kept for a process alone on its GPU: it is faster).
GROWTH_ENV = {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}
SHARED_ENV = {**GROWTH_ENV, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def share_gpu_memory(environ, shared: bool = False) -> None:
    """GPU memory taken as needed, in ``environ`` (``os.environ`` before the backend starts, or
    a worker's); ``shared``: processes share one GPU. A value the user set is kept."""
    for key, value in (SHARED_ENV if shared else GROWTH_ENV).items():
        environ.setdefault(key, value)


def set_threads(threads: int) -> None:
    """TensorFlow's thread pools; the other backends size theirs at start-up (their own
    environment variables), so there is nothing to set after import."""
    if name() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))


def enable_op_determinism() -> bool:
    """TensorFlow's deterministic kernels; False where the backend has no such switch after
    start-up (XLA under JAX reads ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` at start)."""
    if name() != "tensorflow":
        return False
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    return True


def unshare_averaged_weights(model) -> None:
    """Give each weight its own buffer after ``fit`` copied an EMA into it.

    Under JAX (Keras 3.15.1) ``finalize_variable_values`` points each weight at the average's
    buffer; the next jitted call (``evaluate``) donates the weight's buffer and so deletes the
    average's, and saving the model with its optimizer then fails with "Array has been deleted"
    (reproduced on a two-layer model). TensorFlow copies on assignment, so nothing is done there.
    Done after every JAX ``fit``, EMA or not: the average may sit in an optimizer wrapped by a
    loss-scale optimizer (``mixed_float16``), and a copy of a small model's weights is cheap.
    """
    if name() != "jax":
        return
    import keras

    for weight in model.trainable_variables:
        weight.assign(keras.ops.copy(weight.value))


def gradient_registry() -> dict | None:
    """TensorFlow's global op-gradient registry, a private attribute: ``_gradient_registry =
    registry.Registry("gradient")`` in tensorflow/python/framework/ops.py, whose ``_registry``
    dict maps names to functions (TensorFlow 2.16-2.21). None under another backend or a
    TensorFlow without it, and then nothing is cleaned."""
    if name() != "tensorflow":
        return None
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry
    except (ImportError, AttributeError):
        return None
    return registry if isinstance(registry, dict) else None


@contextmanager
def custom_gradients_released() -> Iterator[None]:
    """Drop the gradient functions TensorFlow registers globally while one model trains.

    Keras' TensorFlow optimizer sums gradients through ``tf.distribute``'s ``all_reduce``, a
    ``tf.custom_gradient``; in a traced function that registers a ``CustomGradient-N`` entry in
    a process-wide registry, and its closure keeps the whole traced training graph alive
    (TensorFlow issues #97697 and #80895). A search builds hundreds of models in one process:
    measured here, about 5 MiB and 8,500 Python objects a trial that ``clear_session()`` does
    not free. The registry is read only while a training step is traced, so the entries one
    ``fit`` added are removed when it returns (a later ``fit`` of the same model reuses the
    traced step, or registers afresh if it retraces).
    """
    registry = gradient_registry()
    before = set(registry or ())
    try:
        yield
    finally:
        added = [k for k in registry or () if k not in before and k.startswith("CustomGradient-")]
        for key in added:
            del registry[key]
