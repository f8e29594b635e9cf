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
    with pytest.raises(UserError, match="trials"):
        api.search(space=TINY_SPACE, search="quick", project="p", trials=0,
                   results_dir=tmp_path)
    with pytest.raises(UserError, match="tuner 'grid'; valid: random, bayesian, hyperband"):
        api.search(space=TINY_SPACE, search="quick", project="p", tuner="grid",
                   results_dir=tmp_path)
    with pytest.raises(UserError, match="not a duration"):
        api.search(space=TINY_SPACE, search="quick", project="p", max_time="soon",
                   results_dir=tmp_path)


def test_an_unknown_option_names_the_valid_ones(tmp_path):
    with pytest.raises(UserError, match=r"unknown option\(s\) trails; valid: .*trials"):
        api.search(space=TINY_SPACE, search="quick", trails=3, results_dir=tmp_path)


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


@pytest.mark.slow
def test_search_and_finalize_run_without_the_cli(csv_data, tmp_path):
    """The library is the pipeline: a notebook's search and finalize never import cli/."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    res = tmp_path / "res"
    code = (
        "import sys\n"
        "from fmnist_search import api\n"
        f"data = dict(train_csv={csv_data[0]!r}, test_csv={csv_data[1]!r}, precision='fp32',"
        f" results_dir={str(res)!r})\n"
        f"board = api.search(space={TINY_SPACE!r}, search='quick', tuner='random', trials=2,"
        " epochs=1, subset=0.5, project='lib', **data)\n"
        f"final = api.finalize('lib', top=1, epochs=1, results_dir={str(res)!r})\n"
        "cli = sorted(m for m in sys.modules if m.startswith('fmnist_search.cli'))\n"
        "print('RESULT', cli, len(board), sorted({r['stage'] for r in final['rows']}))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = proc.stdout[proc.stdout.index("RESULT"):]
    assert result.startswith("RESULT [] 2 [") and "'final'" in result, result
    assert (res / "finalized" / "lib" / "final.json").is_file()
