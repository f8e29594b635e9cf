"""Search runs: Keras Tuner's own tuners and oracles, plus what a long CPU search needs.

Keras Tuner already persists every trial and resumes a project (a trial that was running when
the process died is queued for retry), so resuming is Keras Tuner's. We add, around it: a
per-trial ``record.json`` (timings, params, architecture), ``run.json`` (what the project is,
so a rerun with other settings is refused), a lock (one process per project), a wall-clock
budget, and a rich live display instead of Keras Tuner's prints.
"""

from __future__ import annotations

import fcntl
import gc
import json
import logging
import os
import re
import shutil
import signal
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras_tuner as kt
from rich.console import Console

from fmnist_search import builder, training
from fmnist_search.data import Dataset
from fmnist_search.errors import ArchitectureError, UserError
from fmnist_search.presets import Preset
from fmnist_search.space import Space

OBJECTIVE = "val_accuracy"
TUNERS = {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization,
          "hyperband": kt.Hyperband}
FINISHED = ("COMPLETED", "FAILED", "INVALID")


def parse_duration(text: str | None) -> float | None:
    """'90s', '45m', '2h', '1h30m' -> seconds."""
    if text is None:
        return None
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*",
                         text)
    if not parts or not any(parts.groups()):
        raise UserError(f"--max-time {text!r} is not a duration; use e.g. 90s, 45m, 2h or 1h30m.")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + s


# --------------------------------------------------------------------------- Ctrl-C


class Interrupt:
    """Ctrl-C that cannot be lost.

    Python raises KeyboardInterrupt wherever the main thread happens to be; when that is a
    weakref callback inside the garbage collection Keras runs between trials, Python prints
    "Exception ignored" and carries on. So the handler also sets a flag, which the search checks
    at every epoch end and trial start.
    """

    requested = False

    @classmethod
    def handler(cls, signum, frame):
        cls.requested = True
        raise KeyboardInterrupt

    @classmethod
    def check(cls) -> None:
        if cls.requested:
            raise KeyboardInterrupt


@contextmanager
def interruptible():
    Interrupt.requested = False
    previous = signal.signal(signal.SIGINT, Interrupt.handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_callback():
    import keras

    class InterruptCheck(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            Interrupt.check()

    return InterruptCheck()


# --------------------------------------------------------------------------- hypermodel


class SearchHyperModel(kt.HyperModel):
    """Space file + builder as a Keras Tuner HyperModel; fit() applies our protocol."""

    def __init__(self, space: Space, num_classes: int, patience: int, display: SearchDisplay,
                 policy: str = "float32"):
        super().__init__(name=space.name)
        self.policy = policy
        self.space = space
        self.num_classes = num_classes
        self.patience = patience
        self.display = display
        self.last: dict[str, Any] = {}

    def build(self, hp):
        import keras

        # Keras Tuner calls clear_session() before every build, and that resets Keras' global
        # dtype policy to float32; without this line every trial would silently train in fp32.
        keras.mixed_precision.set_global_policy(self.policy)
        values = self.space.register(hp)
        try:
            return builder.build_model(values, self.num_classes)
        except ArchitectureError as exc:
            raise kt.errors.FailedTrialError(f"rejected at build time: {exc}") from exc

    def fit(self, hp, model, x, y, validation_data=None, callbacks=(), epochs=1,
            initial_epoch=0, **kwargs):
        values = builder.resolve(self.space.register(hp))
        trainable, frozen = training.count_params(model)
        self.last = {"params": trainable + frozen, "values": values,
                     "precision": model.dtype_policy.name}
        try:
            result = training.fit(
                model, values, (x, y), validation_data, epochs, self.patience,
                extra_callbacks=[*callbacks, _interrupt_callback()], initial_epoch=initial_epoch,
                progress=self.display.progress, label="  epochs", keep_bars=False,
            )
        except training.NanLossError as exc:
            raise kt.errors.FailedTrialError(str(exc)) from exc
        except Exception as exc:
            if "ResourceExhausted" in type(exc).__name__ or isinstance(exc, MemoryError):
                raise kt.errors.FailedTrialError(f"out of memory: {exc}") from exc
            raise
        self.last["fit"] = result
        return model.history  # Keras Tuner reads the best epoch's objective from it


# --------------------------------------------------------------------------- display


class SearchDisplay:
    """One rich Progress for the whole search: trials (with ETA), then the current trial's bars."""

    def __init__(self, console: Console, total: int, done: int, best: float | None = None):
        from fmnist_search.progress import make_progress

        self.console = console
        self.progress = make_progress(console)
        self.best = best  # carried over from the trials of earlier runs of this project
        self.task = self.progress.add_task("trials", total=total, completed=done,
                                           status=f"best {best:.4f}" if best else "")

    def trial_begin(self, trial_id: str, number: int, total: int, name: str) -> None:
        self.console.print(f"[bold]trial {trial_id}[/] ({number}/{total}) {name}")

    def trial_end(self, record: dict[str, Any]) -> None:
        if record["status"] == "COMPLETED":
            acc = record["val_accuracy"]
            self.best = acc if self.best is None else max(self.best, acc)
            line = (f"  done: val_acc {acc:.4f}  val_loss {record['val_loss']:.4f}  "
                    f"{record['epochs']} epochs  {record['seconds_per_epoch']:.1f} s/epoch  "
                    f"{record['params']:,} params   best so far {self.best:.4f}")
        else:
            line = f"  [red]failed[/]: {record['reason']}"
        self.console.print(line)
        self.progress.advance(self.task)
        self.progress.update(self.task, status=f"best {self.best:.4f}" if self.best else "")


# --------------------------------------------------------------------------- tuner


class RecordingMixin:
    """Wraps each tuner's run_trial: our record.json, the display, and the time budget."""

    hypermodel: SearchHyperModel
    display: SearchDisplay
    deadline: float | None = None
    stopped_for_time = False
    _started = 0.0  # Unix time the current trial began: time to target counts wall clock
    total = 0

    def run_trial(self, trial, *args, **kwargs):
        Interrupt.check()
        number = len([t for t in self.oracle.trials.values() if t.status in FINISHED]) + 1
        values = {k: v for k, v in trial.hyperparameters.values.items()}
        self.display.trial_begin(trial.trial_id, number, self.total, _safe_name(values))
        self._started = time.time()
        start = time.perf_counter()
        try:
            histories = super().run_trial(trial, *args, **kwargs)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            self._write_record(trial, {"status": "FAILED", "reason": reason,
                                       "wall_seconds": time.perf_counter() - start})
            self._after_trial()
            raise
        record = self._completed_record(trial, time.perf_counter() - start)
        self._write_record(trial, record)
        self._after_trial()
        return histories

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        # Keras Tuner imports tensorboard here even when no TensorBoard callback is used, and
        # TensorFlow no longer installs tensorboard; we pass none, so there is nothing to do.
        if any(type(c).__name__ == "TensorBoard" for c in callbacks):
            super()._configure_tensorboard_dir(callbacks, trial, execution)

    def _completed_record(self, trial, wall: float) -> dict[str, Any]:
        last = self.hypermodel.last
        fit: training.FitResult = last["fit"]
        rows = fit.history
        best = max(range(len(rows)), key=lambda i: rows[i].get(OBJECTIVE, float("-inf")))
        return {
            "status": "COMPLETED",
            "val_accuracy": rows[best][OBJECTIVE],
            "val_loss": rows[best].get("val_loss"),
            "best_epoch": rows[best]["epoch"],
            "params": last["params"],
            "seconds_per_epoch": fit.seconds_per_epoch,
            "epochs": fit.epochs_trained,
            "precision": last["precision"],
            "fit_seconds": fit.fit_seconds,
            "wall_seconds": wall,
            "architecture": builder.short_name(last["values"], self.hypermodel.num_classes),
            "history": rows,
        }

    def _write_record(self, trial, record: dict[str, Any]) -> None:
        record = {"trial_id": trial.trial_id, "values": dict(trial.hyperparameters.values),
                  "started": self._started, "finished": time.time(), **record}
        directory = Path(self.get_trial_dir(trial.trial_id))
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / "record.json.tmp"
        tmp.write_text(json.dumps(record, indent=2, default=float))
        tmp.replace(directory / "record.json")
        self.display.trial_end(record)

    def _after_trial(self) -> None:
        if self.deadline is not None and time.time() >= self.deadline:
            # The oracle stops creating trials once its count is reached.
            self.oracle.max_trials = len(self.oracle.trials)
            self.stopped_for_time = True


def _safe_name(values: dict[str, Any]) -> str:
    try:
        return builder.short_name(values)
    except UserError as exc:
        return f"(cannot be built: {exc})"


def make_tuner(space: Space, preset: Preset, data: Dataset, directory: Path, project: str,
               display: SearchDisplay, seed: int, policy: str = "float32"):
    base = TUNERS[preset.tuner]
    cls = type(f"Recording{base.__name__}", (RecordingMixin, base), {})
    fixed = kt.HyperParameters()
    for name, value in preset.fixed.items():
        fixed.Fixed(name, value)
    hypermodel = SearchHyperModel(space, data.num_classes, preset.patience, display, policy)
    common = dict(
        hypermodel=hypermodel, objective=kt.Objective(OBJECTIVE, "max"), seed=seed,
        hyperparameters=fixed, tune_new_entries=True, allow_new_entries=True,
        max_retries_per_trial=0, max_consecutive_failed_trials=3,
        directory=str(directory), project_name=project, overwrite=False,
    )
    if preset.tuner == "hyperband":
        tuner = cls(max_epochs=preset.epochs, factor=preset.factor,
                    hyperband_iterations=preset.iterations, **common)
        tuner.oracle.max_trials = preset.trials
    elif preset.tuner == "bayesian":
        initial = max(3, min(10, preset.trials // 4))  # KT's default (3 x dims) is ~100 here
        tuner = cls(max_trials=preset.trials, num_initial_points=initial, **common)
    else:
        tuner = cls(max_trials=preset.trials, **common)
    tuner.display = display
    tuner.total = preset.trials
    return tuner


# --------------------------------------------------------------------------- run


@dataclass
class SearchRequest:
    space: Space
    preset: Preset
    data: Dataset
    root: Path
    project: str
    seed: int
    overwrite: bool = False
    max_time: float | None = None
    command: str = ""


@contextmanager
def project_lock(root: Path, project: str):
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".{project}.lock"
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise UserError(
                f"Project '{project}' in {root} is being searched by another fmnist-search "
                "process right now. Wait for it to finish (or stop it), or use another --project."
            ) from exc
        fh.write(str(os.getpid()))
        fh.flush()
        yield


def run_identity(req: SearchRequest) -> dict[str, Any]:
    """What must not change between resumes of one project."""
    return {"space": req.space.text, "data": req.data.fingerprint(), "tuner": req.preset.tuner,
            "factor": req.preset.factor, "iterations": req.preset.iterations,
            "fixed": req.preset.fixed, "patience": req.preset.patience,
            "epochs": req.preset.epochs, "seed": req.seed}


def check_or_write_run_json(req: SearchRequest, policy: str) -> Path:
    project_dir = req.root / req.project
    path = project_dir / "run.json"
    identity = run_identity(req)
    if path.is_file():
        old = json.loads(path.read_text())
        changed = [k for k, v in identity.items() if old.get("identity", {}).get(k) != v]
        if changed:
            raise UserError(
                f"Project '{req.project}' ({project_dir}) was started with other settings "
                f"({', '.join(changed)} differ). Rerun with the original settings to resume, "
                "choose another --project, or add --overwrite to discard it and start afresh."
            )
        return path
    from fmnist_search.runs import now, versions

    project_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "project": req.project, "command": req.command, "space_name": req.space.name,
        "space_path": str(req.space.path), "preset": req.preset.as_dict(),
        "precision": policy, "data": req.data.fingerprint(), "versions": versions(),
        "created": now(), "identity": identity,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
    return path


def finished_count(project_dir: Path) -> int:
    count = 0
    for trial_json in project_dir.glob("trial_*/trial.json"):
        try:
            if json.loads(trial_json.read_text()).get("status") in FINISHED:
                count += 1
        except (OSError, ValueError):
            continue
    return count


def best_so_far(project_dir: Path) -> float | None:
    scores = []
    for path in project_dir.glob("trial_*/record.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") == "COMPLETED":
            scores.append(record["val_accuracy"])
    return max(scores, default=None)


@dataclass
class SearchOutcome:
    project_dir: Path
    before: int
    after: int
    requested: int
    stopped_for_time: bool
    did_nothing: bool
    exhausted: bool = False  # the oracle had nothing more to propose (e.g. Hyperband's brackets)


@contextmanager
def _startup_objects_frozen():
    """Keep the garbage collector off the objects that live for the whole process.

    Keras Tuner calls ``clear_session()`` and ``gc.collect()`` before every trial. A full
    collection walks every tracked object, and TensorFlow and Keras leave over 400,000 of
    them: measured here, 0.2 s per collection, two per trial. ``gc.freeze()`` moves
    the objects that exist now (imports, the dataset, the tuner) out of the collector's view;
    a trial's own garbage is created later and is still collected. Undone when the search
    returns, so that a caller running several searches in one process frees the old ones.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def search(req: SearchRequest, console: Console) -> SearchOutcome:
    import keras

    project_dir = req.root / req.project
    with project_lock(req.root, req.project):
        if req.overwrite and project_dir.exists():
            shutil.rmtree(project_dir)
        keras.utils.set_random_seed(req.seed)
        policy = training.set_precision(req.preset.precision)
        check_or_write_run_json(req, policy)
        before = finished_count(project_dir)
        if before >= req.preset.trials:
            return SearchOutcome(project_dir, before, before, req.preset.trials, False, True)
        display = SearchDisplay(console, req.preset.trials, before, best_so_far(project_dir))
        tuner = make_tuner(req.space, req.preset, req.data, req.root, req.project, display,
                           req.seed, policy)
        tuner.deadline = time.time() + req.max_time if req.max_time else None
        kwargs = {} if req.preset.tuner == "hyperband" else {"epochs": req.preset.epochs}
        # Hyperband reloads a previous round's weights into a freshly compiled model, whose
        # optimizer has no slots yet; Keras warns about that on every such trial.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        # Every trial is a new model, so TensorFlow's "retracing" warning fires by design.
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        with _startup_objects_frozen(), display.progress, interruptible():
            try:
                tuner.search(req.data.x_train, req.data.y_train,
                             validation_data=(req.data.x_val, req.data.y_val), verbose=0,
                             **kwargs)
            except RuntimeError as exc:
                if "consecutive failures" not in str(exc):
                    raise
                last = str(exc).strip().splitlines()[-1]
                raise UserError(
                    f"The search stopped: 3 trials in a row failed (the last: {last}). Check "
                    f"the space file {req.space.path} for values that cannot train; finished "
                    f"trials are kept in {project_dir}."
                ) from exc
        after = finished_count(project_dir)
        return SearchOutcome(project_dir, before, after, req.preset.trials,
                             tuner.stopped_for_time, False,
                             exhausted=not tuner.stopped_for_time and after < req.preset.trials)

