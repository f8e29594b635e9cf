"""Figures read at a glance, checked on the drawn figure itself: no two texts overlap (from the
text artists' boxes), names of crowded points are moved apart, legends list only what is drawn
and sit outside the data, the importance figure has no empty rows, epochs get whole ticks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from importance_sets import LOG, trial_set

from fmnist_search import analysis, plots

DOCS_POINTS = Path(__file__).resolve().parents[1] / "docs" / "compare.csv"


def _docs_points() -> list[dict]:
    """The points of the README's compare figure (the standard search, 6 epochs each, and the
    baselines on its data), where model1-model4 sit within a few pixels of each other."""
    with DOCS_POINTS.open() as fh:
        rows = list(csv.DictReader(fh))
    return [{"kind": r["kind"], "project": r["project"], "trial": r["trial"], "epochs": 6,
             "val_accuracy": float(r["val_accuracy"]), "params": int(r["params"]),
             "seconds_per_epoch": float(r["seconds_per_epoch"])} for r in rows]


def _legend(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def _inside(fig) -> bool:
    renderer = plots._draw(fig)
    return all(fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1
               and fig.bbox.y0 - 1 <= box.y0 and box.y1 <= fig.bbox.y1 + 1
               for _, box in plots._text_boxes(fig, renderer))


def test_the_check_finds_overlapping_texts():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.subplots()
    ax.text(0.5, 0.5, "model1")
    ax.text(0.5, 0.5, "model2")
    assert ("model1", "model2") in plots.overlapping_texts(fig)


def test_compare_names_crowded_baselines_without_overlap():
    points = _docs_points()
    fig = plots.compare_figure(points, "cnn-bayesian: accuracy vs cost")
    assert plots.overlapping_texts(fig) == []
    assert _inside(fig)
    names = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert sorted(names) == sorted(2 * ["model1", "model2", "model3", "model4", "model6"])
    labels = _legend(fig)
    assert "report baselines" in labels and "Pareto front (6 epochs)" in labels
    for ax in fig.axes:  # the legend is outside every panel
        assert not fig.legends[0].get_window_extent().overlaps(ax.get_window_extent())


def test_compare_legend_only_what_is_drawn_and_a_front_per_budget():
    points = [{"kind": "trial", "project": "hb", "trial": f"{i:02d}", "epochs": 1 + 2 * (i % 2),
               "val_accuracy": 0.8 + 0.01 * i, "params": 1000 * (i + 1),
               "seconds_per_epoch": 1.0 + i} for i in range(8)]
    fig = plots.compare_figure(points)
    labels = _legend(fig)
    assert "report baselines" not in labels
    assert {"Pareto front (1 epoch)", "Pareto front (3 epochs)"} <= set(labels)
    assert plots.overlapping_texts(fig) == []


def _importance(name="weak_beside_noise", n=40):
    values, scores = trial_set(name, n)
    return analysis.importance_from_values(name, values, scores, LOG, resamples=3)


def test_importance_figure_shows_non_zero_rows_and_one_others_row():
    imp = _importance()
    fig = analysis.figures(analysis.Analysis(
        "weak", pd.DataFrame(), imp, pd.DataFrame(columns=["number"]),
        pd.DataFrame(), pd.DataFrame(columns=["hyperparameter"]), LOG))["importance"]
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    big = imp.table[imp.table["importance"] >= plots.SHOWN]
    assert len(ticks) == len(big) + 1 and ticks[-1].endswith(f"others (each < {plots.SHOWN})")
    assert ticks[0] == f"filters_1 ({imp.table.iloc[0]['present']})"
    assert plots.overlapping_texts(fig) == [] and _inside(fig)  # the title fits


def test_history_and_slices_whole_epochs_and_no_overlap():
    n = 24
    rng = np.random.default_rng(0)
    history = pd.DataFrame({
        "trial": [f"{i:02d}" for i in range(n)], "number": range(1, n + 1),
        "val_accuracy": rng.uniform(0.8, 0.9, n), "epochs": [1, 2, 3] * (n // 3),
        "elapsed_s": np.arange(n) * 60.0})
    history["best_so_far"] = history["val_accuracy"].cummax()
    history["best_by_time"] = history["best_so_far"]
    baselines = pd.DataFrame([{"model": "model1", "val_accuracy": 0.85, "epochs": 3}])
    fig = plots.history_figure(history, baselines, "hb")
    assert {"configuration, 1 epoch", "configuration, 3 epochs",
            "baseline model1 (3 ep)"} <= set(_legend(fig))
    assert plots.overlapping_texts(fig) == [] and _inside(fig)
    slices = pd.DataFrame({"hyperparameter": analysis.EPOCHS, "trial": history["trial"],
                           "value": history["epochs"], "val_accuracy": history["val_accuracy"]})
    fig = plots.slices_figure(slices, set(), "hb")
    plots._draw(fig)
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert _legend(fig) == [] and plots.overlapping_texts(fig) == []


@pytest.mark.parametrize(("n", "top"), [(3, 6), (30, 4), (30, 6)])
def test_analysis_figures_of_a_project_have_no_overlap(tmp_path, n, top):
    from synthetic import write_project

    write_project(tmp_path, "synth", n=n)
    found = analysis.analyze(tmp_path, "synth", top=top, resamples=2)
    assert set(analysis.figures(found)) == ({"importance", "history", "slices"} if n >= 20
                                            else {"history", "slices"})
    for stem, fig in analysis.figures(found).items():
        assert plots.overlapping_texts(fig) == [], stem
        assert _inside(fig), stem
