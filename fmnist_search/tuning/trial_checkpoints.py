"""Epoch checkpoints of search trials: a trial killed part-way continues from its last epoch.

Keras Tuner runs a trial that was running when the process died again under its own id (its
retry queue, ``kt_compat.with_fit_argument``), which used to mean from its first epoch. Every
trial now keeps the epoch checkpoint of ``checkpoints`` (the mechanism baselines and finals
use) in its own folder, ``trial_<id>/.checkpoint-<digest>/``; the digest (``identity``) covers
what makes the training the same: the trial's values that differ from their defaults
(``builder.explicit``), its planned epochs, the epoch it begins at and the trial it continues
(a Hyperband continuation), its seed, the precision policy, the early stopping's patience and
the data. When the trial runs again, ``SearchHyperModel.fit`` restores weights, optimizer,
logged epochs and generator states and trains from the checkpoint's epoch on; the trial is
recorded once, with every epoch in its history and in the History Keras Tuner scores.

What else a resumed trial must see as it was:

- Keras Tuner's best-epoch weights (``checkpoint.weights.h5``, which a Hyperband continuation
  starts from): written atomically (``kt_compat.save_best_epochs_atomically``), kept with each
  epoch's checkpoint (a hard link) and put back on resume, and its ``SaveBestEpoch`` told the
  best value so far (``kt_compat.resume_best_epoch``);
- median stopping: its best value so far is the restored epochs' (the earlier trials' curves
  are read again when the trial starts, the same in one process); a trial it had pruned at the
  checkpoint's epoch stays pruned, with its reason, and trains nothing more;
- the epoch-cost guard: it reads the logged epochs, restored ones included; it does not
  estimate again (that is for a trial's first epoch), and the resumed part's first epoch is
  held to the limit without its tracing (``EpochLog.retraced``);
- early stopping: its state and best weights (``checkpoints``);
- the order of the images: the epoch's (``training.EpochOrder``), from the order seed the trial
  drew and kept.

The checkpoint is removed when the trial ends (COMPLETED, PRUNED, REJECTED or FAILED), by the
tuner once Keras Tuner has saved the trial; ``sweep`` removes what a kill in between left in
finished trials, so a search keeps at most one checkpoint per running trial. A full disk during
a write stops the search with the full-disk message and leaves the previous checkpoint whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fmnist_search import builder, checkpoints, store
from fmnist_search.callbacks import EpochLog

FIT_ARGUMENT = "trial_checkpoint"  # the keyword the tuner adds to the trial's fit


@dataclass
class TrialCheckpoint:
    """What the tuner knows of a trial that its hypermodel's ``fit`` needs to checkpoint it."""

    trial_id: str
    directory: Path  # the trial's folder
    seed: int  # the trial's (``reproducibility.trial_seed``)
    data: Mapping[str, Any]  # the data's fingerprint and digest
    started: float  # when this attempt at the trial began (Unix time)
    note: Callable[..., None] = field(default=lambda *args: None)  # (text, label)


@dataclass
class Resumed:
    """A trial's training as its checkpoint left it."""

    point: checkpoints.Checkpoint

    @property
    def epoch(self) -> int:
        return self.point.epoch

    @property
    def order_seed(self) -> int | None:
        seed = self.point.extra.get("order_seed")
        return None if seed is None else int(seed)

    @property
    def pruned(self) -> str | None:
        return self.point.extra.get("pruned")

    def record(self, started: float) -> dict[str, Any]:
        """What the trial's record says of its resumes: ``started`` when its first attempt began,
        its wall seconds those the checkpoint kept plus this attempt's (from ``started``)."""
        first = self.point.extra.get("trial_started", started)
        return {"resumed_at": [*self.point.resumed_at, self.point.epoch],
                "started": float(first),
                "wall_seconds": self.point.wall_seconds + time.time() - started}


def identity(values: Mapping[str, Any], epochs: int, initial_epoch: int, parent: str | None,
             trial: TrialCheckpoint, policy: str, patience: int | None) -> dict[str, Any]:
    """What makes two trainings of a trial the same (see the module docstring)."""
    return {"values": builder.explicit(values), "epochs": int(epochs),
            "initial_epoch": int(initial_epoch), "parent": parent, "seed": int(trial.seed),
            "policy": policy, "patience": int(patience or 0), "data": dict(trial.data)}


class Session:
    """One attempt at a trial's training: the checkpoint it resumes, and the callback that
    writes the next ones."""

    def __init__(self, trial: TrialCheckpoint, ident: Mapping[str, Any], epochs: int,
                 initial_epoch: int) -> None:
        self.trial = trial
        self.digest = checkpoints.identity_digest(ident)
        self.folder = checkpoints.folder(trial.directory, self.digest)
        self.epochs = epochs
        self.initial_epoch = initial_epoch
        self.clock = time.perf_counter() - max(time.time() - trial.started, 0.0)
        self.resumed: Resumed | None = None

    def resume(self, model, log: EpochLog) -> Resumed | None:
        """Restore the trial's checkpoint into ``model`` and ``log``; None when there is none or
        it cannot be used (said in one line: the trial then trains from its start)."""
        try:
            point = checkpoints.load(self.folder, self.digest, self.epochs, self.initial_epoch)
            if point is not None:
                checkpoints.restore(model, point, log)
        except checkpoints.Damaged as exc:
            self.trial.note(f"trial {self.trial.trial_id}: ignored its checkpoint in "
                            f"{self.folder}: {exc}; it trains from its start", "checkpoint")
            log.rows, log.retraced, log.tracing_seconds = [], {}, 0.0
            return None
        if point is None:
            return None
        self.resumed = Resumed(point)
        self.trial.note(f"trial {self.trial.trial_id} from epoch {point.epoch} of "
                        f"{self.epochs} (its checkpoint of {point.written})", "resumed")
        return self.resumed

    def callback(self, log: EpochLog, keep: list[Path],
                 extra: Callable[[], dict[str, Any]]) -> checkpoints.EpochCheckpoint:
        started = (self.resumed.point.started if self.resumed else
                   datetime.fromtimestamp(self.trial.started, timezone.utc)
                   .isoformat(timespec="seconds"))
        first_started = (self.resumed.point.extra.get("trial_started", self.trial.started)
                         if self.resumed else self.trial.started)

        def state() -> dict[str, Any]:
            return {**extra(), "trial_started": first_started}

        return checkpoints.EpochCheckpoint(self.folder, self.digest, log, started, self.clock,
                                           self.resumed.point if self.resumed else None,
                                           first=self.initial_epoch, keep=keep, extra=state)


def history(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    """The Keras ``History.history`` of logged epochs: what the fit's own would have been had
    it trained them all (``EpochLog`` renames the logs' ``learning_rate`` to ``lr``)."""
    out: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if key in ("epoch", "seconds"):
                continue
            out.setdefault("learning_rate" if key == "lr" else key, []).append(value)
    return out


def remove(trial_dir: Path) -> None:
    """Every epoch checkpoint in a trial's folder (the trial has ended), and what a kill during
    an atomic weights write left (``checkpoints.save_weights_atomically``)."""
    for folder in trial_dir.glob(f"{store.CHECKPOINT_PREFIX}*"):
        checkpoints.remove(folder)
    for partial in trial_dir.glob(f".*{checkpoints.PARTIAL}{store.CHECKPOINT_WEIGHTS}"):
        with suppress(OSError):
            partial.unlink()


def sweep(project_dir: Path) -> None:
    """The checkpoints a kill left in trials that had ended (between their record and the
    removal): at most one checkpoint per running trial."""
    for trial_dir in store.trial_dirs(project_dir):
        if not any(trial_dir.glob(f"{store.CHECKPOINT_PREFIX}*")):
            continue
        record = store.read_trial_record(trial_dir)
        if record is not None and record.get("status") in store.FINISHED:
            remove(trial_dir)
