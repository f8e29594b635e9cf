"""Keras Tuner's own tuners, with our hooks on the trial lifecycle it already has.

``on_trial_begin`` writes a RUNNING ``record.json`` (the trial's values, before any training);
``on_trial_end``, where Keras Tuner has set the trial's status and message, writes the finished
record and only then lets Keras Tuner save its own state, so a kill in between is repaired from
the record on resume (``state.repair``). ``pre_create_trial`` asks the search's stop rule
(``stop_rule``: the trial count, the time budget, failures in a row) before a new trial is
created, and ``on_trial_end`` tells it how each trial ended, once everything is saved.

Every trial keeps an epoch checkpoint in its folder while it trains (``trial_checkpoints``):
``run_trial`` hands the hypermodel what it needs (the trial's folder, seed and data), and
``on_trial_end`` removes it once the trial's end is saved, whatever the status.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import keras_tuner as kt

from fmnist_search import builder, store
from fmnist_search.errors import UserError
from fmnist_search.presets import MODEL_BASED, MULTI_FIDELITY
from fmnist_search.reproducibility import deterministic, seed_everything, trial_seed
from fmnist_search.tuning import kt_compat, trial_checkpoints
from fmnist_search.tuning.bohb import PROPOSAL, BohbOracle, HyperbandOracle
from fmnist_search.tuning.display import SearchDisplay
from fmnist_search.tuning.hypermodel import SearchHyperModel, TrialFit
from fmnist_search.tuning.motpe import MotpeOracle
from fmnist_search.tuning.signals import StopSignals
from fmnist_search.tuning.state import FINISHED, OBJECTIVE
from fmnist_search.tuning.stop_rule import TIME, TRIALS, SearchBudget, StopRule


class SearchStopped(Exception):
    """Raised before a trial is created, when the search has what it asked for."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "trials" or "time"


class RecordingMixin:
    """Mixed in front of a Keras Tuner tuner class; see the module docstring."""

    def __init__(self, *args, display: SearchDisplay, signals: StopSignals,
                 budget: SearchBudget, project_seed: int = 0,
                 data: dict[str, Any] | None = None, **kwargs):
        self.display = display
        self.data = dict(data or {})  # the data's identity, in each trial's checkpoint identity
        self.signals = signals
        self.stop_rule = StopRule(budget)
        self.project_seed = project_seed
        self.started: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    hypermodel: SearchHyperModel

    def finished(self) -> int:
        trials = kt_compat.local_trials(self.oracle)  # a worker's oracle is the chief's proxy
        if trials is None:
            from fmnist_search.tuning.project import finished_count

            return finished_count(Path(self.project_dir))
        return sum(1 for t in trials.values() if t.status in FINISHED)

    def pre_create_trial(self):
        self.signals.check()
        reason = self.stop_rule.why_not(self.finished())
        if reason in (TRIALS, TIME):
            raise SearchStopped(reason)
        super().pre_create_trial()

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        values = dict(trial.hyperparameters.values)
        self.started[trial.trial_id] = time.time()
        name = _safe_name(values)
        self._write_record(trial, {"status": "RUNNING", "architecture": name})
        self.display.trial_begin(trial.trial_id, self.finished() + 1, name)

    def run_trial(self, trial, *args, **kwargs):
        """Reseed every generator from the project seed and the trial id before Keras Tuner
        builds the model (``reproducibility``): the trial scores the same in any process, after
        a resume and on a distributed worker."""
        seed = trial_seed(self.project_seed, trial.trial_id)
        seed_everything(seed)
        checkpoint = trial_checkpoints.TrialCheckpoint(
            trial.trial_id, Path(self.get_trial_dir(trial.trial_id)), seed, self.data,
            self.started.get(trial.trial_id, time.time()), self.display.note)
        kwargs = kt_compat.with_fit_argument(kwargs, trial_checkpoints.FIT_ARGUMENT, checkpoint)
        return super().run_trial(trial, *args, **kwargs)

    def on_trial_end(self, trial):
        if self._ended_elsewhere(trial):
            self.hypermodel.fits.pop(trial.trial_id, None)
            self.hypermodel.resumes.pop(trial.trial_id, None)
            trial_checkpoints.remove(Path(self.get_trial_dir(trial.trial_id)))
            self.display.note(f"trial {trial.trial_id} was finished by another worker while "
                              "this one was presumed dead: this result is dropped", "distributed")
            return
        with self.signals.critical():
            record = self._finished_record(trial)
            try:
                self._write_record(trial, record)
            except store.RecordFinishedError as exc:  # another process ended it first
                trial_checkpoints.remove(Path(self.get_trial_dir(trial.trial_id)))
                self.display.note(f"{exc}: this result is dropped", "distributed")
                return
            super().on_trial_end(trial)  # Keras Tuner saves trial.json and oracle.json
            self.display.trial_end(record)
        # once its end is saved: a kill before this leaves a checkpoint that sweep() removes
        trial_checkpoints.remove(Path(self.get_trial_dir(trial.trial_id)))
        self.stop_rule.trial_ended(record["status"], record.get("reason", ""))

    def _ended_elsewhere(self, trial) -> bool:
        """A distributed worker's trial may have been handed to another worker (this one's
        heartbeat went silent) and finished there: its record must not be overwritten."""
        if self.stop_rule.budget.trials is not None:
            return False  # one process: nobody else runs its trials
        return self.oracle.get_trial(trial.trial_id).status in FINISHED

    def _finished_record(self, trial) -> dict[str, Any]:
        fit = self.hypermodel.fits.pop(trial.trial_id, None)
        rejected = self.hypermodel.rejections.pop(trial.trial_id, None)
        resumed = self.hypermodel.resumes.pop(trial.trial_id, None)
        if trial.status == "COMPLETED" and fit is not None:
            # a trial resumed from its checkpoint: when it first began, its seconds in all parts
            return {**completed_record(fit, self.hypermodel.num_classes), **(resumed or {})}
        if rejected is not None:
            values = dict(trial.hyperparameters.values)
            return {"status": "REJECTED", **rejected, "architecture": _safe_name(values)}
        return {"status": "FAILED", "reason": store.failure_reason(trial.message)}

    def _write_record(self, trial, record: dict[str, Any]) -> None:
        started = self.started.get(trial.trial_id, time.time())
        record = {"trial_id": trial.trial_id, "values": dict(trial.hyperparameters.values),
                  "started": started, "seed": trial_seed(self.project_seed, trial.trial_id),
                  "deterministic": deterministic(), **record}
        if PROPOSAL in record["values"]:  # BOHB, MO-TPE: "random", "model", "default", "promoted"
            record["proposal"] = record["values"][PROPOSAL]
        if record["status"] != "RUNNING":
            record["finished"] = time.time()
            record.setdefault("wall_seconds", record["finished"] - started)
        store.write_trial_record(Path(self.get_trial_dir(trial.trial_id)), record)


def completed_record(fit: TrialFit, num_classes: int) -> dict[str, Any]:
    rows = fit.fit.history
    best = max(range(len(rows)), key=lambda i: rows[i].get(OBJECTIVE, float("-inf")))
    pruned = {"pruned": True, "reason": fit.pruned} if fit.pruned else {}
    return {
        "status": "PRUNED" if fit.pruned else "COMPLETED",
        **pruned,
        "val_accuracy": rows[best][OBJECTIVE],
        "val_loss": rows[best].get("val_loss"),
        "best_epoch": rows[best]["epoch"],
        "params": fit.params,
        "seconds_per_epoch": fit.fit.seconds_per_epoch,
        "epochs": fit.fit.epochs_trained,
        "precision": fit.precision,
        "fit_seconds": fit.fit.fit_seconds,
        "architecture": builder.short_name(fit.values, num_classes),
        **fit.costs,  # several objectives: ms_per_image, model_bytes, how they were measured
        "history": rows,
    }


def _safe_name(values: dict[str, Any]) -> str:
    try:
        return builder.short_name(values)
    except UserError as exc:
        return f"(cannot be built: {exc})"


class DefaultFirst:
    """Mixed in front of a Keras Tuner oracle: the project's first trial is the space's default
    point (every hyperparameter at its ``default``), then the oracle samples as usual. A search
    that starts from a known-good configuration, as Optuna's ``enqueue_trial`` or Hyperopt's
    ``points_to_evaluate`` allow.

    Through ``populate_space``, Keras Tuner's public hook: the oracle's own answer is kept
    (Hyperband registers the trial in its bracket and adds its ``tuner/`` values) and only the
    space's values of the first trial are replaced. A resumed project has trials: untouched.
    """

    def populate_space(self, trial_id):
        response = super().populate_space(trial_id)
        if self.trials or response.get("status") != "RUNNING" or not response.get("values"):
            return response
        bookkeeping = {k: v for k, v in response["values"].items() if k.startswith("tuner/")}
        if PROPOSAL in bookkeeping:  # BOHB says where each configuration came from
            bookkeeping[PROPOSAL] = "default"
        return {**response, "values": {**default_values(self.hyperparameters), **bookkeeping}}


def default_values(space: kt.HyperParameters) -> dict[str, Any]:
    """Every active hyperparameter of ``space`` at its default (conditions respected)."""
    hps = kt.HyperParameters()
    for hp in space.space:
        hps.merge([hp])
        if hps.is_active(hp):
            hps.values[hp.name] = hp.default
    return hps.values


ORACLES = {"random": kt.oracles.RandomSearchOracle,
           "bayesian": kt.oracles.BayesianOptimizationOracle,
           "hyperband": HyperbandOracle,
           "bohb": BohbOracle,
           "motpe": MotpeOracle}


def make_oracle(preset, seed: int, fixed: kt.HyperParameters):
    """The preset's oracle (a ``DefaultFirst`` one when the preset starts from the default)."""
    base = ORACLES[preset.tuner]
    if preset.start_from_default:
        base = type(f"DefaultFirst{base.__name__}", (DefaultFirst, base), {})
    common = dict(objective=kt.Objective(OBJECTIVE, "max"), seed=seed, hyperparameters=fixed,
                  tune_new_entries=True, allow_new_entries=True, max_retries_per_trial=0,
                  max_consecutive_failed_trials=None)
    if preset.tuner in MULTI_FIDELITY:
        extra = {"bohb": preset.bohb} if preset.tuner in MODEL_BASED else {}
        if preset.tuner == "motpe":
            extra["objectives"] = preset.objectives
        return base(max_epochs=preset.epochs, factor=preset.factor,
                    hyperband_iterations=preset.iterations, **extra, **common)
    if preset.tuner == "bayesian":
        initial = max(3, min(10, preset.trials // 4))  # KT's default (3 x dims) is ~100 here
        return base(max_trials=preset.trials, num_initial_points=initial, **common)
    return base(max_trials=preset.trials, **common)


def make_tuner(hypermodel: SearchHyperModel, preset, directory: Path, project: str,
               display: SearchDisplay, signals: StopSignals, budget: SearchBudget, seed: int,
               data: dict[str, Any] | None = None):
    """``data``: the data's identity (fingerprint, digest), part of each trial checkpoint's."""
    base = kt_compat.tuner_class(preset.tuner)
    cls = type(f"Recording{preset.tuner.title()}Tuner",
               (RecordingMixin, kt_compat.NoTensorBoardImport, base), {})
    fixed = kt.HyperParameters()
    for name, value in preset.fixed.items():
        fixed.Fixed(name, value)
    return cls(oracle=make_oracle(preset, seed, fixed), hypermodel=hypermodel,
               directory=str(directory), project_name=project, overwrite=False,
               display=display, signals=signals, budget=budget, project_seed=seed, data=data)
