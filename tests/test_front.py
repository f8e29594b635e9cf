"""The front as a result, on hand-made projects (nothing trains): the leaderboard's Pareto rank
and ``--front``, ``compare``'s front beside the baselines, ``api.front``, finalize's spread
and its "the best model under ..." lines, and a project of one objective left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fmnist_search import api, catalog, finalize, pareto, plots, results, store
from fmnist_search.cli import main

DATA = {"classes": list(range(10)), "val_fraction": 0.2, "subset": 0.25, "seed": 42,
        "train_csv": None, "test_csv": None, "n_train": 12000, "n_val": 3000, "n_test": 10000}
GOALS = ["val_accuracy:max", "params:min"]
# (params, val_accuracy, epochs): the front is 20K, 40K, 60K, 200K and 900K; "dup" is the
# 60K configuration trained to 3 epochs, which stands for it (its 1-epoch trial is unranked)
TRIALS = {"00": (20_000, 0.80, 1), "01": (40_000, 0.84, 1), "02": (60_000, 0.83, 1),
          "03": (200_000, 0.89, 1), "04": (300_000, 0.85, 1), "05": (900_000, 0.91, 1),
          "06": (950_000, 0.90, 1), "07": (60_000, 0.86, 3)}


def _write_project(root: Path, project: str, objectives: list[str] | None) -> None:
    path = root / project
    path.mkdir(parents=True)
    preset = {"tuner": "motpe" if objectives else "hyperband", "epochs": 9, "subset": 0.25,
              "finalize_top": 3, "final_epochs": 15, **({"objectives": objectives}
                                                        if objectives else {})}
    store.write_project(path, {"project": project, "space_name": "cnn",
                                "space_path": str(catalog.space_path("cnn")), "data": DATA,
                                "preset": preset, "identity": {}})
    for trial, (params, accuracy, epochs) in TRIALS.items():
        config = "02" if trial == "07" else trial
        values = {"filters_1": 32, "stages": 1, "dense_units_1": int(config) * 32 + 32,
                  **({"tuner/epochs": 3} if trial == "07" else {})}
        folder = path / f"trial_{trial}"
        folder.mkdir()
        store.write_json(folder / store.TRIAL_JSON, {"trial_id": trial, "status": "COMPLETED",
                                                       "hyperparameters": {"values": values}})
        store.write_trial_record(folder, {
            "trial_id": trial, "values": values, "status": "COMPLETED", "started": 1.0,
            "finished": 2.0, "val_accuracy": accuracy, "val_loss": 1 - accuracy,
            "params": params, "seconds_per_epoch": params / 1e5, "epochs": epochs,
            "architecture": f"arch {trial}", "history": [],
            **({"ms_per_image": params / 1e7, "model_bytes": 4 * params,
                "inference": {"batch_size": 512, "images": 1024, "threads": 2}}
               if objectives else {})})  # measured by a search of several objectives only


def _write_baseline(root: Path) -> None:
    run = root / store.BASELINES / "model6" / "20261207-120000-000000"
    run.mkdir(parents=True)
    store.write_metrics(run, {"model": "model6", "kind": "baseline", "val_accuracy": 0.82,
                               "params": 100_293, "seconds_per_epoch": 3.0, "epochs": 9,
                               "data": DATA, "architecture": "model6"})
    (run / store.MODEL_FILE).write_bytes(b"not read")


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "res"
    _write_project(root, "front", GOALS)
    _write_project(root, "single", None)
    _write_baseline(root)
    return root


def _leaderboard(root: Path, capsys, *extra: str) -> str:
    assert main(["leaderboard", *extra, "--top", "0", "--results-dir", str(root)]) == 0
    return capsys.readouterr().out


def test_the_leaderboard_marks_each_trials_pareto_rank(root, capsys):
    out = _leaderboard(root, capsys, "front", "--json")
    ranks = {json.loads(line)["trial"]: json.loads(line).get("pareto_rank")
             for line in out.splitlines()}
    assert ranks == {"00": 0, "01": 0, "02": None, "03": 0, "04": 1, "05": 0, "06": 1,
                     "07": 0, "model6": None}
    table = _leaderboard(root, capsys, "front")
    assert "front" in table and "0 *" in table and "ms/img" in table


def test_a_project_of_one_objective_has_no_front_column(root, capsys):
    table = _leaderboard(root, capsys, "single")
    assert "front" not in table.split("\n", 3)[1] and "ms/img" not in table
    rows = [json.loads(line) for line in _leaderboard(root, capsys, "single", "--json")
            .splitlines()]
    assert all("pareto_rank" not in r for r in rows)


def test_front_shows_the_front_alone(root, capsys):
    rows = [json.loads(line) for line in _leaderboard(root, capsys, "front", "--front",
                                                      "--json").splitlines()]
    assert sorted(r["trial"] for r in rows) == ["00", "01", "03", "05", "07"]
    assert {r["kind"] for r in rows} == {"trial"}  # no baselines, no final models
    assert "Pareto front" in _leaderboard(root, capsys, "front", "--front")
    # a project of one objective: its front of accuracy against parameters
    single = [json.loads(line) for line in _leaderboard(root, capsys, "single", "--front",
                                                        "--json").splitlines()]
    assert sorted(r["trial"] for r in single) == ["00", "01", "03", "05", "07"]


def test_api_front_is_a_table_of_the_front(root):
    table = api.front("front", results_dir=root)
    assert table["trial"].tolist() == ["05", "03", "07", "01", "00"]  # most accurate first
    assert set(table["pareto_rank"]) == {0}
    assert table.attrs["objectives"] == GOALS
    assert {"params", "ms_per_image", "model_bytes", "dense_units_1"} <= set(table.columns)
    assert len(api.front("front", results_dir=root, all_ranks=True)) == 7


def test_compare_draws_the_front_beside_the_labelled_baselines(root, capsys):
    out = root.parent / "c.png"
    assert main(["compare", "front", "--out", str(out), "--results-dir", str(root)]) == 0
    table = pd.read_csv(out.with_suffix(".csv"))
    on_front = table.loc[table["pareto_rank"] == 0, "trial"].astype(str).str.zfill(2)
    assert sorted(on_front) == ["00", "01", "03", "05", "07"]
    rows = pareto.mark(root, results.collect(root, ["front"], baselines=True))
    fig = plots.compare_figure(rows, fronts=pareto.searched_fronts(root, rows))
    labels = fig.legends[0].get_texts() if fig.legends else []
    assert "Pareto front: front (val_accuracy:max, params:min)" in [t.get_text()
                                                                    for t in labels]
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "model6" in texts  # the report's model, named
    assert plots.overlapping_texts(fig) == []
    three = plots.compare_figure(rows, fronts={"front": (*GOALS, "ms_per_image:min")})
    assert len(three.axes) == 3 and "inference ms" in three.axes[2].get_xlabel()


def test_finalize_trains_a_spread_of_the_front_with_its_extremes(root):
    _, candidates, settings = finalize.plan_final_table(finalize.FinalizeRequest(root, "front"))
    chosen = [c.source["trial"] for c in candidates if c.stage == "final"]
    assert chosen[:2] == ["05", "00"] and len(chosen) == 3  # the extremes, then the farthest
    front = settings["front"]
    assert front["objectives"] == GOALS and front["spread"] == chosen
    assert sorted(m["trial"] for m in front["members"]) == ["00", "01", "03", "05", "07"]
    _, single, settings = finalize.plan_final_table(finalize.FinalizeRequest(root, "single"))
    assert "front" not in settings  # one objective: the one-standard-error rule, as before
    assert [c.source["trial"] for c in single if c.stage == "final"][0] == "05"


def test_the_best_model_under_each_budget_with_its_test_accuracy():
    members = [{"trial": t, "params": p, "val_accuracy": a, "ms_per_image": p / 1e7}
               for t, (p, a, _) in TRIALS.items()]

    def final(trial, test):
        return {"stage": "final", "trial": trial, "name": f"front-{trial}", "params":
                TRIALS[trial][0], "test_accuracy": test}

    record = {"front": {"objectives": GOALS, "members": members,
                        "spread": ["00", "05", "03"]},
              "rows": [final("00", 0.85), final("03", 0.91), final("05", 0.905),
                       {"stage": "baseline", "name": "model6", "trial": "model6",
                        "params": 100_293, "test_accuracy": 0.90},
                       {"stage": "control", "name": "cnn-default", "params": 500_000,
                        "test_accuracy": 0.92}]}
    lines = pareto.budget_lines(record)
    assert lines[0] == ("The best model under 20K params / 0.002 ms: front-00, test accuracy "
                        "0.8500 (20,000 params, 0.002 ms an image).")
    assert lines[1].startswith("The best model under 200K params / 0.02 ms: front-03, test "
                               "accuracy 0.9100") and "the report's model6" in lines[1]
    # 900K tested below 200K: the 200K line is the best under 900K too, no line of its own
    assert len(lines) == 3 and "front-05" not in " ".join(lines[:2])
    from fmnist_search import report

    record["front_lines"] = lines  # what finalize writes into final.json
    assert lines[0] in report.final_lines(record)
