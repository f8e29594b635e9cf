"""A CSV's classes are the labels it holds, and a CSV project is evaluated on its own data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fmnist_search import dataset
from fmnist_search.cli import main
from fmnist_search.images import CLASS_NAMES

TINY = str(Path(__file__).with_name("tiny_space.toml"))


def _csv(path: Path, labels, ids=None, seed=0) -> str:
    rng = np.random.default_rng(seed)
    rows = len(labels) if labels is not None else len(ids)
    frame = pd.DataFrame(rng.integers(0, 256, (rows, 784)),
                         columns=[f"pixel{i}" for i in range(784)])
    if labels is not None:
        frame.insert(0, "label", labels)
    if ids is not None:
        frame.insert(0, "id", ids)
    frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture
def csvs(tmp_path) -> dict[str, str]:
    """Competition-style data: five classes labelled 0-4, a labelled and an unlabelled test."""
    return {
        "train": _csv(tmp_path / "train5.csv", np.repeat(np.arange(5), 12)),
        "test": _csv(tmp_path / "test5.csv", np.tile(np.arange(5), 4), ids=range(500, 520),
                     seed=1),
        "unlabelled": _csv(tmp_path / "kaggle_test.csv", None, ids=range(20), seed=2),
        "ten": _csv(tmp_path / "train10.csv", np.repeat(np.arange(10), 6), seed=3),
    }


def test_a_csv_has_the_classes_its_labels_hold(csvs):
    ds = dataset.prepare(dataset.DataSettings(train_csv=csvs["train"]))
    assert ds.num_classes == 5 and ds.classes == (0, 1, 2, 3, 4)
    assert ds.class_names == [f"class {i}" for i in range(5)]  # not "Trouser" for label 1
    assert ds.fingerprint()["classes"] == [0, 1, 2, 3, 4]
    assert len(ds.x_test) == 0 and ds.y_test is None and ds.test_note == "no test set"


def test_fashion_names_only_where_the_labels_are_fashion_ids(csvs):
    flagged = dataset.prepare(dataset.DataSettings(train_csv=csvs["train"], fashion_labels=True))
    assert flagged.class_names == list(CLASS_NAMES[:5])
    ten = dataset.prepare(dataset.DataSettings(train_csv=csvs["ten"]))
    assert ten.class_names == list(CLASS_NAMES)


def test_idx_fingerprint_is_unchanged(tiny_dataset):
    """IDX projects resume: their data fingerprint has exactly the keys it always had."""
    assert set(tiny_dataset.fingerprint()) == {"classes", "val_fraction", "subset", "seed",
                                              "train_csv", "test_csv", "n_train", "n_val",
                                              "n_test"}
    assert tiny_dataset.fingerprint()["classes"] == list(range(10))


def test_model1_on_a_five_class_csv_has_the_reports_parameters(csvs, tmp_path, capsys):
    root = tmp_path / "res"
    assert main(["baseline", "model1", "--epochs", "1", "--train-csv", csvs["train"],
                 "--test-csv", csvs["test"], "--precision", "fp32",
                 "--results-dir", str(root)]) == 0
    (run,) = (root / "baselines" / "model1").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["params"] == 256_837  # the report's model1, with no flag
    assert metrics["classes"] == [f"class {i}" for i in range(5)]
    assert np.asarray(metrics["confusion_matrix"]).shape == (5, 5)
    assert metrics["n_test"] == 20 and metrics["test_accuracy"] is not None
    import keras

    assert keras.models.load_model(run / "model.keras").output.shape[-1] == 5
    out = tmp_path / "sub.csv"
    capsys.readouterr()
    assert main(["predict", str(run), "--input", csvs["test"], "--out", str(out),
                 "--results-dir", str(root)]) == 0
    sub = pd.read_csv(out)
    assert set(sub["label"]) <= {0, 1, 2, 3, 4}
    truth = pd.read_csv(csvs["test"])["label"].to_numpy()
    assert (sub["label"].to_numpy() == truth).mean() == pytest.approx(metrics["test_accuracy"])


def test_predict_warns_about_duplicate_ids(csvs, tmp_path, capsys):
    root = tmp_path / "res"
    assert main(["baseline", "model6", "--epochs", "1", "--train-csv", csvs["train"],
                 "--precision", "fp32", "--results-dir", str(root)]) == 0
    (run,) = (root / "baselines" / "model6").iterdir()
    dup = _csv(tmp_path / "dup.csv", None, ids=[7, 8, 7, 9], seed=4)
    capsys.readouterr()
    assert main(["predict", str(run), "--input", dup, "--out", str(tmp_path / "o.csv")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning" in err and "dup.csv" in err and "7 on lines 2, 4" in err
    assert len(pd.read_csv(tmp_path / "o.csv")) == 4  # every row kept


def test_a_csv_project_retrains_and_is_tested_on_its_own_data(csvs, tmp_path, capsys,
                                                              isolated_data_env):
    """No official test set anywhere (isolated_data_env): using it would be an error."""
    root = tmp_path / "res"
    common = ["--results-dir", str(root)]
    assert main(["run", "--space", TINY, "--tuner", "random", "--trials", "1", "--epochs", "1",
                 "--subset", "1.0", "--precision", "fp32", "--project", "comp",
                 "--train-csv", csvs["train"], *common]) == 0
    assert main(["predict", "comp-best", "--input", csvs["test"], "--out",
                 str(tmp_path / "x.csv"), *common]) == 2
    assert "run `fmnist-search retrain comp --trial 0" in " ".join(capsys.readouterr().err.split())

    def retrain(*extra: str) -> dict:
        assert main(["retrain", "comp", "--epochs", "1", *extra, *common]) == 0
        newest = sorted((root / "retrained").glob("comp-*/*"))[-1]
        return json.loads((newest / "metrics.json").read_text())

    plain = retrain()
    assert plain["n_train"] == 48 and plain["classes"] == [f"class {i}" for i in range(5)]
    assert plain["test_accuracy"] is None and plain["test_note"] == "no test set"
    tested = retrain("--test-csv", csvs["test"])
    assert tested["n_test"] == 20 and 0.0 <= tested["test_accuracy"] <= 1.0
    assert tested["data"]["test_csv"] == csvs["test"]
    unlabelled = retrain("--test-csv", csvs["unlabelled"])
    assert unlabelled["test_accuracy"] is None and unlabelled["test_note"] == "no labels"
    capsys.readouterr()
    assert main(["leaderboard", "comp", "--no-baselines", "--json", *common]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["test_accuracy"] is None and row["test_note"] == "no labels"
    assert main(["leaderboard", "comp", "--no-baselines", *common]) == 0
    assert "no labels" in capsys.readouterr().out
    out = tmp_path / "sub.csv"
    assert main(["predict", "comp-best", "--input", csvs["test"], "--out", str(out),
                 *common]) == 0
    assert set(pd.read_csv(out)["label"]) <= {0, 1, 2, 3, 4}
