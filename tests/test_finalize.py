"""The budget-aware pipeline on tiny data: screening, a pruned trial, a rejected one, and
finalize of the top 2 beside a report model, then finalize resumed without retraining."""

from __future__ import annotations

import json

import pytest
from conftest import search_args

from fmnist_search import results, store
from fmnist_search.cli import main

PRESET = """
tuner = "random"
trials = 5
epochs = 1
subset = 0.5
patience = 0
precision = "fp32"
prune_after = 1
max_params = 1000000
finalize_top = 2
final_epochs = 1
final_baselines = ["model3"]
final_baselines_epochs = true

[final]
aug_flip = true
"""


def _rigged(monkeypatch):
    """Trial 2 meets three earlier trials that all reached 1.0 (so it is pruned), and trial 3
    counts as ten million parameters (so --max-params rejects it): the rest is real."""
    from fmnist_search import training
    from fmnist_search.tuning import project

    real_curves, real_count = project.val_curves, training.count_params
    calls = {"curves": 0, "count": 0}

    def curves(project_dir, planned=None):
        calls["curves"] += 1
        return [{1: 1.0}] * 3 if calls["curves"] == 3 else real_curves(project_dir, planned)

    def count(model):
        calls["count"] += 1
        return (10_000_000, 0) if calls["count"] == 4 else real_count(model)

    monkeypatch.setattr(project, "val_curves", curves)
    monkeypatch.setattr(training, "count_params", count)


def _tiny_space():
    from pathlib import Path

    from conftest import TINY_SPACE

    from fmnist_search import space

    return space.load_space(Path(TINY_SPACE))


class _Data:  # a search's data: a subset of the training split
    def fingerprint(self):
        from fmnist_search.dataset import DataSettings

        return DataSettings(subset=0.5).fingerprint()


@pytest.mark.slow
def test_pipeline_screens_prunes_rejects_and_finalizes(tmp_path, csv_data, capsys,
                                                       monkeypatch):
    preset = tmp_path / "tiny_best.toml"
    preset.write_text(PRESET)
    _rigged(monkeypatch)
    root = tmp_path / "res"
    args = search_args(csv_data, tmp_path, "b", 5, "--search", str(preset), "--max-time", "1h")
    assert main(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    status = {r["trial"]: r["status"] for r in results.trial_rows(root, "b")}
    assert status == {"0": "COMPLETED", "1": "COMPLETED", "2": "PRUNED", "3": "REJECTED",
                      "4": "COMPLETED"}
    pruned = store.read_trial_record(root / "b" / "trial_2")
    assert pruned["pruned"] is True and "< median" in pruned["reason"]
    rejected = store.read_trial_record(root / "b" / "trial_3")
    assert "--max-params" in rejected["reason"] and rejected["params"] == 10_000_000
    assert rejected["architecture"].startswith("C")
    kt_state = store.read_keras_trial(root / "b" / "trial_3")
    assert kt_state["status"] == "FAILED"  # not RUNNING: Keras Tuner will not rerun it
    assert "Final models of b" in out

    final = store.read_final(root, "b")
    assert final["schema"] == store.SCHEMA and final["complete"] and final["top"] == 2
    assert final["skipped"] == []  # --max-time 1h: everything fits
    stages = [r["stage"] for r in final["rows"] if r["stage"] != "ensemble"]
    # The control (the space's default point) and the report model before a runner-up.
    assert stages == ["final", "control", "baseline", "final"]
    control = final["rows"][1]
    assert control["name"] == "tiny_space-default" and control["n_test"] == 50
    gain = final["control"]
    assert gain["pick"] == final["rows"][0]["name"] and gain["control"] == control["name"]
    assert gain["gain"] == pytest.approx(final["rows"][0]["test_accuracy"]
                                         - control["test_accuracy"])
    assert gain["line"] in out and "McNemar" in gain["line"]
    control_metrics = store.read_metrics(next((root / store.CONTROLS).rglob("metrics.json")
                                               ).parent)
    assert control_metrics["values"]["aug_flip"] is True  # the same final protocol
    assert control_metrics["values"]["filters_1"] == 4  # the tiny space's default point
    assert all(0 <= r["test_accuracy"] <= 1 for r in final["rows"])
    assert {final["rows"][0]["trial"], final["rows"][3]["trial"]} <= {"0", "1", "4"}
    assert final["stages"]["screening_seconds"] > 0
    models = final["stages"]["models"]
    assert len([m for m in models if m["stage"] != "ensemble"]) == 4
    assert all(m["seconds"] > 0 and not m["reused"] for m in models)
    run_dirs = sorted(p for p in (root / store.FINALIZED / "b").glob("b-*/*")
                      if not p.parent.name.endswith("-ensemble"))
    assert len(run_dirs) == 2
    metrics = store.read_metrics(run_dirs[0])
    assert metrics["kind"] == "final" and metrics["values"]["aug_flip"] is True
    assert metrics["n_train"] == 320  # the whole training split, not the screening half

    # The leaderboard: the final table first, then the screening trials; --all shows why.
    assert main(["leaderboard", "b", "--all", "--results-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.index("Final models of b") < out.index("screening trials")
    assert "pruned" in out and "rejected" in out
    assert main(["leaderboard", "b", "--json", "--results-dir", str(root)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["stage"] for r in rows} - {"ensemble"} == {"final", "control", "baseline",
                                                          "screening"}
    assert main(["show", "b", "2", "--results-dir", str(root)]) == 0  # pruned: shown by id
    capsys.readouterr()

    # Finalize again: nothing is retrained, and one more model trains only that one.
    before = {p: p.stat().st_mtime for p in (root / store.FINALIZED).rglob("metrics.json")}
    assert len(before) == len(run_dirs) + final["ensemble"]["chosen"]
    assert main(["finalize", "b", "--results-dir", str(root)]) == 0
    assert "not retrained" in " ".join(capsys.readouterr().out.split())
    assert {p: p.stat().st_mtime for p in (root / store.FINALIZED).rglob("metrics.json")} \
        == before
    again = store.read_final(root, "b")
    assert len(again["stages"]["models"]) == len(final["stages"]["models"])
    assert all(m["reused"] for m in again["stages"]["models"])
    assert again["stages"]["finalize_seconds"] == 0  # nothing trained: no finalize time
    # A deadline that leaves no time (2 epochs: nothing to reuse): the first configuration
    # and the report model train all the same, the runner-up is named, not started.
    import time

    from rich.console import Console

    from fmnist_search import finalize
    from fmnist_search.cli.common import prepare_data

    late = finalize.finalize(finalize.FinalizeRequest(root, "b", epochs=2, deadline=time.time()),
                             Console(), prepare_data)
    assert [(r["stage"], r["epochs"], r["reused"]) for r in late["rows"]
            if r["stage"] != "ensemble"] == [
        ("final", 2, False), ("control", 2, False), ("baseline", 2, False)]
    assert late["ensemble"]["candidates"] and late["delivered"]["name"]
    assert [s["stage"] for s in late["skipped"]] == ["final"] and late["complete"]
    assert late["skipped"][0]["estimated_seconds"] > late["skipped"][0]["left_seconds"] == 0
    assert f'{late["skipped"][0]["name"]}: not trained' in " ".join(
        capsys.readouterr().out.split())
    assert main(["finalize", "b", "--top", "3", "--results-dir", str(root)]) == 0
    third = store.read_final(root, "b")
    reused = [m["reused"] for m in third["stages"]["models"] if m["stage"] != "ensemble"]
    assert len(reused) == 5 and reused.count(False) == 1  # only the third configuration
    assert third["stages"]["finalize_seconds"] == sum(
        m["seconds"] for m in third["stages"]["models"] if not m["reused"])

    assert main(["compare", "b", "--out", str(tmp_path / "c.png"),
                 "--results-dir", str(root)]) == 0
    assert "3 finalized" in " ".join(capsys.readouterr().out.split())


@pytest.mark.slow
def test_a_budget_too_small_still_ends_with_the_best_and_the_report_model(tmp_path, csv_data,
                                                                         capsys):
    """--max-time 30s with min_search_share 0.9: the search gets its 27 s whatever the
    reserve says, the best configuration and model3 train past the deadline (they always do),
    and the runner-up, which cannot end in time, is named as skipped."""
    preset = tmp_path / "tiny_best.toml"
    preset.write_text("min_search_share = 0.9\n" + PRESET)
    root = tmp_path / "res"
    args = search_args(csv_data, tmp_path, "t", 5, "--search", str(preset), "--max-time", "30s")
    assert main(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert sum(r["status"] == "COMPLETED" for r in results.trial_rows(root, "t")) >= 2
    final = store.read_final(root, "t")
    assert [r["stage"] for r in final["rows"] if r["stage"] != "ensemble"] == [
        "final", "control", "baseline"]
    skipped = final["skipped"]
    assert [s["stage"] for s in skipped] == ["final"]
    assert f"not trained for --max-time: {skipped[0]['name']}" in out


def test_finalize_of_an_unknown_project_is_exit_2(tmp_path, capsys):
    assert main(["finalize", "nope", "--results-dir", str(tmp_path)]) == 2
    assert "No project 'nope'" in capsys.readouterr().err


def test_finalize_rejects_a_bad_top(tmp_path, capsys):
    assert main(["finalize", "p", "--top", "0", "--results-dir", str(tmp_path)]) == 2
    assert "--top" in capsys.readouterr().err


@pytest.mark.slow
def test_rejections_are_not_failures(tmp_path, csv_data, capsys):
    """Every configuration over --max-params: the search goes on (no 3-failures stop)."""
    root = tmp_path / "res"
    args = search_args(csv_data, tmp_path, "r", 4, "--max-params", "1", "--no-finalize")
    assert main(args) == 0
    assert "in a row failed" not in capsys.readouterr().err
    assert [r["status"] for r in results.trial_rows(root, "r")] == ["REJECTED"] * 4


def test_epoch_cost_guard_rejects_a_slow_configuration():
    import keras
    import numpy as np

    from fmnist_search.callbacks import EpochCostGuard, OverLimit

    x = np.zeros((64, 4), "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(OverLimit, match="--max-seconds-per-epoch"):
        model.fit(x, np.zeros(64), batch_size=4, epochs=1, verbose=0,
                  callbacks=[EpochCostGuard(1e-9)])
    guard = EpochCostGuard(3600)
    model.fit(x, np.zeros(64), batch_size=4, epochs=1, verbose=0, callbacks=[guard])
    assert guard.estimate is not None and 0 < guard.estimate < 3600


def test_cost_guard_holds_every_measured_epoch_to_the_limit():
    """A configuration whose first steps look cheap but whose epochs measure over the limit
    (here: slow batches after the timed ones; in a real run, 100-175 s epochs estimated under
    90) is rejected at the end of the epoch, continued Hyperband epochs included."""
    import time

    import keras
    import numpy as np

    from fmnist_search.callbacks import EpochCostGuard, EpochLog, OverLimit

    class SlowLater(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch >= 12:
                time.sleep(0.4)  # 8 slow batches: an epoch over 3 s, whatever the load

    x = np.zeros((320, 4), "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    for initial_epoch, estimate in ((0, True), (1, False)):
        log = EpochLog()
        # 3 s: far above what the fast timed steps estimate (20 steps of a 10-weight model)
        # even on a loaded CPU, where a limit of 0.3 s once rejected on the estimate
        guard = EpochCostGuard(3.0, log, estimate=estimate)
        with pytest.raises(OverLimit, match="epoch .* took"):
            model.fit(x, np.zeros(320), batch_size=16, epochs=initial_epoch + 2,
                      initial_epoch=initial_epoch, verbose=0,
                      callbacks=[log, SlowLater(), guard])
        assert len(log.rows) == 1 and guard.estimate is not None and guard.estimate < 3.0
    log = EpochLog()
    model.fit(x, np.zeros(320), batch_size=16, epochs=2, verbose=0,
              callbacks=[log, SlowLater(), EpochCostGuard(3600, log)])
    assert len(log.rows) == 2


def test_search_reserves_finalize_time_from_measured_trials(tmp_path):
    from fmnist_search import presets
    from fmnist_search.tuning.search_loop import SearchRequest

    preset = presets.Preset(subset=0.5, finalize_top=2, final_epochs=10)
    req = SearchRequest(_tiny_space(), preset, _Data(), tmp_path, "p", seed=1)
    assert req.finalize_reserve() == 0.0  # nothing measured yet
    for trial, (acc, spe) in enumerate([(0.9, 30.0), (0.8, 20.0), (0.95, 10.0)]):
        directory = tmp_path / "p" / f"trial_{trial}"
        directory.mkdir(parents=True)
        store.write_trial_record(directory, {"status": "COMPLETED", "val_accuracy": acc,
                                              "seconds_per_epoch": spe,
                                              "values": {"x": trial}})
    from fmnist_search.budget import finalize_reserve

    # The two best configurations, and the control at their mean cost (not trained yet).
    assert req.finalize_reserve() == pytest.approx(
        finalize_reserve([10.0, 30.0], 2, 10, 2.0, baseline_epochs=[10]))
    # On a slow day the estimate can exceed the budget: min_search_share caps it.
    req.max_time = 1000.0
    assert req.finalize_reserve() > 600
    req.preset = presets.Preset(subset=0.5, finalize_top=2, final_epochs=10,
                                min_search_share=0.4)
    assert req.finalize_reserve() == pytest.approx(600.0)
    req.finalize = False  # --no-finalize
    assert req.finalize_reserve() == 0.0


def test_finalists_within_one_standard_error_go_simplest_first():
    from fmnist_search.finalize import simplest_first

    def row(trial, acc, params):
        return {"trial": trial, "val_accuracy": acc, "params": params}

    # Run 2 of the proof benchmark: 0.9057 and 0.9053 on 6,000 images (one error 0.0038).
    top = [row("19", 0.9057, 400_266), row("16", 0.9053, 388_954), row("29", 0.8930, 10_000)]
    assert [r["trial"] for r in simplest_first(top, 6000)] == ["16", "19", "29"]
    # Hundreds of thousands of validation images tell 0.9057 from 0.9053: the order stands.
    assert [r["trial"] for r in simplest_first(top, 600_000)] == ["19", "16", "29"]
    assert simplest_first(top, None) == top and simplest_first([], 6000) == []


def test_finalize_estimates_each_model_and_always_trains_the_best():
    import time

    from fmnist_search.budget import model_seconds
    from fmnist_search.finalize import Candidate, _past_deadline, estimated_seconds

    def final(name, spe):
        return Candidate(name, "final", {}, 10, None, {}, {"seconds_per_epoch": spe})

    model3 = Candidate("model3", "baseline", {}, 20, None, {}, {})
    costs = estimated_seconds([final("a", 30.0), final("b", 10.0), final("c", None), model3],
                              scale=2.0)
    assert costs == {"a": pytest.approx(model_seconds(30.0, 10, 2.0)),
                     "b": pytest.approx(model_seconds(10.0, 10, 2.0)), "c": None,
                     "model3": pytest.approx(model_seconds(20.0, 20, 2.0))}
    now, a = time.time(), final("a", 30.0)
    assert _past_deadline(now - 1, 100.0, a, []) is None  # no final model yet: the best trains
    rows = [{"stage": "final"}]
    assert _past_deadline(now - 1, 100.0, model3, rows) is None  # a report model always trains
    assert _past_deadline(now + 1000, 100.0, a, rows) is None
    assert _past_deadline(now + 50, 100.0, a, rows)["estimated_seconds"] == 100.0
    assert _past_deadline(None, 1e9, a, rows) is None
    assert _past_deadline(now, None, a, rows) is None


def _whole_model(run):
    """A model.keras that opens as Keras' zip (finalize reuses no run without one)."""
    import zipfile

    with zipfile.ZipFile(run / store.MODEL_FILE, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"")


def test_reserve_counts_only_report_models_finalize_will_train(tmp_path):
    """A report model already trained on the same data for as many epochs is reused by
    finalize, so the search does not keep time for it; one trained for other epochs, or on
    other data, still counts."""
    from fmnist_search import presets
    from fmnist_search.budget import finalize_reserve
    from fmnist_search.dataset import DataSettings
    from fmnist_search.tuning.search_loop import SearchRequest

    preset = presets.Preset(subset=0.5, finalize_top=1, final_epochs=10,
                            final_baselines=["model3"], final_baselines_epochs=True)
    req = SearchRequest(_tiny_space(), preset, _Data(), tmp_path, "p", seed=1)
    directory = tmp_path / "p" / "trial_0"
    directory.mkdir(parents=True)
    store.write_trial_record(directory, {"status": "COMPLETED", "val_accuracy": 0.9,
                                          "seconds_per_epoch": 10.0, "values": {}})
    with_model3 = finalize_reserve([10.0], 1, 10, 2.0, baseline_epochs=[10, 10])  # + control
    assert req.finalize_reserve() == pytest.approx(with_model3)

    def finished_model3(name, epochs, subset):
        run = tmp_path / store.BASELINES / "model3" / name
        run.mkdir(parents=True)
        _whole_model(run)
        store.write_metrics(run, {"epochs": epochs,
                                   "data": DataSettings(subset=subset).fingerprint()})

    finished_model3("20260101-000000-000001", 40, 1.0)  # its own 40 epochs: not the final 10
    finished_model3("20260101-000000-000002", 10, 0.5)  # 10 epochs, but on the subset
    assert req.finalize_reserve() == pytest.approx(with_model3)
    finished_model3("20260101-000000-000003", 10, 1.0)
    assert req.finalize_reserve() == pytest.approx(
        finalize_reserve([10.0], 1, 10, 2.0, baseline_epochs=[10]))
    # The control, finished with the same values, epochs and data, is reused too.
    run = tmp_path / store.CONTROLS / "tiny_space-default" / "20260101-000000-000004"
    run.mkdir(parents=True)
    _whole_model(run)
    values = {**req.space.default_values(), "epochs": 10}
    store.write_metrics(run, {"epochs": 10, "values": values,
                               "data": DataSettings(subset=1.0).fingerprint()})
    assert req.finalize_reserve() == pytest.approx(finalize_reserve([10.0], 1, 10, 2.0))


def test_final_table_shows_what_won_first_and_names_skipped_models():
    from rich.console import Console

    from fmnist_search import report

    record = {"project": "p", "epochs": 30, "complete": True, "stages": {},
              "skipped": [{"name": "p-7", "stage": "final"}],
              "rows": [{"stage": "final", "name": "p-3", "test_accuracy": None},
                       {"stage": "baseline", "name": "model3", "test_accuracy": 0.9256},
                       {"stage": "final", "name": "p-5", "test_accuracy": 0.9394}]}
    console = Console(record=True, width=200)
    console.print(report.final_table(record))
    text = console.export_text()
    assert text.index("p-5") < text.index("model3") < text.index("p-3")
    assert "not trained for --max-time: p-7" in text


def test_control_gain_is_a_paired_test_on_the_same_test_images():
    import numpy as np

    from fmnist_search.finalize import control_gain

    rows = [{"stage": "final", "name": "p-3", "path": "/r/final/p-3/1"},
            {"stage": "control", "name": "resnet-default", "path": "/r/controls/d/1"},
            {"stage": "baseline", "name": "model3", "path": "/r/baselines/model3/1"}]
    truth = np.zeros(10_000, dtype=int)

    def labels(right: slice) -> np.ndarray:
        out = np.ones(10_000, dtype=int)
        out[right] = 0
        return out

    # The numbers: the winner 0.9424 against its control 0.9435 on 10,000 images,
    # 9,357 images right by both: the paired error is far below the unpaired 0.0033.
    common = slice(0, 9_357)
    probs = {"p-3": labels(np.r_[common, 9_357:9_424]),
             "resnet-default": labels(np.r_[common, 9_424:9_502])}
    lost = control_gain(rows, probs, truth)
    assert lost["verdict"] == "does not beat" and lost["gain"] == pytest.approx(-0.0011)
    assert lost["standard_error"] < 0.0013 and lost["p_value"] > 0.3
    assert "does not beat its control resnet-default" in lost["line"]
    assert "McNemar exact p =" in lost["line"] and "-0.0011" in lost["line"]
    probs["p-3"] = labels(np.r_[common, 9_357:9_517])  # +0.0050 with 145 discordant images
    won = control_gain(rows, probs, truth)
    assert won["verdict"] == "beats" and won["p_value"] < 0.01
    assert control_gain(rows, probs, None) is None  # no test set: nothing to say
    assert control_gain(rows, {"p-3": probs["p-3"]}, truth) is None
    assert control_gain([r for r in rows if r["stage"] != "control"], probs, truth) is None
    assert control_gain(rows, probs, truth, "model3") is None  # no probabilities of it
    # The pick is the default point: the control row is its run; no gain to claim.
    same = [{**r, "path": "/r/controls/d/1"} if r["stage"] != "baseline" else r for r in rows]
    one = control_gain(same, probs, truth)
    assert one["verdict"] == "is" and one["gain"] == 0.0
    assert "is its control" in one["line"] and "nothing it ranked above its start" in one["line"]


def test_finalize_refuses_clearly_when_the_space_file_is_gone(tmp_path):
    """The control is the space's default point: a space file deleted since the search is
    named with the remedy (exit 2), not a traceback."""
    from fmnist_search.errors import UserError
    from fmnist_search.finalize import control_candidate

    run = {"project": "p", "space_name": "gone", "space_path": str(tmp_path / "gone.toml"),
           "preset": {}}
    with pytest.raises(UserError, match=r"gone\.toml cannot be read now.*Put the file back"):
        control_candidate(tmp_path, run, 10, {})


def test_a_pick_that_is_the_control_trains_in_the_controls_folder(tmp_path):
    """The search's pick is often its start (the default point, i.e. the control): it trains
    where the control's runs live, so the control row (and later projects) reuse that run
    instead of training the same model again. Any other configuration keeps its own folder."""
    from fmnist_search import finalize

    values = {"filters_1": 4, "aug_flip": True, "epochs": 2}
    control = finalize.Candidate("s-default", "control", dict(values), 2, tmp_path / "controls",
                                 {}, {})
    pick = finalize.Candidate("b-0", "final", {**values, "tuner/epochs": 2}, 2,
                              tmp_path / "final", {}, {})
    assert finalize._in_control_folder(pick, control).parent == tmp_path / "controls"
    other = finalize.Candidate("b-1", "final", {**values, "filters_1": 8}, 2, tmp_path / "final",
                               {}, {})
    assert finalize._in_control_folder(other, control) is other


def test_screening_seconds_leave_out_the_pause_between_parts(tmp_path):
    """10 trials, started 60 s apart from t0, each 50 s: 590 s of screening; a pause of 120 s
    between two parts of the pipeline inside it is not screening."""
    from synthetic import write_project

    from fmnist_search import finalize

    write_project(tmp_path, "p", n=10)
    t0 = 1_700_000_000.0
    assert finalize.screening_seconds(tmp_path, "p") == 590.0
    store.write_json(tmp_path / "p" / store.CLOCK_JSON, {"parts": [
        {"start": t0 - 5, "last": t0 + 200}, {"start": t0 + 320, "last": t0 + 600}]})
    assert finalize.screening_seconds(tmp_path, "p") == 470.0
