"""Keras Tuner's project state: written atomically, checked and repaired before a resume.

Keras Tuner rewrites ``oracle.json``, ``tuner0.json`` and ``trial_*/trial.json`` in place; a
kill during that write leaves an empty file and a project that no longer resumes. While a search
runs, every one of its JSON saves goes through ``store.write_text`` (temporary file, fsync,
rename) inside a ``critical()`` section of the search's stop signals, and the previous
``oracle.json`` is kept as ``oracle.json.bak``, a last good copy.

Our ``record.json`` is written when a trial begins (status RUNNING, its values) and when it ends
(COMPLETED or FAILED, with its numbers), so it is a second, independent account of each trial.
Before a resume, ``repair`` compares the two accounts and Keras Tuner's oracle with them:
a finished trial that Keras Tuner still calls running is finished from our record (its result
is never replaced by a rerun), a damaged file is rebuilt from what is intact, and what cannot be
rebuilt is refused with one message that names the file and the remedy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from fmnist_search import objectives, store
from fmnist_search.errors import UserError

OBJECTIVE = "val_accuracy"
FINISHED = store.KERAS_FINISHED  # Keras Tuner's statuses of an ended trial
HISTORY_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")  # a record's, for Keras Tuner
BACKUP_SUFFIX = ".bak"
# Our record's final statuses (``store.FINISHED``), and what each is in Keras Tuner's state: a
# pruned trial ended normally with its score; a rejected one never trained.
RECORD_FINISHED = {status: "FAILED" if status in ("FAILED", "REJECTED") else "COMPLETED"
                   for status in store.FINISHED}


@contextmanager
def atomic_saves(critical=nullcontext) -> Iterator[None]:
    """Route Keras Tuner's JSON saves through the atomic writer while the block runs.

    Covers the oracle, the tuner and every trial (``kt_compat.json_saves``); restored after.
    """
    from fmnist_search.tuning import kt_compat

    def save_json(path, obj):
        import json

        text = json.dumps(obj)
        path = Path(path)
        with critical():
            if kt_compat.is_oracle_file(path) and store.read_json(path) is not None:
                _keep_last_good(path)
            store.write_text(path, text)
        return text

    with kt_compat.json_saves(save_json):
        yield


def _keep_last_good(path: Path) -> None:
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    tmp = path.with_name(path.name + BACKUP_SUFFIX + ".tmp")
    try:
        shutil.copyfile(path, tmp)
        tmp.replace(backup)
    except OSError as exc:
        if store.is_disk_error(exc):
            raise store.disk_error(backup, exc) from exc
        raise


# --------------------------------------------------------------------------- repair


def repair(project_dir: Path) -> list[str]:
    """Make the project's state consistent before Keras Tuner reloads it; say what was done."""
    trial_dirs = store.trial_dirs(project_dir)
    from fmnist_search.tuning import kt_compat

    oracle_path = kt_compat.oracle_file(project_dir)
    if not trial_dirs and not oracle_path.exists():
        return []  # a new project: nothing to repair
    notes: list[str] = []
    oracle = _load_oracle(oracle_path, trial_dirs, notes)
    if oracle is None:
        return notes  # no trial ever started: Keras Tuner starts the project afresh
    trials = {}
    for trial_dir in trial_dirs:
        state = _repaired_trial(trial_dir, oracle, notes)
        if state is not None:
            trials[state["trial_id"]] = state
    changed = _reconcile_oracle(oracle, trials, notes)
    if changed or notes:
        store.write_json(oracle_path, oracle, indent=None)
    tuner_path = kt_compat.tuner_file(project_dir)
    if store.read_json(tuner_path) is None:
        store.write_json(tuner_path, {}, indent=None)
        if trials:
            notes.append(f"{tuner_path.name} was missing or damaged: rewritten (it holds no "
                         "state of its own), so the search resumes instead of starting over")
    return notes


def _load_oracle(path: Path, trial_dirs: list[Path], notes: list[str]) -> dict | None:
    from fmnist_search.tuning import kt_compat

    oracle = store.read_json(path)
    if kt_compat.is_oracle_state(oracle):
        return oracle
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    saved = store.read_json(backup)
    if kt_compat.is_oracle_state(saved):
        notes.append(f"{path} was damaged (an interrupted write): restored from its last good "
                     f"copy {backup.name} and checked against the trial files")
        return saved
    started = [d for d in trial_dirs if (d / store.RECORD_JSON).exists()]
    if not started:
        # Killed before the first trial trained: nothing was computed, so nothing is lost by
        # starting afresh (Keras Tuner would otherwise reload half a state).
        for leftover in (path, kt_compat.tuner_file(path.parent), *trial_dirs):
            if leftover.is_dir():
                shutil.rmtree(leftover)
            elif leftover.exists():
                leftover.unlink()
        notes.append(f"{path} was missing or damaged before any trial trained: the search "
                     "starts afresh")
        return None
    what = "is missing" if not path.exists() else "is damaged (empty or truncated)"
    raise UserError(
        f"{path} {what} and has no readable last good copy ({backup.name}), so the search "
        f"state of project '{path.parent.name}' cannot be rebuilt. Its {len(started)} trial "
        f"folder(s) are intact: `fmnist-search leaderboard {path.parent.name}` still shows "
        "them. To search on, rerun with another --project, or with --overwrite to discard "
        "this project and start afresh."
    )


def _repaired_trial(trial_dir: Path, oracle: dict, notes: list[str]) -> dict | None:
    """The trial's Keras Tuner state, made to agree with our record of it."""
    from fmnist_search.tuning import kt_compat

    trial_path = kt_compat.trial_file(trial_dir)
    record = store.read_trial_record(trial_dir)
    state = kt_compat.read_trial_state(trial_dir)
    trial_id = store.trial_id_of(trial_dir)
    if state is None:
        if not trial_path.exists() and record is None:
            return None  # a folder with no trial in it (Keras Tuner makes them eagerly)
        state = _rebuilt_trial(trial_id, oracle, record)
        notes.append(f"{trial_path} was damaged: rebuilt from "
                     f"{'its ' + store.RECORD_JSON if record else 'the oracle (its values were lost)'}")
    elif record is not None and state.get("status") not in FINISHED \
            and record.get("status") in RECORD_FINISHED:
        _finish_from_record(state, record)
        notes.append(f"trial {trial_id} had finished ({record['status'].lower()}) but Keras "
                     "Tuner had not saved that: its recorded result is kept, not rerun")
    else:
        _rebuild_lost_record(trial_dir, state, record, notes)
        return state
    store.write_json(trial_path, state, indent=None)
    _rebuild_lost_record(trial_dir, state, record, notes)
    return state


def _rebuild_lost_record(trial_dir: Path, state: dict, record: dict | None,
                         notes: list[str]) -> None:
    """A finished trial whose ``record.json`` is missing, unreadable or stale (RUNNING) gets
    one rebuilt from Keras Tuner's state: readers see only records (``store.read_trials``)."""
    if state.get("status") not in FINISHED or (record is not None and
                                               record.get("status") in RECORD_FINISHED):
        return
    store.write_trial_record(trial_dir, record_from_keras(state, record or {}))
    notes.append(f"{trial_dir / store.RECORD_JSON} was missing or damaged: rebuilt from Keras "
                 "Tuner's trial.json (its values and validation history; the parameter count "
                 "and timings were lost)")


def record_from_keras(state: dict, old: dict) -> dict[str, Any]:
    """Our record of a finished trial, from Keras Tuner's ``trial.json`` (``old``: what a
    stale RUNNING record still says, such as when the trial started)."""
    values = dict(state.get("hyperparameters", {}).get("values", {}))
    record: dict[str, Any] = {"trial_id": state.get("trial_id"), "values": values,
                              **{k: old[k] for k in ("started",) if k in old},
                              "rebuilt": "from Keras Tuner's trial.json: no parameter count, "
                                         "timings or precision"}
    if state.get("status") != "COMPLETED" or state.get("score") is None:
        return {**record, "status": "FAILED",
                "reason": store.failure_reason(state.get("message"))}
    history: dict[int, dict[str, float]] = {}
    for name, metric in state.get("metrics", {}).get("metrics", {}).items():
        for observation in metric.get("observations", []):
            step = int(observation.get("step", 0))
            history.setdefault(step, {"epoch": step + 1})[name] = observation["value"][0]
    best = int(state.get("best_step") or 0)
    return {**record, "status": "COMPLETED", OBJECTIVE: float(state["score"]),
            "val_loss": history.get(best, {}).get("val_loss"), "best_epoch": best + 1,
            "epochs": max(history, default=best) + 1, "architecture": _name(values),
            "history": [history[k] for k in sorted(history)]}


def _rebuilt_trial(trial_id: str, oracle: dict, record: dict | None) -> dict:
    space = oracle.get("hyperparameters", {"space": [], "values": {}})
    values = dict(record.get("values", {})) if record else {}
    state = {"trial_id": trial_id,
             "hyperparameters": {"space": space.get("space", []), "values": values},
             "metrics": {"metrics": {}}, "score": None, "best_step": 0,
             "status": "RUNNING", "message": None}
    if record is None:
        state["status"] = "FAILED"
        state["message"] = ("trial.json was damaged before the trial trained, and its "
                            "configuration was lost; the search goes on with new trials")
    elif record.get("status") in RECORD_FINISHED:
        _finish_from_record(state, record)
    return state


def _name(values: dict[str, Any]) -> str:
    from fmnist_search import builder

    try:
        return builder.short_name(values)
    except UserError:
        return ""


def _finish_from_record(state: dict, record: dict) -> None:
    if RECORD_FINISHED[record["status"]] == "FAILED":
        state["status"] = "FAILED"
        state["message"] = record.get("reason") or "failed"
        return
    history = record.get("history") or []
    metrics = {}
    for name in HISTORY_METRICS:
        observations = [{"value": [float(row[name])], "step": i}
                        for i, row in enumerate(history) if name in row]
        if observations:
            direction = "max" if "accuracy" in name else "min"
            metrics[name] = {"direction": direction, "observations": observations}
    if OBJECTIVE not in metrics:
        metrics[OBJECTIVE] = {"direction": "max", "observations": [
            {"value": [float(record[OBJECTIVE])], "step": 0}]}
    for name, value in cost_metrics(record).items():
        metrics[name] = {"direction": "min", "observations": [{"value": [value], "step": 0}]}
    state["metrics"] = {"metrics": metrics}
    state["score"] = float(record[OBJECTIVE])
    state["best_step"] = int(record.get("best_epoch", 1)) - 1
    state["status"] = "COMPLETED"
    state["message"] = None


def cost_metrics(record: dict[str, Any]) -> dict[str, float]:
    """A finished trial of a search with several objectives (its record has the measured
    costs): the costs its oracle reads as metrics, as the trial reported them (at step 0,
    ``hypermodel.trial_metrics``). Empty for a search of one objective, whose trial.json keeps
    the history's metrics only."""
    if not all(name in record for name in objectives.MEASURED):
        return {}
    return {name: float(record[name]) for name in objectives.COSTS
            if record.get(name) is not None}


def _reconcile_oracle(oracle: dict, trials: dict[str, dict], notes: list[str]) -> bool:
    """Drop references to trials that do not exist, finish what finished, queue what did not
    (``kt_compat.reconcile_oracle_state``: the oracle's bookkeeping is Keras Tuner's format)."""
    from fmnist_search.tuning import kt_compat

    before = repr(oracle)
    finished = {tid for tid, s in trials.items() if s.get("status") in FINISHED}
    for tid in kt_compat.reconcile_oracle_state(oracle, trials, finished, store.trial_order):
        notes.append(f"trial {tid} had been created but not registered: queued to run")
    return repr(oracle) != before
