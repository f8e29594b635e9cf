"""Epoch checkpoints of search trials (``tuning.trial_checkpoints``): a trial killed part-way
continues from its last finished epoch when the search resumes, trains none of them again, is
recorded once with its whole history, and ends as a trial never stopped; a Hyperband
continuation the same; the checkpoint is gone once the trial ends; a full disk keeps the last
good one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import search_args
from fault_injection import faulty_write

from fmnist_search import checkpoints, store
from fmnist_search.tuning import trial_checkpoints

# A child process: the CLI with argv[2:], killed with SIGKILL where argv[1] says: "after:K"
# right after the first checkpoint of epoch K, "mid:K" in the middle (the third batch) of the
# first epoch K trained, "none" not at all. Prints "trained <trial dir> <epoch>" for every epoch
# it trains (before that epoch's checkpoint) and "final <trial id> <digest>" of each trial's
# weights at the end of its fit.
CHILD = r"""
import hashlib, os, signal, sys
sys.path.insert(0, os.environ["TESTS_DIR"])
from fmnist_search import checkpoints
from fmnist_search.tuning import hypermodel

kill = sys.argv[1]
how, _, at = kill.partition(":")
at = int(at or 0)
Epoch = checkpoints.EpochCheckpoint
end, write = Epoch.on_epoch_end, Epoch.write

def on_epoch_end(self, epoch, logs=None):
    print(f"trained {self.directory.parent.name} {epoch + 1}", flush=True)
    end(self, epoch, logs)

def killing_write(self, epoch):
    write(self, epoch)
    if how == "after" and epoch == at:
        os.kill(os.getpid(), signal.SIGKILL)

def on_epoch_begin(self, epoch, logs=None):
    self.epoch_now = epoch

def on_train_batch_begin(self, batch, logs=None):
    if how == "mid" and self.epoch_now == at - 1 and batch == 2:
        os.kill(os.getpid(), signal.SIGKILL)

Epoch.on_epoch_end, Epoch.write = on_epoch_end, killing_write
Epoch.on_epoch_begin, Epoch.on_train_batch_begin = on_epoch_begin, on_train_batch_begin
fit = hypermodel.SearchHyperModel.fit

def digest_fit(self, hp, model, *args, **kwargs):
    out = fit(self, hp, model, *args, **kwargs)
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(w.tobytes())
    print(f"final {kwargs['trial_checkpoint'].trial_id} {h.hexdigest()}", flush=True)
    return out

hypermodel.SearchHyperModel.fit = digest_fit
from fmnist_search.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _args(csv_data, root: Path, trials: int, *extra: str) -> list[str]:
    """A tiny search of 6-epoch trials: 160 training images, 5 batches an epoch."""
    out = search_args(csv_data, root, "p", trials, "--seed", "3", "--patience", "0",
                      "--batch-size", "32", *extra)
    out[out.index("--epochs") + 1] = "6"
    return out


def _start(args: list[str], kill: str, log: Path) -> subprocess.Popen:
    env = {**__import__("os").environ, "TESTS_DIR": str(Path(__file__).parent)}
    return subprocess.Popen([sys.executable, "-c", CHILD, kill, *args], text=True,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def _wait(proc: subprocess.Popen, log: Path) -> str:
    proc.wait(timeout=900)
    return log.read_text()


def _trained(out: str, trial_dir: str) -> list[int]:
    return [int(line.split()[2]) for line in out.splitlines()
            if line.startswith(f"trained {trial_dir} ")]


def _finals(out: str) -> dict[str, str]:
    return {line.split()[1]: line.split()[2] for line in out.splitlines()
            if line.startswith("final ")}


def _best_weights(trial_dir: Path) -> list[np.ndarray]:
    import h5py

    out: list[np.ndarray] = []
    with h5py.File(trial_dir / "checkpoint.weights.h5", "r") as fh:
        fh.visititems(lambda name, obj: out.append(np.asarray(obj))
                      if isinstance(obj, h5py.Dataset) else None)
    return out


def _folders(trial_dir: Path) -> list[Path]:
    return sorted(trial_dir.glob(f"{store.CHECKPOINT_PREFIX}*"))


def _no_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _same_trial(trial: Path, reference: Path) -> None:
    """The resumed trial's record, Keras Tuner's account and best-epoch weights are those of
    the trial never stopped (bit for bit: the same thread count, a CPU)."""
    record, expected = store.read_trial_record(trial), store.read_trial_record(reference)
    assert record["status"] == expected["status"] == "COMPLETED"
    assert _no_seconds(record["history"]) == _no_seconds(expected["history"])
    for key in ("val_accuracy", "val_loss", "best_epoch", "epochs", "values", "params"):
        assert record[key] == expected[key], key
    kt_state, kt_expected = store.read_keras_trial(trial), store.read_keras_trial(reference)
    assert kt_state["score"] == kt_expected["score"]
    assert kt_state["best_step"] == kt_expected["best_step"]
    assert kt_state["metrics"] == kt_expected["metrics"]
    weights, reference_weights = _best_weights(trial), _best_weights(reference)
    assert len(weights) == len(reference_weights) > 0
    for a, b in zip(weights, reference_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not _folders(trial)


def _killed_and_resumed(tmp_path: Path, csv_data, trials: int, extra: tuple[str, ...],
                        kills: dict[str, str]) -> tuple[dict[str, str], dict[str, Path]]:
    """An uninterrupted search and one per kill, killed and then resumed: the resumed
    processes' output and each search's project folder."""
    roots = {name: tmp_path / name for name in ("whole", *kills)}
    logs = {name: tmp_path / f"{name}.log" for name in roots}
    procs = {name: _start(_args(csv_data, roots[name], trials, *extra),
                          kills.get(name, "none"), logs[name]) for name in roots}
    outs = {name: _wait(proc, logs[name]) for name, proc in procs.items()}
    assert procs["whole"].returncode == 0, outs["whole"][-3000:]
    for name in kills:
        assert procs[name].returncode == -signal.SIGKILL, outs[name][-3000:]
    resumed_logs = {name: tmp_path / f"{name}-resumed.log" for name in kills}
    resumed = {name: _start(_args(csv_data, roots[name], trials, *extra), "none",
                            resumed_logs[name]) for name in kills}
    result = {"whole": outs["whole"], **{f"{name}-killed": outs[name] for name in kills}}
    for name, proc in resumed.items():
        result[name] = _wait(proc, resumed_logs[name])
        assert proc.returncode == 0, result[name][-3000:]
    return result, {name: root / "res" / "p" for name, root in roots.items()}


@pytest.mark.slow
def test_a_killed_trial_resumes_from_its_last_epoch_with_the_same_result(tmp_path, csv_data):
    kills = {"after": "after:3", "mid": "mid:4"}
    outs, projects = _killed_and_resumed(tmp_path, csv_data, 1, (), kills)
    (reference,) = store.trial_dirs(projects["whole"])
    assert _trained(outs["whole"], reference.name) == [1, 2, 3, 4, 5, 6]
    for name in kills:
        # "mid": epoch 4 died in its third batch, before its end
        assert _trained(outs[f"{name}-killed"], reference.name) == [1, 2, 3]
        (trial,) = store.trial_dirs(projects[name])
        out = outs[name]
        assert f"resumed: trial {trial.name.removeprefix('trial_')} from epoch 3 of 6" in out
        assert _trained(out, trial.name) == [4, 5, 6], out[-3000:]  # 1-3 not trained again
        record = store.read_trial_record(trial)
        assert len(record["history"]) == 6 and record["resumed_at"] == [3]
        assert [row["epoch"] for row in record["history"]] == [1, 2, 3, 4, 5, 6]
        _same_trial(trial, reference)
        assert _finals(out) == _finals(outs["whole"])  # the final weights too, not only the best
        kt_state = store.read_keras_trial(trial)
        assert kt_state["status"] == "COMPLETED"
        oracle = store.read_json(projects[name] / store.ORACLE_JSON)
        assert oracle["end_order"] == [record["trial_id"]]  # recorded once
        assert oracle["run_times"] == {record["trial_id"]: 1}


@pytest.mark.slow
def test_a_killed_hyperband_continuation_resumes_from_its_last_epoch(tmp_path, csv_data):
    """Hyperband on 6 epochs, factor 3: five trials of 2 epochs, then the best continued from
    its weights for epochs 3-6 (``initial_epoch`` 2), killed after its epoch 4 and in its 5th."""
    kills = {"after": "after:4", "mid": "mid:5"}
    extra = ("--tuner", "hyperband", "--factor", "3")
    outs, projects = _killed_and_resumed(tmp_path, csv_data, 6, extra, kills)
    reference_dirs = store.trial_dirs(projects["whole"])
    records = [store.read_trial_record(d) for d in reference_dirs]
    continued = [d for d, r in zip(reference_dirs, records, strict=True)
                 if r["values"].get("tuner/initial_epoch") == 2]
    assert len(continued) == 1, records
    reference = continued[0]
    assert _trained(outs["whole"], reference.name) == [3, 4, 5, 6]
    for name in kills:
        trial = projects[name] / reference.name
        out = outs[name]
        assert _trained(outs[f"{name}-killed"], trial.name) == [3, 4]
        assert f"resumed: trial {trial.name.removeprefix('trial_')} from epoch 4 of 6" in out
        assert _trained(out, trial.name) == [5, 6], out[-3000:]
        assert [t.name for t in store.trial_dirs(projects[name])] == \
            [t.name for t in reference_dirs]  # no other trial was trained again
        assert all(_trained(out, t.name) == [] for t in reference_dirs if t != reference)
        record = store.read_trial_record(trial)
        assert [row["epoch"] for row in record["history"]] == [3, 4, 5, 6]
        assert record["resumed_at"] == [4]
        _same_trial(trial, reference)
        assert _finals(out)[record["trial_id"]] == _finals(outs["whole"])[record["trial_id"]]
        for other in store.trial_dirs(projects[name]):
            assert not _folders(other)


# ------------------------------------------------------------------------------- in process


def _in_process_args(csv_data, tmp_path, epochs: int, *extra: str) -> list[str]:
    out = search_args(csv_data, tmp_path, "p", 1, "--seed", "3", "--batch-size", "32", *extra)
    out[out.index("--epochs") + 1] = str(epochs)
    return out


def test_a_full_disk_during_a_trials_checkpoint_stops_the_search_and_keeps_the_last_one(
        tmp_path, csv_data, monkeypatch, capsys):
    from fmnist_search.cli import main

    args = _in_process_args(csv_data, tmp_path, 4, "--patience", "0")
    with monkeypatch.context() as patch:  # the third state.json write fails: epoch 3's
        patch.setattr(store, "write_text", faulty_write(store.CHECKPOINT_STATE, 3, "enospc"))
        assert main(args) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert "No space left on device" in text and "rerun the same command" in text
    assert "Traceback" not in text
    (trial,) = store.trial_dirs(tmp_path / "res" / "p")
    assert store.read_trial_record(trial)["status"] == "RUNNING"
    (folder,) = _folders(trial)
    state = store.read_json(folder / store.CHECKPOINT_STATE)
    assert state["epoch"] == 2 and len(state["rows"]) == 2
    weights = sorted(p.name for p in folder.glob(f"epoch-*{store.CHECKPOINT_WEIGHTS}"))
    assert weights == [state["weights"]]  # epoch 3's file was removed, epoch 2's is whole
    assert checkpoints._sha256(folder / state["weights"]) == state["sha256"]
    (kept,) = state["kept"]  # Keras Tuner's best-epoch weights as they were at epoch 2
    assert kept["path"] == "checkpoint.weights.h5" and (folder / kept["file"]).is_file()

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "resumed: trial 0 from epoch 2 of 4" in out
    record = store.read_trial_record(trial)
    assert record["status"] == "COMPLETED" and record["epochs"] == 4
    assert record["resumed_at"] == [2] and len(record["history"]) == 4
    assert not _folders(trial)  # removed once the trial ended


@pytest.mark.parametrize("patience", [1, 2])
def test_a_stopped_trial_with_early_stopping_ends_as_one_never_stopped(tmp_path, csv_data,
                                                                        monkeypatch, capsys,
                                                                        patience):
    """Stopped (as by Ctrl-C) right after epoch 2's checkpoint, with early stopping on: the
    resumed trial keeps its patience count, best loss and best weights (it stops at the same
    epoch, ends with the same weights), and its Keras Tuner best-epoch file is the same. With
    patience 1 on these random images it had stopped at epoch 2 (the resume trains nothing);
    with 2 it goes on."""
    from fmnist_search.cli import main
    from fmnist_search.tuning import hypermodel
    from fmnist_search.tuning.signals import Stopped

    finals: dict[str, list] = {}
    fit = hypermodel.SearchHyperModel.fit

    def keeping_fit(self, hp, model, *args, **kwargs):
        out = fit(self, hp, model, *args, **kwargs)
        finals[kwargs["trial_checkpoint"].directory.parents[2].name] = model.get_weights()
        return out

    monkeypatch.setattr(hypermodel.SearchHyperModel, "fit", keeping_fit)
    roots = {name: tmp_path / name for name in ("whole", "stopped")}
    args = {name: _in_process_args(csv_data, root, 6, "--patience", str(patience))
            for name, root in roots.items()}
    assert main(args["whole"]) == 0
    write = checkpoints.EpochCheckpoint.write

    def stopping(self, epoch):
        write(self, epoch)
        if epoch == 2:
            raise Stopped(signal.SIGINT)

    with monkeypatch.context() as patch:
        patch.setattr(checkpoints.EpochCheckpoint, "write", stopping)
        assert main(args["stopped"]) == 130
    (trial,) = store.trial_dirs(roots["stopped"] / "res" / "p")
    (folder,) = _folders(trial)
    state = store.read_json(folder / store.CHECKPOINT_STATE)
    assert state["early"]["weights"] and (folder / state["early"]["weights"]).is_file()
    capsys.readouterr()
    assert main(args["stopped"]) == 0
    assert "resumed: trial 0 from epoch 2 of 6" in capsys.readouterr().out
    (reference,) = store.trial_dirs(roots["whole"] / "res" / "p")
    _same_trial(trial, reference)
    assert len(finals["stopped"]) == len(finals["whole"])
    for a, b in zip(finals["stopped"], finals["whole"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_sweep_removes_the_checkpoints_of_ended_trials_only(tmp_path):
    project = tmp_path / "p"
    for trial_id, status in (("0", "COMPLETED"), ("1", "PRUNED"), ("2", "REJECTED"),
                             ("3", "FAILED"), ("4", "RUNNING")):
        trial = project / f"trial_{trial_id}"
        (trial / f"{store.CHECKPOINT_PREFIX}0123456789abcdef").mkdir(parents=True)
        store.write_trial_record(trial, {"trial_id": trial_id, "status": status})
    trial_checkpoints.sweep(project)
    left = [d.name for d in store.trial_dirs(project) if _folders(d)]
    assert left == ["trial_4"]


def test_remove_takes_the_checkpoints_and_partial_writes_only(tmp_path):
    trial = tmp_path / "trial_0"
    (trial / f"{store.CHECKPOINT_PREFIX}0123456789abcdef").mkdir(parents=True)
    (trial / f".0a1b2c3d{checkpoints.PARTIAL}{store.CHECKPOINT_WEIGHTS}").write_bytes(b"half")
    for name in ("checkpoint.weights.h5", "record.json", "trial.json"):
        (trial / name).write_text("{}")
    trial_checkpoints.remove(trial)
    assert sorted(p.name for p in trial.iterdir()) == ["checkpoint.weights.h5", "record.json",
                                                      "trial.json"]


def test_the_identity_is_the_trainings():
    from fmnist_search import builder

    trial = trial_checkpoints.TrialCheckpoint("3", Path("t"), 11, {"data": {"n": 1}}, 0.0)
    values = builder.resolve({"stages": 1, "filters_1": 8})
    digest = checkpoints.identity_digest

    def ident(**kw):
        base = dict(values=values, epochs=6, initial_epoch=0, parent=None, trial=trial,
                    policy="float32", patience=0)
        return digest(trial_checkpoints.identity(**{**base, **kw}))

    same = ident()
    assert same == ident(values=builder.resolve({"stages": 1, "filters_1": 8}))
    others = [ident(epochs=9), ident(initial_epoch=2, parent="1"), ident(policy="mixed_bfloat16"),
              ident(patience=2), ident(values=builder.resolve({"stages": 1, "filters_1": 4})),
              ident(trial=trial_checkpoints.TrialCheckpoint("3", Path("t"), 12, {}, 0.0))]
    assert same not in others and len(set(others)) == len(others)


def test_history_is_keras_history_of_the_logged_epochs():
    rows = [{"epoch": 1, "loss": 2.0, "val_accuracy": 0.1, "lr": 0.001, "seconds": 3.0},
            {"epoch": 2, "loss": 1.5, "val_accuracy": 0.2, "lr": 0.0009, "seconds": 2.0}]
    assert trial_checkpoints.history(rows) == {"loss": [2.0, 1.5], "val_accuracy": [0.1, 0.2],
                                               "learning_rate": [0.001, 0.0009]}
    json.dumps(trial_checkpoints.history(rows))
