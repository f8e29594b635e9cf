"""Nothing finished is lost or rerun: kills during state writes, signals, failures, full disks,
and project names that would reach outside the results directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import search_args

from fmnist_search import results, store
from fmnist_search.callbacks import NanLossError
from fmnist_search.cli import main

DRIVER = str(Path(__file__).with_name("fault_injection.py"))


def _completed(root: Path, project: str) -> dict[str, str]:
    """trial id -> its record.json text, for the trials Keras Tuner calls COMPLETED."""
    return {r["trial"]: (Path(r["path"]) / "record.json").read_text()
            for r in results.trial_rows(root, project) if r["status"] == "COMPLETED"}


def _recorded(root: Path, project: str) -> dict[str, str]:
    """trial id -> record.json text, for the trials our record calls COMPLETED (the tool had
    printed "done" for them), whatever Keras Tuner's own files say."""
    found = {}
    for path in (root / project).glob("trial_*/record.json"):
        if json.loads(path.read_text())["status"] == "COMPLETED":
            found[path.parent.name.removeprefix("trial_")] = path.read_text()
    return found


def _resume(args: list[str], capsys) -> str:
    """The same command again, in this process (a fresh one would only load TensorFlow
    again: nothing of the killed process is in this one either); its output, one line."""
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    out = " ".join((captured.out + captured.err).split())
    assert code == 0, out[-3000:]
    assert "Traceback" not in out
    return out


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../x", "/tmp/x", "a b", "x\ny"])
def test_project_names_that_escape_are_refused_before_anything(tmp_path, csv_data, capsys,
                                                                  name):
    canary = tmp_path / "canary.txt"
    canary.write_text("keep me")
    root = tmp_path / "res"
    (root / "other").mkdir(parents=True)
    (root / "other" / "run.json").write_text("{}")
    assert main(search_args(csv_data, tmp_path, name, 1, "--overwrite")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--project" in err and "not a valid name" in err and "Traceback" not in err
    assert canary.read_text() == "keep me"
    assert (root / "other" / "run.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canary.txt", "res", "test.csv",
                                                          "train.csv"]


def test_overwrite_removes_only_a_project_of_this_tool(tmp_path, csv_data, capsys):
    root = tmp_path / "res"
    (root / "notmine").mkdir(parents=True)
    (root / "notmine" / "thesis.tex").write_text("years of work")
    assert main(search_args(csv_data, tmp_path, "notmine", 1, "--overwrite")) == 2
    assert "not an fmnist-search project" in " ".join(capsys.readouterr().err.split())
    assert (root / "notmine" / "thesis.tex").read_text() == "years of work"

    assert main(search_args(csv_data, tmp_path, "mine", 1)) == 0
    first = _completed(root, "mine")
    assert main(search_args(csv_data, tmp_path, "mine", 1, "--overwrite")) == 0
    assert _completed(root, "mine") != first  # really discarded and searched again


# --------------------------------------------------------------------------- kills mid-write


@pytest.mark.slow
@pytest.mark.parametrize("fault, finished_before", [
    ("oracle.json:1", []),  # the first state write of a new project (no tuner0.json yet)
    ("trial.json:3", ["0"]),  # trial 0's COMPLETED status: our record says done, Keras Tuner not
    ("oracle.json:2", ["0"]),  # trial 0 is COMPLETED in trial.json, the oracle still runs it
    ("record.json:4", ["0"]),  # trial 1's finished record, before Keras Tuner knows it finished
])
def test_kill_during_a_state_write_then_resume(tmp_path, csv_data, capsys, fault,
                                               finished_before):
    root = tmp_path / "res"
    args = search_args(csv_data, tmp_path, "k", 4)
    killed = subprocess.run([sys.executable, DRIVER, fault, "kill", "--", *args],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    kept = _recorded(root, "k")
    assert set(finished_before) <= set(kept)  # the loop below checks these, at least
    resumed = _resume(args, capsys)
    done = _completed(root, "k")
    assert sorted(done) == ["0", "1", "2", "3"]
    for trial, text in kept.items():  # no finished trial was rerun or changed
        assert done[trial] == text
    if fault == "trial.json:3":
        assert "0" in kept and "is kept, not rerun" in resumed


@pytest.mark.slow
def test_injected_enospc_is_one_clear_error_and_the_project_resumes(tmp_path, csv_data,
                                                                     capsys, monkeypatch):
    from fault_injection import faulty_write

    root = tmp_path / "res"
    args = search_args(csv_data, tmp_path, "full", 3)
    with monkeypatch.context() as patch:
        patch.setattr(store, "write_text", faulty_write("trial.json", 4, "enospc"))
        code = main(args)
    captured = capsys.readouterr()
    out = " ".join((captured.out + captured.err).split())
    assert code == 2 and "Traceback" not in out
    assert "No space left on device" in out and "trial.json" in out and "resume" in out
    kept = _recorded(root, "full")
    assert "0" in kept  # stopped at trial 1's first write: trial 0 had finished
    _resume(args, capsys)
    done = _completed(root, "full")
    assert sorted(done) == ["0", "1", "2"]
    assert all(done[t] == text for t, text in kept.items())


def test_damaged_trial_json_is_rebuilt_from_its_record(tmp_path, csv_data, capsys):
    root = tmp_path / "res"
    assert main(search_args(csv_data, tmp_path, "d", 2)) == 0
    kept = _completed(root, "d")
    assert sorted(kept) == ["0", "1"]
    (root / "d" / "trial_0" / "trial.json").write_text("")  # what an old in-place write left
    capsys.readouterr()
    assert main(search_args(csv_data, tmp_path, "d", 3)) == 0
    assert "trial_0/trial.json was damaged: rebuilt" in " ".join(capsys.readouterr().out.split())
    done = _completed(root, "d")
    assert sorted(done) == ["0", "1", "2"] and all(done[t] == kept[t] for t in kept)


def test_damaged_oracle_uses_its_last_good_copy_or_refuses_clearly(tmp_path, csv_data, capsys):
    root = tmp_path / "res"
    assert main(search_args(csv_data, tmp_path, "o", 2)) == 0
    kept = _completed(root, "o")
    assert sorted(kept) == ["0", "1"]
    oracle = root / "o" / "oracle.json"
    oracle.write_text('{"ongoing_tri')
    capsys.readouterr()
    assert main(search_args(csv_data, tmp_path, "o", 3)) == 0
    assert "restored from its last good copy" in " ".join(capsys.readouterr().out.split())
    assert sorted(_completed(root, "o")) == ["0", "1", "2"]

    oracle.write_text("")
    (root / "o" / "oracle.json.bak").unlink()
    assert main(search_args(csv_data, tmp_path, "o", 4)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "oracle.json is damaged" in err and "--overwrite" in err and "Traceback" not in err
    assert {t: v for t, v in _completed(root, "o").items() if t in kept} == kept


# --------------------------------------------------------------------------- signals, failures


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_says_how_to_resume(tmp_path, csv_data):
    root = tmp_path / "res"
    args = search_args(csv_data, tmp_path, "term", 20)
    args[args.index("--epochs") + 1] = "3"
    proc = subprocess.Popen([sys.executable, "-m", "fmnist_search", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and not _completed(root, "term"):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    text = " ".join(out.split())
    assert "Stopped by SIGTERM" in text and "Rerun the same command to resume" in text
    assert "Traceback" not in out + err
    kept = _completed(root, "term")
    assert kept, "no trial finished before SIGTERM"
    state = json.loads((root / "term" / "oracle.json").read_text())
    assert not set(state["ongoing_trials"].values()) & set(kept)


def test_three_failures_stop_the_search_and_a_rerun_goes_on(tmp_path, csv_data, capsys,
                                                            monkeypatch):
    from fmnist_search import training

    real_fit = training.fit

    def diverging(*args, **kwargs):
        raise NanLossError("the loss became nan in epoch 1: training diverged")

    monkeypatch.setattr(training, "fit", diverging)
    root = tmp_path / "res"
    assert main(search_args(csv_data, tmp_path, "f3", 5)) == 2
    captured = capsys.readouterr()
    assert "3 trials in a row failed" in " ".join(captured.err.split())
    assert "Traceback" not in captured.out + captured.err
    statuses = [json.loads(p.read_text())["status"]
                for p in sorted((root / "f3").glob("trial_*/trial.json"))]
    assert statuses == ["FAILED"] * 3  # failed in Keras Tuner's state too, not left RUNNING

    monkeypatch.setattr(training, "fit", real_fit)
    assert main(search_args(csv_data, tmp_path, "f3", 5)) == 0
    rows = results.trial_rows(root, "f3")
    assert [r["status"] for r in rows] == ["FAILED"] * 3 + ["COMPLETED"] * 2


def test_atomic_write_leaves_the_old_file_when_the_disk_is_full(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "state.json"
    store.write_json(path, {"trials": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(store.StateWriteError, match="state.json: No space left on device"):
        store.write_json(path, {"trials": 2})
    assert json.loads(path.read_text()) == {"trials": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temp file left


def test_a_permission_error_from_tensorflow_is_one_clear_error(tmp_path, csv_data, capsys,
                                                               monkeypatch):
    """Keras Tuner makes its trial folders through tf.io.gfile: a read-only or foreign-owned
    project folder raises TensorFlow's PermissionDeniedError, not an OSError (it was a
    traceback, exit 1). It is the one disk message, and the rerun resumes."""
    import tensorflow as tf

    real = tf.io.gfile.makedirs

    def denied(path):
        if Path(path).name == "trial_1":
            raise tf.errors.PermissionDeniedError(None, None, f"{path}; Permission denied")
        return real(path)

    monkeypatch.setattr(tf.io.gfile, "makedirs", denied)
    root = tmp_path / "res"
    assert main(search_args(csv_data, tmp_path, "ro", 3)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"Cannot write {root / 'ro'}" in err and "Permission denied" in err
    assert "rerun the same command to resume" in err and "Traceback" not in err
    kept = _recorded(root, "ro")
    assert sorted(kept) == ["0"]
    monkeypatch.setattr(tf.io.gfile, "makedirs", real)
    assert main(search_args(csv_data, tmp_path, "ro", 3)) == 0
    done = _completed(root, "ro")
    assert sorted(done) == ["0", "1", "2"] and done["0"] == kept["0"]


def test_a_nearly_full_disk_stops_before_the_checkpoint_write(tmp_path, csv_data, capsys,
                                                              monkeypatch):
    """h5py writing a checkpoint to a full disk segfaulted the process; the guard stops first."""
    import shutil
    from collections import namedtuple

    Usage = namedtuple("Usage", "total used free")
    real = shutil.disk_usage
    calls = {"n": 0}

    def nearly_full(path):  # two looks an epoch: Keras Tuner's best-epoch file, the checkpoint
        calls["n"] += 1
        return Usage(1 << 30, (1 << 30) - 4096, 4096) if calls["n"] > 4 else real(path)

    monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    root = tmp_path / "res"
    assert main(search_args(csv_data, tmp_path, "nf", 4)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "No space left on device" in err and "4,096 bytes free" in err and "resume" in err
    kept = _recorded(root, "nf")
    assert len(kept) == 2
    monkeypatch.setattr(shutil, "disk_usage", real)
    assert main(search_args(csv_data, tmp_path, "nf", 4)) == 0
    done = _completed(root, "nf")
    assert sorted(done) == ["0", "1", "2", "3"] and all(done[t] == kept[t] for t in kept)


@pytest.mark.parametrize("status, kt_status", [("REJECTED", "FAILED"), ("PRUNED", "COMPLETED")])
def test_repair_finishes_a_rejected_or_pruned_trial_from_its_record(tmp_path, status,
                                                                    kt_status):
    """Killed after our record said rejected/pruned, before Keras Tuner saved: not rerun."""
    from fmnist_search.tuning import state

    project = tmp_path / "p"
    trial_dir = project / "trial_0"
    trial_dir.mkdir(parents=True)
    store.write_json(project / store.ORACLE_JSON, {
        "ongoing_trials": {"tuner0": "0"}, "start_order": ["0"], "end_order": [],
        "retry_queue": [], "hyperparameters": {"space": [], "values": {}}})
    store.write_json(trial_dir / store.TRIAL_JSON, {
        "trial_id": "0", "hyperparameters": {"space": [], "values": {"x": 1}},
        "metrics": {"metrics": {}}, "score": None, "best_step": 0, "status": "RUNNING",
        "message": None})
    record = {"trial_id": "0", "values": {"x": 1}, "status": status, "reason": "why"}
    if status == "PRUNED":
        record |= {"val_accuracy": 0.2, "best_epoch": 1, "pruned": True,
                   "history": [{"epoch": 1, "val_accuracy": 0.2, "loss": 2.0}]}
    store.write_trial_record(trial_dir, record)
    notes = state.repair(project)
    assert any(status.lower() in n for n in notes)
    assert store.read_keras_trial(trial_dir)["status"] == kt_status
    assert store.read_json(project / store.ORACLE_JSON)["ongoing_trials"] == {}


# --------------------------------------------------------------------------- the trial store


def _leaderboard(root: Path, project: str, capsys) -> str:
    capsys.readouterr()
    assert main(["leaderboard", project, "--results-dir", str(root), "--no-baselines"]) == 0
    return " ".join(capsys.readouterr().out.split())


def test_a_deleted_record_is_shown_damaged_then_rebuilt_on_resume(tmp_path, csv_data, capsys):
    root = tmp_path / "res"
    assert main(search_args(csv_data, tmp_path, "r", 2)) == 0
    record = root / "r" / "trial_1" / store.RECORD_JSON
    before = json.loads(record.read_text())
    record.unlink()
    rows = {r["trial"]: r for r in results.trial_rows(root, "r")}
    assert rows["1"]["status"] == "DAMAGED" and rows["1"]["val_accuracy"] is None
    assert "run the search again" in rows["1"]["reason"]
    shown = _leaderboard(root, "r", capsys)
    assert "DAMAGED" in shown and "rebuild it from Keras Tuner's state" in shown
    assert main(search_args(csv_data, tmp_path, "r", 2)) == 0  # the same command: a resume
    out = " ".join(capsys.readouterr().out.split())
    assert "trial_1/record.json was missing or damaged: rebuilt" in out
    after = json.loads(record.read_text())
    assert after["status"] == "COMPLETED" and after["rebuilt"]
    assert after["val_accuracy"] == pytest.approx(before["val_accuracy"])
    assert after["values"] == before["values"] and after["best_epoch"] == before["best_epoch"]
    assert [row["epoch"] for row in after["history"]] == [row["epoch"] for row in
                                                           before["history"]]
    shown = _leaderboard(root, "r", capsys)
    assert "DAMAGED" not in shown and shown.count(" done ") == 2


FIXTURE = Path(__file__).with_name("fixtures") / "project-0.1.0"


def test_a_project_written_by_release_0_1_0_opens_and_resumes(tmp_path, csv_data, capsys,
                                                              monkeypatch):
    """``fixtures/project-0.1.0``: a 2-trial project made by main at 740fc25 (checkpoints
    dropped) on the CSVs of ``csv_data`` (seed 0), found at csv/ relative to the cwd."""
    import shutil

    root = tmp_path / "res"
    shutil.copytree(FIXTURE, root)
    (tmp_path / "csv").mkdir()
    for name, src in zip(("train.csv", "test.csv"), csv_data, strict=True):
        shutil.copy(src, tmp_path / "csv" / name)
    monkeypatch.chdir(tmp_path)
    rows = {r["trial"]: r for r in results.trial_rows(root, "p")}
    assert {t: r["status"] for t, r in rows.items()} == {"0": "COMPLETED", "1": "COMPLETED"}
    assert rows["0"]["val_accuracy"] == pytest.approx(0.1) and rows["1"]["params"] == 7890
    assert "done" in _leaderboard(root, "p", capsys)
    args = ["run", "--space", str(Path(__file__).with_name("tiny_space.toml")), "--tuner",
            "random", "--trials", "3", "--epochs", "1", "--train-csv", "csv/train.csv",
            "--test-csv", "csv/test.csv", "--subset", "0.5", "--precision", "fp32",
            "--project", "p", "--results-dir", str(root), "--no-finalize"]
    assert main(args) == 0, capsys.readouterr().err
    assert "Ran 1 trial(s); project p has 3/3 finished" in " ".join(
        capsys.readouterr().out.split())
    assert [r["status"] for r in results.trial_rows(root, "p")] == ["COMPLETED"] * 3
