"""A training's epoch checkpoint: what ``runs.train_run`` needs to continue after a kill.

At the end of every epoch ``EpochCheckpoint`` writes, in ``<parent>/.checkpoint-<digest>/``
(``layout.CHECKPOINT_PREFIX``; the digest, ``identity_digest``, is of everything that makes two
trainings the same: values, epochs, seed, precision, data; any other configuration has another
folder and never resumes from this one):

- ``epoch-<K>-<token>.weights.h5``: ``model.save_weights``, which in Keras 3 holds the layers'
  weights *and* the optimizer's variables (its step count, Adam's moments, an EMA, a loss
  scale), under a name no earlier checkpoint used, fsynced;
- ``state.json`` (``layout.CHECKPOINT_STATE``, written last through ``layout.write_json``, so
  it is replaced whole): the epoch reached, the weights file's name and SHA-256, the EpochLog's
  rows and tracing seconds (the resumed run's history has every epoch, and its
  ``seconds_per_epoch`` is still the median of them), the wall and fit seconds spent so far,
  when the training started, and the state of every random generator in the model.

A kill at any instant therefore leaves the previous good checkpoint (``state.json`` still
names the older weights file, deleted only after the new ``state.json`` is in place) or the
new one. A ``state.json`` or weights file that cannot be read, or whose hash or variables do
not match, is ``Damaged``: the caller says so in one line and trains from the start.

Same result after a resume (tested bit for bit in fp32 with all three augmentation layers,
dropout and a per-step schedule, tests/test_checkpoints.py; checked in mixed_bfloat16 with batch
norm, an EMA and AdamW): a training killed and resumed ends with the same weights as one never
stopped, given the same thread count (TensorFlow sizes its pools to the usable cores, and the
order of a sum changes the last bits: tests/test_reproducibility.py) and a CPU (on a GPU an
uninterrupted run is not bit-reproducible either). What the next epoch's randomness depends
on, and how each part is kept:

- the augmentation layers' and dropout's ``keras.random.SeedGenerator`` states (a seed and a
  counter each) are *not* in ``save_weights`` (Keras saves a layer's weights only), so they are
  kept in ``state.json`` and assigned back (``generator_states``);
- the order of the training images: Keras (3.15, TensorFlow backend) shuffles numpy arrays in a
  ``tf.data`` pipeline built once per ``fit``, whose ``tf.random.shuffle`` draws its seed from
  the global seed ``train_run`` sets; re-iterating that pipeline gives the *same* permutation
  every epoch (measured in ``model.fit``: with a global seed every epoch has the same batches;
  without one they change), so epoch K of a fit begun at ``initial_epoch=K`` sees the order
  epoch K of the uninterrupted fit saw, and nothing needs storing. (That the order does not
  change between epochs is Keras' behaviour, not something this module chose; if it is changed,
  or Keras reshuffles per iteration, the bit-identity test fails and the order must become a
  function of (seed, epoch), e.g. a permutation drawn from ``(seed, epoch)`` at each epoch.)
- the learning rate: ``StepSchedule`` and the exponential schedule compute it from the epoch
  number, so ``initial_epoch`` continues the same curve.

Why not ``keras.callbacks.BackupAndRestore``: it saves ``latest.weights.h5`` over the previous
file in place and then writes its JSON, so a kill during the save leaves a truncated file and
no other copy (its ``double_checkpoint`` copies the old files first, which doubles the I/O and
still writes in place); it restores only the weights and the epoch (not the generators' states,
the EpochLog rows or the seconds spent), and it deletes its folder at ``on_train_end``, before
``train_run`` has evaluated the model and written its run. It is not wrapped, only its idea
(restore the optimizer through ``load_weights`` after ``optimizer.build``) is kept.

Not kept: the time between the last checkpoint and the kill (that epoch is trained again, and
only the kept epochs count in ``wall_seconds``); an early-stopping state, so a run with
``patience`` is not checkpointed (``train_run`` leaves it out).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keras
import numpy as np

from fmnist_search import layout
from fmnist_search.callbacks import MIN_FREE_BYTES, EpochLog

STATE_SCHEMA = 1


class Damaged(Exception):
    """A checkpoint that cannot be used; the message says why."""


def identity_digest(identity: Mapping[str, Any]) -> str:
    """16 hex digits of the canonical JSON of what makes two trainings the same."""
    text = json.dumps(identity, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def folder(parent: Path, digest: str) -> Path:
    return parent / f"{layout.CHECKPOINT_PREFIX}{digest}"


@dataclass
class Checkpoint:
    """What a checkpoint holds besides its weights (see the module docstring)."""

    directory: Path
    digest: str
    epoch: int  # epochs finished: fit continues with ``initial_epoch=epoch``
    epochs: int
    weights: str
    sha256: str
    rows: list[dict[str, float]]
    tracing_seconds: float
    generators: list[dict[str, Any]]
    wall_seconds: float
    fit_seconds: float
    started: str
    written: str
    resumed_at: list[int] = field(default_factory=list)


def load(directory: Path, digest: str, epochs: int) -> Checkpoint | None:
    """The checkpoint in ``directory``; None when there is none, ``Damaged`` when unusable."""
    if not (directory / layout.CHECKPOINT_STATE).exists():
        return None  # none, or killed before the first one was complete
    state = layout.read_json(directory / layout.CHECKPOINT_STATE)
    if state is None:
        raise Damaged(f"{layout.CHECKPOINT_STATE} is not valid JSON (truncated or damaged)")
    try:
        point = Checkpoint(directory=directory, **{k: v for k, v in state.items()
                                                   if k != "schema"})
    except TypeError as exc:
        raise Damaged(f"{layout.CHECKPOINT_STATE} has other fields ({exc})") from None
    if state.get("schema") != STATE_SCHEMA or point.digest != digest:
        raise Damaged("it was written for another configuration or version")
    if point.epochs != epochs or not 1 <= int(point.epoch) <= epochs \
            or len(point.rows) != point.epoch:
        raise Damaged(f"its epoch {point.epoch} of {point.epochs} does not fit this training")
    path = directory / point.weights
    try:
        actual = _sha256(path)
    except OSError as exc:
        raise Damaged(f"{point.weights}: {exc.strerror or exc}") from None
    if actual != point.sha256:
        raise Damaged(f"{point.weights} is damaged (its SHA-256 differs)")
    return point


def restore(model, point: Checkpoint, log: EpochLog) -> None:
    """Weights, optimizer, random generators and logged epochs back into a freshly built model
    (``Damaged`` when they do not fit it: the caller then builds it again)."""
    try:
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(point.directory / point.weights)
    except Exception as exc:  # h5py and Keras raise several kinds for a file that does not fit
        raise Damaged(f"{point.weights} does not fit this model ({exc})") from None
    variables = generator_states(model)
    saved = point.generators
    if [v.path for v in variables] != [g["path"] for g in saved]:
        raise Damaged("its random generators are not this model's")
    for variable, entry in zip(variables, saved, strict=True):
        variable.assign(np.asarray(entry["state"], dtype=variable.dtype))
    log.rows = [dict(row) for row in point.rows]
    log.tracing_seconds = float(point.tracing_seconds)


def generator_states(model) -> list:
    """The ``SeedGenerator`` state variables of the model's layers (augmentation, dropout):
    in ``model.variables`` but not in ``model.weights``, so not in ``save_weights``."""
    saved = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in saved]


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes the checkpoint at every epoch end (after ``EpochLog`` has logged the epoch).

    ``before``: the checkpoint this training resumed from (its seconds and resumes carry on);
    ``clock``: the ``time.perf_counter()`` at which this process's part of the run began.
    """

    def __init__(self, directory: Path, digest: str, log: EpochLog, started: str, clock: float,
                 before: Checkpoint | None = None) -> None:
        super().__init__()
        self.directory = directory
        self.digest = digest
        self.log = log
        self.started = started
        self.clock = clock
        self.before = before
        self.fit_start = 0.0
        self.seconds = 0.0  # what the last write took (the benchmark reads it)

    def on_train_begin(self, logs=None):
        self.fit_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        self.write(epoch + 1)
        self.seconds = time.perf_counter() - start

    def write(self, epoch: int) -> None:
        model, directory = self.model, self.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if layout.is_disk_error(exc):
                raise layout.disk_error(directory, exc) from exc
            raise
        _check_room(directory, model)
        name = f"epoch-{epoch:04d}-{uuid.uuid4().hex[:8]}{layout.CHECKPOINT_WEIGHTS}"
        path = directory / name
        try:
            model.save_weights(path)
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            digest = _sha256(path)
            before = self.before
            now_ = time.perf_counter()
            layout.write_json(directory / layout.CHECKPOINT_STATE, {
                "schema": STATE_SCHEMA, "digest": self.digest, "epoch": epoch,
                "epochs": int(self.params["epochs"]), "weights": name, "sha256": digest,
                "rows": self.log.rows, "tracing_seconds": self.log.tracing_seconds,
                "generators": [{"path": v.path, "state": np.asarray(v).tolist()}
                               for v in generator_states(model)],
                "wall_seconds": (before.wall_seconds if before else 0.0) + now_ - self.clock,
                "fit_seconds": (before.fit_seconds if before else 0.0) + now_ - self.fit_start,
                "started": self.started, "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "resumed_at": before.resumed_at + [before.epoch] if before else [],
            })
        except BaseException as exc:
            with suppress(OSError):
                path.unlink()
            if isinstance(exc, Exception) and not isinstance(exc, layout.StateWriteError) \
                    and layout.is_disk_error(exc):
                raise layout.disk_error(path, exc) from exc
            raise
        for old in directory.glob(f"*{layout.CHECKPOINT_WEIGHTS}"):
            if old.name != name:
                with suppress(OSError):
                    old.unlink()


def _check_room(directory: Path, model) -> None:
    """h5py writing to a full disk crashed the process (``callbacks.with_disk_guard``): look
    first, and stop with the full-disk message while the last checkpoint is still whole."""
    need = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
    if model.optimizer is not None:
        need += sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
                    for v in model.optimizer.variables)
    need = int(need * 1.2) + MIN_FREE_BYTES
    free = shutil.disk_usage(directory).free
    if free < need:
        raise layout.disk_error(directory, OSError(
            errno.ENOSPC, f"No space left on device ({free:,} bytes free, the checkpoint needs "
                          f"about {need:,})"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

