"""report.py: records to rich tables, rendered as text (``Console(width=..., file=StringIO,
color_system=None)``) and compared. Records are written by hand: nothing trains. The final
table's order and skipped models are in test_finalize.py; its Pareto lines in test_front.py."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest
from rich.console import Console

from fmnist_search import report


def render(*renderables, width: int = 240) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(*renderables)
    return out.getvalue()


def cells(text: str) -> list[list[str]]:
    """A rendered table's rows, each split at its column borders (heavy or light)."""
    rows = []
    for line in text.splitlines():
        line = line.replace("┃", "│").strip()
        if line.startswith("│") and line.endswith("│"):
            rows.append([c.strip() for c in line[1:-1].split("│")])
    return rows


@pytest.mark.parametrize("value, digits, shown", [
    (None, 4, "-"), (float("nan"), 4, "-"), (True, 4, "True"), (12345678, 4, "12,345,678"),
    (0.123456, 4, "0.1235"), (2.0, 1, "2.0"), (0.5, 2, "0.50"), ("resnet", 4, "resnet"),
])
def test_values_are_shown_one_way_everywhere(value, digits, shown):
    assert report._fmt(value, digits) == shown


def test_a_missing_test_accuracy_says_why():
    assert report._test_accuracy({"test_accuracy": 0.91234}) == "0.9123"
    assert report._test_accuracy({"test_accuracy": None, "test_note": "no labels"}) == "no labels"
    assert report._test_accuracy({"test_accuracy": 0.9, "test_note": "x"}) == "0.9000"
    assert report._test_accuracy({}) == "-"


@pytest.mark.parametrize("seconds, shown", [(None, "-"), (0, "0m00s"), (59.6, "1m00s"),
                                            (3599, "59m59s"), (3600, "1h00m"),
                                            (7322, "2h02m")])
def test_durations(seconds, shown):
    assert report._duration(seconds) == shown


def test_value_order_puts_numbers_first_then_names_then_absent():
    values = ["absent", "relu", 32, 0.5, "gelu", True, 8]
    assert sorted(values, key=report.value_order) == [0.5, 8, 32, True, "gelu", "relu",
                                                      "absent"]


# --------------------------------------------------------------------------- leaderboard


def _row(trial, kind="trial", status="COMPLETED", **extra):
    return {"kind": kind, "project": "p", "trial": trial, "status": status,
            "val_accuracy": 0.9, "val_loss": 0.3, "test_accuracy": None, "params": 1000,
            "seconds_per_epoch": 2.5, "epochs": 3, "n_train": 24000, "architecture": "a",
            "values": {"lr": 0.001, "filters": 32}, "reason": "", **extra}


def test_leaderboard_records_rank_rows_and_carry_the_varying_values():
    rows = [_row("3", test_note="no labels"), _row("model1", kind="baseline"),
            _row("5", stage="final")]
    records = report.leaderboard_records(rows, ["lr"])
    assert [r["rank"] for r in records] == [1, 2, 3]
    assert [r["stage"] for r in records] == ["screening", "baseline", "final"]
    assert records[0]["test_note"] == "no labels" and "test_note" not in records[1]
    assert [r["lr"] for r in records] == [0.001] * 3 and "filters" not in records[0]
    assert set(report.LEADERBOARD_COLUMNS) <= set(records[0])
    assert not set(report.FRONT_COLUMNS) & set(records[0])  # one objective: no front columns


def test_front_columns_appear_only_for_a_search_of_several_objectives():
    rows = [_row("1", pareto_rank=0, ms_per_image=0.12345, model_bytes=40960),
            _row("2", pareto_rank=None, ms_per_image=None, model_bytes=None)]
    records = report.leaderboard_records(rows, [])
    assert records[0]["pareto_rank"] == 0 and records[0]["model_bytes"] == 40960
    assert "pareto_rank" in records[1] and "ms_per_image" not in records[1]  # unranked: shown "-"
    table = cells(render(report.leaderboard_table(records, [])))
    assert table[0][-3:] == ["front", "ms/img", "bytes"]
    assert table[1][-3:] == ["0 *", "0.123", "40,960"]
    assert table[2][-3:] == ["-", "-", "-"]


def test_the_leaderboard_says_how_each_row_ended():
    rows = [_row("1"), _row("2", status="PRUNED", reason="epoch 2: below the median"),
            _row("3", status="REJECTED", reason="rejected: 2,000 params > --max-params 1,000"),
            _row("4", status="FAILED", reason="out of memory"),
            _row("5", status="DAMAGED", reason="record.json is missing"),
            _row("model1", kind="baseline"), _row("9", kind="retrained")]
    table = cells(render(report.leaderboard_table(report.leaderboard_records(rows, []), [])))
    status = {row[2]: row[3] for row in table[1:]}
    assert status == {"1": "done", "2": "pruned: epoch 2: below the median",
                      "3": "rejected: 2,000 params > --max-params 1,000",
                      "4": "FAILED: out of memory", "5": "DAMAGED (see below)",
                      "model1": "baseline", "9": "retrained"}
    assert report.damaged_notes(report.leaderboard_records(rows, [])) == [
        "trial 5 of p: record.json is missing."]


def test_up_to_four_varying_hyperparameters_get_columns_and_more_are_named_in_the_title():
    names = ["a", "b", "c", "d", "e"]
    row = _row("1", values=dict.fromkeys(names, 0.25))
    four = render(report.leaderboard_table(report.leaderboard_records([row], names[:4]),
                                           names[:4]))
    assert cells(four)[0][-4:] == names[:4] and cells(four)[1][-4:] == ["0.2500"] * 4
    five = render(report.leaderboard_table(report.leaderboard_records([row], names), names))
    assert "(5 hyperparameters vary: see the architecture, or --csv/--json)" in five
    assert cells(five)[0][-1] == "architecture"


def test_leaderboard_cells():
    row = _row("7", val_accuracy=0.912345, params=1234567, seconds_per_epoch=12.345,
               test_accuracy=None, test_note="no test set")
    table = cells(render(report.leaderboard_table(report.leaderboard_records([row], []), [])))
    assert table[0][:4] == ["#", "project", "trial", "status"]
    assert table[1] == ["1", "p", "7", "done", "0.9123", "0.3000", "no test set", "1,234,567",
                        "12.3", "3", "24,000", "a"]


# --------------------------------------------------------------------------- one run


METRICS = {
    "model": "model1", "architecture": "conv[32]-dense[128]", "val_accuracy": 0.91234,
    "val_loss": 0.25, "test_accuracy": None, "test_note": "no labels", "test_loss": None,
    "params": 1300, "trainable_params": 1200, "non_trainable_params": 100, "epochs": 3,
    "seconds_per_epoch": 12.3456, "predict_seconds": 1.5, "precision": "mixed_bfloat16",
    "n_train": 24000, "n_val": 6000, "n_test": 10000, "classes": ["T-shirt", "Trouser"],
    "per_class": {"T-shirt": {"precision": 0.91234, "recall": 0.8, "f1": 0.85,
                              "support": 1000},
                  "Trouser": {"precision": 1.0, "recall": 0.99, "f1": 0.995, "support": 1000}},
    "confusion_matrix": [[800, 200], [0, 990]], "per_class_split": "validation",
}


def test_a_run_summary_shows_each_measure():
    table = dict(r for r in cells(render(report.run_summary(METRICS))) if len(r) == 2)
    assert table["architecture"] == "conv[32]-dense[128]"
    assert table["validation accuracy"] == "0.9123"
    assert table["test accuracy"] == "no labels" and table["test loss"] == "-"
    assert table["params (trainable / non-trainable)"] == "1,300 (1,200 / 100)"
    assert table["seconds per epoch (median after the first)"] == "12.35"  # seconds: 2 digits
    assert table["precision policy"] == "mixed_bfloat16"
    assert table["train / val / test images"] == "24,000 / 6,000 / 10,000"


def test_per_class_and_confusion_tables_name_their_split():
    per_class, confusion = report.run_tables(METRICS)[1:]
    text = render(per_class)
    assert "Per class (validation set)" in text
    assert ["T-shirt", "0.912", "0.800", "0.850", "1,000"] in cells(text)
    text = render(confusion)
    assert "Confusion matrix (validation set; rows true, columns predicted)" in " ".join(
        text.split())
    assert cells(text)[1:] == [["0 T-shirt", "800", "200"], ["1 Trouser", "0", "990"]]


def test_the_data_table_names_rows_by_the_datas_own_labels():
    counts = {"train": [100, 2000], "val": [25, 500]}
    table = cells(render(report.data_table(counts, ["T-shirt/top", "class 7"], [0, 7])))
    assert table[1:] == [["0 T-shirt/top", "100", "25"], ["class 7", "2,000", "500"],
                         ["total", "2,100", "525"]]


def test_param_totals_and_report_comparison():
    assert cells(render(report.param_totals(1200, 100))) == []  # no borders: plain lines
    text = render(report.param_totals(1200, 100))
    assert [line.split() for line in text.splitlines()] == [
        ["Total", "params", "1,300"], ["Trainable", "params", "1,200"],
        ["Non-trainable", "params", "100"]]
    said = {"classes": 5, "val_accuracy": 0.93, "kaggle": None, "seconds_per_epoch": 40.0,
            "params": 1000}
    table = {r[0]: r[1:] for r in cells(render(report.report_comparison(METRICS, said)))}
    assert table["classes"] == ["5", "2"]
    assert table["Kaggle score / test accuracy"] == ["-", "-"]
    assert table["seconds per epoch"] == ["40.0", "12.3"]


def test_baselines_are_compared_best_first():
    rows = [{**METRICS, "model": m, "val_accuracy": acc} for m, acc in
            (("model1", 0.8), ("model2", None), ("model3", 0.9))]
    table = cells(render(report.baselines_table(rows)))
    assert [r[0] for r in table[1:]] == ["model3", "model1", "model2"]


def test_layer_records_and_table_of_a_tiny_model():
    import keras

    inputs = keras.Input((4,), name="pixels")
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(inputs))
    assert report.layer_records(model) == [
        {"layer": "pixels", "type": "InputLayer", "output_shape": [None, 4], "params": 0},
        {"layer": "head", "type": "Dense", "output_shape": [None, 3], "params": 15}]
    assert cells(render(report.layer_table(model)))[1:] == [
        ["pixels (InputLayer)", "(None, 4)", "0"], ["head (Dense)", "(None, 3)", "15"]]


# --------------------------------------------------------------------------- final, values, history


def test_the_final_table_marks_reused_runs_and_says_when_it_is_incomplete():
    record = {"project": "p", "epochs": 30, "complete": False,
              "stages": {"screening_seconds": 600, "finalize_seconds": 4000},
              "rows": [{"stage": "final", "name": "p-3", "test_accuracy": 0.93,
                        "wall_seconds": 125, "reused": True, "inference_ms_per_image": 0.5}]}
    text = render(report.final_table(record))
    assert ("Final models of p (30 epochs, whole training split; screening 10m00s, finalize "
            "1h06m (incomplete: rerun finalize to go on))") in " ".join(text.split())
    row = cells(text)[-1]
    assert row[:3] == ["final", "p-3", "0.9300"] and "2m05s (reused)" in row
    assert "0.50" in row  # ms per image, two digits


def test_final_lines_say_what_is_delivered_and_against_the_control():
    record = {"ensemble": {"chosen": False, "reason": "one model only"},
              "delivered": {"name": "p-3", "params": 12345, "test_accuracy": 0.9312,
                            "control": {"line": "p-3 vs the control: +0.4 points"}},
              "control": {"line": "search pick vs control: +0.2 points"}}
    assert report.final_lines(record) == [
        "No ensemble: one model only.", "Delivered: p-3 (12,345 params, test accuracy 0.9312).",
        "p-3 vs the control: +0.4 points", "search pick vs control: +0.2 points"]
    same = {"delivered": {"name": "p-3", "params": 1, "control": {"line": "same"}},
            "control": {"line": "same"}}
    assert report.final_lines(same) == ["Delivered: p-3 (1 params).", "same"]  # said once
    assert report.final_lines({}) == []


def test_values_table_sorts_names_and_history_table_formats_each_column():
    values = cells(render(report.values_table({"lr": 0.0012345678, "act": "relu", "n": 3})))
    assert values[1:] == [["act", "relu"], ["lr", "0.001235"], ["n", "3"]]
    history = cells(render(report.history_table([
        {"epoch": 1, "loss": 0.51234, "accuracy": 0.8, "val_loss": 0.4, "val_accuracy": 0.85,
         "lr": 0.001, "seconds": 12.345},
        {"epoch": 2, "loss": 0.4, "lr": 0.0005, "seconds": 10.0}])))
    assert history[1] == ["1", "0.5123", "0.8000", "0.4000", "0.8500", "1.00e-03", "12.35"]
    assert history[2] == ["2", "0.4000", "-", "-", "-", "5.00e-04", "10.00"]


# --------------------------------------------------------------------------- analysis tables


def test_importance_table_shows_a_bar_for_each_share():
    frame = pd.DataFrame([
        {"rank": 1, "hyperparameter": "lr", "importance": 0.5, "std": 0.1, "kind": "float",
         "present": 30},
        {"rank": 2, "hyperparameter": "act", "importance": float("nan"), "std": float("nan"),
         "kind": "choice", "present": 12}])
    text = render(report.importance_table(frame, 30, 200))
    assert "30 finished configurations; ± sd over 200 bootstrap resamples" in " ".join(
        text.split())
    first, second = cells(text)[1:]
    assert first[:3] == ["1", "lr", "0.500 " + "█" * 10] and first[3:] == ["0.100", "float",
                                                                         "30/30"]
    assert second[2] == "-" and second[-1] == "12/30"  # NaN: no share, no bar


def test_slices_table_names_each_hyperparameter_once():
    frame = pd.DataFrame([
        {"hyperparameter": "act", "value": "gelu", "trials": 4, "mean": 0.8, "best": 0.9},
        {"hyperparameter": "act", "value": "relu", "trials": 6, "mean": 0.7, "best": 0.85},
        {"hyperparameter": "lr", "value": "1e-3..1e-2", "trials": 10, "mean": 0.75,
         "best": 0.9}])
    assert [r[:2] for r in cells(render(report.slices_table(frame)))[1:]] == [
        ["act", "gelu"], ["", "relu"], ["lr", "1e-3..1e-2"]]


def test_search_history_shows_only_the_trials_that_raised_the_best():
    history = pd.DataFrame([
        {"number": 1, "trial": "0", "elapsed_s": 60.0, "val_accuracy": 0.8,
         "best_so_far": 0.8, "architecture": "a"},
        {"number": 2, "trial": "1", "elapsed_s": 120.0, "val_accuracy": 0.7,
         "best_so_far": 0.8, "architecture": "b"},
        {"number": 3, "trial": "2", "elapsed_s": math.nan, "val_accuracy": 0.9,
         "best_so_far": 0.9, "architecture": "c"}])
    baselines = pd.DataFrame([{"model": "model1", "val_accuracy": 0.85, "epochs": 3}])
    table = cells(render(report.search_history_table(history, baselines)))
    assert [r[:2] for r in table[1:]] == [["1", "0"], ["3", "2"], ["", "model1"]]
    assert table[1][2] == "1.0" and table[2][2] == "-"  # minutes; unknown time
    assert table[3][-1] == "(baseline on the same data, 3 epochs)"
