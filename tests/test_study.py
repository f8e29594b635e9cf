"""The notebook side: ``api.open`` (a ``Study``), numpy arrays as data, and the example
notebook docs/example.ipynb, executed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_SPACE
from synthetic import write_project

from fmnist_search import api, arrays, results, store
from fmnist_search.cli import main
from fmnist_search.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- arrays


def _images(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose brightness says the class (so one epoch learns something), 0-9 in turn."""
    y = np.arange(n) % 10
    x = rng.integers(0, 60, (n, 28, 28)) + (y * 20)[:, None, None]
    return x.astype(np.uint8), y


def test_arrays_are_checked_and_normalised(rng):
    x, y = _images(rng, 40)
    base = arrays.checked(x, y)
    for shaped in (x[..., None], x.reshape(40, 784), x.astype(np.float32) / 255.0,
                   x.astype(np.int64)):
        assert np.array_equal(arrays.checked(shaped, y)["x_train"], base["x_train"])
    assert arrays.digest(arrays.checked(x.astype(np.float32) / 255.0, y)) == arrays.digest(base)
    assert set(arrays.checked(x, y, (x[:10], y[:10]), x[:5])) == {
        "x_train", "y_train", "x_val", "y_val", "x_test"}
    bad = [((x[:, :27], y), "shape"), ((x, y[:-1]), "one label per image"),
           ((x * 0 - 1.0, y), "0-255"), ((x, y + 5), "class ids are 0 to 9"),
           ((x, y + 0.5), "whole class ids"), ((np.full((3, 28, 28), np.nan), y[:3]), "NaN")]
    for args, message in bad:
        with pytest.raises(UserError, match=message):
            arrays.checked(*args)


def test_stored_arrays_are_named_by_their_content(rng, tmp_path):
    x, y = _images(rng, 40)
    first = arrays.store(tmp_path, x, y)
    again = arrays.store(tmp_path, x.copy(), y.copy())
    assert first == again and first.parent == tmp_path.resolve() / "arrays"
    assert first.stem == arrays.digest(arrays.checked(x, y))
    other = arrays.store(tmp_path, x, np.roll(y, 1))
    assert other != first and len(list(first.parent.glob("*.npz"))) == 2
    assert np.array_equal(arrays.load(first)["x_train"], x)
    first.write_bytes(other.read_bytes())  # damaged: another content under this name
    with pytest.raises(UserError, match="do not match their digest"):
        arrays.load(first)


def test_arrays_prepare_like_any_data_with_their_own_validation(rng, tmp_path):
    from fmnist_search.dataset import DataSettings, prepare

    x, y = _images(rng, 200)
    path = str(arrays.store(tmp_path, x[:150], y[:150], (x[150:180], y[150:180]),
                            (x[180:], y[180:])))
    ds = prepare(DataSettings(arrays=path, subset=0.4, seed=3))
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (60, 30, 20)
    assert ds.class_names[0] == "T-shirt/top" and ds.source == "numpy arrays"
    assert ds.fingerprint()["arrays"] == path
    assert DataSettings.from_record(ds.fingerprint()).arrays == path  # what a resume reads
    split = prepare(DataSettings(arrays=str(arrays.store(tmp_path, x, y))))
    assert (len(split.y_train), len(split.y_val), len(split.x_test)) == (160, 40, 0)
    assert split.test_note == "no test set"


# --------------------------------------------------------------------------- Study


@pytest.fixture
def synth(tmp_path) -> Path:
    write_project(tmp_path, "synth", n=25)
    return tmp_path


def test_study_best_is_the_leaderboards_top_row(synth):
    study = api.open("synth", results_dir=synth)
    board = study.leaderboard()
    top = board.iloc[0]
    assert study.best_trial["trial"] == top["trial"]
    assert study.best_value == pytest.approx(top["val_accuracy"])
    varying = [c for c in board.columns if c in study.best_params]
    assert varying and all(study.best_params[c] == top[c] for c in varying)
    assert study.best_params == results.find_trial(synth, "synth")["values"]
    assert len(study.trials_dataframe()) == 25
    assert "Study('synth'" in repr(study)
    with pytest.raises(UserError, match="No project 'nope'"):
        api.open("nope", results_dir=synth)


def test_study_front_is_not_dominated(synth):
    front = api.open("synth", results_dir=synth).front()
    board = api.trials("synth", results_dir=synth)
    assert 1 <= len(front) < len(board) and front["params"].is_monotonic_increasing
    for _, point in front.iterrows():  # no trial has fewer params and a higher accuracy
        better = board[(board["params"] <= point["params"])
                       & (board["val_accuracy"] > point["val_accuracy"])]
        assert better.empty
    assert front.iloc[-1]["trial"] == board.iloc[0]["trial"]  # the most accurate is on it


def test_study_final_names_the_delivered_model(synth):
    study = api.open("synth", results_dir=synth)
    with pytest.raises(UserError, match="has not been finalized"):
        study.final()
    rows = [{"stage": "final", "name": "synth-07", "trial": "07", "test_accuracy": 0.91},
            {"stage": "ensemble", "name": "synth-ensemble", "trial": "ensemble",
             "test_accuracy": 0.93},
            {"stage": "control", "name": "control", "trial": "control", "test_accuracy": 0.92}]
    store.write_final(synth, "synth", {"project": "synth", "rows": rows,
                                        "delivered": {"name": "synth-ensemble"}})
    final = study.final()
    assert final.attrs["delivered"] == "synth-ensemble"
    assert final["name"].tolist() == ["synth-ensemble", "control", "synth-07"]
    assert final["delivered"].tolist() == [True, False, False]


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_search_and_baseline_on_arrays_resume_and_open(rng, tmp_path):
    x, y = _images(rng, 300)
    res = tmp_path / "res"
    data = dict(x_train=x[:200], y_train=y[:200], validation=(x[200:260], y[200:260]),
                test=(x[260:], y[260:]), precision="fp32", results_dir=res)
    board = api.search(space=TINY_SPACE, search="quick", tuner="random", trials=2, epochs=1,
                       subset=1.0, project="arr", **data)
    assert len(board) == 2
    run = store.read_project(res / "arr")
    assert run["data"]["n_train"] == 200 and run["data"]["n_val"] == 60
    stored = Path(run["data"]["arrays"])
    assert stored.parent == res.resolve() / "arrays"
    trial_dirs = sorted(p.name for p in (res / "arr").glob("trial_*"))
    again = api.search(space=TINY_SPACE, search="quick", tuner="random", trials=2, epochs=1,
                       subset=1.0, project="arr", **data)  # the same arrays: resumed, done
    assert len(again) == 2 and sorted(p.name for p in (res / "arr").glob("trial_*")) == \
        trial_dirs
    assert store.read_project(res / "arr")["data"] == run["data"]
    assert len(list(stored.parent.glob("*.npz"))) == 1

    metrics = api.baseline("model1", epochs=1, **data)
    assert metrics["n_train"] == 200 and metrics["test_accuracy"] is not None
    study = api.open("arr", results_dir=res)
    top = study.leaderboard().query("kind == 'trial'").iloc[0]
    assert study.best_trial["trial"] == top["trial"]
    assert study.best_model().predict(x[260:] / 255.0, verbose=0).shape == (40, 10)
    # the command line reads the same project
    assert main(["leaderboard", "arr", "--json", "--results-dir", str(res)]) == 0
    with pytest.raises(UserError, match="x_train= and y_train="):
        api.search(space=TINY_SPACE, search="quick", x_train=x, results_dir=res)


@pytest.mark.slow
def test_the_example_notebook_runs(tmp_path):
    """docs/example.ipynb, cell by cell in a fresh kernel, on a few hundred made-up images: its
    own cells assert that ``api.open(p).best_params`` is the leaderboard's top row."""
    nbformat = pytest.importorskip("nbformat", reason="nbformat is in the dev extra")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is in the dev extra")
    pytest.importorskip("ipykernel", reason="ipykernel is in the dev extra")
    notebook = nbformat.read(ROOT / "docs" / "example.ipynb", as_version=4)
    env = {"FMNIST_RESULTS": str(tmp_path / "res"), "PYTHONPATH": str(ROOT)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    outputs = [o for cell in notebook.cells if cell.cell_type == "code"
               for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert (tmp_path / "res" / "notebook").is_dir()
