"""leaderboard, show, retrain, predict and compare on a small project trained on CSV data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fmnist_search.cli import main

TINY = str(Path(__file__).with_name("tiny_space.toml"))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proj")
    rng = np.random.default_rng(5)
    paths = {}
    for name, n in (("train", 300), ("test", 60)):
        frame = pd.DataFrame(rng.integers(0, 256, (n, 784)),
                             columns=[f"pixel{i}" for i in range(784)])
        frame.insert(0, "label", np.repeat(np.arange(10), n // 10))
        if name == "test":
            frame.insert(0, "id", np.arange(1000, 1000 + n))
        frame.to_csv(tmp / f"{name}.csv", index=False)
        paths[name] = str(tmp / f"{name}.csv")
    root = tmp / "res"
    data = ["--train-csv", paths["train"], "--test-csv", paths["test"], "--precision", "fp32",
            "--results-dir", str(root)]
    assert main(["run", "--space", TINY, "--tuner", "random", "--trials", "3", "--epochs", "1",
                 "--subset", "1.0", "--project", "p", *data]) == 0
    assert main(["baseline", "model1", "--epochs", "1", *data]) == 0
    return {"root": root, "tmp": tmp, **paths}


def test_leaderboard_csv_and_json(project, capsys):
    root, out = project["root"], project["tmp"] / "board.csv"
    assert main(["leaderboard", "--results-dir", str(root), "--csv", str(out)]) == 0
    board = pd.read_csv(out)
    assert len(board) == 4  # 3 finished trials + 1 baseline
    assert sorted(board["kind"]) == ["baseline", "trial", "trial", "trial"]
    for col in ("rank", "project", "trial", "status", "val_accuracy", "val_loss", "params",
                "seconds_per_epoch", "epochs", "architecture"):
        assert col in board.columns
    assert board["val_accuracy"].is_monotonic_decreasing
    capsys.readouterr()
    assert main(["leaderboard", "--results-dir", str(root), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4 and {"model1"} <= {r["trial"] for r in lines}


def test_leaderboard_does_not_write(project):
    root = project["root"]
    before = {p: p.stat().st_mtime for p in root.rglob("*")}
    assert main(["leaderboard", "--results-dir", str(root)]) == 0
    assert {p: p.stat().st_mtime for p in root.rglob("*")} == before


def test_show_best(project, capsys):
    assert main(["show", "p", "best", "--results-dir", str(project["root"])]) == 0
    out = capsys.readouterr().out
    assert "Layers" in out and "History" in out and "Total params" in out and "trial_" in out


def test_show_unknown_trial_exits_2(project, capsys):
    assert main(["show", "p", "99", "--results-dir", str(project["root"])]) == 2
    assert "no finished trial '99'" in capsys.readouterr().err


def test_retrain_then_predict_matches_recorded_test_accuracy(project, capsys):
    root = project["root"]
    assert main(["retrain", "p", "--epochs", "1", "--results-dir", str(root)]) == 0
    (run,) = (root / "retrained").glob("p-*/*")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["source"]["project"] == "p" and metrics["n_train"] == 240
    out = project["tmp"] / "submission.csv"
    assert main(["predict", str(run), "--input", project["test"], "--out", str(out),
                 "--results-dir", str(root)]) == 0
    sub = pd.read_csv(out)
    truth = pd.read_csv(project["test"])
    assert list(sub.columns) == ["id", "label"] and len(sub) == len(truth) == 60
    assert sub["id"].tolist() == truth["id"].tolist()
    accuracy = float((sub["label"].to_numpy() == truth["label"].to_numpy()).mean())
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-12)
    capsys.readouterr()
    assert main(["leaderboard", "p", "--no-baselines", "--json", "--results-dir", str(root)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["test_accuracy"] for r in rows if r["trial"] == metrics["source"]["trial"]] == [
        pytest.approx(metrics["test_accuracy"])]


def test_predict_unknown_model_exits_2(project, capsys):
    assert main(["predict", "model9", "--results-dir", str(project["root"])]) == 2
    assert "baselines/model1" in capsys.readouterr().err


def test_predict_out_dash_writes_the_csv_to_standard_output(project, capsys, monkeypatch):
    monkeypatch.chdir(project["tmp"])
    file = project["tmp"] / "sub.csv"
    argv = ["predict", "model1", "--input", project["test"], "--results-dir",
            str(project["root"])]
    assert main([*argv, "--out", str(file)]) == 0
    capsys.readouterr()
    assert main([*argv, "--out", "-"]) == 0
    out, err = capsys.readouterr()
    assert out == file.read_text() and len(out.splitlines()) == 61
    assert "to standard output; accuracy" in " ".join(err.split())
    assert not (project["tmp"] / "-").exists()


def test_compare_writes_png_and_csv(project):
    out = project["tmp"] / "cmp.png"
    assert main(["compare", "--out", str(out), "--results-dir", str(project["root"])]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20000
    table = pd.read_csv(out.with_suffix(".csv"))
    assert len(table) == 4 and (table["kind"] == "baseline").sum() == 1
    assert table["pareto_params"].any()


def test_pareto_front():
    from fmnist_search.plots import pareto_front

    cost = [1, 2, 3, 4, 5]
    acc = [0.5, 0.4, 0.7, 0.6, 0.9]
    assert pareto_front(cost, acc) == [0, 2, 4]


def test_leaderboard_prefers_baselines_on_the_projects_data(project, capsys):
    root = project["root"]
    (first,) = (root / "baselines" / "model1").iterdir()
    assert main(["baseline", "model1", "--epochs", "1", "--seed", "7", "--train-csv",
                 project["train"], "--test-csv", project["test"], "--precision", "fp32",
                 "--results-dir", str(root)]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "p", "--json", "--results-dir", str(root)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (base,) = [r for r in rows if r["kind"] == "baseline"]
    assert base["n_train"] == 240
    runs = sorted((root / "baselines" / "model1").iterdir())
    assert len(runs) == 2 and runs[0] == first
    board = project["tmp"] / "b2.csv"
    assert main(["leaderboard", "p", "--csv", str(board), "--results-dir", str(root)]) == 0
    from fmnist_search import results

    chosen = [r for r in results.collect(root, ["p"]) if r["kind"] == "baseline"]
    assert chosen[0]["path"] == str(first)  # same seed as the project, though older


def test_retrain_refuses_unwritable_results_before_training(project, tmp_path, monkeypatch,
                                                            capsys):
    import shutil

    from fmnist_search import dataset

    root = tmp_path / "res"
    shutil.copytree(project["root"], root)
    shutil.rmtree(root / "retrained", ignore_errors=True)
    (root / "retrained").write_text("a file where the retrained runs would go")

    def refuse(*args, **kwargs):
        raise AssertionError("data loaded before the results directory was checked")

    monkeypatch.setattr(dataset, "ensure_local_copy", refuse)
    assert main(["retrain", "p", "--epochs", "1", "--results-dir", str(root)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"results directory {root / 'retrained'}/p-" in err and "not writable" in err


def test_an_unknown_sort_column_is_refused_naming_the_valid_ones(capsys):
    assert main(["leaderboard", "--sort", "accuracy"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--sort" in err and "'accuracy'" in err and "val_accuracy" in err and "epochs" in err


def test_records_carry_a_schema_and_old_ones_still_read(tmp_path):
    from fmnist_search import store

    trial = tmp_path / "trial_0"
    trial.mkdir()
    store.write_trial_record(trial, {"trial_id": "0", "status": "RUNNING"})
    assert store.read_trial_record(trial)["schema"] == store.SCHEMA
    (trial / "record.json").write_text('{"trial_id": "0", "status": "COMPLETED"}')  # before 1
    old = store.read_trial_record(trial)
    assert old["schema"] == 0 and old["status"] == "COMPLETED"
