"""A training's epoch checkpoint: what ``runs.train_run`` needs to continue after a kill.

At the end of every epoch ``EpochCheckpoint`` writes, in ``<parent>/.checkpoint-<digest>/``
(``store.CHECKPOINT_PREFIX``; the digest, ``identity_digest``, is of everything that makes two
trainings the same: values, epochs, seed, precision, data; any other configuration has another
folder and never resumes from this one):

- ``epoch-<K>-<token>.weights.h5``: ``model.save_weights``, which in Keras 3 holds the layers'
  weights *and* the optimizer's variables (its step count, Adam's moments, an EMA, a loss
  scale), under a name no earlier checkpoint used, fsynced;
- ``state.json`` (``store.CHECKPOINT_STATE``, written last through ``store.write_json``, so
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
- the order of the training images: a function of (seed, epoch) (``training.EpochOrder``), so
  epoch K of a fit begun at ``initial_epoch=K`` sees the order epoch K of the uninterrupted fit
  saw, given the same order seed (``training.fit`` draws it from NumPy's generator, which
  ``train_run`` seeds before it builds the model; a search trial keeps it in ``extra``);
- the learning rate: ``StepSchedule`` and the exponential schedule compute it from the epoch
  number, so ``initial_epoch`` continues the same curve.

Why not ``keras.callbacks.BackupAndRestore``: it saves ``latest.weights.h5`` over the previous
file in place and then writes its JSON, so a kill during the save leaves a truncated file and
no other copy (its ``double_checkpoint`` copies the old files first, which doubles the I/O and
still writes in place); it restores only the weights and the epoch (not the generators' states,
the EpochLog rows or the seconds spent), and it deletes its folder at ``on_train_end``, before
``train_run`` has evaluated the model and written its run. It is not wrapped, only its idea
(restore the optimizer through ``load_weights`` after ``optimizer.build``) is kept.

What else a training's next epochs depend on, kept when the caller has it:

- early stopping (Keras' ``EarlyStopping`` among the fit's callbacks, shown to this one by
  ``training.fit``, ``see_callbacks``): its wait, best value and epoch, and the best epoch's
  weights it would restore (``early-<K>-<token>.npz``, written only when the best changes);
- whether the training had stopped at the checkpoint's epoch (``stopped``: early stopping, median
  stopping), so a resume does not train past where it ended; the caller's own small state
  (``extra``: a search trial's order seed and pruning reason);
- files beside the training that belong to its epoch (``keep``: Keras Tuner's best-epoch weights
  of a search trial, ``tuning.trial_checkpoints``): each is hard-linked (copied where links are
  not possible) into the folder when it has changed, and put back on ``restore``, so after a
  kill the file is the one of the checkpoint's epoch, not of the lost epoch in progress;
- the first epoch's tracing time of each resumed part (``EpochLog.retraced``): a resumed fit
  traces its functions again, which is not the epoch's cost.

Not kept: the time between the last checkpoint and the kill (that epoch is trained again, and
only the kept epochs count in ``wall_seconds``); a stochastic weight average in progress
(``WeightAverage`` restarts its mean from the restored weights). ``train_run`` still leaves a run
with ``patience`` out (a search trial with it is checkpointed).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keras
import numpy as np

from fmnist_search import store
from fmnist_search.callbacks import MIN_FREE_BYTES, EpochLog

STATE_SCHEMA = 1
PARTIAL = store.PARTIAL  # a weights file being written (``save_weights_atomically``)


class Damaged(Exception):
    """A checkpoint that cannot be used; the message says why."""


def identity_digest(identity: Mapping[str, Any]) -> str:
    """16 hex digits of the canonical JSON of what makes two trainings the same."""
    text = json.dumps(identity, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def folder(parent: Path, digest: str) -> Path:
    return parent / f"{store.CHECKPOINT_PREFIX}{digest}"


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
    first: int = 0  # the epoch the training began at (a Hyperband continuation's initial epoch)
    stopped: bool = False  # it had stopped at ``epoch`` (early or median stopping)
    extra: dict[str, Any] = field(default_factory=dict)  # the caller's own state
    retraced: dict[str, float] = field(default_factory=dict)  # ``EpochLog.retraced``
    early: dict[str, Any] | None = None  # EarlyStopping's state, ``weights`` its file
    kept: list[dict[str, str]] = field(default_factory=list)  # {"path", "file"}: ``keep``


def load(directory: Path, digest: str, epochs: int, first: int = 0) -> Checkpoint | None:
    """The checkpoint in ``directory`` of a training of epochs ``first + 1 .. epochs``; None when
    there is none, ``Damaged`` when unusable."""
    if not (directory / store.CHECKPOINT_STATE).exists():
        return None  # none, or killed before the first one was complete
    state = store.read_json(directory / store.CHECKPOINT_STATE)
    if state is None:
        raise Damaged(f"{store.CHECKPOINT_STATE} is not valid JSON (truncated or damaged)")
    try:
        point = Checkpoint(directory=directory, **{k: v for k, v in state.items()
                                                   if k != "schema"})
    except TypeError as exc:
        raise Damaged(f"{store.CHECKPOINT_STATE} has other fields ({exc})") from None
    if state.get("schema") != STATE_SCHEMA or point.digest != digest:
        raise Damaged("it was written for another configuration or version")
    if point.epochs != epochs or point.first != first \
            or not first + 1 <= int(point.epoch) <= epochs \
            or len(point.rows) != point.epoch - first:
        raise Damaged(f"its epoch {point.epoch} of {point.epochs} does not fit this training")
    path = directory / point.weights
    try:
        actual = _sha256(path)
    except OSError as exc:
        raise Damaged(f"{point.weights}: {exc.strerror or exc}") from None
    if actual != point.sha256:
        raise Damaged(f"{point.weights} is damaged (its SHA-256 differs)")
    others = [entry["file"] for entry in point.kept]
    if point.early and point.early.get("weights"):
        others.append(point.early["weights"])
    for name in others:
        if not (directory / name).is_file():
            raise Damaged(f"{name} is missing")
    return point


def restore(model, point: Checkpoint, log: EpochLog) -> None:
    """Weights, optimizer, random generators, logged epochs and kept files back into a freshly
    built model. ``Damaged`` when they do not fit it; the model's variables are then as they
    were (a Hyperband continuation's came from its parent trial), so the caller can train it
    from the start."""
    variables = generator_states(model)
    saved = point.generators
    if [v.path for v in variables] != [g["path"] for g in saved]:
        raise Damaged("its random generators are not this model's")
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # its initial values, as a first step's
    every = [*model.variables, *(model.optimizer.variables if model.optimizer else [])]
    before = [v.numpy() for v in every]
    try:
        model.load_weights(point.directory / point.weights)
    except Exception as exc:  # h5py and Keras raise several kinds for a file that does not fit
        for variable, value in zip(every, before, strict=True):
            variable.assign(value)
        raise Damaged(f"{point.weights} does not fit this model ({exc})") from None
    for variable, entry in zip(variables, saved, strict=True):
        variable.assign(np.asarray(entry["state"], dtype=variable.dtype))
    log.rows = [dict(row) for row in point.rows]
    log.tracing_seconds = float(point.tracing_seconds)
    log.retraced = {int(k): float(v) for k, v in point.retraced.items()}
    for entry in point.kept:
        _put_back(point.directory / entry["file"], point.directory.parent / entry["path"])


def _put_back(kept: Path, path: Path) -> None:
    """``path`` made the file kept as ``kept`` again (replaced whole), unless it is already."""
    with suppress(OSError):
        if os.path.samefile(kept, path):
            return
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        _link_or_copy(kept, tmp)
        os.replace(tmp, path)
        store._fsync_dir(path.parent)
    except OSError as exc:
        with suppress(OSError):
            tmp.unlink()
        if store.is_disk_error(exc):
            raise store.disk_error(path, exc) from exc
        raise


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError as exc:
        if store.is_disk_error(exc):
            raise
        shutil.copyfile(source, target)  # a file system without hard links
        with open(target, "rb") as fh:
            os.fsync(fh.fileno())


def save_weights_atomically(model, path: Path | str) -> None:
    """``model.save_weights(path)`` that replaces ``path`` whole or not at all: written under a
    temporary name in the same folder (Keras wants the ``.weights.h5`` suffix), fsynced, then
    renamed over it. A kill during ``save_weights`` itself leaves a truncated file."""
    path = Path(path)
    tmp = path.with_name(f".{uuid.uuid4().hex[:8]}{PARTIAL}{store.CHECKPOINT_WEIGHTS}")
    try:
        model.save_weights(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        store._fsync_dir(path.parent)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise


def generator_states(model) -> list:
    """The ``SeedGenerator`` state variables of the model's layers (augmentation, dropout):
    in ``model.variables`` but not in ``model.weights``, so not in ``save_weights``."""
    saved = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in saved]


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes the checkpoint at every epoch end (after ``EpochLog`` has logged the epoch, and
    after every callback whose decision about the epoch it keeps: place it after them).

    ``before``: the checkpoint this training resumed from (its seconds and resumes carry on);
    ``clock``: the ``time.perf_counter()`` at which this process's part of the run began;
    ``first``: the epoch the training began at; ``keep``: files beside the training kept with
    each epoch (see the module docstring); ``extra``: the caller's state, asked at each write.
    """

    def __init__(self, directory: Path, digest: str, log: EpochLog, started: str, clock: float,
                 before: Checkpoint | None = None, first: int = 0,
                 keep: Sequence[Path] = (),
                 extra: Callable[[], dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.directory = directory
        self.digest = digest
        self.log = log
        self.started = started
        self.clock = clock
        self.before = before
        self.first = first
        self.keep = [Path(p) for p in keep]
        self.extra = extra
        self.early: keras.callbacks.EarlyStopping | None = None
        self.fit_start = 0.0
        self.seconds = 0.0  # what the last write took (the benchmark reads it)
        # what the folder holds now: the kept files' names, the early stop's best weights
        self._kept = {entry["path"]: entry["file"] for entry in before.kept} if before else {}
        self._early = dict(before.early) if before and before.early else None

    def see_callbacks(self, callbacks: Sequence) -> None:
        """The fit's callbacks (``training.fit``): the early stopping among them is kept."""
        found = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
        self.early = found[0] if found else None

    def on_train_begin(self, logs=None):
        self.fit_start = time.perf_counter()
        # EarlyStopping resets itself in its own on_train_begin, which ran before this one
        if self.early is not None and self._early is not None:
            state = self._early
            self.early.wait = int(state["wait"])
            self.early.stopped_epoch = int(state["stopped_epoch"])
            self.early.best = state["best"]
            self.early.best_epoch = int(state["best_epoch"])
            if state.get("weights"):
                with np.load(self.directory / state["weights"]) as saved:
                    self.early.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        self.write(epoch + 1)
        self.seconds = time.perf_counter() - start

    def write(self, epoch: int) -> None:
        model, directory = self.model, self.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if store.is_disk_error(exc):
                raise store.disk_error(directory, exc) from exc
            raise
        _check_room(directory, model)
        name = f"epoch-{epoch:04d}-{uuid.uuid4().hex[:8]}{store.CHECKPOINT_WEIGHTS}"
        path = directory / name
        try:
            model.save_weights(path)
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            digest = _sha256(path)
            kept = self._keep_files(epoch)
            early = self._early_state(epoch)
            before = self.before
            now_ = time.perf_counter()
            store.write_json(directory / store.CHECKPOINT_STATE, {
                "schema": STATE_SCHEMA, "digest": self.digest, "epoch": epoch,
                "epochs": int(self.params["epochs"]), "weights": name, "sha256": digest,
                "rows": self.log.rows, "tracing_seconds": self.log.tracing_seconds,
                "generators": [{"path": v.path, "state": np.asarray(v).tolist()}
                               for v in generator_states(model)],
                "wall_seconds": (before.wall_seconds if before else 0.0) + now_ - self.clock,
                "fit_seconds": (before.fit_seconds if before else 0.0) + now_ - self.fit_start,
                "started": self.started, "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "resumed_at": before.resumed_at + [before.epoch] if before else [],
                "first": self.first, "stopped": bool(getattr(model, "stop_training", False)),
                "extra": self.extra() if self.extra else {},
                "retraced": {str(k): v for k, v in self.log.retraced.items()},
                "early": early, "kept": [{"path": k, "file": v} for k, v in kept.items()],
            })
        except BaseException as exc:
            with suppress(OSError):
                path.unlink()
            if isinstance(exc, Exception) and not isinstance(exc, store.StateWriteError) \
                    and store.is_disk_error(exc):
                raise store.disk_error(path, exc) from exc
            raise
        self._kept, self._early = kept, early
        needed = {name, store.CHECKPOINT_STATE, *kept.values(),
                  *([early["weights"]] if early and early.get("weights") else [])}
        for old in directory.iterdir():  # what state.json no longer names (or a kill left)
            if old.name not in needed:
                with suppress(OSError):
                    old.unlink()

    def _keep_files(self, epoch: int) -> dict[str, str]:
        """The ``keep`` files as they are now, each linked into the folder once per change."""
        kept: dict[str, str] = {}
        for path in self.keep:
            if not path.is_file():
                continue
            held = self._kept.get(path.name)
            with suppress(OSError):
                if held and os.path.samefile(self.directory / held, path):
                    kept[path.name] = held
                    continue
            name = f"kept-{epoch:04d}-{uuid.uuid4().hex[:8]}-{path.name}"
            _link_or_copy(path, self.directory / name)
            kept[path.name] = name
        return kept

    def _early_state(self, epoch: int) -> dict[str, Any] | None:
        """EarlyStopping's state, its best weights written when its best epoch changed."""
        early = self.early
        if early is None:
            return None
        held = self._early or {}
        weights = held.get("weights") if held.get("best_epoch") == early.best_epoch else None
        if early.best_weights is not None and weights is None:
            weights = f"early-{epoch:04d}-{uuid.uuid4().hex[:8]}.npz"
            with open(self.directory / weights, "wb") as fh:
                np.savez(fh, *early.best_weights)
                fh.flush()
                os.fsync(fh.fileno())
        best = early.best
        return {"wait": int(early.wait), "stopped_epoch": int(early.stopped_epoch),
                "best": None if best is None else float(best),
                "best_epoch": int(early.best_epoch),
                "weights": weights if early.best_weights is not None else None}


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
        raise store.disk_error(directory, OSError(
            errno.ENOSPC, f"No space left on device ({free:,} bytes free, the checkpoint needs "
                          f"about {need:,})"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

