from __future__ import annotations

import io
import json

import keras
import pandas as pd
import pytest
from conftest import realdata
from rich.console import Console

from fmnist_search import baselines, runs, store

FAST = {"stages": 1, "filters_1": 4, "dense_layers": 0, "learning_rate": 1e-3, "lr_decay": 0.9,
        "batch_size": 64}


def _spec(**kw):
    return runs.RunSpec(kind="baseline", name="tiny", values=FAST, epochs=2, seed=3,
                        precision="fp32", **kw)


def test_train_run_writes_the_contract(tmp_path, tiny_dataset):
    console = Console(file=io.StringIO(), width=120)
    path, metrics = runs.train_run(_spec(), tiny_dataset, tmp_path / "tiny", console)
    assert sorted(p.name for p in path.iterdir()) == sorted(runs.RUN_FILES)
    saved = json.loads((path / "metrics.json").read_text())
    assert saved.pop("schema") == store.SCHEMA
    assert saved == json.loads(json.dumps(metrics))
    for key in ("val_accuracy", "test_accuracy"):
        assert 0.0 <= saved[key] <= 1.0
    assert saved["n_train"] == 160 and saved["n_val"] == 40 and saved["n_test"] == 50
    assert saved["params"] == saved["trainable_params"] + saved["non_trainable_params"] > 0
    assert set(saved["per_class"]["Bag"]) == {"precision", "recall", "f1", "support"}
    assert sum(map(sum, saved["confusion_matrix"])) == 50
    assert {"python", "tensorflow", "keras", "keras-tuner"} <= set(saved["versions"])
    history = pd.read_csv(path / "history.csv")
    assert list(history.columns) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss",
                                     "lr", "seconds"]
    assert history["lr"].round(6).tolist() == [0.001, 0.0009]  # the report's 0.9 decay
    model = keras.models.load_model(path / "model.keras")
    assert model.count_params() == saved["params"]


def test_crash_while_writing_leaves_no_finished_looking_run(tmp_path, tiny_dataset, monkeypatch):
    from fmnist_search import plots

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(plots, "confusion", broken)
    console = Console(file=io.StringIO())
    with pytest.raises(OSError, match="disk full"):
        runs.train_run(_spec(), tiny_dataset, tmp_path / "tiny", console)
    # the training's epoch checkpoint stays (a rerun need not train again); no run folder does
    assert [p.name for p in (tmp_path / "tiny").iterdir()
            if not p.name.startswith(store.CHECKPOINT_PREFIX)] == []


def test_pretrained_offline_is_a_clear_error(monkeypatch, tmp_path):
    from fmnist_search import pretrained
    from fmnist_search.errors import UserError

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(UserError, match="--weights none"):
        pretrained.resolve_weights("imagenet")
    assert pretrained.resolve_weights("none") is None


def test_a_failed_download_leaves_nothing_behind(monkeypatch, tmp_path):
    """Offline (here: a refused connection, through Keras' own get_file), the folders the
    download made are removed again; what was there before stays."""
    from fmnist_search import pretrained
    from fmnist_search.errors import UserError

    monkeypatch.setattr(pretrained, "WEIGHTS_URL", "http://127.0.0.1:9/weights.h5")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(UserError, match="could not be had"):
        pretrained.resolve_weights("imagenet")
    assert not (tmp_path / "keras").exists()
    (tmp_path / "keras").mkdir()
    (tmp_path / "keras" / "keras.json").write_text("{}")
    with pytest.raises(UserError, match="--weights none"):
        pretrained.resolve_weights("imagenet")
    assert [p.name for p in (tmp_path / "keras").iterdir()] == ["keras.json"]


def test_model5_is_the_pretrained_family():
    values = baselines.load("model5").values
    assert values["backbone"] == "resnet50" and values["weights"] == "imagenet"


@realdata
def test_cli_baseline_quick_run(tmp_path, capsys):
    from fmnist_search.cli import main

    root = tmp_path / "res"
    assert main(["baseline", "model1", "--epochs", "1", "--subset", "0.05",
                 "--results-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "The report said vs this run" in out and "257,162" in out
    (run,) = (root / "baselines" / "model1").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["params"] == 257162 and metrics["n_test"] == 10000
    assert 0.0 < metrics["test_accuracy"] <= 1.0
