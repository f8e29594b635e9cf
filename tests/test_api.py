"""The Python API as the README's "From a notebook" example uses it."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import TINY_SPACE
from synthetic import write_project

from fmnist_search import api
from fmnist_search.cli import main
from fmnist_search.errors import UserError


def test_bad_option_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--trials"):
        api.search(space=TINY_SPACE, search="quick", project="p", trials=0,
                   results_dir=tmp_path)


def test_options_become_the_command_line():
    argv = api._argv("run", [], {"space": "cnn", "trials": 5, "max_time": "45m",
                                 "overwrite": True, "debug": False, "subset": None,
                                 "classes": [0, 2, 4]})
    assert argv == ["run", "--space", "cnn", "--trials", "5", "--max-time", "45m",
                    "--overwrite", "--classes", "0,2,4"]


def test_trials_have_the_leaderboard_csv_columns(tmp_path):
    write_project(tmp_path, "synth", n=12)
    out = tmp_path / "board.csv"
    assert main(["leaderboard", "--top", "0", "--csv", str(out),
                 "--results-dir", str(tmp_path)]) == 0
    frame = api.trials("synth", results_dir=tmp_path)
    csv = pd.read_csv(out)
    assert list(frame.columns) == list(csv.columns) and len(frame) == len(csv) == 12
    assert frame["val_accuracy"].tolist() == pytest.approx(csv["val_accuracy"].tolist())
    assert "learning_rate" in frame.columns  # one column per varying hyperparameter


@pytest.mark.slow
def test_readme_example(csv_data, tmp_path):
    res = tmp_path / "res"
    data = dict(train_csv=csv_data[0], test_csv=csv_data[1], precision="fp32",
                results_dir=res)
    board = api.search(space=TINY_SPACE, search="quick", tuner="random", trials=3, epochs=1,
                       subset=0.5, project="nb", **data)
    assert len(board) == 3 and set(board["kind"]) == {"trial"}
    metrics = api.baseline("model1", epochs=1, subset=0.5, **data)
    assert metrics["kind"] == "baseline" and metrics["path"]

    frame = api.trials("nb", results_dir=res)
    out = tmp_path / "board.csv"
    assert main(["leaderboard", "nb", "--top", "0", "--csv", str(out),
                 "--results-dir", str(res)]) == 0
    csv = pd.read_csv(out)
    assert list(frame.columns) == list(csv.columns)
    assert frame["trial"].astype(str).tolist() == csv["trial"].astype(str).tolist()
    assert len(frame) == 4 and "model1" in frame["trial"].tolist()

    x = api.dataset("nb", results_dir=res).x_test
    assert x.shape == (50, 28, 28, 1)
    best = api.model("nb", results_dir=res)
    assert best.predict(x, verbose=0).shape == (50, 10)
    baseline_model = api.run_model("model1", results_dir=res)
    assert baseline_model.predict(x, verbose=0).shape == (50, 10)

    found = api.analyze("nb", results_dir=res, resamples=2)
    assert found.n_trials == 3 and "importance needs" in found.importance.message
    assert set(api.figures(found)) == {"history", "slices"}  # no ranking below the minimum
