"""analyze: importance, history and slices on a synthetic project whose objective depends on
the learning rate only; the command's table, JSON and figures; and that it is read-only."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from synthetic import write_project

from fmnist_search import analysis, layout
from fmnist_search.cli import main


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis") / "res"
    write_project(root, "synth", n=50)
    return root


@pytest.fixture(scope="module")
def found(synth):
    return analysis.analyze(synth, "synth")


def test_importance_ranks_the_one_that_matters_first_by_a_clear_margin(found):
    table = found.importance.table
    assert table.iloc[0]["hyperparameter"] == "learning_rate"
    first, second = table.iloc[0], table.iloc[1]
    assert first["importance"] > 0.8
    assert first["importance"] - 2 * first["std"] > 5 * (second["importance"] + second["std"])
    assert table["importance"].sum() == pytest.approx(1.0)
    assert found.importance.resamples == 8 and found.n_trials == 50
    assert found.importance.warning == ""


def test_conditional_and_categorical_hyperparameters_keep_every_trial(found):
    table = found.importance.table.set_index("hyperparameter")
    assert "conditional" in table.loc["dense_units_2", "kind"]
    assert 0 < table.loc["dense_units_2", "present"] < 50
    assert table.loc["dropout_place", "kind"] == "choice"
    assert table.loc["learning_rate", "kind"] == "log"  # from Keras Tuner's own space
    assert found.importance.fixed == ["head"]
    assert np.isfinite(table["importance"]).all()


def test_design_matrix_one_hot_and_absent_indicator():
    values = [{"a": "x", "b": 1.0}, {"a": "y"}, {"a": "x", "b": 3.0}]
    x, groups, kinds, fixed = analysis.design_matrix(values)
    assert x.shape == (3, 4) and fixed == []
    assert x[:, groups["a"]].tolist() == [[1, 0], [0, 1], [1, 0]]
    assert x[:, groups["b"]].tolist() == [[1, 0], [2, 1], [3, 0]]  # median fill, indicator
    assert kinds == {"a": "choice", "b": "number, conditional"}


def test_few_trials_warn(tmp_path):
    write_project(tmp_path, "few", n=10)
    imp = analysis.importance(tmp_path, "few", resamples=3)
    assert imp.n_trials == 10 and "only 10 finished trials" in imp.warning


def test_history_best_so_far_is_monotone(found):
    history = found.history
    assert len(history) == 50
    for column in ("best_so_far", "best_by_time"):
        assert history[column].is_monotonic_increasing
    assert history["best_so_far"].iloc[-1] == history["val_accuracy"].max()
    assert history["elapsed_s"].iloc[0] == 50


def test_slices_hold_the_top_hyperparameters(found):
    names = list(dict.fromkeys(found.slices["hyperparameter"]))
    assert names[0] == "learning_rate" and len(names) == 4
    if "dense_units_2" in names:
        values = found.slices.query("hyperparameter == 'dense_units_2'")["value"].tolist()
        assert "absent" in values


def test_figures_are_returned(found):
    from matplotlib.figure import Figure

    figs = analysis.figures(found)
    assert set(figs) == {"importance", "history", "slices"}
    assert all(isinstance(f, Figure) for f in figs.values())


def test_a_trial_is_its_record(tmp_path):
    """A damaged record.json leaves the trial out (DAMAGED); Keras Tuner's trial.json, half
    written while the search saves it, is not what readers go by."""
    path = write_project(tmp_path, "busy", n=25)
    (path / "trial_23" / layout.TRIAL_JSON).write_text('{"trial_id": "23", "hyperpa')
    (path / "trial_24" / layout.RECORD_JSON).write_text('{"trial_id": "24", "val')
    found = analysis.analyze(tmp_path, "busy", resamples=2)
    assert found.n_trials == 24
    assert found.trials.set_index("trial").loc["24", "status"] == "DAMAGED"


def _snapshot(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def test_analyze_command_table_json_csv_and_figures(synth, tmp_path, capsys):
    before = _snapshot(synth.parent)
    out = tmp_path / "figs"
    csv = tmp_path / "imp.csv"
    assert main(["analyze", "synth", "--results-dir", str(synth), "--out", str(out),
                 "--csv", str(csv), "--resamples", "3"]) == 0
    text = capsys.readouterr().out
    assert "Hyperparameter importance" in text and "learning_rate" in text
    assert "50 finished" in text and "best so far" in text
    for name in ("importance.png", "history.png", "slices.png", "pareto.png",
                 "importance.csv", "history.csv", "slices.csv"):
        assert (out / "synth" / name).stat().st_size > 0
    assert (out / "synth" / "importance.png").read_bytes()[:4] == b"\x89PNG"
    import pandas as pd

    assert pd.read_csv(csv)["hyperparameter"].iloc[0] == "learning_rate"
    assert main(["analyze", "synth", "--results-dir", str(synth), "--json", "--no-figures",
                 "--resamples", "2"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    summary = json.loads(line)
    assert summary["finished"] == 50 and summary["importance"][0]["hyperparameter"] == \
        "learning_rate"
    assert len(summary["history"]) == 50
    # Read-only: no lock taken, nothing under the results directory written or changed.
    assert _snapshot(synth.parent) == before
    assert not list(synth.glob(".*lock*"))


def test_analyze_unknown_project_exits_2(synth, capsys):
    assert main(["analyze", "nope", "--results-dir", str(synth), "--no-figures"]) == 2
    assert "No project 'nope'" in capsys.readouterr().err


def test_two_trials_say_so_instead_of_ranking(tmp_path, capsys):
    write_project(tmp_path, "two", n=2)
    found = analysis.analyze(tmp_path, "two")
    assert found.importance.resamples == 0 and found.importance.table["importance"].isna().all()
    assert set(analysis.figures(found)) == {"importance", "history"}
    assert main(["analyze", "two", "--results-dir", str(tmp_path), "--no-figures"]) == 0
    captured = capsys.readouterr()
    assert "not enough finished trials" in captured.out and "only 2" in captured.err
