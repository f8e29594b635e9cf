"""A search project: its name, what it is (``run.json``), and who may search it (a lock).

``run.json`` pins what must not change between resumes of one project (space, data, tuner,
protocol, seed); a rerun with other settings is refused rather than mixed into the same trials.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fmnist_search import store
from fmnist_search.errors import UserError


@contextmanager
def project_lock(root: Path, project: str) -> Iterator[None]:
    """One process per project; the kernel drops the lock when the process dies, even on -9."""
    store.check_inside(root, project)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fh = open(store.lock_file(root, project), "w")  # noqa: SIM115 (held for the whole block)
    except OSError as exc:
        raise store.disk_error(root, exc) if store.is_disk_error(exc) else exc from exc
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise store.busy_error(root, project) from exc
        yield


def check_or_write_run_json(project_dir: Path, identity: dict[str, Any],
                            record: dict[str, Any]) -> Path:
    """Refuse a resume with other settings; write ``run.json`` for a new project."""
    path = project_dir / store.RUN_JSON
    if path.exists():
        old = store.read_project(project_dir)
        if old is None:
            raise UserError(
                f"{path} is damaged (empty or not JSON), so it cannot tell whether this rerun "
                "matches the project's settings. Restore it, use another --project, or add "
                "--overwrite to discard the project and start afresh.")
        changed = [k for k, v in identity.items() if old.get("identity", {}).get(k) != v]
        if changed:
            raise UserError(
                f"Project '{project_dir.name}' ({project_dir}) was started with other settings "
                f"({', '.join(changed)} differ). Rerun with the original settings to resume, "
                "choose another --project, or add --overwrite to discard it and start afresh."
            )
        return path
    try:
        project_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise store.disk_error(project_dir, exc) if store.is_disk_error(exc) else exc from exc
    store.write_project(project_dir, {**record, "identity": identity})
    return path


def _entries(trials: Path | list[store.TrialEntry]) -> list[store.TrialEntry]:
    return store.read_trials(trials) if isinstance(trials, Path) else trials


def finished_count(trials: Path | list[store.TrialEntry]) -> int:
    """Trials that ended (a damaged one too: it ended, only its record was lost)."""
    return sum(1 for e in _entries(trials) if e.ended)


def best_so_far(trials: Path | list[store.TrialEntry]) -> float | None:
    return max((e.record["val_accuracy"] for e in _entries(trials)
                if e.status == "COMPLETED"), default=None)


def finished_records(trials: Path | list[store.TrialEntry],
                     statuses: tuple[str, ...] = ("COMPLETED", "PRUNED")) -> list[dict[str, Any]]:
    """Our records of the trials that trained to their end (or were pruned), in trial order."""
    return [e.record for e in _entries(trials) if e.status in statuses]


def val_curves(trials: Path | list[store.TrialEntry],
               planned_epochs: int | None = None) -> list[dict[int, float]]:
    """Each finished trial's ``{epoch: val_accuracy}``: what median stopping compares with.

    ``planned_epochs``: only the trials planned for that many epochs (Hyperband's
    ``tuner/epochs``). Under a per-step schedule (a cosine to zero over the trial's epochs) the
    learning rate at epoch 2 of a 3-epoch trial is a quarter of a 9-epoch trial's, so their
    epoch-2 accuracies are not comparable and the longer trial would be pruned for its
    schedule, not its configuration."""
    records = [r for r in finished_records(trials) if planned_epochs is None
               or r.get("values", {}).get("tuner/epochs") == planned_epochs]
    return [{int(row["epoch"]): float(row["val_accuracy"]) for row in r.get("history", [])
             if "val_accuracy" in row} for r in records]


class TrialCache:
    """A search's in-memory view of its project's trials: read once when it starts, then
    only the trials that had not ended are read again (an ended trial's record is final).
    Other processes (distributed workers) write records too, so it looks, but reads little."""

    def __init__(self, project_dir: Path, entries: list[store.TrialEntry]) -> None:
        self.project_dir = project_dir
        self.ended = {e.trial_id: e for e in entries if e.ended}

    def refresh(self) -> list[store.TrialEntry]:
        entries = []
        for trial_dir in store.trial_dirs(self.project_dir):
            trial_id = store.trial_id_of(trial_dir)
            entry = self.ended.get(trial_id)
            if entry is None:
                record = store.read_trial_record(trial_dir)
                if record is None or record.get("status") not in store.TRIAL_STATUSES:
                    continue
                entry = store.TrialEntry(trial_id, trial_dir, dict(record), record["status"])
                if entry.ended:
                    self.ended[trial_id] = entry
            entries.append(entry)
        return entries


def top_seconds_per_epoch(trials: Path | list[store.TrialEntry], top: int) -> list[float]:
    """Seconds per epoch of the ``top`` best distinct configurations (best first)."""
    import json

    seen, out = set(), []
    records = sorted(finished_records(trials, ("COMPLETED",)),
                     key=lambda r: -float(r.get("val_accuracy") or 0))
    for r in records:
        key = json.dumps({k: v for k, v in r.get("values", {}).items()
                          if not k.startswith("tuner/")}, sort_keys=True)
        if key not in seen and r.get("seconds_per_epoch"):
            seen.add(key)
            out.append(float(r["seconds_per_epoch"]))
    return out[:top]
