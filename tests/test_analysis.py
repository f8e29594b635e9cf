"""analyze: importance on synthetic trial sets whose answer is known (tests/importance_sets.py),
the minimum of trials, history and slices on a synthetic project whose objective depends on the
learning rate only; the command's table, JSON and figures on 0, 3 and 30 trials; read-only."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from importance_sets import CHILDREN, LOG, trial_set
from synthetic import write_project

from fmnist_search import analysis, store
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
    assert first["importance"] > 0.6  # a share of the objective's variance
    assert first["importance"] - 2 * first["std"] > 5 * (second["importance"] + second["std"])
    assert found.importance.resamples == 8 and found.n_trials == 50
    assert found.importance.message == ""


def test_conditional_and_categorical_hyperparameters_say_where_they_come_from(found):
    table = found.importance.table.set_index("hyperparameter")
    assert "conditional" in table.loc["dense_units_2", "kind"]
    dense2 = sum("dense_units_2" in v for v in found.trials["values"])
    assert table.loc["dense_units_2", "present"] == dense2 and 0 < dense2 < 50
    assert table.loc["dropout_place", "kind"] == "choice"
    assert table.loc["learning_rate", "kind"] == "log"  # from Keras Tuner's own space
    assert found.importance.fixed == ["head"]
    assert np.isfinite(table["importance"]).all()


def test_subspaces_judge_a_child_only_where_it_is_set():
    values = [{"stages": 1, "a": 1}, {"stages": 2, "a": 2, "f2": 8}, {"stages": 2, "a": 1,
                                                                      "f2": 16}]
    spaces, fixed = analysis.subspaces(values)
    assert fixed == []
    everywhere, child = spaces
    assert everywhere.rows.tolist() == [0, 1, 2] and everywhere.judged == ["a", "stages"]
    assert "f2" not in everywhere.inputs  # the parent keeps switching it on and off
    assert child.rows.tolist() == [1, 2] and child.judged == ["f2"]
    assert child.inputs == ["a", "f2"]  # stages is 2 in both: not a column there


def _ranked(name, n=60, seed=0):
    values, scores = trial_set(name, n, seed=seed)
    return analysis.importance_from_values(name, values, scores, LOG).table.set_index(
        "hyperparameter")


def test_only_the_parent_matters():
    table = _ranked("parent_only")
    assert table.index[0] == "stages" and table.loc["stages", "importance"] > 0.8
    children = CHILDREN[2] + CHILDREN[3]
    for child in children:  # each within its own uncertainty of nothing
        assert table.loc[child, "importance"] < table.loc[child, "std"], child
    assert table.loc["dropout_3", "present"] == sum("dropout_3" in v
                                                    for v in trial_set("parent_only", 60)[0])


def test_only_a_child_matters():
    table = _ranked("child_only")
    assert table.index[0] == "filters_3"
    first = table.loc["filters_3"]
    assert "conditional" in first["kind"] and first["importance"] > 2 * first["std"]
    for name, row in table.drop(index="filters_3").iterrows():
        assert row["importance"] < 2 * row["std"], name


def test_two_independent_effects():
    table = _ranked("two_effects")
    assert table.index[:2].tolist() == ["optimizer", "filters_1"]
    for name in ("optimizer", "filters_1"):
        assert table.loc[name, "importance"] > 2 * table.loc[name, "std"], name
    for name, row in table.iloc[2:].iterrows():
        assert row["importance"] < 0.05 and row["importance"] < 2 * row["std"], name


def test_a_continuous_hyperparameter_with_no_effect_does_not_outrank_a_weak_real_one():
    table = _ranked("weak_beside_noise", n=120)
    assert table.index[:2].tolist() == ["filters_1", "dropout_1"]
    weak, none = table.loc["dropout_1"], table.loc["learning_rate"]
    assert weak["importance"] > 2 * weak["std"] and weak["importance"] < 0.2
    assert none["importance"] < none["std"]
    assert none["raw"] > none["importance"]  # the forest's credit to noise, taken away


def test_noise_only_nothing_stands_out():
    table = _ranked("noise_only")
    assert (table["importance"] < 2 * table["std"]).all(), table


def test_a_child_set_in_too_few_trials_is_not_judged():
    values, scores = trial_set("child_only", 24)
    set_in = sum("filters_3" in v for v in values)
    assert set_in < analysis.MIN_ACTIVE
    imp = analysis.importance_from_values("few", values, scores, LOG, resamples=2)
    row = imp.table.set_index("hyperparameter").loc["filters_3"]
    assert np.isnan(row["importance"]) and row["present"] == set_in
    assert row["note"] == f"set in only {set_in} trials: too few to judge"
    assert imp.table.iloc[-1]["hyperparameter"] in {"filters_3", "kernel_3", "dropout_3",
                                                    "batchnorm_3"}  # unranked: last


def test_below_the_minimum_nothing_is_ranked(tmp_path):
    write_project(tmp_path, "few", n=10)
    imp = analysis.importance(tmp_path, "few", resamples=3)
    assert imp.n_trials == 10 and imp.resamples == 0 and imp.needed == 10
    assert imp.table["importance"].isna().all()
    assert f"needs 10 more finished configurations (it ranks from {analysis.MIN_TRIALS}" in \
        imp.message


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


def test_a_continued_configuration_is_one_point_at_its_highest_budget(tmp_path):
    path = write_project(tmp_path, "hb", n=25)
    # trial 25 continues trial 03 (Hyperband): the same values, trained on to 9 epochs.
    source = store.read_keras_trial(path / "trial_03")
    record = store.read_trial_record(path / "trial_03")
    (path / "trial_25").mkdir()
    store.write_json(path / "trial_25" / store.TRIAL_JSON, {**source, "trial_id": "25"})
    store.write_trial_record(path / "trial_25", {**record, "trial_id": "25", "epochs": 9,
                                                  "val_accuracy": 0.95,
                                                  "started": record["started"] + 3000,
                                                  "finished": record["finished"] + 3000})
    found = analysis.analyze(tmp_path, "hb", resamples=2)
    assert len(found.trials) == 26 and found.n_trials == 25
    history = found.history.set_index("trial")
    assert "03" not in history.index and history.loc["25", "epochs"] == 9
    assert history.loc["25", "val_accuracy"] == 0.95
    assert found.importance.table.set_index("hyperparameter").loc[analysis.EPOCHS,
                                                                  "present"] == 25
    summary = found.summary()
    assert summary["finished"] == 25 and summary["finished_trials"] == 26
    assert [h["epochs"] for h in summary["history"] if h["trial"] == "25"] == [9]


def test_a_trial_is_its_record(tmp_path):
    """A damaged record.json leaves the trial out (DAMAGED); Keras Tuner's trial.json, half
    written while the search saves it, is not what readers go by."""
    path = write_project(tmp_path, "busy", n=25)
    (path / "trial_23" / store.TRIAL_JSON).write_text('{"trial_id": "23", "hyperpa')
    (path / "trial_24" / store.RECORD_JSON).write_text('{"trial_id": "24", "val')
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
    assert main(["analyze", "synth", "--results-dir", str(synth), "--out-dir", str(out),
                 "--csv", str(csv), "--resamples", "3"]) == 0
    text = capsys.readouterr().out
    assert "Hyperparameter importance" in text and "learning_rate" in text
    assert "50 finished" in text and "best so far" in text and "val accuracy by value" in text
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
    assert summary["importance"][0]["present"] == 50 and summary["needed"] == 0
    # Everything the figures show: history, slices, fixed values and baselines.
    assert len(summary["history"]) == 50
    assert {s["hyperparameter"] for s in summary["slices"]} == \
        {r["hyperparameter"] for r in summary["importance"][:4]}
    assert len(summary["slices"]) == 4 * 50 and summary["slices_by"] == "importance"
    assert summary["fixed"] == {"head": "flatten"} and summary["baselines"] == []
    assert summary["log_scale"] == ["learning_rate"]
    # Read-only: no lock taken, nothing under the results directory written or changed.
    assert _snapshot(synth.parent) == before
    assert not list(synth.glob(".*lock*"))


def test_analyze_unknown_project_exits_2(synth, capsys):
    assert main(["analyze", "nope", "--results-dir", str(synth), "--no-figures"]) == 2
    assert "No project 'nope'" in capsys.readouterr().err


def _analyze(tmp_path, n, capsys, *extra):
    write_project(tmp_path / "res", f"p{n}", n=n)
    out = tmp_path / "out"
    code = main(["analyze", f"p{n}", "--results-dir", str(tmp_path / "res"), "--out-dir", str(out),
                 "--resamples", "2", *extra])
    return code, capsys.readouterr().out, out / f"p{n}"


def test_zero_trials_say_so_and_draw_nothing(tmp_path, capsys):
    code, text, folder = _analyze(tmp_path, 0, capsys)
    assert code == 0
    assert "0 trials, 0 finished" in text
    assert f"importance needs {analysis.MIN_TRIALS} more finished configurations" in text
    assert "nothing has finished to show yet" in text
    assert not list(folder.glob("*"))  # no empty figure, no empty table
    code, text, _ = _analyze(tmp_path / "j", 0, capsys, "--json", "--no-figures")
    summary = json.loads(text)
    assert summary["needed"] == analysis.MIN_TRIALS and summary["importance"] == []
    assert summary["history"] == [] and summary["slices"] == []
    assert "importance needs" in summary["message"]


def test_three_trials_show_history_and_slices_but_no_ranking(tmp_path, capsys):
    code, text, folder = _analyze(tmp_path, 3, capsys)
    needed = analysis.MIN_TRIALS - 3
    assert code == 0 and f"importance needs {needed} more finished configurations" in text
    assert "Hyperparameter importance" not in text
    assert "best so far" in text and "val accuracy by value" in text
    assert sorted(p.name for p in folder.iterdir()) == [
        "history.csv", "history.png", "pareto.png", "slices.csv", "slices.png"]
    code, text, _ = _analyze(tmp_path / "j", 3, capsys, "--json", "--no-figures")
    summary = json.loads(text)
    assert summary["needed"] == needed and summary["importance"] == []
    assert len(summary["history"]) == 3 and summary["slices_by"] == "name"
    assert {s["hyperparameter"] for s in summary["slices"]} <= {
        "batchnorm", "dense_layers", "dense_units_2", "dropout_place", "filters_1",
        "learning_rate"}


def test_thirty_trials_are_ranked(tmp_path, capsys):
    code, text, folder = _analyze(tmp_path, 30, capsys)
    assert code == 0 and "importance needs" not in text
    assert "Hyperparameter importance" in text and "30/30" in text
    assert (folder / "importance.png").is_file() and (folder / "importance.csv").is_file()
    code, text, _ = _analyze(tmp_path / "j", 30, capsys, "--json", "--no-figures")
    summary = json.loads(text)
    assert summary["needed"] == 0 and summary["message"] == ""
    assert summary["importance"][0]["hyperparameter"] == "learning_rate"
