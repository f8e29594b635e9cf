"""The trial and run store (``store``): one status per trial (``read_trials``), read from
record.json only (Keras Tuner's trial.json only tells "never began" from "lost"); a finished
record written once, across processes and kills."""

from __future__ import annotations

import json
from pathlib import Path

from fmnist_search import store


def _trial(project: Path, trial_id: str, record=None, keras_status=None, raw=None) -> None:
    d = project / f"trial_{trial_id}"
    d.mkdir(parents=True)
    if record is not None:
        store.write_trial_record(d, {"trial_id": trial_id, **record})
    if raw is not None:
        (d / store.RECORD_JSON).write_text(raw)
    if keras_status is not None:
        (d / store.TRIAL_JSON).write_text(json.dumps({"trial_id": trial_id,
                                                       "status": keras_status}))


def test_each_trial_gets_one_status_from_its_record(tmp_path):
    _trial(tmp_path, "0", {"status": "COMPLETED", "val_accuracy": 0.9}, "COMPLETED")
    _trial(tmp_path, "1", {"status": "PRUNED", "reason": "below the median"}, "COMPLETED")
    _trial(tmp_path, "2", {"status": "REJECTED", "reason": "too big"}, "FAILED")
    _trial(tmp_path, "3", None, "COMPLETED")  # record.json deleted
    _trial(tmp_path, "4", None, "INVALID")  # Keras Tuner's INVALID, record lost
    _trial(tmp_path, "5", raw="{trunc", keras_status="RUNNING")  # a damaged record
    _trial(tmp_path, "6", None, "RUNNING")  # created, killed before it began
    _trial(tmp_path, "7", {"status": "COMPLETED", "val_accuracy": 0.5}, None)  # KT's lost
    (tmp_path / "trial_8").mkdir()  # Keras Tuner makes folders eagerly
    entries = store.read_trials(tmp_path)
    assert [(e.trial_id, e.status) for e in entries] == [
        ("0", "COMPLETED"), ("1", "PRUNED"), ("2", "REJECTED"), ("3", "DAMAGED"),
        ("4", "DAMAGED"), ("5", "DAMAGED"), ("6", "RUNNING"), ("7", "COMPLETED")]
    assert {e.status for e in entries} <= set(store.TRIAL_STATUSES)
    damaged = entries[3]
    assert damaged.record == {} and str(damaged.path / "record.json") in damaged.reason
    assert "fmnist-search run" in damaged.reason
    assert entries[1].reason == "below the median" and entries[0].reason == ""


def test_records_carry_the_schema_and_are_written_whole(tmp_path):
    _trial(tmp_path, "0", {"status": "RUNNING"})
    saved = json.loads((tmp_path / "trial_0" / store.RECORD_JSON).read_text())
    assert saved["schema"] == store.SCHEMA
    assert not list(tmp_path.glob("trial_0/.*.tmp"))  # the temporary file was renamed

