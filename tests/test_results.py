"""results.py: records on disk to rows, read-only. The projects are written through ``store``
as a search writes them (``tests/synthetic.py``) and the runs are fake folders (a metrics.json
and a model.keras that is a well-formed zip): nothing trains and TensorFlow is not loaded.
The commands that print these rows are tested in test_results_cli.py."""

from __future__ import annotations

import json
import zipfile

import pytest
from synthetic import DATA, write_project

from fmnist_search import results, store
from fmnist_search.errors import UserError


def fake_model(path) -> None:
    """A model.keras that ``store.model_damage`` accepts: Keras' zip, config and weights."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        archive.writestr("model.weights.h5", b"\0" * 16)


def write_run(root, kind: str, name: str, run_id: str, model: bool = True, **metrics):
    """A finished run folder: ``<root>/<kind>/<name>/<run_id>/`` with metrics.json."""
    path = root / kind / name / run_id
    path.mkdir(parents=True)
    store.write_metrics(path, {"kind": kind.rstrip("s") if kind == store.BASELINES
                                else "retrained", "model": name, "epochs": 3, "data": DATA,
                                "values": {}, "val_accuracy": 0.8, "test_accuracy": 0.79,
                                **metrics})
    if model:
        fake_model(path / store.MODEL_FILE)
    return path


def _trial(project, trial_id: str, **record) -> None:
    folder = project / f"trial_{trial_id}"
    folder.mkdir()
    store.write_trial_record(folder, {"trial_id": trial_id, "values": {"lr": 0.01}, **record})


@pytest.fixture
def root(tmp_path):
    """A project ``synth`` of 6 completed trials, and one trial of each other status."""
    project = write_project(tmp_path, n=6)
    metrics = {"val_accuracy": 0.5, "val_loss": 1.0, "params": 70, "seconds_per_epoch": 3.0,
               "epochs": 1}
    _trial(project, "06", status="PRUNED", reason="epoch 1: below the median",
           **{**metrics, "val_accuracy": 0.999})  # higher than all: still never the best
    _trial(project, "07", status="REJECTED", reason="rejected: 9 params > 1", params=9,
           val_accuracy=0.99)
    _trial(project, "08", status="FAILED", reason="out of memory", val_accuracy=0.99)
    (project / "trial_09").mkdir()  # a record lost after Keras Tuner finished the trial
    store.write_json(project / "trial_09" / store.TRIAL_JSON, {"status": "COMPLETED"})
    (project / "trial_10").mkdir()  # made by Keras Tuner ahead of its trial: no trial yet
    return tmp_path


def _by_trial(rows):
    return {r["trial"]: r for r in rows}


# --------------------------------------------------------------------------- where results live


def test_the_results_root_is_the_option_else_the_environment_else_tuner_results(
        tmp_path, monkeypatch):
    monkeypatch.delenv("FMNIST_RESULTS", raising=False)
    assert str(results.results_root()) == "tuner_results"
    monkeypatch.setenv("FMNIST_RESULTS", str(tmp_path / "env"))
    assert results.results_root() == tmp_path / "env"
    assert results.results_root(str(tmp_path / "opt")) == tmp_path / "opt"


@pytest.mark.parametrize("given", ["--results-dir", "FMNIST_RESULTS"])
def test_a_file_as_the_results_root_is_refused_naming_where_it_came_from(
        given, tmp_path, monkeypatch):
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("FMNIST_RESULTS", str(tmp_path / "f"))
    with pytest.raises(UserError, match=f"^{given} {tmp_path / 'f'} is a file, not a folder"):
        results.results_root(str(tmp_path / "f") if given == "--results-dir" else None)


# --------------------------------------------------------------------------- trial rows


def test_trial_rows_have_one_row_per_trial_with_what_its_status_allows(root):
    rows = _by_trial(results.trial_rows(root, "synth"))
    assert list(rows) == [f"{i:02d}" for i in range(10)]  # trial_10 has no trial yet
    assert {t: r["status"] for t, r in rows.items() if int(t) >= 6} == {
        "06": "PRUNED", "07": "REJECTED", "08": "FAILED", "09": "DAMAGED"}
    done = rows["00"]
    assert done["kind"] == "trial" and done["stage"] == "screening"
    assert done["val_accuracy"] is not None and done["params"] == 1000
    assert (done["n_train"], done["space"]) == (24000, "synthetic")  # from run.json
    assert done["path"] == str(root / "synth" / "trial_00") and done["reason"] == ""
    assert rows["06"]["val_accuracy"] == 0.999 and rows["06"]["epochs"] == 1  # pruned: trained
    assert rows["07"]["params"] == 9 and rows["07"]["val_accuracy"] is None  # never trained
    assert rows["08"]["val_accuracy"] is None and rows["08"]["reason"] == "out of memory"
    assert "record.json is missing or damaged" in rows["09"]["reason"]


def test_keras_tuners_own_values_are_not_hyperparameters(tmp_path):
    project = write_project(tmp_path, n=0)
    _trial(project, "0", status="COMPLETED", values={"lr": 0.1, "tuner/epochs": 3,
                                                     "tuner/proposal": "model"})
    (row,) = results.trial_rows(tmp_path, "synth")
    assert row["values"] == {"lr": 0.1} and row["proposal"] == "model"


def test_sorting_puts_the_best_first_and_rows_without_a_value_last():
    rows = [{"val_accuracy": 0.7, "params": 30}, {"val_accuracy": None, "params": 10},
            {"val_accuracy": 0.9, "params": None}, {"val_accuracy": 0.7, "params": 20}]
    assert [r["params"] for r in results.sort_rows(rows)] == [None, 30, 20, 10]  # stable tie
    assert [r["params"] for r in results.sort_rows(rows, "params")] == [10, 20, 30, None]
    assert results.sort_rows([], "params") == []
    with pytest.raises(UserError, match="--sort 'size'; valid columns: val_accuracy, "):
        results.sort_rows(rows, "size")


def test_varying_names_the_hyperparameters_that_differ_between_trials(tmp_path):
    write_project(tmp_path, n=10)
    rows = results.trial_rows(tmp_path, "synth")
    names = results.varying(rows)
    assert "learning_rate" in names and "head" not in names  # head is the same everywhere
    assert "dense_units_2" in names  # present in some trials only: that varies too
    baseline = {"kind": "baseline", "values": {"zzz": 1}}
    assert results.varying([baseline, {"kind": "trial", "values": {"zzz": 2}}]) == []


@pytest.mark.parametrize("typed", ["3", "03", "0003"])
def test_a_trial_id_is_the_same_with_any_padding(typed):
    assert results.same_trial("03", typed)
    assert not results.same_trial("03", "30")


# --------------------------------------------------------------------------- finding a trial


def test_the_best_trial_is_the_best_completed_one(root):
    rows = [r for r in results.trial_rows(root, "synth") if r["status"] == "COMPLETED"]
    best = results.find_trial(root, "synth")
    assert best["val_accuracy"] == max(r["val_accuracy"] for r in rows)
    assert best["status"] == "COMPLETED"  # not the pruned or the rejected one


def test_a_trial_is_found_by_its_id_in_any_padding_pruned_ones_included(root):
    assert results.find_trial(root, "synth", "2")["trial"] == "02"
    assert results.find_trial(root, "synth", "006")["status"] == "PRUNED"


@pytest.mark.parametrize("trial, message", [
    ("07", "has no finished trial '07'. Finished trials: 00, 01, 02, 03, 04, 05, 06 "
           r"\(or use 'best'\)"),
    ("42", "has no finished trial '42'"),
    ("9", "Trial 09 of 'synth' cannot be used: .*record.json is missing or damaged"),
])
def test_an_unfinished_or_unknown_trial_is_refused_with_what_there_is(root, trial, message):
    with pytest.raises(UserError, match=message):
        results.find_trial(root, "synth", trial)


def test_no_project_or_no_finished_trial_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"No project 'nope' in .*Projects there: \(none\)"):
        results.find_trial(tmp_path, "nope")
    write_project(tmp_path, n=0)
    with pytest.raises(UserError, match="Project 'synth' has no finished trial yet"):
        results.find_trial(tmp_path, "synth")


def test_a_record_lost_after_the_rows_were_read_is_named(root):
    row = results.find_trial(root, "synth", "3")
    assert results.trial_history(row) == []  # the synthetic trials have an empty history
    results.require_record(row, "synth")
    (root / "synth" / "trial_03" / store.RECORD_JSON).unlink()
    with pytest.raises(UserError, match="record.json is missing or unreadable, so trial 03 of "
                                        "'synth' has no metrics"):
        results.require_record(row, "synth")
    assert results.trial_history(row) == []


# --------------------------------------------------------------------------- runs


def test_data_key_tells_runs_on_other_images_apart():
    assert results.data_key(DATA) == results.data_key(dict(DATA, n_train=1))  # not a setting
    assert results.data_key(DATA) != results.data_key(dict(DATA, subset=1.0))
    assert results.data_key(DATA) != results.data_key(dict(DATA, classes=[0, 1]))


def test_finished_run_is_the_newest_whole_run_of_those_epochs_data_and_values(tmp_path):
    parent = tmp_path / store.BASELINES / "model1"
    old = write_run(tmp_path, store.BASELINES, "model1", "20260101-000000")
    new = write_run(tmp_path, store.BASELINES, "model1", "20260102-000000")
    write_run(tmp_path, store.BASELINES, "model1", "20260103-000000", epochs=9)
    write_run(tmp_path, store.BASELINES, "model1", "20260104-000000",
              data=dict(DATA, subset=1.0))
    write_run(tmp_path, store.BASELINES, "model1", "20260105-000000",
              values={"filters_1": 64})
    (parent / ".20260106-000000.partial").mkdir()  # still being written: hidden
    assert results.finished_run(parent, 3, DATA)[0] == tmp_path / store.BASELINES / (
        "model1/20260105-000000")
    assert results.finished_run(parent, 3, DATA, values={})[0] == new
    assert results.finished_run(parent, 9, DATA)[0].name == "20260103-000000"
    assert results.finished_run(parent, 4, DATA) is None
    (new / store.MODEL_FILE).write_bytes(b"\0" * 100)  # damaged: never reused
    damaged: list = []
    path, metrics = results.finished_run(parent, 3, DATA, values={}, damaged=damaged)
    assert path == old and metrics["model"] == "model1"
    assert damaged == [(new, "model.keras: it is no Keras model file (100 bytes: truncated or "
                             "overwritten)")]


def test_latest_runs_take_the_newest_of_each_model_preferring_the_searchs_data(tmp_path):
    write_run(tmp_path, store.BASELINES, "model1", "20260101-000000", val_accuracy=0.1)
    write_run(tmp_path, store.BASELINES, "model1", "20260102-000000", val_accuracy=0.2,
              data=dict(DATA, subset=1.0))
    write_run(tmp_path, store.BASELINES, "model2", "20260101-000000", val_accuracy=0.3)
    (tmp_path / store.BASELINES / "model3").mkdir()  # no finished run
    rows = results.latest_runs(tmp_path, store.BASELINES)
    assert [(r["model"], r["val_accuracy"]) for r in rows] == [("model1", 0.2), ("model2", 0.3)]
    prefer = results.latest_runs(tmp_path, store.BASELINES, results.data_key(DATA))
    assert [r["val_accuracy"] for r in prefer] == [0.1, 0.3]
    assert prefer[0]["stage"] == "baseline" and prefer[0]["project"] == "(baseline)"
    assert results.latest_runs(tmp_path / "none", store.BASELINES) == []


def test_a_folder_without_metrics_is_no_run(tmp_path):
    with pytest.raises(UserError, match="is not a finished run directory"):
        results.load_run(tmp_path)
    assert results.load_run(write_run(tmp_path, store.BASELINES, "m", "1"))["model"] == "m"


def test_collect_puts_baselines_beside_the_trials_and_retrained_test_accuracy_on_them(root):
    write_run(root, store.BASELINES, "model1", "20260101-000000")
    write_run(root, store.RETRAINED, "synth-03", "20260101-000000", test_accuracy=0.777,
              source={"project": "synth", "trial": "03"})
    rows = results.collect(root)
    assert {r["status"] for r in rows} == {"COMPLETED", "DAMAGED"}  # failed ones left out
    assert _by_trial(rows)["03"]["test_accuracy"] == 0.777
    assert [r["model"] for r in rows if r["kind"] == "baseline"] == ["model1"]
    assert len(results.collect(root, include_failed=True)) == len(rows) + 3
    assert not [r for r in results.collect(root, baselines=False) if r["kind"] == "baseline"]
    with pytest.raises(UserError, match=r"No project nope in .*Projects there: synth\."):
        results.collect(root, ["nope"])


def test_final_rows_are_each_projects_final_table_best_test_accuracy_first(tmp_path):
    store.write_final(tmp_path, "p", {"rows": [
        {"stage": "final", "trial": "3", "test_accuracy": 0.91},
        {"stage": "control", "trial": "default", "test_accuracy": 0.92},
        {"stage": "ensemble", "trial": "ensemble", "test_accuracy": 0.93}]})
    store.write_final(tmp_path, "empty", {"rows": []})
    rows = results.final_rows(tmp_path)
    assert [(r["stage"], r["kind"]) for r in rows] == [
        ("ensemble", "ensemble"), ("control", "baseline"), ("final", "final")]
    assert {r["project"] for r in rows} == {"p"}  # a final.json without rows is not listed
    assert results.final_rows(tmp_path, ["empty"]) == []


def test_compare_table_marks_the_pareto_front_without_final_models():
    rows = [{"kind": "trial", "stage": "screening", "project": "p", "trial": str(i),
             "val_accuracy": acc, "test_accuracy": None, "params": params,
             "seconds_per_epoch": 1.0, "architecture": ""}
            for i, (acc, params) in enumerate([(0.9, 100), (0.8, 200), (0.95, 300)])]
    rows.append({**rows[0], "stage": "final", "trial": "f", "val_accuracy": 0.99, "params": 1})
    table = results.compare_table(rows)
    assert table["pareto_params"].tolist() == [True, False, True, False]
    assert "pareto_rank" not in table  # one objective


# --------------------------------------------------------------------------- find_run


def test_find_run_takes_a_run_folder_or_the_newest_run_of_a_name(root):
    run = write_run(root, store.BASELINES, "model1", "20260101-000000")
    newer = write_run(root, store.BASELINES, "model1", "20260102-000000")
    write_run(root, store.BASELINES, "model1", "20260103-000000", model=False)  # no model
    assert results.find_run(root, str(run)) == run
    assert results.find_run(root, "model1") == newer
    retrained = write_run(root, store.RETRAINED, "synth-03", "1",
                          source={"project": "synth", "trial": "03"})
    assert results.find_run(root, "synth-03") == retrained
    assert results.find_run(root, "synth-3") == retrained  # PROJECT-TRIAL, any padding
    final = write_run(root, f"{store.FINALIZED}/synth", "synth-ensemble", "1")
    assert results.find_run(root, "synth-ensemble") == final


def test_find_run_says_what_to_train_or_what_there_is(root):
    with pytest.raises(UserError, match=r"Trial 02 of 'synth' is not trained on its full data "
                                        r"yet: run `fmnist-search retrain synth --trial 02 "
                                        r"--results-dir \S+` first"):
        results.find_run(root, "synth-2")
    write_run(root, store.BASELINES, "model1", "1")
    with pytest.raises(UserError, match=r"'model9' is neither a run directory \(holding "
                                        r"model.keras\) nor a trained model in .*Trained: "
                                        r"baselines/model1\."):
        results.find_run(root, "model9")
    outside = root / "elsewhere" / "1"  # a run that ../elsewhere would reach from baselines/
    outside.mkdir(parents=True)
    fake_model(outside / store.MODEL_FILE)
    with pytest.raises(UserError, match=r"model '\.\./elsewhere' is not a valid name"):
        results.find_run(root, "../elsewhere")


def test_every_row_has_the_one_schema(root):
    """Trials, baseline and retrained runs and finalized models come out as rows of one
    shape (``store.ROW_KEYS``), which the leaderboard, ``api.trials``, analysis and finalize
    read; a key outside it is refused."""
    from fmnist_search import store

    write_run(root, store.BASELINES, "model1", "20260101-000000-000000")
    write_run(root, store.RETRAINED, "synth-00", "20260101-000000-000000",
              source={"project": "synth", "trial": "00"})
    store.write_final(root, "synth", {"rows": [
        {"stage": "final", "trial": "00", "val_accuracy": 0.9, "test_accuracy": 0.89},
        {"stage": "baseline", "trial": "model1", "test_accuracy": 0.8}]})
    rows = [*results.collect(root, include_failed=True), *results.final_rows(root),
            *results.latest_runs(root, store.RETRAINED)]
    assert {r["kind"] for r in rows} == {"trial", "baseline", "retrained", "final"}
    assert {r["status"] for r in rows} >= {"COMPLETED", "PRUNED", "REJECTED", "FAILED",
                                           "DAMAGED"}
    assert all(tuple(r) == store.ROW_KEYS for r in rows)
    with pytest.raises(KeyError, match="acuracy"):
        store.row(kind="trial", val_acuracy=0.9)
