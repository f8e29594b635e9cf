"""A space file and the one builder as a Keras Tuner HyperModel whose fit() is our protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras_tuner as kt

from fmnist_search import builder, costs, objectives, store, training
from fmnist_search.callbacks import (
    EpochCostGuard,
    EpochLog,
    EpochProgress,
    LowDiskSpace,
    MedianStop,
    NanLossError,
    OverLimit,
    with_disk_guard,
)
from fmnist_search.errors import ArchitectureError
from fmnist_search.space import Space
from fmnist_search.tuning import kt_compat, trial_checkpoints
from fmnist_search.tuning.state import OBJECTIVE


@dataclass
class TrialFit:
    """What the tuner records of a trained trial, beside Keras Tuner's own metrics."""

    values: dict[str, Any]
    params: int
    precision: str
    fit: training.FitResult
    pruned: str | None = None  # why median stopping ended it, when it did
    costs: dict[str, Any] = field(default_factory=dict)  # ``costs.measure``: several objectives


@dataclass
class TrialLimits:
    """What a trial must satisfy before (and while) it trains; 0 means no limit.

    ``curves`` returns the earlier finished trials' ``{epoch: val_accuracy}`` for median
    stopping (read when a trial starts, so it sees every trial before it); given a number of
    planned epochs, only those of trials planned as long (``project.val_curves``).
    """

    max_params: int = 0
    max_seconds_per_epoch: float = 0.0
    prune_after: int = 0
    curves: Callable[..., Sequence[Mapping[int, float]]] = field(default=lambda planned=None: [])
    cost_label: str = ""  # what the seconds limit is, in a rejection (default: the option)


class OverLimitTrialFailure(kt.errors.FailedTrialError):
    """A configuration over a limit (its parameters, or ``callbacks.OverLimit`` from a guard),
    as the failure Keras Tuner is told of: it marks the trial FAILED, our record REJECTED."""


class DiskFull(kt.errors.FatalError):
    """Not the configuration's fault: stop the search (the trial stays queued for the resume)."""


def _progress_callbacks(progress, epochs: int) -> tuple[EpochLog, list]:
    log = EpochLog()
    return log, [EpochProgress(progress, log, epochs, "  epochs", print_epochs=False,
                               keep=False)]


class SearchHyperModel(kt.HyperModel):
    """Builds each trial's model with the space's values; trains it with ``training.fit``.

    ``fits`` hands each trial's timings and history to the tuner, keyed by trial id (found in
    the ``TunerCallback`` Keras Tuner passes to every fit), so nothing travels through an
    attribute that the next trial would overwrite.

    ``measure_costs`` (a search with several objectives): each trained model's inference time
    and saved size are measured too (``costs``), and ``fit`` returns the trial's metrics as a
    dict (Keras Tuner's documented alternative to a History): its best epoch's by validation
    accuracy, with the costs beside them, so that the oracle, a distributed chief's included,
    sees every objective as a metric of the trial (``trial.json``, over gRPC).
    """

    def __init__(self, space: Space, num_classes: int, patience: int, progress,
                 stop_callback, policy: str = "float32", limits: TrialLimits | None = None,
                 fixed: Mapping[str, Any] | None = None, measure_costs: bool = False):
        super().__init__(name=space.name)
        self.measure_costs = measure_costs
        self.space = space
        self.fixed = dict(fixed or {})
        self._default: dict[str, Any] | None = None
        self.num_classes = num_classes
        self.patience = patience
        self.progress = progress
        self.stop_callback = stop_callback
        self.policy = policy
        self.limits = limits or TrialLimits()
        self.fits: dict[str, TrialFit] = {}
        self.resumes: dict[str, dict[str, Any]] = {}  # trial id -> its record's resume fields
        self.rejections: dict[str, dict[str, Any]] = {}  # trial id -> reason, params

    def values(self, hp) -> dict[str, Any]:
        """The trial's values: the space's active ones, then the preset's ``[fixed]``. A fixed
        name the space does not declare (a screening protocol: schedule, augmentation, label
        smoothing) is not among the space's values: without the merge it would be recorded on
        the trial and silently not used."""
        return {**self.space.register(hp), **self.fixed}

    def is_default_point(self, values: Mapping[str, Any]) -> bool:
        """Whether ``values`` are the space's default point (with the preset's fixed values).
        It is never rejected for its cost: it is the search's reference (its first trial with
        ``start_from_default``) and finalize trains it as the control anyway; a time limit set
        on a faster machine rejected it on a slower one (98 s against 90 s)."""
        if self._default is None:
            self._default = {**self.space.default_values(), **self.fixed}
        return builder.same_model(values, self._default)

    def build(self, hp):
        # The policy goes to the builder: Keras Tuner calls clear_session() before every build,
        # which resets Keras' global policy, so a policy set once would be lost by trial 2.
        values = self.values(hp)
        try:
            return builder.build_model(values, self.num_classes, policy=self.policy)
        except ArchitectureError as exc:
            raise kt.errors.FailedTrialError(f"rejected at build time: {exc}") from exc

    def fit(self, hp, model, x, y, validation_data=None, callbacks=(), epochs=1,
            initial_epoch=0, trial_checkpoint: trial_checkpoints.TrialCheckpoint | None = None,
            **kwargs):
        """Train the trial; with ``trial_checkpoint`` (the tuner's), from its epoch checkpoint
        when it has one, writing one at every epoch end (``tuning.trial_checkpoints``)."""
        import numpy as np

        values = builder.resolve(self.values(hp))
        trainable, frozen = training.count_params(model)
        trial_id = kt_compat.fit_trial_id(callbacks)
        limits = self.limits
        if limits.max_params and trainable + frozen > limits.max_params:
            self._reject(trial_id, f"rejected: {trainable + frozen:,} parameters > "
                         f"--max-params {limits.max_params:,}", trainable + frozen)
        log, shown = _progress_callbacks(self.progress, epochs)
        order_seed = int(np.random.randint(0, 2**31 - 1))  # what training.fit would draw
        session = resumed = None
        if trial_checkpoint is not None:
            session = trial_checkpoints.Session(trial_checkpoint, trial_checkpoints.identity(
                values, epochs, initial_epoch, hp.values.get("tuner/trial_id"),
                trial_checkpoint, self.policy, self.patience), epochs, initial_epoch)
            resumed = session.resume(model, log)
        start = resumed.epoch if resumed else initial_epoch
        if resumed is not None:
            order_seed = resumed.order_seed if resumed.order_seed is not None else order_seed
            self.progress.update(shown[0].epoch_task, completed=start)
        guards: list = []
        if limits.max_seconds_per_epoch and not self.is_default_point(values):
            guards.append(EpochCostGuard(limits.max_seconds_per_epoch, log,
                                         estimate=start == 0,
                                         label=limits.cost_label))
        median = None
        if limits.prune_after:
            # Under the per-epoch exponential decay every trial's epoch k had the same rate;
            # a per-step schedule spans the trial's own epochs: compare like with like.
            planned = hp.values.get("tuner/epochs") if values["schedule"] != "exponential" \
                else None
            median = MedianStop(limits.curves(planned), limits.prune_after)
            guards.append(median)
            if resumed is not None:  # the epochs it restored count as trained
                median.best = max((r[OBJECTIVE] for r in log.rows if OBJECTIVE in r),
                                  default=median.best)
                median.pruned = resumed.pruned
        saver = kt_compat.best_epoch_saver(callbacks)
        callbacks = with_disk_guard(callbacks, model, saver)
        saving: list = []
        if session is not None:
            keep = []
            if saver is not None:
                kt_compat.save_best_epochs_atomically(saver)
                if resumed is not None:
                    kt_compat.resume_best_epoch(saver, log.rows)
                keep.append(Path(saver.filepath))
            # after the guards' and Keras Tuner's say about the epoch, before a stop request
            saving.append(session.callback(log, keep, lambda: {
                "order_seed": order_seed, "pruned": median.pruned if median else None}))
        # a trial that had stopped at its checkpoint (early or median stopping) trains no more
        planned_end = start if resumed is not None and resumed.point.stopped else epochs
        try:
            result = training.fit(
                model, values, (x, y), validation_data, planned_end, self.patience,
                extra_callbacks=[*guards, *callbacks, *saving, self.stop_callback, *shown],
                initial_epoch=start, log=log, seed=order_seed,
            )
            if resumed is not None:
                result.fit_seconds += resumed.point.fit_seconds
                model.history.history = trial_checkpoints.history(log.rows)
                model.history.epoch = [int(r["epoch"]) - 1 for r in log.rows]
                if trial_id is not None:
                    self.resumes[trial_id] = resumed.record(trial_checkpoint.started)
        except OverLimit as exc:
            self._reject(trial_id, str(exc), trainable + frozen)
        except NanLossError as exc:
            raise kt.errors.FailedTrialError(str(exc)) from exc
        except Exception as exc:
            mapped = classify_failure(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        measured = costs.measure(model, validation_data[0]) \
            if self.measure_costs and validation_data is not None else {}
        if trial_id is not None:
            self.fits[trial_id] = TrialFit(values, trainable + frozen, model.dtype_policy.name,
                                           result, median.pruned if median else None, measured)
        if self.measure_costs:
            return trial_metrics(model.history.history, trainable + frozen, result, measured)
        return model.history  # Keras Tuner reads the best epoch's objective from it


    def _reject(self, trial_id: str | None, reason: str, params: int):
        if trial_id is not None:
            self.rejections[trial_id] = {"reason": reason, "params": params}
        raise OverLimitTrialFailure(reason)


def trial_metrics(history: Mapping[str, Sequence[float]], params: int,
                  result: training.FitResult, measured: Mapping[str, Any]) -> dict[str, float]:
    """What a trial of several objectives reports to the oracle: the metrics of its best epoch
    by validation accuracy (the first best, as Keras Tuner picks it from a History), its
    parameters, seconds per epoch and measured costs."""
    scores = list(history.get(OBJECTIVE, []))
    best = max(range(len(scores)), key=lambda i: scores[i]) if scores else 0
    metrics = {name: float(values[best]) for name, values in history.items()
               if len(values) > best}
    metrics.update(params=float(params), seconds_per_epoch=float(result.seconds_per_epoch))
    metrics.update({k: float(v) for k, v in measured.items() if k in objectives.MEASURED})
    return metrics


def classify_failure(exc: Exception) -> Exception:
    """Out of memory fails the trial; a full or read-only disk stops the search, and so does a
    state file that cannot be written (an epoch checkpoint's: it names its file)."""
    if isinstance(exc, LowDiskSpace | store.StateWriteError) or store.is_disk_error(exc):
        return DiskFull(str(exc))
    if "ResourceExhausted" in type(exc).__name__ or isinstance(exc, MemoryError):
        return kt.errors.FailedTrialError(f"out of memory: {exc}")
    return exc
