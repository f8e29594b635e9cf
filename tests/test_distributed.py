"""Distributed searches on loopback with tiny trials: every requested trial completed exactly
once, whatever is killed; the chief's rules tested directly on a real Keras Tuner oracle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import search_args, write_csvs

from fmnist_search import results, store
from fmnist_search.cli import main
from fmnist_search.tuning import distributed, network, supervisor, worker
from fmnist_search.tuning.signals import StopSignals
from fmnist_search.tuning.stop_rule import SearchBudget, StopRule

# --------------------------------------------------------------------------- pure functions


def test_devices_gpu_each_then_shared():
    plans = supervisor.plan_devices(4, 2, ["0", "1"], [0, 1])
    assert [p.env["CUDA_VISIBLE_DEVICES"] for p in plans] == ["0", "0", "1", "1"]
    assert all(p.env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for p in plans)
    # one worker a GPU: memory growth (TensorFlow), JAX keeps its preallocation
    assert supervisor.plan_devices(2, 1, ["3", "5"], [0])[1].env == {
        "CUDA_VISIBLE_DEVICES": "5", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    with pytest.raises(distributed.UserError, match="--workers-per-gpu"):
        supervisor.plan_devices(3, 1, ["0", "1"], [0])


def test_devices_cpu_cores_divided():
    plans = supervisor.plan_devices(2, 1, [], [0, 1, 2, 3])
    assert [p.cpus for p in plans] == [(0, 1), (2, 3)] and [p.threads for p in plans] == [2, 2]
    plans = supervisor.plan_devices(3, 1, [], [0, 1])  # more workers than cores: one each
    assert [p.cpus for p in plans] == [(0,), (1,), (0,)]


def test_version_differences_name_what_differs():
    recorded = {"python": "3.11.7", "keras": "3.15.1", "code": "abc"}
    assert worker.version_differences(recorded, {"python": "3.11.9", "keras": "3.15.1",
                                                 "code": "abc"}) == []
    differ = worker.version_differences(recorded, {"python": "3.12.1", "keras": "3.15.1",
                                                   "code": "def"})
    assert differ == ["python 3.12 here, 3.11 in the project", "code def here, abc in the project"]


def test_hyperband_waits_do_not_spin(monkeypatch):
    """IDLE answers (a bracket waiting for its running trials) pause the worker, longer each
    time up to a ceiling; a real trial resets the pause."""
    from keras_tuner.engine.trial import Trial

    from fmnist_search.tuning import kt_compat

    answers = ["IDLE"] * 8 + ["RUNNING", "IDLE"]
    client = SimpleNamespace(create_trial=lambda tuner_id: Trial(None, status=answers.pop(0)))
    pauses: list[float] = []
    monkeypatch.setattr(kt_compat.time, "sleep", pauses.append)
    kt_compat.pace_idle_answers(client, worker.IDLE_PAUSE)
    statuses = [client.create_trial("w").status for _ in range(10)]
    assert statuses == ["IDLE"] * 8 + ["RUNNING", "IDLE"]
    assert pauses[:6] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0] and pauses[6:8] == [5.0, 5.0]
    assert pauses[8] == 0.2  # after a trial, the first wait is short again


# --------------------------------------------------------------------------- the chief's rules


class _Display:
    def __init__(self):
        self.notes: list[str] = []

    def note(self, text: str, label: str = "") -> None:
        self.notes.append(text)


def _chief(tmp_path, trials=3, timeout=120.0):
    import keras_tuner as kt

    hp = kt.HyperParameters()
    hp.Int("x", 0, 1000)
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("val_accuracy", "max"),
                                           max_trials=50, hyperparameters=hp, seed=1)
    oracle._set_project_dir(str(tmp_path), "p")
    tuner = SimpleNamespace(oracle=oracle, stop_rule=StopRule(SearchBudget(trials)),
                            project_dir=str(tmp_path / "p"))
    return distributed.Chief(tuner, _Display(), StopSignals(), timeout)


def _complete(chief, trial, score=0.5):
    """What a worker's EndTrial does: its own copy of the trial, completed, goes back."""
    chief.update_trial(trial.trial_id, {"val_accuracy": score}, 0)
    trial = type(trial).from_proto(trial.to_proto())
    trial.status = "COMPLETED"
    chief.end_trial(trial)


def test_a_trial_that_keeps_killing_its_worker_ends_failed(tmp_path):
    chief = _chief(tmp_path)
    trial = chief.create_trial("worker-1")
    store.write_trial_record(tmp_path / "p" / f"trial_{trial.trial_id}",
                              {"trial_id": trial.trial_id, "status": "RUNNING", "started": 1.0})
    for _ in range(distributed.MAX_ATTEMPTS - 1):
        chief.expect_restart("worker-1", "was killed by SIGKILL")
        assert chief.create_trial("worker-1").trial_id == trial.trial_id  # retried
    chief.expect_restart("worker-1", "was killed by SIGKILL")
    assert chief.oracle.trials[trial.trial_id].status == "FAILED"
    record = store.read_trial_record(tmp_path / "p" / f"trial_{trial.trial_id}")
    assert record["status"] == "FAILED" and "3 times" in record["reason"]
    assert "SIGKILL" in record["reason"] and record["started"] == 1.0
    assert chief.create_trial("worker-1").trial_id != trial.trial_id


def test_stop_when_enough_trials_ran_and_everyone_is_told(tmp_path):
    chief = _chief(tmp_path, trials=2)
    a, b = chief.create_trial("w1"), chief.create_trial("w2")
    # Two running make two: a third worker waits (IDLE), for one of them may need a retry.
    assert chief.create_trial("w3").status == "IDLE"
    _complete(chief, a)
    assert chief.create_trial("w1").status == "IDLE"
    assert not chief.done()
    _complete(chief, b)
    assert [chief.create_trial(w).status for w in ("w1", "w2")] == ["STOPPED", "STOPPED"]
    assert not chief.done()  # w3 has not been told yet
    assert chief.create_trial("w3").status == "STOPPED"
    assert chief.done() and chief.stop_reason == "trials"


def test_a_waiting_worker_takes_the_trial_of_one_that_went_silent(tmp_path):
    chief = _chief(tmp_path, trials=1, timeout=0.05)
    trial = chief.create_trial("w1")
    assert chief.create_trial("w2").status == "IDLE"
    chief.check_heartbeats()
    time.sleep(0.1)
    chief.check_heartbeats()  # w1 never wrote a heartbeat: presumed dead
    assert chief.create_trial("w2").trial_id == trial.trial_id
    assert chief.presumed_dead("w1") and not chief.presumed_dead("w2")


def test_a_worker_killed_after_recording_its_result_is_not_rerun(tmp_path):
    chief = _chief(tmp_path)
    trial = chief.create_trial("w1")
    store.write_trial_record(tmp_path / "p" / f"trial_{trial.trial_id}", {
        "trial_id": trial.trial_id, "status": "COMPLETED", "val_accuracy": 0.8,
        "history": [{"epoch": 1, "val_accuracy": 0.6}, {"epoch": 2, "val_accuracy": 0.8}]})
    chief.expect_restart("w1", "was killed by SIGKILL")  # before its EndTrial reached us
    kept = chief.oracle.trials[trial.trial_id]
    assert kept.status == "COMPLETED" and kept.score == 0.8
    assert chief.create_trial("w1").trial_id != trial.trial_id
    assert chief.attempts[trial.trial_id] == 0 and any("kept" in n for n in chief.display.notes)


def test_a_report_from_a_worker_that_no_longer_holds_the_trial_is_ignored(tmp_path):
    chief = _chief(tmp_path, timeout=0.05)
    trial = chief.create_trial("w1")
    chief.check_heartbeats()
    time.sleep(0.1)
    chief.check_heartbeats()
    assert chief.create_trial("w2").trial_id == trial.trial_id  # w2 holds it now
    chief.update_trial(trial.trial_id, {"val_accuracy": 0.1}, 0, sender="w1")
    late = type(trial).from_proto(trial.to_proto())
    late.status = "COMPLETED"
    chief.end_trial(late, sender="w1")  # w1 was only slow: its report must not end w2's trial
    assert chief.oracle.ongoing_trials["w2"].trial_id == trial.trial_id
    assert not chief.oracle.trials[trial.trial_id].metrics.exists("val_accuracy")
    _complete(chief, trial, 0.7)
    assert chief.oracle.trials[trial.trial_id].score == 0.7


def test_a_silent_workers_trial_goes_to_another_and_its_late_report_is_ignored(tmp_path):
    chief = _chief(tmp_path, timeout=0.05)
    trial = chief.create_trial("w1")
    beat = store.worker_file(tmp_path / "p", "w1", ".json")
    beat.parent.mkdir(parents=True)
    store.write_json(beat, {"count": 1})
    chief.check_heartbeats()
    time.sleep(0.1)
    chief.check_heartbeats()  # the same count for longer than the timeout: presumed dead
    again = chief.create_trial("w2")
    assert again.trial_id == trial.trial_id
    _complete(chief, again, 0.7)
    _complete(chief, trial, 0.1)  # w1 was alive after all; its report comes too late
    assert chief.oracle.trials[trial.trial_id].score == 0.7
    finished = [t for t in chief.oracle.trials.values() if t.status == "COMPLETED"]
    assert len(finished) == 1 and any("late report" in n for n in chief.display.notes)


def test_the_time_budget_stops_new_trials(tmp_path):
    chief = _chief(tmp_path, trials=10)
    chief.rule.budget.deadline = time.time() - 1
    first = chief.create_trial("w1")  # nothing ended yet: a budget always lets one run
    assert first.status == "RUNNING"
    _complete(chief, first)
    assert chief.create_trial("w1").status == "STOPPED" and chief.stop_reason == "time"


def test_a_resumed_chief_past_its_reserve_hands_out_no_trial(tmp_path):
    """The chief asks the same stop rule as one process: a project with a finished trial (an
    earlier part) gets no trial once the time left is under the reserve, even from a chief
    that has ended none itself."""
    chief = _chief(tmp_path, trials=10)
    _complete(chief, chief.create_trial("w1"))
    resumed = distributed.Chief(SimpleNamespace(
        oracle=chief.oracle, project_dir=str(tmp_path / "p"),
        stop_rule=StopRule(SearchBudget(10, time.time() + 60, lambda: 3600.0))),
        _Display(), StopSignals())
    assert resumed.create_trial("w1").status == "STOPPED" and resumed.stop_reason == "time"
    assert resumed.was_told_to_stop("w1") and not resumed.was_told_to_stop("w2")


def test_the_supervisor_reports_its_workers_to_the_chief(tmp_path, monkeypatch):
    """A hung worker (presumed dead by its heartbeat) is killed and started again; one that
    stops with an error (exit 2) ends the search, through the chief's methods."""
    import io

    from rich.console import Console

    chief = _chief(tmp_path, timeout=0.05)
    chief.create_trial("worker-1")
    chief.check_heartbeats()
    time.sleep(0.1)
    chief.check_heartbeats()
    assert chief.presumed_dead("worker-1")

    class Proc:
        def __init__(self, rc):
            self.rc, self.signals = rc, []

        def poll(self):
            return self.rc

        def send_signal(self, signum):
            self.signals.append(signum)
            self.rc = -signum

        def wait(self):
            return self.rc

    devices = supervisor.plan_devices(2, 1, [], [0, 1])
    workers = supervisor.LocalWorkers(devices, network.Address("127.0.0.1", 1), tmp_path,
                                      "p", [], Console(file=io.StringIO()))
    spawned = []
    monkeypatch.setattr(workers, "_spawn", lambda w, chief: spawned.append(w.worker_id))
    hung, alive = Proc(None), Proc(None)
    workers.workers[0].proc, workers.workers[1].proc = hung, alive
    assert workers.poll(chief) is False
    assert hung.signals == [signal.SIGKILL] and spawned == ["worker-1"]
    assert not chief.presumed_dead("worker-1") and chief.fatal is None
    workers.workers[1].proc = Proc(2)
    assert workers.poll(chief) is True and chief.fatal.startswith("worker-2 stopped: ")


def test_a_workers_lock_file_goes_with_it_refused_or_done(tmp_path):
    lock = store.worker_file(tmp_path, "w", ".lock")
    with worker.id_lock(tmp_path, "w"):
        assert lock.exists()
    assert not lock.exists()
    with pytest.raises(distributed.UserError), worker.id_lock(tmp_path, "w"):
        raise distributed.UserError("refused: the data differs")
    assert not lock.exists()


def test_the_chiefs_display_drops_a_worker_whose_heartbeat_is_gone(tmp_path):
    """A refused worker deletes its heartbeat; it must not stay "starting" in the display."""
    import io

    from rich.console import Console

    from fmnist_search.tuning.display import RecordWatcher, SearchDisplay

    display = SearchDisplay(Console(file=io.StringIO()), 1, 0)
    watcher = RecordWatcher(display, tmp_path)
    beat = store.worker_file(tmp_path, "w", ".json")
    beat.parent.mkdir()
    store.write_json(beat, {"status": "starting"})
    def shown() -> dict:
        return {t.description.strip(): t.fields.get("status") for t in display.progress.tasks}

    watcher.tick()
    assert shown()["w"] == "starting"
    beat.unlink()
    watcher.tick()
    assert "w" not in shown() and watcher.rows == {}


ORPHAN_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(child.pid, flush=True)
time.sleep(120)
"""
ORPHAN_CHILD = """
import os, signal, sys, time
from fmnist_search.tuning import worker
if {ignore}:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stuck, as in a call to the dead chief
worker.watch_parent(os.getppid())
open({ready!r}, "w").close()
time.sleep(120)
"""


@pytest.mark.serial
@pytest.mark.parametrize("ignore", [False, True], ids=["stops-on-sigterm", "stuck"])
def test_an_orphan_stops_within_2_s_of_its_supervisors_sigkill(tmp_path, ignore):
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child_code = ORPHAN_CHILD.format(ignore=ignore, ready=str(ready))
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN_PARENT, child_code], env=env,
                              stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        _wait_for(ready.exists, 60, "the child to watch its parent")
        parent.kill()
        parent.wait()
        start = time.monotonic()
        _wait_for(lambda: not _alive(child), 10, "the orphan to stop")
        assert time.monotonic() - start < 2.0
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


# --------------------------------------------------------------------------- real processes


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fmnist_search", *args],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def _alive(pid: int) -> bool:
    return worker.pid_alive(pid)


def _worker_pids(project: Path) -> list[int]:
    return [json.loads(p.read_text())["pid"] for p in (project / "workers").glob("worker-*.json")]


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _check_complete(root: Path, project: str, trials: int) -> None:
    """Exactly ``trials`` trials, each COMPLETED once, in Keras Tuner's state and in ours."""
    rows = results.trial_rows(root, project)
    assert sorted(r["status"] for r in rows) == ["COMPLETED"] * trials
    oracle = json.loads((root / project / "oracle.json").read_text())
    assert len(oracle["end_order"]) == len(set(oracle["end_order"])) == trials
    assert oracle["ongoing_trials"] == {} and oracle["retry_queue"] == []
    records = [store.read_trial_record(d) for d in store.trial_dirs(root / project)]
    assert [r["status"] for r in records] == ["COMPLETED"] * trials


def _settled(project: Path) -> None:
    for pid in _worker_pids(project):
        _wait_for(lambda pid=pid: not _alive(pid), 40, f"worker process {pid} to exit")


def _start_search(csv_data, tmp_path, trials: int, out: str = "out.txt"):
    """``run --workers 2`` in a subprocess, with trials long enough (25 tiny epochs, a few
    seconds) to be caught mid-trial: its arguments (to rerun it), project folder and process."""
    args = search_args(csv_data, tmp_path, "p", trials, "--workers", "2")
    args[args.index("--epochs") + 1] = "25"
    return args, tmp_path / "res" / "p", _spawn(args, tmp_path / out)


@pytest.mark.slow
def test_two_local_workers_complete_a_hyperband_search(tmp_path, csv_data, capsys):
    args = search_args(csv_data, tmp_path, "p", 6, "--workers", "2")
    args[args.index("random")] = "hyperband"
    args[args.index("--epochs") + 1] = "3"
    assert main(args) == 0
    out = capsys.readouterr().out
    root = tmp_path / "res"
    _check_complete(root, "p", 6)
    assert "Started 2 workers" in out and "on worker-" in out
    for log in ("worker-1.log", "worker-2.log"):  # both joined (who trained what is timing)
        assert "joining project p" in (root / "p" / "workers" / log).read_text()
    assert (root / "p" / "tuner0.json").is_file()  # resumable in one process too
    pids = _worker_pids(root / "p")
    assert len(pids) == 2
    for pid in pids:
        assert not _alive(pid)
    assert main(["leaderboard", "p", "--results-dir", str(root)]) == 0
    assert "p" in capsys.readouterr().out


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_restarted_and_nothing_is_duplicated(tmp_path, csv_data):
    args, project, proc = _start_search(csv_data, tmp_path, 4, "out.txt")
    beat = project / "workers" / "worker-1.json"
    seen: dict = {}

    def training() -> bool:
        seen.update(store.read_json(beat) or {})
        return seen.get("status") == "training" and bool(seen.get("trial"))

    _wait_for(training, 180, "worker-1 to train")
    os.kill(seen["pid"], signal.SIGKILL)
    killed = seen["trial"]
    assert proc.wait(timeout=300) == 0, (tmp_path / "out.txt").read_text()
    out = " ".join((tmp_path / "out.txt").read_text().split())
    assert "worker-1 was killed by SIGKILL: started again" in out
    assert f"lost during trial {killed} (was killed by SIGKILL): the trial runs again " \
           "(attempt 2 of 3)" in out
    _check_complete(tmp_path / "res", "p", 4)
    assert store.read_trial_record(project / f"trial_{killed}")["status"] == "COMPLETED"
    _settled(project)


def _training(beats: list[Path], old_pids: list[int]) -> bool:
    """Every worker of this run (not a heartbeat left by an earlier one) is training."""
    read = [store.read_json(b) or {} for b in beats]
    return all(r.get("status") == "training" and r.get("pid") not in old_pids for r in read)


@pytest.mark.slow
@pytest.mark.serial
def test_sigterm_then_sigkill_of_run_stop_every_worker_and_a_rerun_resumes(tmp_path, csv_data,
                                                                         capsys):
    """One search stopped twice, each stop followed by the same command (one set-up, where
    three tests each started a search of their own). SIGTERM stops the supervisor and its
    workers before the command returns. The README's promise, measured: ``kill -9`` of the
    rerun while both workers train leaves orphans that each see within 0.25 s that their
    supervisor is gone and stop within 2 s. The next rerun completes every trial and runs
    nothing finished again."""
    args, project, proc = _start_search(csv_data, tmp_path, 5, "out1.txt")
    beats = [project / "workers" / f"worker-{i}.json" for i in (1, 2)]
    _wait_for(lambda: all(b.exists() for b in beats) and any(
        (store.read_json(b) or {}).get("status") == "training" for b in beats), 180,
        "both workers up and one training")
    first_pids = _worker_pids(project)
    assert len(first_pids) == 2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    out = (tmp_path / "out1.txt").read_text()
    assert "Stopped by SIGTERM" in out and "Rerun the same command to resume" in out
    assert not [pid for pid in first_pids if _alive(pid)]  # stopped before the command returned

    proc = _spawn(args, tmp_path / "out2.txt")  # the same command resumes

    def one_done_both_training() -> bool:
        records = [store.read_trial_record(d) or {} for d in store.trial_dirs(project)]
        return (any(r.get("status") == "COMPLETED" for r in records)
                and _training(beats, first_pids))

    _wait_for(one_done_both_training, 240, "a finished trial and both workers training")
    pids = _worker_pids(project)
    proc.kill()
    proc.wait()
    start = time.monotonic()
    try:
        _wait_for(lambda: not [pid for pid in pids if _alive(pid)], 40, "the orphans to stop")
        assert time.monotonic() - start < 2.0
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    finished = {d.name: (d / "record.json").read_text() for d in store.trial_dirs(project)
                if (store.read_trial_record(d) or {}).get("status") == "COMPLETED"}
    assert finished  # the wait above saw one
    capsys.readouterr()
    # The last rerun in this process: a new one would only load TensorFlow again.
    assert main(args) == 0, capsys.readouterr().err[-3000:]
    _check_complete(tmp_path / "res", "p", 5)
    for name, text in finished.items():  # nothing finished was run again
        assert (project / name / "record.json").read_text() == text
    _settled(project)


@pytest.mark.slow
def test_a_chief_and_a_worker_started_by_hand_complete_a_bayesian_search(tmp_path, csv_data):
    port = network.free_port()
    args = search_args(csv_data, tmp_path, "p", 3)
    args[0] = "chief"
    args[args.index("random")] = "bayesian"
    chief = _spawn([*args, "--port", str(port)], tmp_path / "chief.txt")
    work = _spawn(["worker", "--chief", f"127.0.0.1:{port}", "--project", "p",
                   "--results-dir", str(tmp_path / "res"), "--worker-id", "by-hand"],
                  tmp_path / "worker.txt")
    assert work.wait(timeout=300) == 0, (tmp_path / "worker.txt").read_text()
    assert chief.wait(timeout=60) == 0, (tmp_path / "chief.txt").read_text()
    assert f"listening on 127.0.0.1:{port}" in (tmp_path / "chief.txt").read_text()
    assert "the chief says the search is done" in (tmp_path / "worker.txt").read_text()
    _check_complete(tmp_path / "res", "p", 3)


# --------------------------------------------------------------------------- refusals


@pytest.fixture
def chief_port():
    """Something listening, as a chief would: a worker checks that before TensorFlow loads."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture(scope="module")
def _finished_project(tmp_path_factory) -> Path:
    """A 1-trial project, searched once for the module (each test changes only a copy)."""
    import numpy as np

    tmp = tmp_path_factory.mktemp("finished")
    csvs = write_csvs(tmp, np.random.default_rng(0))
    assert main(search_args(csvs, tmp, "p", 1)) == 0
    return tmp / "res" / "p"


@pytest.fixture
def one_trial_project(tmp_path, _finished_project):
    """A finished project with the chief.json a chief of it would write (its run.json)."""
    import shutil

    project = tmp_path / "res" / "p"
    shutil.copytree(_finished_project, project)
    (project / "workers").mkdir()
    session = json.loads((project / "run.json").read_text())
    (project / "workers" / "chief.json").write_text(json.dumps({"session": session}))
    return project


def _edit_session(project: Path, change) -> None:
    path = project / "workers" / "chief.json"
    record = json.loads(path.read_text())
    change(record["session"])
    path.write_text(json.dumps(record))


@pytest.mark.slow
@pytest.mark.parametrize("change, culprit", [
    (lambda r: r["versions"].update(code="0123456789abcdef"), "code"),
    (lambda r: r["versions"].update(keras="2.0.0"), "keras"),
    (lambda r: r.update(data_digest="0000"), "data_digest"),
    (lambda r: r["data"].update(n_train=7), "n_train"),
    (lambda r: r["identity"].update(space="[hp.x]\n"), "space file"),
], ids=["code", "keras", "images", "data", "space"])
def test_a_worker_unlike_the_project_is_refused(one_trial_project, chief_port, capsys, change,
                                                culprit):
    _edit_session(one_trial_project, change)
    argv = ["worker", "--chief", f"127.0.0.1:{chief_port}", "--project", "p", "--results-dir",
            str(one_trial_project.parent), "--worker-id", "w"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot join" in err and culprit in err and "Traceback" not in err
    assert not (one_trial_project / "workers" / "w.json").exists()  # it never joined
    assert not (one_trial_project / "workers" / "w.lock").exists()


@pytest.mark.slow
def test_a_second_live_worker_with_the_same_id_is_refused(one_trial_project, chief_port, capsys):
    argv = ["worker", "--chief", f"127.0.0.1:{chief_port}", "--project", "p", "--results-dir",
            str(one_trial_project.parent), "--worker-id", "w"]
    with worker.id_lock(one_trial_project, "w"):  # a live worker "w" holds its id's lock
        assert main(argv) == 2
    assert "is in use" in " ".join(capsys.readouterr().err.split())
    # Where locks do not reach (another machine), a fresh heartbeat of a live process refuses.
    import socket

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.write_json(store.worker_file(one_trial_project, "w", ".json"),
                          {"status": "training", "pid": sleeper.pid,
                           "host": socket.gethostname(), "time": time.time()})
        assert main(argv) == 2
        assert "is in use" in " ".join(capsys.readouterr().err.split())
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_rerun_stops_this_machines_orphans_and_leaves_live_workers_alone(tmp_path):
    """``stop_orphans``, which the kill -9 test above reaches only when an orphan outlives the
    rerun's start-up (seconds): a worker whose supervisor is gone is stopped, one whose
    supervisor lives is not."""
    import socket

    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()  # a supervisor pid that no longer exists
    sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
                for _ in range(2)]
    try:
        for name, proc, parent in (("orphan", sleepers[0], gone.pid),
                                   ("kept", sleepers[1], os.getpid())):
            beat = store.worker_file(tmp_path, name, ".json")
            beat.parent.mkdir(exist_ok=True)
            store.write_json(beat, {"status": "training", "pid": proc.pid, "parent": parent,
                                     "host": socket.gethostname()})
        assert supervisor.stop_orphans(tmp_path) == [sleepers[0].pid]
        assert sleepers[0].wait(timeout=10) == -signal.SIGTERM
        assert sleepers[1].poll() is None
    finally:
        for proc in sleepers:
            proc.kill()
            proc.wait()


def test_a_chief_giving_up_on_a_trial_keeps_the_result_its_worker_recorded_first(tmp_path):
    """The worker's finished record came first: the chief's FAILED is refused by the store (a
    finished record is written once) and the trial ends as its worker recorded it."""
    chief = _chief(tmp_path)
    trial = chief.create_trial("w1")
    folder = tmp_path / "p" / f"trial_{trial.trial_id}"
    store.write_trial_record(folder, {
        "trial_id": trial.trial_id, "status": "COMPLETED", "val_accuracy": 0.8,
        "history": [{"epoch": 1, "val_accuracy": 0.8}]})
    chief._fail(trial, "its worker died 3 times")
    kept = chief.oracle.trials[trial.trial_id]
    assert kept.status == "COMPLETED" and kept.score == 0.8
    assert store.read_trial_record(folder)["status"] == "COMPLETED"
