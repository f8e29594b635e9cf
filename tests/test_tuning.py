from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import search_args

from fmnist_search import results, tuning
from fmnist_search.callbacks import NanLossError
from fmnist_search.cli import main, options


def _args(csv_data, tmp_path, project="p", trials=3, *extra):
    return search_args(csv_data, tmp_path, project, trials, *extra)


def _trial_ids(root: Path, project: str, status="COMPLETED") -> list[str]:
    return sorted(r["trial"] for r in results.trial_rows(root, project) if r["status"] == status)


def test_search_is_the_function_and_its_module_is_search_loop():
    """``tuning.search`` is the loop's function; its module has its own name, so importing it
    cannot shadow the function (the package needs no trick to keep them apart)."""
    import importlib

    module = importlib.import_module("fmnist_search.tuning.search_loop")
    assert tuning.search is module.search and callable(tuning.search)
    assert tuning.SearchRequest is module.SearchRequest


def test_run_resume_and_extend(tmp_path, csv_data, capsys):
    root = tmp_path / "res"
    assert main(_args(csv_data, tmp_path)) == 0
    out = capsys.readouterr().out
    assert "Ran 3 trial(s)" in out and "Top trials of p" in out
    # No finalize in this preset: the run ends by saying what its scores are and what is next.
    said = " ".join(out.split())
    assert "These are screening scores: validation accuracy after at most 1 epoch on 50%" in said
    assert "Next: `fmnist-search finalize p` trains the top 3" in said
    assert "tiny_space-default" in said and " min here, estimated from" in said
    assert _trial_ids(root, "p") == ["0", "1", "2"]
    record = json.loads((root / "p" / "trial_0" / "record.json").read_text())
    assert 0.0 <= record["val_accuracy"] <= 1.0 and record["params"] > 0
    assert record["epochs"] == 1 and record["seconds_per_epoch"] > 0
    assert record["started"] + record["wall_seconds"] <= record["finished"] + 0.01
    assert record["architecture"].startswith("C")
    run = json.loads((root / "p" / "run.json").read_text())
    assert run["space_name"] == "tiny_space" and "[stage.filters]" in run["identity"]["space"]
    assert run["data"]["n_train"] == 160 and "keras-tuner" in run["versions"]

    mtimes = {p: p.stat().st_mtime for p in (root / "p").glob("trial_*/record.json")}
    assert len(mtimes) == 3
    assert main(_args(csv_data, tmp_path)) == 0
    assert "nothing to do" in capsys.readouterr().out
    earlier_best = max(json.loads(p.read_text())["val_accuracy"] for p in mtimes)
    assert main(_args(csv_data, tmp_path, "p", 5)) == 0
    out = capsys.readouterr().out
    assert "Ran 2 trial(s)" in out
    first_best = float(out.split("best so far ")[1].split()[0])
    assert first_best >= round(earlier_best, 4)  # the display remembers earlier runs' trials
    assert len(_trial_ids(root, "p")) == 5
    assert all(p.stat().st_mtime == t for p, t in mtimes.items())  # nothing repeated


def test_rerun_with_other_settings_is_refused(tmp_path, csv_data, capsys):
    assert main(_args(csv_data, tmp_path, "q", 1)) == 0
    capsys.readouterr()
    assert main(_args(csv_data, tmp_path, "q", 1, "--val-fraction", "0.3")) == 2
    assert "other settings" in " ".join(capsys.readouterr().err.split())
    assert main(_args(csv_data, tmp_path, "q", 1, "--val-fraction", "0.3", "--overwrite")) == 0


def test_failed_trial_is_recorded_and_search_goes_on(tmp_path, csv_data, capsys, monkeypatch):
    from fmnist_search import training

    real_fit = training.fit
    calls = {"n": 0}

    def flaky_fit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise NanLossError("the loss became nan in epoch 1: training diverged")
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(training, "fit", flaky_fit)
    assert main(_args(csv_data, tmp_path, "f", 3)) == 0
    root = tmp_path / "res"
    assert len(_trial_ids(root, "f")) == 2
    failed = [r for r in results.trial_rows(root, "f") if r["status"] == "FAILED"]
    assert len(failed) == 1 and "loss became nan" in failed[0]["reason"]
    capsys.readouterr()
    assert main(["leaderboard", "f", "--all", "--results-dir", str(root)]) == 0
    assert "loss became nan" in capsys.readouterr().out


def test_second_process_on_same_project_is_refused(tmp_path, csv_data):
    root = tmp_path / "res"
    with tuning.project_lock(root, "locked"):
        proc = subprocess.run([sys.executable, "-m", "fmnist_search",
                               *_args(csv_data, tmp_path, "locked", 1)],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    err = " ".join(proc.stderr.split())
    assert "being searched by another" in err and "Traceback" not in err


def test_max_time_stops_starting_trials(tmp_path, csv_data, capsys, monkeypatch):
    # A tiny trial can finish within a second, so the budget is made shorter than any trial.
    real = options.parse_duration
    monkeypatch.setattr(options, "parse_duration",
                        lambda text: real(text) / 1000 if text else None)
    assert main(_args(csv_data, tmp_path, "t", 10, "--max-time", "1s")) == 0
    assert "stopped by --max-time" in capsys.readouterr().out
    assert len(_trial_ids(tmp_path / "res", "t")) == 1
    # Resumed, its budget spent by the first part: the project has its one trial, so this
    # process starts none (a budget used to let every process run one, whatever was left).
    assert main(_args(csv_data, tmp_path, "t", 10, "--max-time", "1s")) == 0
    assert "stopped by --max-time" in capsys.readouterr().out
    assert len(_trial_ids(tmp_path / "res", "t")) == 1


def test_sigkill_then_resume_loses_and_repeats_nothing(tmp_path, csv_data, capsys):
    """Kill -9 after the first finished trial; the rerun completes exactly the requested count."""
    root = tmp_path / "res"
    args = _args(csv_data, tmp_path, "k", 4)
    args[args.index("--epochs") + 1] = "3"
    cmd = [sys.executable, "-m", "fmnist_search", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and not _trial_ids(root, "k"):
        time.sleep(0.2)
    first = _trial_ids(root, "k")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first, "no trial finished before the deadline"
    kept = {t: (root / "k" / f"trial_{t}" / "record.json").read_text() for t in first}
    # The rerun in this process: a new one would only load TensorFlow again.
    assert main(args) == 0, capsys.readouterr().err[-2000:]
    rows = results.trial_rows(root, "k")
    assert sorted(r["trial"] for r in rows if r["status"] == "COMPLETED") == ["0", "1", "2", "3"]
    for t, text in kept.items():  # finished trials were neither lost nor run again
        assert (root / "k" / f"trial_{t}" / "record.json").read_text() == text
    # The trial the kill interrupted ran again with its own seed (the project's default 42 and
    # its id), not with whatever the new process's generators held.
    from fmnist_search import store
    from fmnist_search.reproducibility import trial_seed

    for d in store.trial_dirs(root / "k"):
        record = store.read_trial_record(d)
        assert record["seed"] == trial_seed(42, record["trial_id"])


def test_ctrl_c_keeps_finished_trials_and_says_how_to_resume(tmp_path, csv_data):
    root = tmp_path / "res"
    cmd = [sys.executable, "-m", "fmnist_search", *_args(csv_data, tmp_path, "c", 20)]
    cmd[cmd.index("--epochs") + 1] = "3"
    # A shell's background jobs inherit an ignored SIGINT; give the child the normal handler.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    while time.time() < deadline and not _trial_ids(root, "c"):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Rerun the same command to resume" in " ".join(out.split())
    assert len(_trial_ids(root, "c")) >= 1


def test_trials_train_in_the_requested_precision(tmp_path, csv_data):
    """Keras Tuner's clear_session() before each build must not reset the dtype policy."""
    assert main(_args(csv_data, tmp_path, "bf", 2, "--precision", "bf16")) == 0
    records = sorted((tmp_path / "res" / "bf").glob("trial_*/record.json"))
    assert len(records) == 2
    for record in records:
        assert json.loads(record.read_text())["precision"] == "mixed_bfloat16"


def test_a_search_leaves_the_process_as_it_found_it(tmp_path, csv_data):
    """The search's runtime settings (dtype policy, Keras Tuner's saves and tracebacks, the
    TensorFlow logger) are set for the search and restored after it."""
    import logging

    import keras
    from keras_tuner.src import config, utils  # what tuning/kt_compat.py patches

    before = (keras.mixed_precision.global_policy().name, utils.save_json, config.DEBUG,
              logging.getLogger("tensorflow").level)
    assert main(_args(csv_data, tmp_path, "rt", 1, "--precision", "bf16")) == 0
    after = (keras.mixed_precision.global_policy().name, utils.save_json, config.DEBUG,
             logging.getLogger("tensorflow").level)
    assert after == before


def test_startup_objects_are_frozen_during_trials_only(tmp_path, csv_data, monkeypatch):
    """Trials run with the start-up objects out of the collector's view; the search undoes it."""
    import gc

    from fmnist_search import training

    real_fit = training.fit
    frozen_during_fit = []

    def watching_fit(*args, **kwargs):
        frozen_during_fit.append(gc.get_freeze_count())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(training, "fit", watching_fit)
    assert main(_args(csv_data, tmp_path, "g", 2)) == 0
    assert len(frozen_during_fit) == 2 and min(frozen_during_fit) > 100_000
    assert gc.get_freeze_count() == 0


def test_trials_leave_no_graphs_in_tensorflows_gradient_registry(tmp_path, csv_data):
    """Each trained model registers custom gradients that pin its graph; a search drops them."""
    from fmnist_search import backend

    registry = backend.gradient_registry()
    assert registry is not None, "this TensorFlow has no gradient registry to clean"

    def custom() -> set[str]:
        return {k for k in registry if k.startswith("CustomGradient-")}

    before = custom()
    assert main(_args(csv_data, tmp_path, "leak", 3)) == 0
    assert custom() == before
