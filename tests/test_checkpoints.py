"""Epoch checkpoints of ``runs.train_run``: a training killed at any point continues from its
last finished epoch, trains none of them again, and ends with the weights of one never stopped;
a damaged checkpoint is ignored; a full disk keeps the last good one."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fault_injection import faulty_write
from rich.console import Console

from fmnist_search import checkpoints, runs, store
from fmnist_search.errors import UserError

# Augmentation (all three layers), dropout and a per-step schedule: every random stream and
# the schedule's position must survive a resume.
VALUES = {"stages": 1, "filters_1": 4, "dropout_1": 0.3, "dense_layers": 1, "dense_units_1": 16,
          "learning_rate": 1e-3, "batch_size": 32, "aug_translate": 2, "aug_flip": True,
          "aug_erase": 0.5, "schedule": "cosine"}

# A child process: train_run of VALUES on 200 random images (160 train, 5 steps an epoch),
# killed with SIGKILL where argv[3] says: "after:K" right after epoch K's checkpoint,
# "mid:K" in the middle of epoch K (its third batch), "pointer:K" half-way through writing
# epoch K's state.json (its weights file is already written). Prints the run's metrics and a
# digest of its final weights as the last line.
CHILD = r"""
import hashlib, json, os, signal, sys
from pathlib import Path
import keras
import numpy as np
from rich.console import Console
sys.path.insert(0, sys.argv[4])
from fmnist_search import checkpoints, dataset, runs, store

root, epochs, kill = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
how, _, at = kill.partition(":")
at = int(at or 0)
if how == "after":
    write = checkpoints.EpochCheckpoint.write
    def killing_write(self, epoch):
        write(self, epoch)
        if epoch == at:
            os.kill(os.getpid(), signal.SIGKILL)
    checkpoints.EpochCheckpoint.write = killing_write
elif how == "mid":
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_now = epoch
    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch_now == at - 1 and batch == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    checkpoints.EpochCheckpoint.on_epoch_begin = on_epoch_begin
    checkpoints.EpochCheckpoint.on_train_batch_begin = on_train_batch_begin
elif how == "pointer":
    from fault_injection import install
    install(store.CHECKPOINT_STATE, at, "kill")
rng = np.random.default_rng(0)
y = np.repeat(np.arange(10, dtype=np.uint8), 20)
yt = np.repeat(np.arange(10, dtype=np.uint8), 5)
raw = dataset.RawData(rng.integers(0, 256, (200, 28, 28), dtype=np.uint8), y,
                      rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), yt, source="synthetic")
ds = dataset.prepare(dataset.DataSettings(seed=1), raw)
spec = runs.RunSpec(kind="baseline", name="tiny", values=json.loads(sys.argv[5]),
                    epochs=epochs, seed=3, precision="fp32")
path, metrics = runs.train_run(spec, ds, root, Console(width=200))
h = hashlib.sha256()
for w in keras.models.load_model(path / "model.keras").get_weights():
    h.update(np.ascontiguousarray(w).tobytes())
print(json.dumps({"weights": h.hexdigest(), "epochs": metrics["epochs"],
                  "resumed_at": metrics["resumed_at"], "wall_seconds": metrics["wall_seconds"],
                  "fit_seconds": metrics["fit_seconds"], "path": str(path)}))
"""


def _start(root: Path, kill: str, epochs: int = 6) -> subprocess.Popen:
    tests = str(Path(__file__).parent)
    return subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(epochs), kill, tests,
                             json.dumps(VALUES)], text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def _output(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    return out


def _result(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def _trained(out: str) -> list[int]:
    """The epochs a process trained, from its printed epoch lines ("epoch   4/6 ...")."""
    return [int(line.split()[1].split("/")[0]) for line in out.splitlines()
            if line.startswith("epoch ")]


def _history(result: dict) -> list[str]:
    lines = (Path(result["path"]) / "history.csv").read_text().splitlines()
    assert lines[0].endswith(",seconds") and len(lines) == 7
    return [line.rsplit(",", 1)[0] for line in lines]


def _folders(parent: Path) -> list[Path]:
    return sorted(parent.glob(f"{store.CHECKPOINT_PREFIX}*"))


@pytest.mark.slow
def test_a_killed_training_resumes_where_it_stopped_with_the_same_weights(tmp_path):
    kills = {"after": "after:3", "mid": "mid:4", "pointer": "pointer:4"}
    procs = {"whole": _start(tmp_path / "whole", "none"),
             **{name: _start(tmp_path / name, kill) for name, kill in kills.items()}}
    outs = {name: _output(proc) for name, proc in procs.items()}
    whole = _result(outs["whole"])
    assert procs["whole"].returncode == 0 and whole["resumed_at"] == [], outs["whole"][-3000:]
    assert _trained(outs["whole"]) == [1, 2, 3, 4, 5, 6]
    assert not _folders(tmp_path / "whole")  # gone once the run is written
    for name in kills:
        assert procs[name].returncode == -9, outs[name][-3000:]
        (folder,) = _folders(tmp_path / name)
        assert store.read_json(folder / store.CHECKPOINT_STATE)["epoch"] == 3
        assert len(list(folder.glob(f"*{store.CHECKPOINT_WEIGHTS}"))) in (1, 2)

    resumed = {name: _start(tmp_path / name, "none") for name in kills}
    for name, proc in resumed.items():
        out = _output(proc)
        assert proc.returncode == 0, out[-3000:]
        assert "resumed from epoch 3 of 6 (checkpoint of " in out
        assert _trained(out) == [4, 5, 6]  # epochs 1-3 were not trained again
        result = _result(out)
        assert result["resumed_at"] == [3] and result["epochs"] == 6
        assert result["weights"] == whole["weights"], f"{name}: not the uninterrupted weights"
        assert _history(result) == _history(whole)  # six rows, the same but for the seconds
        assert not _folders(tmp_path / name)


# ------------------------------------------------------------------------------- in process

FAST = {"stages": 1, "filters_1": 4, "dense_layers": 0, "learning_rate": 1e-3, "lr_decay": 0.9,
        "batch_size": 64, "aug_flip": True}


class Stop(Exception):
    """Stands in for a kill right after a checkpoint was written."""


def _spec(epochs: int = 3, **kw) -> runs.RunSpec:
    return runs.RunSpec(kind="baseline", name="tiny", values=FAST, epochs=epochs, seed=3,
                        precision="fp32", **kw)


def _console() -> tuple[Console, io.StringIO]:
    text = io.StringIO()
    return Console(file=text, width=1000), text


def _stop_after(monkeypatch, epoch: int) -> None:
    write = checkpoints.EpochCheckpoint.write

    def stopping(self, done):
        write(self, done)
        if done == epoch:
            raise Stop

    monkeypatch.setattr(checkpoints.EpochCheckpoint, "write", stopping)


def _state(parent: Path) -> dict:
    (folder,) = _folders(parent)
    return store.read_json(folder / store.CHECKPOINT_STATE)


def test_a_finished_run_leaves_no_checkpoint_and_a_stopped_one_resumes(tmp_path, tiny_dataset,
                                                                       monkeypatch):
    parent = tmp_path / "tiny"
    with monkeypatch.context() as patch:
        _stop_after(patch, 2)
        with pytest.raises(Stop):
            runs.train_run(_spec(), tiny_dataset, parent, _console()[0])
    state = _state(parent)
    assert state["epoch"] == 2 and len(state["rows"]) == 2 and state["wall_seconds"] > 0
    console, text = _console()
    path, metrics = runs.train_run(_spec(), tiny_dataset, parent, console)
    assert "resumed from epoch 2 of 3" in text.getvalue()
    assert metrics["epochs"] == 3 and metrics["resumed_at"] == [2]
    assert metrics["wall_seconds"] > state["wall_seconds"]
    assert metrics["fit_seconds"] > state["fit_seconds"]
    assert [p.name for p in parent.iterdir()] == [path.name]  # the checkpoint is gone
    history = (path / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2", "3"]
    assert [round(float(line.split(",")[5]), 6) for line in history[1:]] == \
        [0.001, 0.0009, 0.00081]  # the schedule continued from the epoch number


def test_another_configuration_does_not_resume(tmp_path, tiny_dataset, monkeypatch):
    parent = tmp_path / "tiny"
    with monkeypatch.context() as patch:
        _stop_after(patch, 1)
        with pytest.raises(Stop):
            runs.train_run(_spec(), tiny_dataset, parent, _console()[0])
    (first,) = _folders(parent)
    console, text = _console()
    _, metrics = runs.train_run(_spec(epochs=2), tiny_dataset, parent, console)
    assert "resumed" not in text.getvalue() and metrics["resumed_at"] == []
    assert _folders(parent) == [first]  # still there for its own configuration


@pytest.mark.parametrize("damage", ["weights", "state", "other-model"])
def test_a_damaged_checkpoint_is_ignored_and_training_starts_over(tmp_path, tiny_dataset,
                                                                  monkeypatch, damage):
    parent = tmp_path / "tiny"
    with monkeypatch.context() as patch:
        _stop_after(patch, 2)
        with pytest.raises(Stop):
            runs.train_run(_spec(), tiny_dataset, parent, _console()[0])
    (folder,) = _folders(parent)
    state = store.read_json(folder / store.CHECKPOINT_STATE)
    if damage == "weights":  # truncated
        weights = folder / state["weights"]
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "state":
        text = (folder / store.CHECKPOINT_STATE).read_text()
        (folder / store.CHECKPOINT_STATE).write_text(text[: len(text) // 2])
    else:  # a whole, hash-matching file whose variables are another model's
        from fmnist_search import builder

        other = builder.build_model(builder.resolve({**FAST, "filters_1": 8}))
        other.optimizer.build(other.trainable_variables)
        other.save_weights(folder / state["weights"])
        state["sha256"] = checkpoints._sha256(folder / state["weights"])
        store.write_json(folder / store.CHECKPOINT_STATE, state)
    console, text = _console()
    path, metrics = runs.train_run(_spec(), tiny_dataset, parent, console)
    out = text.getvalue()
    assert out.count("ignored the checkpoint") == 1 and "training starts over" in out
    assert "Traceback" not in out and "resumed" not in out
    assert metrics["epochs"] == 3 and metrics["resumed_at"] == []
    assert [p.name for p in parent.iterdir()] == [path.name]


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, tiny_dataset,
                                                                monkeypatch):
    parent = tmp_path / "tiny"
    with monkeypatch.context() as patch:  # the third state.json write fails: epoch 3's
        patch.setattr(store, "write_text", faulty_write(store.CHECKPOINT_STATE, 3, "enospc"))
        with pytest.raises(store.StateWriteError, match="No space left on device"):
            runs.train_run(_spec(epochs=4), tiny_dataset, parent, _console()[0])
    (folder,) = _folders(parent)
    state = _state(parent)
    assert state["epoch"] == 2
    (weights,) = folder.glob(f"*{store.CHECKPOINT_WEIGHTS}")  # epoch 3's file was removed
    assert weights.name == state["weights"]
    assert checkpoints._sha256(weights) == state["sha256"]
    assert [p.name for p in parent.iterdir()] == [folder.name]  # no run
    console, text = _console()
    _, metrics = runs.train_run(_spec(epochs=4), tiny_dataset, parent, console)
    assert "resumed from epoch 2 of 4" in text.getvalue() and metrics["epochs"] == 4


def test_too_little_room_for_the_weights_stops_before_writing_them(tmp_path, tiny_dataset,
                                                                   monkeypatch):
    """h5py on a full disk can crash the process: the free space is looked at first."""
    parent = tmp_path / "tiny"
    real = checkpoints.shutil.disk_usage
    calls = {"n": 0}

    def usage(path):
        calls["n"] += 1
        found = real(path)
        return found._replace(free=1000) if calls["n"] >= 2 else found

    monkeypatch.setattr(checkpoints.shutil, "disk_usage", usage)
    with pytest.raises(store.StateWriteError) as caught:
        runs.train_run(_spec(), tiny_dataset, parent, _console()[0])
    assert isinstance(caught.value, UserError)  # the CLI prints it and exits with status 2
    assert "No space left on device" in str(caught.value) and "rerun" in str(caught.value)
    assert _state(parent)["epoch"] == 1


def test_the_cli_exits_with_status_2_on_a_full_disk(tmp_path, csv_data, monkeypatch, capsys):
    from fmnist_search.cli import main

    monkeypatch.setattr(store, "write_text", faulty_write(store.CHECKPOINT_STATE, 1, "enospc"))
    code = main(["baseline", "model1", "--epochs", "2", "--train-csv", csv_data[0],
                 "--test-csv", csv_data[1], "--subset", "0.5", "--precision", "fp32",
                 "--results-dir", str(tmp_path / "res")])
    assert code == 2
    out = capsys.readouterr()
    assert "No space left on device" in out.out + out.err


def test_generator_states_are_the_augmentation_and_dropout_seeds():
    from fmnist_search import builder

    model = builder.build_model(builder.resolve(VALUES))
    paths = [v.path for v in checkpoints.generator_states(model)]
    assert len(paths) == 4 and all("seed_generator" in p for p in paths)
    weights = {id(w) for w in model.weights}
    assert not any(id(v) in weights for v in checkpoints.generator_states(model))
    assert np.asarray(checkpoints.generator_states(model)[0]).shape == (2,)
