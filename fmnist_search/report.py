"""Records -> rich tables. Nothing here trains, reads Keras Tuner internals or writes files."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

# Measured (benchmarks/bench_importance.py on the synthetic sets of tests/importance_sets.py,
# 10 seeds each; results/importance_stability.json): from 20 finished configurations the
# strongest effect ranks first in at least 9 of 10 seeds on every set without conditions (16:
# 8/10, 12: 7/10); below it the ranking is not shown. A weak second effect is ordered reliably
# only from about 30 (9/10), which the spread shows: it stays within two sd below 40.
# Here (not in analysis) so that the CLI's help can say it without importing pandas.
MIN_TRIALS = 20


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def _test_accuracy(row: Mapping[str, Any]) -> str:
    """The test accuracy, or why there is none ("no labels", "no test set")."""
    if row.get("test_accuracy") is None and row.get("test_note"):
        return str(row["test_note"])
    return _fmt(row.get("test_accuracy"))


def layer_records(model) -> list[dict[str, Any]]:
    """One dict per layer: name, type, output shape (None for the batch) and parameters."""
    records = []
    for layer in model.layers:
        output = getattr(layer, "output", None)
        records.append({"layer": layer.name, "type": type(layer).__name__,
                        "output_shape": list(output.shape) if output is not None else None,
                        "params": int(layer.count_params())})
    return records


def layer_table(model, title: str = "") -> Table:
    """Layer, type, output shape and parameters, like the report's model summaries."""
    table = Table(title=title or None)
    table.add_column("Layer (type)")
    table.add_column("Output shape")
    table.add_column("Param #", justify="right")
    for r in layer_records(model):
        shape = str(tuple(r["output_shape"])) if r["output_shape"] is not None else "?"
        table.add_row(f"{r['layer']} ({r['type']})", shape, f"{r['params']:,}")
    return table


def param_totals(trainable: int, frozen: int) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column()
    table.add_column(justify="right")
    table.add_row("Total params", f"{trainable + frozen:,}")
    table.add_row("Trainable params", f"{trainable:,}")
    table.add_row("Non-trainable params", f"{frozen:,}")
    return table


def data_table(counts: Mapping[str, Sequence[int]], class_names: Sequence[str],
               labels: Sequence[int] | None = None) -> Table:
    """Images per class and split; rows named by the data's own labels."""
    table = Table(title="Images per class")
    table.add_column("class")
    for split in counts:
        table.add_column(split, justify="right")
    for i, name in enumerate(class_names):
        label = labels[i] if labels is not None else i
        title = name if name == f"class {label}" else f"{label} {name}"
        table.add_row(title, *(f"{c[i]:,}" for c in counts.values()))
    table.add_row("[bold]total", *(f"[bold]{sum(c):,}" for c in counts.values()))
    return table


def run_summary(metrics: Mapping[str, Any]) -> Table:
    table = Table(title=f"{metrics['model']}: results")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("architecture", metrics["architecture"]),
        ("validation accuracy", metrics["val_accuracy"]),
        ("validation loss", metrics["val_loss"]),
        ("test accuracy", _test_accuracy(metrics)),
        ("test loss", metrics["test_loss"]),
        ("params (trainable / non-trainable)",
         f"{metrics['params']:,} ({metrics['trainable_params']:,} / "
         f"{metrics['non_trainable_params']:,})"),
        ("epochs", metrics["epochs"]),
        ("seconds per epoch (median after the first)", metrics["seconds_per_epoch"]),
        ("seconds to predict the test set", metrics["predict_seconds"]),
        ("precision policy", metrics.get("precision")),
        ("train / val / test images",
         f"{metrics['n_train']:,} / {metrics['n_val']:,} / {metrics['n_test']:,}"),
    ]
    for name, value in rows:
        table.add_row(name, _fmt(value, 2 if "seconds" in name else 4))
    return table


def per_class_table(metrics: Mapping[str, Any]) -> Table:
    table = Table(title=f"Per class ({metrics.get('per_class_split', 'test')} set)")
    table.add_column("class")
    for col in ("precision", "recall", "f1", "support"):
        table.add_column(col, justify="right")
    for name, row in metrics["per_class"].items():
        table.add_row(name, *(_fmt(row[c], 3) for c in ("precision", "recall", "f1")),
                      f"{row['support']:,}")
    return table


def confusion_table(metrics: Mapping[str, Any]) -> Table:
    names = metrics["classes"]
    table = Table(title=f"Confusion matrix ({metrics.get('per_class_split', 'test')} set; "
                  "rows true, columns predicted)")
    table.add_column("true \\ pred")
    for i, _ in enumerate(names):
        table.add_column(str(i), justify="right")
    for i, row in enumerate(metrics["confusion_matrix"]):
        cells = [f"[bold]{v}[/]" if i == j else (str(v) if v else "[dim]0[/]")
                 for j, v in enumerate(row)]
        table.add_row(f"{i} {names[i]}", *cells)
    return table


def run_tables(metrics: Mapping[str, Any]) -> list[Table]:
    """What a finished training run shows: results, per-class table, confusion matrix."""
    return [run_summary(metrics), per_class_table(metrics), confusion_table(metrics)]


def report_comparison(metrics: Mapping[str, Any], report: Mapping[str, Any]) -> Table:
    table = Table(title="The report said vs this run (the report used 5 classes, a Kaggle "
                  "split and other hardware)")
    table.add_column("measure")
    table.add_column("report", justify="right")
    table.add_column("this run", justify="right")
    table.add_row("classes", _fmt(report.get("classes")), _fmt(len(metrics["classes"])))
    table.add_row("validation accuracy", _fmt(report.get("val_accuracy")),
                  _fmt(metrics["val_accuracy"]))
    table.add_row("Kaggle score / test accuracy", _fmt(report.get("kaggle")),
                  _fmt(metrics["test_accuracy"]))
    table.add_row("seconds per epoch", _fmt(report.get("seconds_per_epoch"), 1),
                  _fmt(metrics["seconds_per_epoch"], 1))
    table.add_row("params", _fmt(report.get("params")), _fmt(metrics["params"]))
    return table


def baselines_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="Baselines compared")
    for col, justify in (("model", "left"), ("val acc", "right"), ("test acc", "right"),
                         ("params", "right"), ("s/epoch", "right"), ("epochs", "right"),
                         ("architecture", "left")):
        table.add_column(col, justify=justify)
    for m in sorted(rows, key=lambda m: -(m["val_accuracy"] or 0)):
        table.add_row(m["model"], _fmt(m["val_accuracy"]), _fmt(m["test_accuracy"]),
                      _fmt(m["params"]), _fmt(m["seconds_per_epoch"], 1), _fmt(m["epochs"]),
                      m["architecture"])
    return table


LEADERBOARD_COLUMNS = ("rank", "project", "trial", "status", "val_accuracy", "val_loss",
                       "test_accuracy", "params", "seconds_per_epoch", "epochs", "n_train",
                       "architecture")


def leaderboard_records(rows: Sequence[Mapping[str, Any]], varying: Sequence[str]) -> list[dict]:
    """Flat rows (one per trial or baseline) for the table, CSV and JSON alike."""
    out = []
    for rank, row in enumerate(rows, start=1):
        record = {"rank": rank, **{c: row.get(c) for c in LEADERBOARD_COLUMNS[1:]}}
        record["kind"] = row["kind"]
        record["stage"] = row.get("stage") or ("screening" if row["kind"] == "trial"
                                               else row["kind"])
        if row.get("test_note"):
            record["test_note"] = row["test_note"]
        for key in FRONT_COLUMNS:  # a search of several objectives: its front and costs
            if key in row and (key == "pareto_rank" or row.get(key) is not None):
                record[key] = row[key]
        record["reason"] = row.get("reason", "")
        for name in varying:
            record[name] = row["values"].get(name)
        out.append(record)
    return out


MAX_TABLE_HPS = 4
# Shown (and kept in --csv/--json) only where a search of several objectives put them: a
# trial's Pareto rank in its project (0: on the front) and its measured costs.
FRONT_COLUMNS = ("pareto_rank", "ms_per_image", "model_bytes")


def damaged_notes(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per trial whose record.json is lost: what happened and what to do."""
    return [f"trial {r['trial']} of {r['project']}: {r['reason']}." for r in records
            if r["status"] == "DAMAGED"]


def leaderboard_table(records: Sequence[Mapping[str, Any]], varying: Sequence[str],
                      title: str = "Leaderboard") -> Table:
    """Varying hyperparameters get columns when there are few; the architecture string names
    all of them anyway, and --csv / --json always carry every one."""
    if len(varying) > MAX_TABLE_HPS:
        title += f" ({len(varying)} hyperparameters vary: see the architecture, or --csv/--json)"
        varying = []
    table = Table(title=title)
    heads = {"rank": "#", "val_accuracy": "val acc", "val_loss": "val loss",
             "test_accuracy": "test acc", "seconds_per_epoch": "s/epoch",
             "n_train": "train imgs"}
    for col in LEADERBOARD_COLUMNS:
        justify = "left" if col in ("project", "trial", "status", "architecture") else "right"
        table.add_column(heads.get(col, col), justify=justify,
                         no_wrap=col not in ("architecture", "status"),
                         min_width=24 if col == "architecture" else None)
    extra = [c for c in FRONT_COLUMNS if any(c in r for r in records)]
    for col in extra:
        table.add_column({"pareto_rank": "front", "ms_per_image": "ms/img",
                          "model_bytes": "bytes"}[col], justify="right")
    for name in varying:
        table.add_column(name, justify="right")
    for r in records:
        style = "bold cyan" if r["kind"] == "baseline" else ("yellow" if r["kind"] == "retrained"
                                                             else None)
        status = "done" if r["kind"] == "trial" else r["kind"]
        if r["status"] in ("PRUNED", "REJECTED"):  # by design, not a failure
            reason = str(r["reason"]).removeprefix("rejected: ")
            status = f"[yellow]{r['status'].lower()}[/]: {reason}"
        elif r["status"] == "DAMAGED":  # the remedy is printed under the table
            status = "[red]DAMAGED[/] (see below)"
        elif r["status"] != "COMPLETED":
            status = f"[red]{r['status']}[/]: {r['reason']}"
        cells = [str(r["rank"]), r["project"], str(r["trial"]), status,
                 _fmt(r["val_accuracy"]), _fmt(r["val_loss"]), _test_accuracy(r),
                 _fmt(r["params"]), _fmt(r["seconds_per_epoch"], 1), _fmt(r["epochs"]),
                 _fmt(r["n_train"]), r["architecture"] or ""]
        cells += [_front_cell(r, col) for col in extra]
        cells += [_fmt(r.get(name), 4) for name in varying]
        table.add_row(*cells, style=style)
    return table


def _front_cell(record: Mapping[str, Any], column: str) -> str:
    """``front``: the Pareto rank, 0 shown as "0 *" (on the front); ``-`` for a trial not ranked
    (a configuration trained longer in another trial) or a row that is no trial."""
    value = record.get(column)
    if column == "pareto_rank":
        return "-" if value is None else ("0 *" if value == 0 else str(value))
    if column == "ms_per_image":
        return _fmt(value, 3)
    return _fmt(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


STAGE_STYLES = {"baseline": "bold cyan", "control": "bold magenta", "ensemble": "bold green"}


def final_table(record: Mapping[str, Any], title: str = "") -> Table:
    """``final.json``: the top configurations beside the report's models, all trained with
    the final protocol, with each stage's wall time."""
    stages = record.get("stages", {})
    note = (f"screening {_duration(stages.get('screening_seconds'))}, finalize "
            f"{_duration(stages.get('finalize_seconds'))}"
            + ("" if record.get("complete") else " (incomplete: rerun finalize to go on)"))
    skipped = [s["name"] for s in record.get("skipped") or []]
    if skipped:
        note += f"; not trained for --max-time: {', '.join(skipped)} (finalize trains them)"
    table = Table(title=f"{title or 'Final models of ' + str(record.get('project'))} "
                  f"({record.get('epochs')} epochs, whole training split; {note})",
                  caption="\n".join(final_lines(record)) or None)
    for col in ("stage", "model", "test acc", "val acc", "params", "s/epoch", "epochs",
                "wall", "ms/img", "screening val acc", "architecture"):
        table.add_column(col, justify="left" if col in ("stage", "model", "architecture")
                         else "right", no_wrap=col != "architecture")
    rows = sorted(record.get("rows", []),  # what won first, as the leaderboard's final rows
                  key=lambda r: -r["test_accuracy"] if r.get("test_accuracy") is not None
                  else math.inf)
    for r in rows:
        wall = _duration(r.get("wall_seconds")) + (" (reused)" if r.get("reused") else "")
        table.add_row(r["stage"], str(r.get("name", r.get("trial"))), _test_accuracy(r),
                      _fmt(r.get("val_accuracy")), _fmt(r.get("params")),
                      _fmt(r.get("seconds_per_epoch"), 1), _fmt(r.get("epochs")), wall,
                      _fmt(r.get("inference_ms_per_image"), 2),
                      _fmt(r.get("screening_val_accuracy")), r.get("architecture") or "",
                      style=STAGE_STYLES.get(r["stage"]))
    return table


def final_lines(record: Mapping[str, Any]) -> list[str]:
    """What a final table says under it: the ensemble stage, what is delivered and how it
    compares with the control, and the search's pick against the control."""
    lines = []
    stage = record.get("ensemble") or {}
    if stage and not stage.get("chosen"):
        lines.append(f"No ensemble: {stage.get('reason')}.")
    delivered = record.get("delivered") or {}
    if delivered:
        test = delivered.get("test_accuracy")
        lines.append(f"Delivered: {delivered['name']} ({_fmt(delivered.get('params'))} params"
                     + (f", test accuracy {test:.4f}" if test is not None else "") + ").")
        versus = (delivered.get("control") or {}).get("line")
        control = (record.get("control") or {}).get("line")
        if versus and versus != control:
            lines.append(versus)
    if (record.get("control") or {}).get("line"):
        lines.append(record["control"]["line"])
    # a search of several objectives: the best model of each budget (finalize writes them:
    # they are read from the results, a layer above this one)
    lines += record.get("front_lines") or []
    return lines


def values_table(values: Mapping[str, Any], title: str = "Hyperparameters") -> Table:
    table = Table(title=title)
    table.add_column("name")
    table.add_column("value", justify="right")
    for name in sorted(values):
        table.add_row(name, _fmt(values[name], 6) if isinstance(values[name], float)
                      else str(values[name]))
    return table


def history_table(rows: Sequence[Mapping[str, Any]], title: str = "History") -> Table:
    table = Table(title=title)
    cols = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
    for col in cols:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*(str(row[c]) if c == "epoch" else
                        (f"{row[c]:.2e}" if c == "lr" else _fmt(row.get(c), 2 if c == "seconds"
                                                               else 4)) for c in cols))
    return table


def importance_table(table, n_trials: int, resamples: int, title: str = "") -> Table:
    """Importance per hyperparameter, its spread and how many trials had it."""
    t = Table(title=title or f"Hyperparameter importance: share of val accuracy's variance, "
              f"less a shuffled copy's ({n_trials} finished configurations; ± sd over "
              f"{resamples} bootstrap resamples)")
    for col, justify in (("#", "right"), ("hyperparameter", "left"), ("importance", "right"),
                         ("± sd", "right"), ("kind", "left"), ("in trials", "right")):
        t.add_column(col, justify=justify)
    for _, row in table.iterrows():
        share = row["importance"]
        bar = "█" * round(20 * share) if share == share and share > 0 else ""
        t.add_row(str(row["rank"]), row["hyperparameter"], f"{_fmt(share, 3)} {bar:<20}",
                  _fmt(row["std"], 3), row["kind"], f"{row['present']}/{n_trials}")
    return t


def slices_table(summary, title: str = "Val accuracy by value") -> Table:
    """``analysis.slice_summary``: per hyperparameter, each value (or range) with its trials,
    mean and best validation accuracy."""
    t = Table(title=title)
    for col, justify in (("hyperparameter", "left"), ("value", "left"), ("trials", "right"),
                         ("mean val acc", "right"), ("best", "right")):
        t.add_column(col, justify=justify)
    previous = None
    for _, row in summary.iterrows():
        name = row["hyperparameter"] if row["hyperparameter"] != previous else ""
        previous = row["hyperparameter"]
        t.add_row(name, str(row["value"]), str(row["trials"]), _fmt(row["mean"]),
                  _fmt(row["best"]))
    return t


def search_history_table(history, baselines, title: str = "Search history") -> Table:
    """The trials that raised the best so far, and where the baselines sit."""
    t = Table(title=title)
    for col, justify in (("trial #", "right"), ("trial", "left"), ("min from start", "right"),
                         ("val acc", "right"), ("best so far", "right"),
                         ("architecture", "left")):
        t.add_column(col, justify=justify)
    previous = None
    for _, row in history.iterrows():
        if previous is not None and row["best_so_far"] <= previous:
            continue
        previous = row["best_so_far"]
        minutes = row["elapsed_s"] / 60 if row["elapsed_s"] == row["elapsed_s"] else None
        t.add_row(str(row["number"]), str(row["trial"]), _fmt(minutes, 1),
                  _fmt(row["val_accuracy"]), _fmt(row["best_so_far"]), row["architecture"])
    for _, base in baselines.iterrows():
        t.add_row("", base["model"], "", _fmt(base["val_accuracy"]), "",
                  f"(baseline on the same data, {base['epochs']} epochs)", style="bold cyan")
    return t


def value_order(value: Any) -> tuple[int, float, str]:
    """Numbers in order, then the other values by name, then ``absent``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1 + (value == "absent"), 0.0, str(value))
