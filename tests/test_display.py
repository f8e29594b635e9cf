"""tuning/display.py: the live display of a search, rendered to text (no TensorFlow, no
search): the lines of ``SearchDisplay`` and what ``RecordWatcher`` makes of records and
heartbeats on disk, as a distributed chief sees them."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from fmnist_search import store
from fmnist_search.tuning.display import RecordWatcher, SearchDisplay

DONE = {"status": "COMPLETED", "val_accuracy": 0.8125, "val_loss": 0.5432, "epochs": 3,
        "seconds_per_epoch": 12.34, "params": 123456}


def _display(total: int = 4, done: int = 0, best: float | None = None):
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    return SearchDisplay(console, total, done, best), out


def _trials(display: SearchDisplay):
    return display.progress._tasks[display.task]


def test_a_trial_begins_with_its_id_number_place_and_name():
    display, out = _display(total=5)
    display.trial_begin("03", 2, "conv[32x3]-dense[64]", where="worker-1")
    display.trial_begin("04", 3, "a [bracketed] name")  # markup in a name is text
    assert out.getvalue().splitlines() == ["trial 03 (2/5) on worker-1 conv[32x3]-dense[64]",
                                           "trial 04 (3/5) a [bracketed] name"]


def test_a_completed_trial_raises_the_best_and_advances_the_bar():
    display, out = _display(total=4, done=1, best=0.9)
    assert _trials(display).completed == 1 and _trials(display).fields["status"] == "best 0.9000"
    display.trial_end(DONE)  # below the best of earlier runs: the best stays
    assert out.getvalue().splitlines()[-1] == (
        "  done: val_acc 0.8125  val_loss 0.5432  3 epochs  12.3 s/epoch  123,456 params   "
        "best so far 0.9000")
    display.trial_end({**DONE, "val_accuracy": 0.95})
    assert display.best == 0.95 and out.getvalue().endswith("best so far 0.9500\n")
    assert _trials(display).completed == 3 and _trials(display).fields["status"] == "best 0.9500"


@pytest.mark.parametrize("record, line", [
    ({"status": "PRUNED", "reason": "epoch 2: best 0.1 < median 0.5"},
     "  pruned: epoch 2: best 0.1 < median 0.5"),
    ({"status": "REJECTED", "reason": "rejected: 2,000,000 params > --max-params 1,000,000"},
     "  rejected: 2,000,000 params > --max-params 1,000,000"),
    ({"status": "FAILED", "reason": "out of memory [GPU 0]"}, "  failed: out of memory [GPU 0]"),
])
def test_a_trial_that_did_not_complete_says_why_and_leaves_the_best(record, line):
    display, out = _display()
    display.trial_end(record)
    assert out.getvalue() == line + "\n"
    assert display.best is None and _trials(display).fields["status"] == ""
    assert _trials(display).completed == 1  # it is one of the trials all the same


def test_side_by_side_trials_are_labelled_and_notes_are_marked():
    display, out = _display()
    display.trial_end(DONE, "trial 07 ")
    display.note("trial 02's record rebuilt [from trial.json]")
    display.note("4 workers on 2 cores", label="warning")
    assert out.getvalue().splitlines() == [
        "  trial 07 done: val_acc 0.8125  val_loss 0.5432  3 epochs  12.3 s/epoch  123,456 "
        "params   best so far 0.8125",
        "repaired: trial 02's record rebuilt [from trial.json]",
        "warning: 4 workers on 2 cores"]


# --------------------------------------------------------------------------- RecordWatcher


def _record(project, trial_id: str, **record) -> None:
    folder = project / f"trial_{trial_id}"
    folder.mkdir(exist_ok=True)
    store.write_trial_record(folder, {"trial_id": trial_id, **record})


def _beat(project, worker: str, **state) -> None:
    store.write_json(store.worker_file(project, worker, ".json"), state)


def test_the_watcher_announces_each_trial_once_as_it_begins_and_ends(tmp_path):
    """Trials ended before the watcher started are not announced again; a running trial
    is shown once with the worker its heartbeat names; its end is one labelled line."""
    project = tmp_path / "p"
    (project / store.WORKERS).mkdir(parents=True)
    _record(project, "0", **DONE)  # ended in an earlier run of the search
    (project / "trial_1").mkdir()  # made by Keras Tuner, no record yet: nothing to show
    display, out = _display(total=3, done=1)
    watcher = RecordWatcher(display, project)
    watcher.tick()
    assert out.getvalue() == ""
    _record(project, "1", status="RUNNING")
    _beat(project, "w0", trial="1", epoch=1, epochs=3, architecture="conv[16]")
    watcher.tick()
    watcher.tick()  # still running: not announced twice
    assert out.getvalue() == "trial 1 (2/3) on w0 conv[16]\n"
    _record(project, "1", **{**DONE, "val_accuracy": 0.7})
    watcher.tick()
    watcher.tick()
    lines = out.getvalue().splitlines()
    assert lines[1:] == ["  trial 1 done: val_acc 0.7000  val_loss 0.5432  3 epochs  12.3 "
                         "s/epoch  123,456 params   best so far 0.7000"]
    assert watcher.ended == {"0", "1"} and watcher.begun == set()


def test_the_record_names_the_architecture_before_the_heartbeat_does(tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    _record(project, "5", status="RUNNING", architecture="resnet[2x16]")
    display, out = _display()
    RecordWatcher(display, project).tick()  # no heartbeat at all: no worker named
    assert out.getvalue() == "trial 5 (1/4) resnet[2x16]\n"


def test_each_worker_has_a_row_that_follows_its_heartbeat_and_goes_with_it(tmp_path):
    project = tmp_path / "p"
    (project / store.WORKERS).mkdir(parents=True)
    store.write_json(project / store.WORKERS / store.CHIEF_JSON, {"session": "x"})
    _beat(project, "w0", trial="3", epoch=2, epochs=5)
    _beat(project, "w1", status="waiting for a trial")
    display, _ = _display()
    watcher = RecordWatcher(display, project)
    watcher.tick()
    tasks = display.progress._tasks
    assert sorted(watcher.rows) == ["w0", "w1"]  # chief.json is no worker
    w0, w1 = tasks[watcher.rows["w0"]], tasks[watcher.rows["w1"]]
    assert (w0.description, w0.total, w0.completed, w0.fields["status"]) == (
        "  w0", 5, 2, "trial 3: epoch 2/5")
    assert (w1.total, w1.completed, w1.fields["status"]) == (None, 0, "waiting for a trial")
    _beat(project, "w0", trial="3", epoch=4, epochs=5)
    watcher.tick()
    assert tasks[watcher.rows["w0"]].completed == 4
    (project / store.WORKERS / "w1.json").unlink()  # refused or gone: its row goes
    watcher.tick()
    assert list(watcher.rows) == ["w0"] and len(display.progress.task_ids) == 2  # trials, w0
