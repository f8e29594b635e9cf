"""The trial and run store: the results directory's file names and folder shapes, its record
types and status vocabulary, which names may become paths, and how its files are written. The
only code that knows those names, and the only writer of trial records and run folders
(``write_trial_record``, ``new_run``); ``tests/test_store.py`` scans the package for both.

Layout (under ``--results-dir``, default ``tuner_results/``)::

    <project>/run.json                 ProjectRecord: what the search is (its identity)
    <project>/oracle.json, tuner0.json Keras Tuner's own state (oracle.json.bak: last good copy)
    <project>/trial_<id>/trial.json    Keras Tuner's trial: its resume state, read by nothing else
    <project>/trial_<id>/record.json   TrialRecord: the trial as every reader sees it
    <project>/trial_<id>/.checkpoint-<digest>/   a running trial's last epoch checkpoint, gone
                                       when it ends (``tuning.trial_checkpoints``)
    <project>/workers/<id>.json        a distributed worker's heartbeat (``tuning.worker``)
    <project>/workers/<id>.log         a local worker's output; chief.json: the chief's address
    <project>/clock.json               the parts of a --max-time pipeline: when each ran
    .<project>.lock                    one search process per project
    baselines/<model>/<run-id>/        RunMetrics in metrics.json, history.csv, plots, model.keras,
                                       inference.keras (the same model as plain Keras),
                                       predictions.npz (validation and test probabilities)
    retrained/<project>-<trial>/<run-id>/   the same for a retrained trial
    <runs>/.checkpoint-<digest>/       a training's last epoch checkpoint (state.json, weights),
                                       beside its runs until it is finished (``checkpoints``)
    finalized/<project>/final.json     FinalRecord: the final table and each stage's wall time
    finalized/<project>/<project>-<trial>/<run-id>/   a top trial trained with the final protocol
    finalized/<project>/<project>-ensemble/<run-id>/  the ensemble of the final models (model.keras
                                       opens with plain Keras; metrics.json names its members)

Records carry ``schema`` (``SCHEMA``); a record without one was written before it existed
(schema 0) and reads the same way: new fields are only ever added, with a default here.

One trial store: ``record.json`` is the only file the readers (leaderboard, show, analyze,
finalize, the API) use for a trial, through ``read_trials``, which reads a project's records
once into ``TrialEntry`` objects with one status vocabulary (``TRIAL_STATUSES``). Keras
Tuner's ``trial.json`` is its resume state; it is looked at only to tell a trial that never
began (no record yet: RUNNING) from one whose record was lost (DAMAGED: the remedy is to run
the search again, which rebuilds the record from Keras Tuner's state, ``tuning.state``).

Everything this tool keeps on disk (our records and Keras Tuner's own state) is written through
``write_text``/``write_json``: a temporary file in the same directory, flushed and fsynced, then
renamed over the old one, and the directory fsynced. A reader (or a resume after ``kill -9``)
sees the old file or the new one, never half of one. A full or read-only disk is one
``StateWriteError`` naming the path, and the old file is left as it was.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from fmnist_search.errors import UserError

SCHEMA = 1
RUN_JSON = "run.json"
RECORD_JSON = "record.json"
TRIAL_JSON = "trial.json"
ORACLE_JSON = "oracle.json"
TUNER_JSON = "tuner0.json"
METRICS_JSON = "metrics.json"
MODEL_FILE = "model.keras"
INFERENCE_FILE = "inference.keras"  # the same model as plain Keras: no fmnist_search needed
# A run's class probabilities on its validation and test images (float32, TTA included where
# its protocol has it): what finalize's ensemble selection and the paired tests read.
PREDICTIONS = "predictions.npz"
HISTORY_CSV = "history.csv"  # a run's epochs, and its figures:
CURVES_PNG = "curves.png"
CONFUSION_PNG = "confusion.png"
RUN_FILES = (METRICS_JSON, HISTORY_CSV, CURVES_PNG, CONFUSION_PNG, MODEL_FILE, INFERENCE_FILE,
             PREDICTIONS)  # what a finished run folder holds (an ensemble: no history, curves)
PARTIAL = ".partial"  # a run folder, or a checkpoint's weights file, still being written
BASELINES = "baselines"
RETRAINED = "retrained"
FINALIZED = "finalized"
CONTROLS = "controls"  # each space's default point under a final protocol (finalize)
FINAL_JSON = "final.json"
WORKERS = "workers"
CHIEF_JSON = "chief.json"
CLOCK_JSON = "clock.json"  # the parts of a pipeline run under --max-time (``budget_clock``)
# A training's epoch checkpoint (``checkpoints``): a hidden folder beside its runs, named by a
# digest of the training's configuration, holding a pointer file and one weights file.
CHECKPOINT_PREFIX = ".checkpoint-"
CHECKPOINT_STATE = "state.json"
CHECKPOINT_WEIGHTS = ".weights.h5"


class ProjectRecord(TypedDict, total=False):
    """``run.json``: written once when a project starts; ``identity`` must match on resume."""

    schema: int
    project: str
    command: str
    space_name: str
    space_path: str
    preset: dict[str, Any]
    precision: str
    data: dict[str, Any]
    versions: dict[str, str]
    created: str
    identity: dict[str, Any]


class TrialRecord(TypedDict, total=False):
    """``record.json``: RUNNING when a trial begins; COMPLETED, PRUNED, REJECTED or FAILED when
    it ends. ``rebuilt`` says what was lost when it was rebuilt from Keras Tuner's state."""

    schema: int
    trial_id: str
    values: dict[str, Any]
    status: str
    started: float  # Unix times: time to target counts wall clock
    finished: float
    wall_seconds: float
    reason: str  # FAILED only
    val_accuracy: float  # COMPLETED only, from here on
    val_loss: float
    best_epoch: int
    params: int
    seconds_per_epoch: float
    epochs: int
    precision: str
    fit_seconds: float
    architecture: str
    history: list[dict[str, float]]
    rebuilt: str
    resumed_at: list[int]  # the epochs it was resumed from (its epoch checkpoints), when any
    proposal: str  # tuner "bohb", "motpe": how the configuration was proposed (tuning.bohb)
    ms_per_image: float  # a search of several objectives only (``costs``), with
    model_bytes: int  # ... the saved size and
    inference: dict[str, Any]  # ... how the milliseconds were measured (batch, threads)


# A trial's status, everywhere a user sees one. RUNNING: begun and not ended (or interrupted:
# rerun on resume); PRUNED: ended early by median stopping; REJECTED: over a limit, not
# trained; DAMAGED: its record.json is missing or unreadable (a reader's status, never written).
TRIAL_STATUSES = ("RUNNING", "COMPLETED", "PRUNED", "REJECTED", "FAILED", "DAMAGED")
# The statuses a trial ends in: a record in one of them is written once and never replaced
# (``write_trial_record``). The one set every module asks ("has this trial finished?").
FINISHED = ("COMPLETED", "PRUNED", "REJECTED", "FAILED")
# Keras Tuner's own statuses of an ended trial (``TrialStatus``): its vocabulary, not ours,
# used only to tell a lost record (DAMAGED) from a trial that never began.
KERAS_FINISHED = ("COMPLETED", "FAILED", "INVALID")


@dataclass
class TrialEntry:
    """One trial as the store has it: its record, or why there is none."""

    trial_id: str
    path: Path
    record: dict[str, Any]  # empty when DAMAGED, or RUNNING with no record yet
    status: str

    @property
    def ended(self) -> bool:
        """Whether the trial ended: a finished record, or a damaged one (it ended, and only its
        record was lost)."""
        return self.status in FINISHED or self.status == "DAMAGED"

    @property
    def reason(self) -> str:
        if self.status == "DAMAGED" and (self.path / RECORD_JSON).is_dir():
            return (f"{self.path / RECORD_JSON} is a folder where the trial's record file "
                    "should be: move or remove it, then run the search again (the same "
                    "`fmnist-search run` command) to rebuild the record from Keras Tuner's "
                    "state")
        if self.status == "DAMAGED":
            return (f"{self.path / RECORD_JSON} is missing or damaged: run the search again "
                    "(the same `fmnist-search run` command) to rebuild it from Keras Tuner's "
                    "state")
        if self.status == "RUNNING":
            return "running, or interrupted (rerun when the search resumes)"
        if self.status == "COMPLETED":
            return ""
        return self.record.get("reason") or self.status.lower()


def read_trials(project: Path) -> list[TrialEntry]:
    """Every trial of a project, in trial order, read once (see the module docstring)."""
    entries = []
    for trial_dir in trial_dirs(project):
        trial_id = trial_id_of(trial_dir)
        record = read_trial_record(trial_dir)
        if record is not None and record.get("status") in TRIAL_STATUSES:
            entries.append(TrialEntry(trial_id, trial_dir, dict(record), record["status"]))
            continue
        keras_status = (read_keras_trial(trial_dir) or {}).get("status")
        if keras_status is None and not (trial_dir / RECORD_JSON).exists():
            continue  # a folder with no trial in it (Keras Tuner makes them eagerly)
        lost = keras_status in KERAS_FINISHED or (trial_dir / RECORD_JSON).exists()
        entries.append(TrialEntry(trial_id, trial_dir, {}, "DAMAGED" if lost else "RUNNING"))
    return entries


# --------------------------------------------------------------------------- rows

# The one row schema: a trial, a baseline or retrained run, a finalized model, each as one flat
# row with these keys (None, or empty, where the kind has no such number). The leaderboard,
# ``api.trials``, analysis and finalize read rows of this shape (``results``); a search of
# several objectives adds ``pareto_rank`` to the rows it ranks (``pareto.mark``).
ROW_DEFAULTS: dict[str, Any] = {
    "kind": None,  # "trial", "baseline", "retrained", "final", "ensemble"
    "stage": None,  # "screening", "baseline", "retrained", "final", "ensemble"
    "project": None,
    "trial": None,
    "status": "COMPLETED",
    "val_accuracy": None,
    "val_loss": None,
    "test_accuracy": None,
    "test_note": None,
    "params": None,
    "seconds_per_epoch": None,
    "ms_per_image": None,  # a search of several objectives measures these two
    "model_bytes": None,
    "epochs": None,
    "architecture": "",
    "values": None,  # {} when the row has none
    "reason": "",
    "proposal": None,  # bohb and motpe only
    "n_train": None,
    "path": None,
    "space": None,
    "model": None,  # a run's model name
    "data": None,  # a run's data settings, {} when none
    "wall_seconds": None,  # a finalized model's
}
ROW_KEYS = tuple(ROW_DEFAULTS)


def row(**fields: Any) -> dict[str, Any]:
    """One row of the schema (``ROW_DEFAULTS``): every key, in its order; an unknown key is a
    programming error, refused here so that no reader meets a row of another shape."""
    unknown = sorted(set(fields) - set(ROW_DEFAULTS))
    if unknown:
        raise KeyError(f"not keys of a row (store.ROW_KEYS): {', '.join(unknown)}")
    out = {**ROW_DEFAULTS, **fields}
    for key in ("values", "data"):
        if out[key] is None:
            out[key] = {}
    return out


class RunMetrics(TypedDict, total=False):
    """``metrics.json`` of a baseline or retrained run (see ``runs.train_run``)."""

    schema: int
    kind: str
    model: str
    architecture: str
    values: dict[str, Any]
    source: dict[str, Any]
    params: int
    epochs: int
    seconds_per_epoch: float
    val_accuracy: float
    val_loss: float
    test_accuracy: float | None
    test_loss: float | None
    data: dict[str, Any]


class FinalRecord(TypedDict, total=False):
    """``finalized/<project>/final.json`` (see ``finalize``): rewritten after every model, so
    a finalize stopped half-way shows what it finished and resumes from there."""

    schema: int
    project: str
    top: int
    epochs: int
    final_values: dict[str, Any]
    precision: str
    data: dict[str, Any]
    stages: dict[str, Any]  # screening: seconds; models: [{name, seconds, reused}]
    rows: list[dict[str, Any]]  # the final table: stage "final" or "baseline"
    # models not started because they would have ended past --max-time (name, stage,
    # estimated_seconds, left_seconds); `complete` is still true: finalize went through its list
    skipped: list[dict[str, Any]]
    complete: bool
    updated: str


_SAFE = re.compile(r"[A-Za-z0-9._-]+")
# A name becomes a folder, its lock file (".NAME.lock") and, finalized or retrained, the folder
# "NAME-TRIAL"; 100 characters leave all of them well inside the 255-byte limit of a file name.
MAX_NAME = 100
# Errors that are the disk's fault, not the configuration's: they stop a search (resumable)
# instead of failing a trial.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


class StateWriteError(UserError):
    """A file of the results directory could not be written (disk full, read-only, no access)."""


def check_name(value: str | None, what: str = "--project") -> str:
    """A name that becomes one directory: letters, digits, '-', '_', '.'; not '.', '..' or '';
    not starting with '-' (a command line would read it as an option); at most ``MAX_NAME``.

    Checked before anything is touched, so that no name can reach outside the results
    directory (``..``), replace it (``.``), nest (``a/b``), or fail half-way for its length.
    """
    problem = None
    if value is None or not _SAFE.fullmatch(value) or value in (".", ".."):
        problem = ("use one path component of letters, digits, '-', '_' and '.' (not '.' or "
                   "'..', no '/')")
    elif value.startswith("-"):
        problem = "it must not start with '-' (commands would take it for an option)"
    elif len(value) > MAX_NAME:
        problem = (f"it has {len(value)} characters; at most {MAX_NAME} fit in every file name "
                   "it becomes (its lock file and finalized folders included)")
    if problem:
        shown = "an empty name" if not value else repr(value if len(value) <= 40
                                                        else value[:37] + "...")
        raise UserError(f"{what} {shown} is not a valid name: {problem}; for example "
                        "cnn-bayesian.")
    return value


def check_inside(root: Path, project: str) -> Path:
    """The project's folder, refused when it is a symbolic link: a name is one path component
    (``check_name``), so a link is the only way it could lead outside ``root``.

    A link would make a search write (and ``--overwrite`` delete) beside a user's own files
    elsewhere; every command that opens a project by name goes through here first.
    """
    path = root / check_name(project)
    if path.is_symlink():
        target = os.path.realpath(path)
        raise UserError(
            f"Project '{project}' in {root} is a symbolic link (to {target}), not a folder of "
            "the results directory; fmnist-search reads and writes only real folders inside "
            f"it, so that nothing elsewhere is changed. Remove the link, or give --results-dir "
            f"the folder that holds the project.")
    return path


def lock_file(root: Path, project: str) -> Path:
    """``.<project>.lock``: held by the one process searching the project."""
    return root / f".{check_name(project)}.lock"


def project_dir(root: Path, project: str) -> Path:
    return root / check_name(project)


def worker_file(project: Path, worker_id: str, suffix: str) -> Path:
    """A distributed worker's heartbeat (``.json``) or log (``.log``) in the project."""
    return project / WORKERS / f"{check_name(worker_id, '--worker-id')}{suffix}"


def trial_order(trial_id: str) -> tuple[int, str]:
    """Sort key of trial ids: Keras Tuner pads them to varying widths ("6" after "05")."""
    return (int(trial_id), trial_id) if trial_id.isdigit() else (1 << 30, trial_id)


TRIAL_PREFIX = "trial_"  # Keras Tuner's name for a trial's folder (``Tuner.get_trial_dir``)


def trial_dir(project: Path, trial_id: str) -> Path:
    """A trial's folder in its project."""
    return project / f"{TRIAL_PREFIX}{trial_id}"


def trial_id_of(trial_dir: Path) -> str:
    """The trial id a trial folder is named for."""
    return trial_dir.name.removeprefix(TRIAL_PREFIX)


def trial_dirs(project: Path) -> list[Path]:
    """A project's trial folders in trial order."""
    return sorted((p for p in project.glob(f"{TRIAL_PREFIX}*") if p.is_dir()),
                  key=lambda p: trial_order(trial_id_of(p)))


def list_projects(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if is_project(p))


def control_dir(root: Path, space_name: str) -> Path:
    """Where the runs of a space's control live, shared by every project of that space."""
    return root / CONTROLS / f"{space_name}-default"


def run_dirs(root: Path, kind: str, name: str) -> list[Path]:
    """The finished runs of a baseline or retrained model, oldest first (``finished_runs``)."""
    return finished_runs(root / kind / name)


def finished_runs(base: Path) -> list[Path]:
    """The finished runs of one model (its folder of runs), oldest first: run ids sort by time,
    and hidden ``.partial`` folders are runs still being written (``new_run``)."""
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / METRICS_JSON).is_file())


def is_run(path: Path) -> bool:
    """Whether ``path`` is a run folder with a trained model in it."""
    return (path / MODEL_FILE).is_file()


@dataclass
class NewRun:
    partial: Path  # where its files are written
    path: Path  # where the run is once it is complete


@contextmanager
def new_run(parent: Path, run_id: str) -> Iterator[NewRun]:
    """The one writer of run folders: the block writes the run's files (``RUN_FILES``, its
    ``metrics.json`` last) into a hidden ``.<run_id>.partial`` folder, renamed to ``<run_id>``
    when the block ends, removed when it fails; so a crash or kill never leaves a folder that
    looks finished but is not (``finished_runs`` skips hidden ones)."""
    parent.mkdir(parents=True, exist_ok=True)
    run = NewRun(parent / f".{run_id}{PARTIAL}", parent / run_id)
    run.partial.mkdir()
    try:
        yield run
        run.partial.rename(run.path)
    except BaseException:
        shutil.rmtree(run.partial, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- records


def _stamped(record: dict[str, Any]) -> dict[str, Any]:
    return {"schema": SCHEMA, **{k: v for k, v in record.items() if k != "schema"}}


def _read_record(path: Path) -> dict[str, Any] | None:
    record = read_json(path)
    if record is not None:
        record.setdefault("schema", 0)  # written before records carried a version
    return record


def failure_reason(message: str | None) -> str:
    """The last line of Keras Tuner's message (which holds the whole traceback)."""
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    if not lines:
        return "failed"
    last = lines[-1].strip()
    # "FailedTrialError: the loss became nan ..." -> the sentence after the exception's name
    name, sep, rest = last.partition(": ")
    return rest if sep and name.replace(".", "").replace("_", "").isalnum() else last


def read_project(project: Path) -> ProjectRecord | None:
    return _read_record(project / RUN_JSON)  # type: ignore[return-value]


def write_project(project: Path, record: ProjectRecord) -> None:
    write_json(project / RUN_JSON, _stamped(dict(record)))


def read_trial_record(trial_dir: Path) -> TrialRecord | None:
    return _read_record(trial_dir / RECORD_JSON)  # type: ignore[return-value]


class RecordFinishedError(Exception):
    """A finished trial record (``FINISHED``) exists: it is written once and never replaced."""

    def __init__(self, path: Path, status: str, refused: str | None) -> None:
        super().__init__(f"{path} is finished ({status}): a finished trial record is written "
                         f"once, so this {refused or 'new'} record was refused")
        self.path, self.status, self.refused = path, status, refused


def write_trial_record(trial_dir: Path, record: TrialRecord) -> None:
    """The one writer of ``record.json``: RUNNING records are rewritten (by the process that
    runs the trial) until the trial ends; a finished one (``FINISHED``) is written once, and
    any later write, from this process or another, raises ``RecordFinishedError``.

    The check and the write happen under an exclusive ``flock`` of the trial's folder (no
    file of its own: the folder's listing stays Keras Tuner's and ours), so two
    processes ending the same trial (a chief that gave up on a silent worker, and the worker's
    late result) cannot both win. The record itself is replaced atomically (``write_text``):
    a kill leaves the old record or the new one, never half of one, and the kernel drops a dead
    process's lock, so a crash never blocks the first legitimate write. A record that cannot
    be read (damaged) blocks nothing: it is what ``tuning.state`` rebuilds."""
    import fcntl

    path = trial_dir / RECORD_JSON
    try:
        fd = os.open(trial_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise disk_error(path, exc) if is_disk_error(exc) else exc from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        old = read_trial_record(trial_dir)
        if old is not None and old.get("status") in FINISHED:
            raise RecordFinishedError(path, old["status"], record.get("status"))
        write_json(path, _stamped(dict(record)))
    finally:
        os.close(fd)  # releases the lock


def read_keras_trial(trial_dir: Path) -> dict[str, Any] | None:
    """Keras Tuner's ``trial.json``: its resume state (``tuning.state`` repairs it); readers
    use ``read_trials``."""
    return read_json(trial_dir / TRIAL_JSON)


def read_metrics(run_dir: Path) -> RunMetrics | None:
    return _read_record(run_dir / METRICS_JSON)  # type: ignore[return-value]


def write_metrics(run_dir: Path, metrics: RunMetrics) -> None:
    write_json(run_dir / METRICS_JSON, _stamped(dict(metrics)))


def write_predictions(run_dir: Path, probabilities: Mapping[str, Any]) -> None:
    """``predictions.npz``: written into a run folder before it is renamed into place (so no
    atomic replace is needed here: a half-written run folder is never read)."""
    import numpy as np

    path = run_dir / PREDICTIONS
    try:
        with open(path, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v, dtype=np.float32) for k, v in probabilities.items()})
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise disk_error(path, exc) if is_disk_error(exc) else exc from exc


def read_predictions(run_dir: Path) -> dict[str, Any] | None:
    """A run's saved probabilities (``val``, and ``test`` where it was tested), or None when
    the run predates them or the file is damaged: the caller then predicts again."""
    import zipfile

    import numpy as np

    try:
        with np.load(run_dir / PREDICTIONS) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def model_damage(path: Path) -> str | None:
    """Why a saved ``model.keras`` cannot be loaded, or None: Keras' format is a zip holding
    ``config.json`` (the architecture) and ``model.weights.h5``; a truncated or zeroed file
    is no zip, a damaged one fails its members' CRC. Checked without Keras (a fraction of a
    second for the 3.5 MB of the resnet default point)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [n for n in ("config.json", "model.weights.h5") if n not in names]
            if missing:
                return f"it lacks {' and '.join(missing)}"
            bad = archive.testzip()
            if bad is not None:
                return f"its member {bad} is damaged (CRC mismatch)"
            json.loads(archive.read("config.json"))
    except FileNotFoundError:
        return "it is missing"
    except (zipfile.BadZipFile, EOFError):
        return (f"it is no Keras model file ({path.stat().st_size:,} bytes: truncated or "
                "overwritten)")
    except ValueError:  # UnicodeDecodeError and JSONDecodeError included
        return "its config.json is not valid JSON"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def run_damage(run_dir: Path) -> str | None:
    """Why a finished run cannot be reused, or None: its ``model.keras`` must load
    (``model_damage``), and its ``predictions.npz``, when it has one, must read."""
    problem = model_damage(run_dir / MODEL_FILE)
    if problem:
        return f"{MODEL_FILE}: {problem}"
    if (run_dir / PREDICTIONS).exists() and read_predictions(run_dir) is None:
        return f"{PREDICTIONS} cannot be read"
    return None


def final_dir(root: Path, project: str) -> Path:
    return root / FINALIZED / check_name(project)


def read_final(root: Path, project: str) -> FinalRecord | None:
    return _read_record(final_dir(root, project) / FINAL_JSON)  # type: ignore[return-value]


def write_final(root: Path, project: str, record: FinalRecord) -> None:
    directory = final_dir(root, project)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise disk_error(directory, exc) if is_disk_error(exc) else exc from exc
    write_json(directory / FINAL_JSON, _stamped(dict(record)))


def is_project(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and (path / RUN_JSON).is_file()


def remove_project(root: Path, project: str) -> bool:
    """``--overwrite``: delete a project of this tool, and nothing else.

    Only a real directory directly inside ``root`` that holds our ``run.json`` is removed; any
    other existing path is refused, so a mistyped name cannot delete a user's directory.
    """
    path = check_inside(root, project)
    if not path.exists():
        return False
    if not is_project(path):
        raise UserError(
            f"--overwrite refused: {path} exists but is not an fmnist-search project (it has "
            f"no {RUN_JSON}). Nothing was deleted; choose another --project or remove it yourself."
        )
    shutil.rmtree(path)
    return True


# The same faults as TensorFlow reports them: Keras Tuner makes its folders and writes its files
# through tf.io.gfile, whose errors (PermissionDeniedError, ...) are not OSErrors.
DISK_TEXTS = ("No space left on device", "Read-only file system", "Permission denied",
              "Disk quota exceeded")


def is_disk_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return True
    return any(text in str(exc) for text in DISK_TEXTS)


@contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """A disk or permission error inside (Python's or TensorFlow's) as one ``StateWriteError``
    about ``path``, instead of a traceback from deep inside Keras Tuner."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        if is_disk_error(exc):
            raise disk_error(path, exc) from exc
        raise


def disk_error(path: Path | str, exc: BaseException) -> StateWriteError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return StateWriteError(
        f"Cannot write {path}: {reason}. Nothing finished was lost (state files are replaced "
        "whole or not at all); free some space (or make the directory writable) and rerun the "
        "same command to resume."
    )


def write_text(path: Path | str, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (see the module docstring)."""
    path = Path(path)
    if path.is_dir():  # os.replace would fail with IsADirectoryError, a traceback
        raise StateWriteError(
            f"Cannot write {path}: it is a folder where this file should be. Nothing finished "
            "was lost; move or remove that folder (check first that it holds nothing of yours) "
            "and rerun the same command to resume.")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        if is_disk_error(exc):
            raise disk_error(path, exc) from exc
        raise
    finally:
        if tmp is not None:
            with suppress(OSError):
                os.unlink(tmp)


def write_json(path: Path | str, obj: Any, indent: int | None = 2) -> str:
    text = json.dumps(obj, indent=indent, default=float)
    write_text(path, text)
    return text


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object, or None when the file is missing, empty, truncated or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _fsync_dir(directory: Path) -> None:
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def busy_error(root: Path, project: str) -> UserError:
    return UserError(
        f"Project '{project}' in {root} is being searched by another fmnist-search process "
        "right now. Wait for it to finish (or stop it), or use another --project.")
