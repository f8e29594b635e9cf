"""The training protocol: precision, optimizer schedule, callbacks, timing, evaluation.

Both a baseline run and every search trial train through :func:`fit`, so a searched variant
and a report model are always trained and timed the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmnist_search import backend
from fmnist_search.callbacks import EpochLog, WeightAverage, protocol_callbacks
from fmnist_search.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


# --------------------------------------------------------------------------- precision


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def choose_policy(precision: str) -> str:
    """Keras dtype policy for --precision; ``auto`` uses bf16 only where the CPU computes it."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}; valid: {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return POLICIES[precision]
    if backend.has_gpu():
        # bfloat16 where the GPU computes it (Ampere, compute capability 8.0, and later): the
        # range of float32, so no loss scaling; float16 with loss scaling before that.
        capability = backend.gpu_compute_capability()
        return "mixed_bfloat16" if capability and capability >= (8, 0) else "mixed_float16"
    flags = cpu_flags()
    if "amx_bf16" in flags or "avx512_bf16" in flags:
        return "mixed_bfloat16"
    return "float32"


# --------------------------------------------------------------------------- fit / evaluate


@dataclass
class FitResult:
    history: list[dict[str, float]]
    seconds_per_epoch: float
    fit_seconds: float
    epochs_trained: int
    extras: dict[str, Any] = field(default_factory=dict)


class EpochOrder:
    """The training images in a new order every epoch, the order a function of (seed, epoch).

    Keras' own shuffling of arrays draws its permutation inside a ``tf.data`` pipeline that is
    rebuilt every epoch with the same seed, so under ``keras.utils.set_random_seed`` (every
    trial and run here is seeded, for reproducibility) each epoch saw the same mini-batches in
    the same order (measured 2026-12-07: the same first batches in every epoch of a seeded fit,
    different ones without a seed): stochastic gradient descent without reshuffling. Here epoch
    ``e``'s order is ``default_rng([seed, e]).permutation(n)``, so it changes every epoch, and
    a training resumed at epoch ``e`` (an epoch checkpoint, a Hyperband continuation) sees what
    it would have seen uninterrupted. Built lazily as a ``keras.utils.PyDataset`` (the base
    class must come from Keras, which this module does not import at load time).
    """

    @staticmethod
    def dataset(x, y, batch_size: int, seed: int, first_epoch: int = 0):
        import keras

        class _Order(keras.utils.PyDataset):
            # Keras calls on_epoch_begin once before each epoch's batches (it also reads a
            # few batches before the first, for their shapes): the counter moves there.
            def __init__(self) -> None:
                super().__init__()
                self.epoch = first_epoch - 1
                self.index = EpochOrder.permutation(len(x), seed, first_epoch)

            def __len__(self) -> int:
                return math.ceil(len(x) / batch_size)

            def __getitem__(self, i: int):
                idx = self.index[i * batch_size:(i + 1) * batch_size]
                return x[idx], y[idx]

            def on_epoch_begin(self) -> None:
                self.epoch += 1
                self.index = EpochOrder.permutation(len(x), seed, self.epoch)

        return _Order()

    @staticmethod
    def permutation(n: int, seed: int, epoch: int) -> np.ndarray:
        return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def fit(model, values: Mapping[str, Any], train: tuple, validation: tuple, epochs: int,
        patience: int | None = None, extra_callbacks: Sequence = (), initial_epoch: int = 0,
        log: EpochLog | None = None, seed: int | None = None) -> FitResult:
    """Train with the protocol in ``values``, validating each epoch.

    The caller adds what it wants to see or check (progress bars, a stop flag) as
    ``extra_callbacks``; a progress bar that shows the logged rows shares ``log`` with it.
    ``seed``: of the epochs' image orders (``EpochOrder``); None draws it from NumPy's global
    generator, which every trial and run seeds before it builds its model.
    """
    log = log or EpochLog()
    batch_size = int(values["batch_size"])
    averaging = ([WeightAverage(int(values["swa_epochs"]), train[0], batch_size)]
                 if values.get("swa_epochs") else [])
    # the average is taken last, after every guard has had its say about the epoch
    callbacks = [*protocol_callbacks(values, log, patience), *extra_callbacks, *averaging]
    for callback in callbacks:  # an epoch checkpoint keeps the early stopping's state too
        if hasattr(callback, "see_callbacks"):
            callback.see_callbacks(callbacks)
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    batches = EpochOrder.dataset(*train, batch_size, seed, initial_epoch)
    start = time.perf_counter()
    with backend.custom_gradients_released():
        model.fit(
            batches,
            validation_data=validation,
            validation_batch_size=batch_size,
            shuffle=False,  # the order is EpochOrder's; Keras would reorder its batches too
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=0,
        )
    backend.unshare_averaged_weights(model)
    # The whole call, set-up included: a plain Keras script pays for that too, so only what
    # happens outside it counts as the tool's overhead.
    fit_seconds = time.perf_counter() - start
    return FitResult(log.rows, log.seconds_per_epoch(), fit_seconds, len(log.rows))


def predict(model, x: np.ndarray, batch_size: int = 512,
            tta: bool = False) -> tuple[np.ndarray, float]:
    """Class probabilities and the seconds they took; ``tta`` averages in the mirror images."""
    start = time.perf_counter()
    if tta:
        from fmnist_search.augment import flip_average

        probs = flip_average(model, x, batch_size)
    else:
        probs = model.predict(x, batch_size=batch_size, verbose=0)
    return probs, time.perf_counter() - start


def evaluate(model, x: np.ndarray, y: np.ndarray, class_names: Sequence[str],
             batch_size: int = 512, tta: bool = False) -> dict[str, Any]:
    """Loss, accuracy, per-class precision/recall/F1/support and the confusion matrix.

    ``tta`` (the ``tta`` value): test-time augmentation, the mean of the softmax of each image
    and of its horizontal mirror.
    """
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, log_loss

    probs, seconds = predict(model, x, batch_size, tta)
    pred = probs.argmax(axis=1)
    labels = list(range(len(class_names)))
    report = classification_report(y, pred, labels=labels, target_names=list(class_names),
                                   output_dict=True, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "loss": float(log_loss(y, _normalised(probs), labels=labels)),
        "per_class": {
            name: {
                "precision": float(report[name]["precision"]),
                "recall": float(report[name]["recall"]),
                "f1": float(report[name]["f1-score"]),
                "support": int(report[name]["support"]),
            }
            for name in class_names
        },
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "predict_seconds": seconds,
        "probs": probs.astype(np.float32),  # kept by a run (``store.PREDICTIONS``), not in JSON
    }


def _normalised(probs: np.ndarray) -> np.ndarray:
    """float64 rows summing to 1: bf16/fp32 softmax rounding would make sklearn warn."""
    p = np.clip(probs.astype(np.float64), 1e-7, 1.0)
    return p / p.sum(axis=1, keepdims=True)


def count_params(model) -> tuple[int, int]:
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return trainable, frozen
