"""BOHB (``tuning/bohb.py``): the oracle on its own (no training), then real searches: one that
ends on model proposals, a ``kill -9`` and resume, and two workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras_tuner as kt
import numpy as np
import pytest
from conftest import search_args

from fmnist_search import results, store
from fmnist_search.cli import main
from fmnist_search.presets import BohbSettings
from fmnist_search.tuning.bohb import PROPOSAL, BohbOracle, Encoding, config_key
from fmnist_search.tuning.tuner import DefaultFirst

# --------------------------------------------------------------------------- the oracle alone


def _space() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    hp.Choice("head", ["flatten", "gap"])
    with hp.conditional_scope("head", ["flatten"]):
        hp.Int("units", 8, 32, step=8)
    hp.Fixed("stages", 1)
    return hp


def _oracle(tmp_path, space=None, default_first=False, max_epochs=1, iterations=30, **settings):
    cls = type("DefaultFirstBohb", (DefaultFirst, BohbOracle), {}) if default_first \
        else BohbOracle
    oracle = cls(objective=kt.Objective("score", "max"), hyperparameters=space or _space(),
                 seed=7, max_epochs=max_epochs, factor=3, hyperband_iterations=iterations,
                 bohb=BohbSettings(**{"random_fraction": 0.0, "min_points_in_model": 3,
                                      **settings}))
    oracle._set_project_dir(str(tmp_path), "p")
    return oracle


def _score(values) -> float:
    """Best at x = 0.3 with the flatten head."""
    return -abs(values["x"] - 0.3) + (0.1 if values["head"] == "flatten" else 0.0)


def _run(oracle, n: int, score=_score) -> list[dict]:
    out = []
    for i in range(n):
        trial = oracle.create_trial(f"t{i}")
        oracle.update_trial(trial.trial_id, {"score": score(trial.hyperparameters.values)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        out.append(dict(trial.hyperparameters.values))
    return out


def test_proposals_come_from_the_model_once_a_budget_has_enough_results(tmp_path):
    tried = _run(_oracle(tmp_path), 20)
    sources = [v[PROPOSAL] for v in tried]
    # N_min = 3: the model needs N_min + 2 = 5 results at a budget; random_fraction 0.
    assert sources == ["random"] * 5 + ["model"] * 15
    late = tried[-8:]  # once the good density has a few points near the optimum
    assert np.mean([abs(v["x"] - 0.3) for v in late]) < 0.1
    assert np.mean([abs(v["x"] - 0.3) for v in tried[:5]]) > 0.1  # the random ones were not
    assert all(v["head"] == "flatten" for v in late)


def test_the_random_fraction_is_kept(tmp_path):
    tried = _run(_oracle(tmp_path, random_fraction=0.5), 30)
    later = [v[PROPOSAL] for v in tried[5:]]
    assert 0.2 < later.count("random") / len(later) < 0.8


def test_model_proposals_never_set_an_inactive_hyperparameter(tmp_path):
    """``units`` exists only under the flatten head; the densities use what is active."""
    def score(values):  # the gap head is the good one
        return values["x"] if values["head"] == "gap" else 0.0

    tried = _run(_oracle(tmp_path), 15, score)
    model = [v for v in tried if v[PROPOSAL] == "model"]
    assert model and sum(v["head"] == "gap" for v in model) >= len(model) - 1
    for values in tried:
        assert ("units" in values) == (values["head"] == "flatten")
        assert values["stages"] == 1  # a Fixed one is kept, not modelled
    encoding = Encoding.of(_space())
    assert [hp.name for hp in encoding.dims] == ["x", "head", "units"]
    assert np.isnan(encoding.encode({"x": 0.5, "head": "gap"})[2])


def test_no_configuration_is_proposed_twice(tmp_path):
    hp = kt.HyperParameters()
    hp.Int("a", 0, 2)
    hp.Int("b", 0, 2)
    tried = _run(_oracle(tmp_path, space=hp, min_points_in_model=1), 9,
                 lambda v: -abs(v["a"] - 1) - abs(v["b"] - 1))
    assert len({config_key(v) for v in tried}) == 9  # the whole 3 x 3 space, once each


def test_a_reloaded_oracle_proposes_what_the_first_would_have(tmp_path):
    """Its generator is in its saved state, its results are Keras Tuner's trials."""
    first = _oracle(tmp_path)
    _run(first, 7)
    first.save()  # as the tuner does after each trial (Keras Tuner's end_trial saves before
    # it drops the trial from the ongoing ones)
    saved = json.loads((tmp_path / "p" / "oracle.json").read_text())
    assert saved["bohb"]["rng"]["bit_generator"] == "PCG64"
    again = _oracle(tmp_path)
    again.reload()
    a = first.create_trial("next").hyperparameters.values
    b = again.create_trial("next").hyperparameters.values
    assert a == b and a[PROPOSAL] == "model"


def test_promotions_and_the_default_point_are_named(tmp_path):
    oracle = _oracle(tmp_path, default_first=True, max_epochs=3, iterations=1)
    tried = _run(oracle, 6)
    assert tried[0][PROPOSAL] == "default" and tried[0]["x"] == 0.0  # the space's default
    promoted = [v for v in tried if "tuner/trial_id" in v]
    assert promoted and all(v[PROPOSAL] == "promoted" for v in promoted)


# --------------------------------------------------------------------------- real searches

PRESET = ('tuner = "bohb"\ntrials = {trials}\nepochs = 1\niterations = {trials}\npatience = 0\n'
          "[bohb]\nrandom_fraction = 0.0\nmin_points_in_model = 2\n")


def _bohb_args(csv_data, tmp_path, project: str, trials: int, *extra) -> list[str]:
    """A tiny BOHB search: 1-epoch trials (Hyperband with one bracket of one trial, so every
    trial is a new configuration at budget 1), the model from the 5th trial on."""
    preset = tmp_path / "bohb.toml"
    preset.write_text(PRESET.format(trials=trials))
    args = search_args(csv_data, tmp_path, project, trials, "--search", str(preset), *extra)
    args[args.index("random")] = "bohb"
    return args


def _records(root: Path, project: str) -> list[dict]:
    return [store.read_trial_record(d) for d in store.trial_dirs(root / project)]


def _distinct(records: list[dict]) -> bool:
    return len({config_key(r["values"]) for r in records}) == len(records)


@pytest.mark.slow
def test_a_tiny_bohb_search_ends_on_model_proposals(tmp_path, csv_data, capsys):
    root = tmp_path / "res"
    assert main(_bohb_args(csv_data, tmp_path, "b", 7)) == 0
    assert "bohb tuner, 7 trials" in capsys.readouterr().out
    records = _records(root, "b")
    assert [r["status"] for r in records] == ["COMPLETED"] * 7
    assert [r["proposal"] for r in records] == ["random"] * 4 + ["model"] * 3
    assert _distinct(records)
    for r in records:  # the tiny space's dense_units_1 exists only with a dense layer
        assert ("dense_units_1" in r["values"]) == (r["values"]["dense_layers"] == 1)
    rows = results.trial_rows(root, "b")
    assert [r["proposal"] for r in rows][-1] == "model"
    assert main(["show", "b", records[-1]["trial_id"], "--results-dir", str(root)]) == 0
    assert "proposed by BOHB: the model" in capsys.readouterr().out


@pytest.mark.slow
def test_kill_9_then_resume_repeats_no_trial_and_no_configuration(tmp_path, csv_data):
    root = tmp_path / "res"
    cmd = [sys.executable, "-m", "fmnist_search", *_bohb_args(csv_data, tmp_path, "k", 7)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180

    def finished() -> list[str]:
        return sorted(r["trial"] for r in results.trial_rows(root, "k")
                      if r["status"] == "COMPLETED")

    while time.time() < deadline and len(finished()) < 2:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = finished()
    assert len(first) >= 2, "no trial finished before the deadline"
    kept = {t: (root / "k" / f"trial_{t}" / "record.json").read_text() for t in first}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    records = _records(root, "k")
    assert [r["status"] for r in records] == ["COMPLETED"] * 7
    assert len({r["trial_id"] for r in records}) == 7 and _distinct(records)
    for t, text in kept.items():
        assert (root / "k" / f"trial_{t}" / "record.json").read_text() == text
    assert records[-1]["proposal"] == "model"
    assert "bohb" in json.loads((root / "k" / "oracle.json").read_text())


@pytest.mark.slow
def test_two_workers_complete_a_bohb_search(tmp_path, csv_data, capsys):
    root = tmp_path / "res"
    assert main(_bohb_args(csv_data, tmp_path, "w", 6, "--workers", "2")) == 0
    assert "Started 2 workers" in capsys.readouterr().out
    records = _records(root, "w")
    assert [r["status"] for r in records] == ["COMPLETED"] * 6 and _distinct(records)
    assert {r["proposal"] for r in records} <= {"random", "model"}
    assert records[0]["proposal"] == "random"
