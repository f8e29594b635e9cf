"""The trial and run store (``store``): one status per trial (``read_trials``), read from
record.json only (Keras Tuner's trial.json only tells "never began" from "lost"); a finished
record written once, across processes and kills."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


# --------------------------------------------------------------------------- written once


def test_a_finished_record_is_written_once(tmp_path):
    """RUNNING is rewritten until the trial ends; the finished record then stands, and a
    second write (any status) is refused with an error naming the record."""
    folder = tmp_path / "trial_0"
    folder.mkdir()
    store.write_trial_record(folder, {"trial_id": "0", "status": "RUNNING", "started": 1.0})
    store.write_trial_record(folder, {"trial_id": "0", "status": "RUNNING", "started": 2.0})
    store.write_trial_record(folder, {"trial_id": "0", "status": "FAILED", "reason": "gone"})
    for late in ("COMPLETED", "RUNNING", "FAILED"):
        with pytest.raises(store.RecordFinishedError) as err:
            store.write_trial_record(folder, {"trial_id": "0", "status": late})
        assert str(folder / store.RECORD_JSON) in str(err.value) and "FAILED" in str(err.value)
    assert store.read_trial_record(folder)["reason"] == "gone"


def test_a_damaged_record_blocks_no_first_write(tmp_path):
    """A record that cannot be read (a disk fault, a hand edit) is rebuilt, not kept."""
    folder = tmp_path / "trial_0"
    folder.mkdir()
    (folder / store.RECORD_JSON).write_text('{"status": "COMPLE')
    store.write_trial_record(folder, {"trial_id": "0", "status": "COMPLETED"})
    assert store.read_trial_record(folder)["status"] == "COMPLETED"


# Run in another interpreter: wait for GO, then try to end each trial with STATUS; the reading
# of the old record is slowed, so that two writers that did not exclude each other would both
# read RUNNING and both write. Prints the trials it won, as JSON.
_WRITER = """
import json, sys, time
from pathlib import Path
from fmnist_search import store
root, status, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
read = store.read_trial_record
def slow_read(folder):
    record = read(folder)
    time.sleep(0.05)
    return record
store.read_trial_record = slow_read
while not go.exists():
    time.sleep(0.005)
won = []
for folder in store.trial_dirs(root):
    try:
        store.write_trial_record(folder, {"trial_id": store.trial_id_of(folder),
                                          "status": status, "by": status})
        won.append(store.trial_id_of(folder))
    except store.RecordFinishedError as exc:
        assert str(folder / store.RECORD_JSON) in str(exc)
print(json.dumps(won))
"""


def _writer(root: Path, status: str, go: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(root), status, str(go)],
                            stdout=subprocess.PIPE, text=True)


def test_a_slow_workers_late_result_cannot_replace_a_finished_record(tmp_path):
    """Two processes end the same trials at once (a chief failing a silent worker's trial and
    the worker's late result): each trial is won by exactly one, and its record is the
    winner's; the loser is refused and replaces nothing."""
    for i in range(6):
        folder = tmp_path / f"trial_{i}"
        folder.mkdir()
        store.write_trial_record(folder, {"trial_id": str(i), "status": "RUNNING"})
    go = tmp_path / "go"
    chief, worker = _writer(tmp_path, "FAILED", go), _writer(tmp_path, "COMPLETED", go)
    time.sleep(0.5)  # both interpreters started and waiting
    go.touch()
    failed, completed = (json.loads(p.communicate(timeout=60)[0]) for p in (chief, worker))
    assert chief.returncode == worker.returncode == 0
    assert sorted(failed + completed, key=int) == [str(i) for i in range(6)]  # one winner each
    for trial_id in failed + completed:
        record = store.read_trial_record(tmp_path / f"trial_{trial_id}")
        assert record["status"] == ("FAILED" if trial_id in failed else "COMPLETED")
        assert record["by"] == record["status"]


# Run in another interpreter: begin writing a finished record and stop for good at the step
# named by argv[2] ("lock": holding the lock, before writing; "replace": the new record written
# to its temporary file, not yet renamed), saying so on stdout, to be killed there.
_STUCK = """
import sys, time
from pathlib import Path
from fmnist_search import store
folder, step = Path(sys.argv[1]), sys.argv[2]
def stuck(*args, **kwargs):
    print("stuck", flush=True)
    time.sleep(600)
if step == "lock":
    store.write_json = stuck
else:
    store.os.replace = stuck
store.write_trial_record(folder, {"trial_id": "0", "status": "COMPLETED", "by": "killed"})
"""


@pytest.mark.parametrize("step", ["lock", "replace"])
def test_a_writer_killed_mid_write_leaves_the_old_record_and_blocks_nothing(tmp_path, step):
    """kill -9 while holding the record's lock, or with the new record written but not yet in
    place: the old record is whole, and the first legitimate finished write goes through at
    once (the kernel dropped the dead process's lock; no record half-written)."""
    folder = tmp_path / "trial_0"
    folder.mkdir()
    store.write_trial_record(folder, {"trial_id": "0", "status": "RUNNING"})
    proc = subprocess.Popen([sys.executable, "-c", _STUCK, str(folder), step],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "stuck"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert store.read_trial_record(folder)["status"] == "RUNNING"  # whole, and still the old
    began = time.monotonic()
    store.write_trial_record(folder, {"trial_id": "0", "status": "COMPLETED", "by": "resume"})
    assert time.monotonic() - began < 5
    assert store.read_trial_record(folder)["by"] == "resume"
    with pytest.raises(store.RecordFinishedError):
        store.write_trial_record(folder, {"trial_id": "0", "status": "FAILED"})

