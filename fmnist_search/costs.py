"""What a trained model costs to use, measured the same way for every trial of a search with
several objectives (``objectives``): inference milliseconds per image and saved bytes.

Inference: after one untimed batch (which traces the prediction function), ``REPEATS`` timed
passes of ``model.predict`` over the first ``IMAGES`` validation images in batches of
``BATCH`` (fewer images when the validation split is smaller), the fastest pass kept (the
least disturbed by whatever else the machine runs, as ``timeit`` advises); divided by the
images. It runs in the trial's own process, with its dtype policy and its threads
(``threads()``: a distributed worker's share of the cores, else all the process may use), so
trials of one search compare like with like; ``inference_settings`` says how, in each record.

Saved bytes: the size of the model written as a ``.keras`` file without its optimizer state
(the file a user would ship; augmentation layers hold no weights and cost nothing).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 512
IMAGES = 1024
REPEATS = 3


def threads() -> int:
    """TensorFlow's intra-op threads in this process (a worker's setting), else the cores
    this process may run on."""
    try:
        import tensorflow as tf

        set_to = tf.config.threading.get_intra_op_parallelism_threads()
    except Exception:  # another backend: its pools follow the cores
        set_to = 0
    if set_to:
        return int(set_to)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)


def inference_ms(model, x: np.ndarray) -> tuple[float, dict[str, Any]]:
    """Milliseconds per image of ``model`` on ``x`` (validation images), and how it was
    measured."""
    n = min(IMAGES, len(x))
    batch = min(BATCH, n)
    images = x[:n]
    model.predict(images[:batch], batch_size=batch, verbose=0)  # traces: not timed
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        model.predict(images, batch_size=batch, verbose=0)
        best = min(best, time.perf_counter() - start)
    settings = {"batch_size": batch, "images": n, "repeats": REPEATS, "threads": threads(),
                "precision": model.dtype_policy.name}
    return 1000.0 * best / n, settings


def saved_bytes(model) -> int:
    """Bytes of ``model`` saved as ``.keras``, without its optimizer."""
    with tempfile.TemporaryDirectory(prefix="fmnist-size-") as tmp:
        path = Path(tmp) / "size.keras"
        model.save(path, include_optimizer=False)
        return path.stat().st_size


def measure(model, x_val: np.ndarray) -> dict[str, Any]:
    """Both costs, as a trial's record keeps them."""
    ms, settings = inference_ms(model, x_val)
    return {"ms_per_image": ms, "model_bytes": saved_bytes(model), "inference": settings}
