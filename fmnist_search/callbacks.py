"""Keras callbacks: the protocol's schedule and guards, what we log, and what we show.

Kept apart from ``training`` (which decides what to train) and from ``progress`` (rich
widgets): a caller composes them, so ``training.fit`` is told how to show progress, and
nothing here reaches up into the search.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
from rich.progress import Progress

from fmnist_search.progress import BATCH_EVERY, epoch_line

MIN_FREE_BYTES = 1 << 20  # room for the state files written after a checkpoint


class NanLossError(RuntimeError):
    """Training diverged; raised so that a search records the trial as failed, with why."""


class LowDiskSpace(RuntimeError):
    """Not enough room left for the next checkpoint (see ``with_disk_guard``)."""


def protocol_callbacks(values: Mapping[str, Any], log: EpochLog,
                       patience: int | None = None) -> list:
    """The protocol's callbacks: the schedule, NaN guard, timing, optional early stop.

    The report's schedule (``exponential``: ``lr * lr_decay ** epoch``) changes the rate at
    each epoch; ``cosine`` and ``onecycle`` change it at every step (see ``scheduled_rate``).
    """
    lr0, decay = float(values["learning_rate"]), float(values["lr_decay"])
    if values["schedule"] == "exponential":
        scheduler = keras.callbacks.LearningRateScheduler(lambda epoch: lr0 * decay**epoch)
    else:
        scheduler = StepSchedule(values["schedule"], lr0, int(values["warmup_epochs"]))
    callbacks = [scheduler, NanGuard(), log]
    if patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, restore_best_weights=True))
    return callbacks


ONECYCLE_RISE = 0.3  # the share of the steps spent rising (PyTorch's OneCycleLR pct_start)
ONECYCLE_START = 25.0  # starts at lr / 25 (its div_factor) ...
ONECYCLE_END = 25.0 * 1e4  # ... and ends at lr / 25e4 (div_factor * final_div_factor)


def scheduled_rate(schedule: str, lr: float, step: int, total: int, warmup: int = 0) -> float:
    """The learning rate of step ``step`` (0-based) of ``total`` under a per-step schedule.

    ``cosine``: linear warm-up to ``lr`` over ``warmup`` steps, then half a cosine down to 0 at
    the end. ``onecycle`` (Smith & Topor 2017, as PyTorch's OneCycleLR without momentum
    cycling): a cosine rise from ``lr / 25`` to ``lr`` over the first 30% of the steps, then a
    cosine fall to ``lr / 25e4``.
    """
    if schedule == "cosine":
        warmup = min(warmup, total)
        if step < warmup:
            return lr * (step + 1) / warmup
        span = max(total - warmup, 1)
        return lr * 0.5 * (1 + math.cos(math.pi * min(step - warmup, span) / span))
    if schedule == "onecycle":
        rise = max(int(ONECYCLE_RISE * total), 1)
        if step < rise:
            return _cosine_between(lr / ONECYCLE_START, lr, step / rise)
        fall = max(total - rise - 1, 1)
        return _cosine_between(lr, lr / ONECYCLE_END, min((step - rise) / fall, 1.0))
    raise ValueError(schedule)


def _cosine_between(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * fraction))


class StepSchedule(keras.callbacks.Callback):
    """A per-step schedule over the whole ``fit`` call (its epochs times its steps per epoch).

    The step is counted from the epoch number, so a fit resumed at ``initial_epoch`` (Keras
    Tuner's Hyperband) continues the same curve. The rate is set before each step, only
    a variable assignment (no sync with the step); the epoch's logged ``learning_rate`` is
    its last step's.
    """

    def __init__(self, schedule: str, learning_rate: float, warmup_epochs: int = 0) -> None:
        super().__init__()
        self.schedule = schedule
        self.learning_rate = learning_rate
        self.warmup_epochs = warmup_epochs
        self.steps = self.total = self.epoch = 0
        self.last = learning_rate

    def on_train_begin(self, logs=None):
        self.steps = int(self.params.get("steps") or 1)
        self.total = self.steps * int(self.params["epochs"])

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        step = self.epoch * self.steps + batch
        self.last = scheduled_rate(self.schedule, self.learning_rate, step, self.total,
                                   self.warmup_epochs * self.steps)
        self.model.optimizer.learning_rate = self.last

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.last


class WeightAverage(keras.callbacks.Callback):
    """Stochastic weight averaging (Izmailov et al. 2018, "Averaging weights leads to wider
    optima and better generalization"): the running mean of the trainable weights at the end of
    each of the last ``epochs`` epochs of the fit, assigned when it ends; the batch-norm moving
    statistics, which belong to no single set of weights, are then recomputed for the averaged
    network on ``x`` (``recompute_batchnorm``), as the paper's ``bn_update`` does.

    Under this project's cosine-to-zero schedules the averaged epochs are the schedule's tail,
    not a constant or cyclic rate as in the paper. A fit resumed inside the averaging epochs
    (a checkpoint) restarts the mean from the restored weights, as Keras' EMA does.
    """

    def __init__(self, epochs: int, x: np.ndarray, batch_size: int) -> None:
        super().__init__()
        self.epochs, self.x, self.batch_size = int(epochs), x, int(batch_size)
        self.mean: list[np.ndarray] | None = None
        self.count = 0

    def on_epoch_end(self, epoch, logs=None):
        if epoch < int(self.params["epochs"]) - self.epochs:
            return
        weights = [np.asarray(w.numpy(), dtype=np.float64) for w in self.model.trainable_weights]
        self.count += 1
        if self.mean is None:
            self.mean = weights
        else:
            for mean, w in zip(self.mean, weights, strict=True):
                mean += (w - mean) / self.count

    def on_train_end(self, logs=None):
        if self.mean is None or self.model.stop_training:  # stopped early: keep what it has
            return
        for variable, mean in zip(self.model.trainable_weights, self.mean, strict=True):
            variable.assign(mean.astype(variable.dtype))
        recompute_batchnorm(self.model, self.x, self.batch_size)


def recompute_batchnorm(model, x: np.ndarray, batch_size: int) -> None:
    """Batch-norm moving statistics as the plain mean over ``x``'s batches, for the weights the
    model has now: each layer's momentum is set to ``k / (k + 1)`` before batch ``k`` (so the
    moving value is the running mean of the batches' statistics) in eager forward passes in
    training mode (augmentation and dropout on, as in training), then restored."""
    layers = [layer for layer in _all_layers(model)
              if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return
    saved = [layer.momentum for layer in layers]
    try:
        for k, start in enumerate(range(0, len(x), batch_size)):
            for layer in layers:
                layer.momentum = k / (k + 1)
            model(x[start:start + batch_size], training=True)
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum


def _all_layers(model) -> list:
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):  # a nested model (a backbone)
            out += _all_layers(layer)
    return out


class StopCheck(keras.callbacks.Callback):
    """Calls ``check`` at every epoch end (where stopping loses the least), e.g. a stop flag's."""

    def __init__(self, check: Callable[[], None]) -> None:
        super().__init__()
        self.check = check

    def on_epoch_end(self, epoch, logs=None):
        self.check()


class NanGuard(keras.callbacks.Callback):
    """Checked once per epoch: reading the loss every batch would force a device sync per step."""

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NanLossError(f"the loss became {loss} in epoch {epoch + 1}: training diverged "
                               "(try a lower learning rate)")


class EpochLog(keras.callbacks.Callback):
    """Per-epoch metrics, learning rate and wall time: the history we store and plot.

    The first epoch of a fit also pays for tracing the training and evaluation functions.
    Its batches are timed (from one batch's start to the next's: only ``begin`` hooks, so
    Keras keeps dispatching batch ends asynchronously) so that the excess of its first training
    and first validation batch over the median batch is kept (``tracing_seconds``): a
    one-epoch screening trial then reports what an epoch costs, which the budget scales to
    finalize's epochs (measured here: a 47.6 s first epoch of a ResNet-20-like network whose
    next epochs, on twice the images, took 73-78 s). A fit resumed from an epoch checkpoint
    (its rows restored before it starts) traces again in its first epoch: that excess is
    ``retraced[row index]``, left out of the epoch's cost the same way.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, float]] = []
        self._epoch_start = 0.0
        self._starts: dict[str, list[float]] | None = None  # the first epoch's batches only
        self._fit_first = 0  # rows logged before this fit began (restored from a checkpoint)
        self.tracing_seconds = 0.0
        self.retraced: dict[int, float] = {}

    def on_train_begin(self, logs=None):
        self._fit_first = len(self.rows)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        first = len(self.rows) == self._fit_first
        self._starts = {"train": [], "test": []} if first else None

    def on_train_batch_begin(self, batch, logs=None):
        if self._starts is not None:
            self._starts["train"].append(time.perf_counter())

    def on_test_batch_begin(self, batch, logs=None):
        if self._starts is not None:
            self._starts["test"].append(time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        lr = logs.pop("learning_rate", None)
        if lr is None:
            lr = float(np.asarray(self.model.optimizer.learning_rate))
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}, "lr": float(lr),
               "seconds": time.perf_counter() - self._epoch_start}
        if self._starts is not None:
            excess = sum(first_batch_excess(list(np.diff(starts)))
                         for starts in self._starts.values())
            if self.rows:
                self.retraced[len(self.rows)] = excess
            else:
                self.tracing_seconds = excess
            self._starts = None
        self.rows.append(row)

    def epoch_cost(self, index: int = -1) -> float:
        """One logged epoch's seconds; a fit's first epoch less its tracing."""
        index = index % len(self.rows)
        row = self.rows[index]
        tracing = self.tracing_seconds if index == 0 else self.retraced.get(index, 0.0)
        return max(row["seconds"] - tracing, 0.0) or row["seconds"]

    def seconds_per_epoch(self) -> float:
        """Median over epochs after the first (a resumed fit's first less its tracing); a fit of
        one epoch: that epoch less its tracing."""
        if len(self.rows) == 1:
            return self.epoch_cost(0)
        return float(np.median([self.epoch_cost(i) for i in range(1, len(self.rows))])) \
            if self.rows else float("nan")


def first_batch_excess(times: list[float]) -> float:
    """How much longer the first batch took than the median of the others (0 with fewer
    than three batches: too few to tell tracing from a batch's own cost)."""
    if len(times) < 3:
        return 0.0
    return max(times[0] - float(np.median(times[1:])), 0.0)


class EpochProgress(keras.callbacks.Callback):
    """Drives an epochs bar and a batches bar on a shared rich Progress."""

    # A batch hook makes Keras read every step's logs synchronously unless the callback is
    # declared safe to run on its dispatch thread; rich's Progress is thread-safe.
    async_safe = True

    def __init__(self, progress: Progress, log: EpochLog, epochs: int, label: str = "epochs",
                 print_epochs: bool = True, keep: bool = True) -> None:
        super().__init__()
        self.keep = keep
        self.log = log
        self.progress = progress
        self.epochs = epochs
        self.print_epochs = print_epochs
        self.epoch_task = progress.add_task(label, total=epochs, status="")
        self.batch_task = progress.add_task("  batches", total=None, status="", visible=False)

    def on_train_begin(self, logs=None):
        steps = self.params.get("steps")
        self.progress.update(self.batch_task, total=steps, completed=0, visible=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.progress.update(self.batch_task, completed=0)

    def on_train_batch_end(self, batch, logs=None):
        # Reading the loss forces a sync with the training step, so only now and then.
        if batch % BATCH_EVERY == 0:
            loss = (logs or {}).get("loss")
            status = f"loss {float(loss):.4f}" if loss is not None else ""
            self.progress.update(self.batch_task, completed=batch + 1, status=status)

    def on_epoch_end(self, epoch, logs=None):
        row = self.log.rows[-1]
        status = f"val_acc {row.get('val_accuracy', float('nan')):.4f}"
        self.progress.update(self.epoch_task, completed=epoch + 1, status=status)
        if self.print_epochs:
            self.progress.console.print(epoch_line(row, self.epochs))

    def on_train_end(self, logs=None):
        self.progress.update(self.batch_task, visible=False)
        if not self.keep:  # a search shows one trial's bars at a time
            self.progress.remove_task(self.batch_task)
            self.progress.remove_task(self.epoch_task)


def with_disk_guard(callbacks, model, checkpoint) -> list:
    """Check the free space before each save of ``checkpoint`` (Keras Tuner's best-epoch saver
    among ``callbacks``, ``kt_compat.best_epoch_saver``; None: no guard).

    Keras Tuner saves the best epoch's weights with h5py, and h5py writing to a full disk
    crashed the whole process with a segmentation fault (seen here on a 2 MiB tmpfs), so the
    search never got to say why. A guard placed before the checkpoint callback stops the search
    cleanly while there is still room for the state files.
    """
    need = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    need = int(need * 1.2) + MIN_FREE_BYTES

    class DiskGuard(keras.callbacks.Callback):
        def __init__(self, directory: str) -> None:
            super().__init__()
            self.directory = directory

        def on_epoch_end(self, epoch, logs=None):
            free = shutil.disk_usage(self.directory).free
            if free < need:
                raise LowDiskSpace(f"No space left on device: {self.directory} has {free:,} bytes "
                               f"free, and this trial's checkpoint needs about {need:,}")

    guarded = []
    for callback in callbacks:
        path = getattr(callback, "filepath", None)
        if callback is checkpoint and path:
            guarded.append(DiskGuard(os.path.dirname(str(path)) or "."))
        guarded.append(callback)
    return guarded


class OverLimit(RuntimeError):
    """Raised by a training's guard: the configuration breaks a limit of the search (seconds
    per epoch). The search turns it into Keras Tuner's failure of the trial
    (``tuning.hypermodel.OverLimitTrialFailure``); finalize and the benchmarks catch it as is."""


class EpochCostGuard(keras.callbacks.Callback):
    """Rejects a configuration whose epoch would take longer than ``limit`` seconds.

    Estimated from a few timed training steps of the first epoch, not a whole epoch: the
    first ``WARMUP`` steps pay for tracing and are skipped, then the median time of the next
    ``TIMED`` steps times the steps per epoch is the estimate (training only: the validation
    pass at the epoch's end is not counted). A configuration over the limit raises
    ``OverLimit`` after ``WARMUP + TIMED`` steps, so it costs seconds, not an epoch. An epoch
    with fewer steps than that is measured whole: it is cheap anyway.

    With ``log`` (the fit's ``EpochLog``, which must come first among the callbacks), every
    epoch's measured cost (validation included, the first epoch's tracing left out, as
    ``EpochLog.seconds_per_epoch`` reports it) is held to the limit too, and so is every
    epoch of a continued Hyperband trial (``estimate=False``: nothing to estimate there).
    A few steps can be cheaper than the epoch they stand for: a trial whose first epoch was
    estimated at under 90 s then measured 100, 141 and 175 s per epoch in a 2-core run, became
    the search's best, and its 30-epoch finalize cost more than the whole budget.
    """

    WARMUP = 3
    TIMED = 8

    def __init__(self, limit: float, log: EpochLog | None = None, estimate: bool = True,
                 label: str = "") -> None:
        super().__init__()
        self.limit = limit
        self.label = label or f"--max-seconds-per-epoch {limit:g}"
        self.log = log
        self.times: list[float] = []
        self.estimate: float | None = None if estimate else 0.0
        self._last = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.log is None or not self.log.rows:
            return
        cost = self.log.epoch_cost()
        if cost > self.limit:
            raise OverLimit(f"rejected: epoch {self.log.rows[-1]['epoch']} took {cost:.1f} s > "
                           f"{self.label}")

    def on_train_batch_end(self, batch, logs=None):
        if self.estimate is not None or batch < self.WARMUP:
            return
        self.times.append(time.perf_counter() - self._last)
        steps = int(self.params.get("steps") or 0)
        if len(self.times) >= self.TIMED or (steps and batch + 1 >= steps):
            self.estimate = float(np.median(self.times)) * max(steps, 1)
            if self.estimate > self.limit:
                raise OverLimit(f"rejected: ~{self.estimate:.1f} s per epoch (from "
                               f"{len(self.times)} timed steps) > {self.label}")


class MedianStop(keras.callbacks.Callback):
    """Median stopping: stop a trial whose curve is below the median of earlier trials.

    From epoch ``min_epochs`` (1-based) on, at each epoch end the trial's best
    ``val_accuracy`` so far is compared with the median of the earlier finished trials'
    ``val_accuracy`` at the same epoch (``curves``: one ``{epoch: val_accuracy}`` per earlier
    trial, epochs counted as Keras does across a Hyperband continuation). With fewer than
    ``min_peers`` earlier trials that reached the epoch, nothing is compared. Below the
    median, training stops (``model.stop_training``) and ``pruned`` says where and why; the
    trial ends normally with its (low) score.
    """

    def __init__(self, curves: Sequence[Mapping[int, float]], min_epochs: int,
                 min_peers: int = 3) -> None:
        super().__init__()
        self.curves = [dict(c) for c in curves]
        self.min_epochs = max(1, min_epochs)
        self.min_peers = min_peers
        self.best = float("-inf")
        self.pruned: str | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get("val_accuracy")
        if value is None:
            return
        self.best = max(self.best, float(value))
        number = epoch + 1
        if number < self.min_epochs:
            return
        peers = [c[number] for c in self.curves if number in c]
        if len(peers) < self.min_peers:
            return
        median = float(np.median(peers))
        if self.best < median:
            self.pruned = (f"epoch {number}: best val_accuracy {self.best:.4f} < median "
                           f"{median:.4f} of {len(peers)} earlier trials")
            self.model.stop_training = True
