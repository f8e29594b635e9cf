"""The ensemble stage: greedy selection on synthetic probabilities, the saved model reloaded
by plain Keras in a process that cannot import fmnist_search, and the stage's decisions."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fmnist_search import ensemble, store


def _probs(y: np.ndarray, right: np.ndarray, confidence: float = 0.9,
           model: int = 0) -> np.ndarray:
    """Probabilities that put ``confidence`` on the true class where ``right``; elsewhere 0.5
    on a wrong class of the model's own (models err differently, and less surely)."""
    k = 10
    sure = np.where(right, confidence, 0.5)
    out = np.repeat(((1 - sure) / (k - 1))[:, None], k, axis=1)
    guess = np.where(right, y, (y + 1 + model) % k)
    out[np.arange(len(y)), guess] = sure
    return out


def test_selection_picks_the_complementary_model_not_the_near_copy():
    """A and A' are right on the same 80% of images, B on another 80% that overlaps them
    on 60%: A + B + (A or B) fixes images a copy of A cannot."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 3000)
    idx = rng.permutation(3000)
    a_right = np.zeros(3000, bool)
    a_right[idx[:2400]] = True
    b_right = np.zeros(3000, bool)
    b_right[idx[600:3000]] = True
    copy_right = a_right.copy()
    copy_right[idx[2400:2430]] = True  # A' is A plus 1% more: the best single model
    probs = [_probs(y, a_right), _probs(y, copy_right, 0.91), _probs(y, b_right, 0.8, 2)]
    chosen = ensemble.greedy_select(probs, y, [100, 100, 100], size=5)
    assert chosen.rounds[0]["added"] == 1  # the best single model first
    assert 2 in chosen.counts  # then the complementary one
    assert chosen.val_accuracy > max(np.mean(p.argmax(1) == y) for p in probs)
    # rounds are kept, and the best round is the one returned
    assert max(r["val_accuracy"] for r in chosen.rounds) == chosen.val_accuracy


def test_selection_respects_the_total_parameter_limit_and_repeats_for_free():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 2000)
    rights = [rng.random(2000) < p for p in (0.85, 0.84, 0.83)]
    probs = [_probs(y, r, model=i) for i, r in enumerate(rights)]
    params = [600_000, 500_000, 300_000]
    chosen = ensemble.greedy_select(probs, y, params, size=7, max_params=1_000_000)
    assert sum(params[i] for i in chosen.counts) <= 1_000_000
    assert 0 in chosen.counts and 1 not in chosen.counts  # 600k + 500k would be over
    for r in chosen.rounds:  # no round ever went over the limit
        assert params[r["added"]] <= 1_000_000
    # Nothing fits: no selection at all.
    assert ensemble.greedy_select(probs, y, params, size=3, max_params=100) is None
    # A repeated member adds weight, not parameters: only one model, picked once.
    one = ensemble.greedy_select(probs[:1], y, params[:1], size=3)
    assert one.counts == {0: 1}  # a second copy changes nothing, so it is not kept


def _member_run(root, folder: str, name: str, values: dict, x_val, x_test, stage="final",
                data=None, seed=0):
    """A run folder as runs.train_run writes it, with an untrained model of the builder (its
    augmentation layers and smoothed loss included) and its saved probabilities."""
    import keras

    from fmnist_search import builder, runs, training

    keras.utils.set_random_seed(seed)
    model = builder.build_model(values, 10, policy="float32")
    tta = bool(builder.resolve(values)["tta"])
    val = training.predict(model, x_val, tta=tta)[0]
    test = training.predict(model, x_test, tta=tta)[0]
    metrics = {"kind": stage, "model": name, "values": values, "params": model.count_params(),
               "epochs": 1, "data": data, "n_train": 100, "seed": 1, "classes": list("0123456789")}
    path = runs.write_run(root / folder / name, {**metrics, "confusion_matrix": np.eye(10).tolist(),
                                                  "per_class_split": "test"},
                          [{"epoch": 1, "loss": 1.0}], model, {"val": val, "test": test})
    return path, metrics


class _Data:
    """What the stage reads of a Dataset."""

    def __init__(self, rng, n_val=64, n_test=48):
        self.x_val = rng.random((n_val, 28, 28, 1)).astype(np.float32)
        self.y_val = rng.integers(0, 10, n_val)
        self.x_test = rng.random((n_test, 28, 28, 1)).astype(np.float32)
        self.y_test = rng.integers(0, 10, n_test)
        self.class_names = [str(i) for i in range(10)]
        self.test_note = None

    def fingerprint(self):
        return {"classes": list(range(10)), "val_fraction": 0.2, "subset": 1.0, "seed": 42}


AUGMENTED = {"stages": 1, "filters_1": 4, "aug_flip": True, "aug_translate": 2,
             "aug_erase": 0.5, "aug_erase_size": 6, "label_smoothing": 0.1, "tta": True}


def _project_with_members(tmp_path, rng, data, n=3):
    table = []
    for i in range(n):
        values = {**AUGMENTED, "filters_1": 4 + 2 * i, "tta": i != 1}
        path, metrics = _member_run(tmp_path, f"{store.FINALIZED}/p", f"p-{i}", values,
                                    data.x_val, data.x_test, data=data.fingerprint(), seed=i)
        table.append({"stage": "final", "name": f"p-{i}", "path": str(path),
                      "params": metrics["params"]})
    return table


def _force_ensemble(monkeypatch):
    """Untrained models on random labels: make the selection take two members (what it
    picks is tested above; here the saving and reloading are)."""
    real = ensemble.greedy_select

    def pick_two(val_probs, y_val, params, size=5, max_params=None):
        chosen = real(val_probs, y_val, params, size, max_params)
        return ensemble.Selection({0: 2, 2: 1}, chosen.val_accuracy + 0.5, chosen.val_loss,
                                  chosen.rounds)

    monkeypatch.setattr(ensemble, "greedy_select", pick_two)


@pytest.mark.slow
def test_saved_ensemble_reloads_with_plain_keras_and_predicts_the_same(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    data = _Data(rng)
    table = _project_with_members(tmp_path, rng, data)
    _force_ensemble(monkeypatch)
    said = []
    outcome = ensemble.run_stage(tmp_path, "p", table, data, 5, None, said.append)
    assert outcome.record["chosen"] and outcome.row is not None
    path = Path(outcome.row["path"])
    members = outcome.row["metrics"]["members"]
    assert [(m["name"], m["weight"]) for m in members] == [("p-0", 2), ("p-2", 1)]
    assert outcome.row["metrics"]["params"] == sum(m["params"] for m in members)
    # The weighted average of the members' own (TTA) probabilities is what the model computes.
    by_name = {m.name: m for m in outcome.members}
    expected = (2 * by_name["p-0"].test + by_name["p-2"].test) / 3
    saved = store.read_predictions(path)
    np.testing.assert_allclose(saved["test"], expected, atol=1e-5)
    np.save(tmp_path / "x.npy", data.x_test)

    # A process in which fmnist_search cannot be imported at all.
    script = textwrap.dedent(f"""
        import importlib.abc, json, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "fmnist_search":
                    raise ImportError("fmnist_search is not importable here")
        sys.meta_path.insert(0, Block())
        import numpy as np, keras
        model = keras.models.load_model({str(path / store.MODEL_FILE)!r})
        probs = model.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)
        np.save({str(tmp_path / 'plain.npy')!r}, probs)
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("fmnist"))))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    np.testing.assert_allclose(np.load(tmp_path / "plain.npy"), saved["test"], atol=1e-6)

    # A rerun with the same members reuses the saved ensemble.
    again = ensemble.run_stage(tmp_path, "p", table, data, 5, None, said.append)
    assert again.row["reused"] and Path(again.row["path"]) == path
    assert "not rebuilt" in said[-1]


@pytest.mark.slow
def test_one_model_gets_no_ensemble_and_old_runs_are_predicted_once(tmp_path):
    rng = np.random.default_rng(4)
    data = _Data(rng)
    table = _project_with_members(tmp_path, rng, data, n=1)
    (Path(table[0]["path"]) / store.PREDICTIONS).unlink()  # a run from before they were kept
    said = []
    outcome = ensemble.run_stage(tmp_path, "p", table, data, 5, None, said.append)
    assert not outcome.record["chosen"] and outcome.row is None
    assert outcome.record["reason"] == "one model only" and "single model stands" in said[0]
    # Its probabilities were predicted now and kept for the next time.
    assert store.read_predictions(Path(table[0]["path"]))["val"].shape == (64, 10)


def test_the_pool_takes_other_runs_of_the_same_data_only(tmp_path):
    data = {"classes": list(range(10)), "val_fraction": 0.2, "subset": 1.0, "seed": 42}
    other = {**data, "subset": 0.5}

    def fake_run(base, name, run_id, d):
        path = tmp_path / base / name / run_id
        path.mkdir(parents=True)
        (path / store.MODEL_FILE).write_text("x")
        store.write_metrics(path, {"model": name, "data": d})
        return path

    fake_run(store.BASELINES, "model3", "1", data)
    fake_run(store.BASELINES, "model1", "1", other)  # another split: not comparable
    fake_run(f"{store.FINALIZED}/p", "p-ensemble", "1", data)  # never a member
    control = fake_run(store.CONTROLS, "cnn-default", "2", data)
    fake_run(store.CONTROLS, "cnn-default", "1", data)  # older run of the same folder
    table = [{"stage": "final", "name": "p-0", "path": str(control)},  # the pick is the control
             {"stage": "control", "name": "cnn-default", "path": str(control)}]
    names = [(n, s) for n, s, _ in ensemble.pool_runs(tmp_path, "p", table, data)]
    assert names == [("cnn-default", "control"), ("model3", "pool")]


KILL_DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from fmnist_search import ensemble
real = ensemble.greedy_select
def two(val_probs, y_val, params, size=5, max_params=None):  # random data: force 2 members
    chosen = real(val_probs, y_val, params, size, max_params)
    return ensemble.Selection({{0: 1, 1: 1}}, chosen.val_accuracy + 0.5, chosen.val_loss,
                              chosen.rounds)
ensemble.greedy_select = two
if {kill!r}:
    from fault_injection import install
    install("metrics.json", 1, "kill")  # the ensemble's own metrics.json, half written
from fmnist_search.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_kill_during_the_ensemble_stage_then_resume(tmp_path, csv_data, capsys):
    """The models are trained (a finalize without an ensemble); a second finalize is killed
    with SIGKILL while it writes the ensemble's run folder; the rerun finishes the stage, and
    no half-written ensemble is ever read or delivered."""
    from conftest import search_args

    from fmnist_search.cli import main

    preset = tmp_path / "tiny.toml"
    preset.write_text('tuner = "random"\ntrials = 2\nepochs = 1\nsubset = 0.5\npatience = 0\n'
                      'precision = "fp32"\nfinalize_top = 2\nfinal_epochs = 1\n'
                      'ensemble_size = 0\n')
    root = tmp_path / "res"
    assert main(search_args(csv_data, tmp_path, "k", 2, "--search", str(preset))) == 0
    first = store.read_final(root, "k")
    assert first["complete"] and not first["ensemble"]["chosen"]
    tests = str(Path(__file__).parent)

    def finalize(kill: bool) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", KILL_DRIVER.format(tests=tests, kill=kill),
                               "finalize", "k", "--ensemble-size", "5", "--results-dir",
                               str(root)], capture_output=True, text=True, timeout=600)

    killed = finalize(kill=True)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    record = store.read_final(root, "k")
    assert not record["complete"]  # says so: rerun finalize
    ensembles = root / store.FINALIZED / "k" / "k-ensemble"
    assert store.run_dirs(ensembles.parent, "", ensembles.name) == []  # nothing finished

    done = finalize(kill=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    record = store.read_final(root, "k")
    assert record["complete"] and record["ensemble"]["chosen"]
    assert record["delivered"]["stage"] == "ensemble"
    [saved] = store.run_dirs(ensembles.parent, "", ensembles.name)
    assert {m["name"] for m in store.read_metrics(saved)["members"]} <= {
        r["name"] for r in record["rows"]}
    assert "not retrained" in done.stdout  # the models were reused, only the stage ran again

    # What a user does next: the leaderboard shows it, predict writes its Kaggle CSV.
    capsys.readouterr()
    assert main(["leaderboard", "k", "--json", "--results-dir", str(root)]) == 0
    stages = {json.loads(line)["stage"] for line in capsys.readouterr().out.splitlines()}
    assert "ensemble" in stages
    out = tmp_path / "sub.csv"
    assert main(["predict", "k-ensemble", "--out", str(out), "--results-dir", str(root)]) == 0
    import pandas as pd

    submission = pd.read_csv(out)
    assert list(submission.columns) == ["id", "label"] and len(submission) == 50
    assert submission["label"].between(0, 9).all()


@pytest.mark.slow
def test_a_pick_that_is_the_control_is_compared_and_pooled_as_the_control(tmp_path, csv_data):
    """One trial, the space's default point: the pick trains in the control's folder (one run,
    two rows). The stage pools it once, as the control; both lines are still said."""
    from conftest import search_args

    from fmnist_search.cli import main

    preset = tmp_path / "one.toml"
    preset.write_text('tuner = "random"\ntrials = 1\nepochs = 1\nsubset = 0.5\npatience = 0\n'
                      'precision = "fp32"\nfinalize_top = 1\nfinal_epochs = 1\n'
                      'start_from_default = true\nfinal_baselines = ["model1"]\n'
                      'final_baselines_epochs = true\n')
    root = tmp_path / "res"
    assert main(search_args(csv_data, tmp_path, "c", 1, "--search", str(preset))) == 0
    record = store.read_final(root, "c")
    assert record["rows"][0]["path"] == record["rows"][1]["path"]  # the pick is the control
    assert record["control"]["verdict"] == "is"
    stages = [(c["name"], c["stage"]) for c in record["ensemble"]["candidates"]]
    assert stages[:2] == [("tiny_space-default", "control"), ("model1", "baseline")]
    versus = record["delivered"]["control"]
    assert versus is not None and versus["control"] == "tiny_space-default"
