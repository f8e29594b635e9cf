"""MO-TPE (``tuning/motpe.py``): the oracle on its own, driven by a fake trial runner (no
training) on a synthetic problem with a known front, Hyperband's promotions by rank and
crowding, its saved state; then real searches: a tiny one, a ``kill -9`` and resume, two
workers."""

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

from fmnist_search import pareto, results, store
from fmnist_search.cli import main
from fmnist_search.presets import BohbSettings
from fmnist_search.tuning.bohb import PROPOSAL, config_key
from fmnist_search.tuning.motpe import MotpeOracle

GOALS = ("val_accuracy:max", "params:min")

# --------------------------------------------------------------------------- the oracle alone


def _space() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    for name in ("x", "y1", "y2"):
        hp.Float(name, 0.0, 1.0)
    hp.Choice("c", ["a", "b", "c"])
    return hp


def _g(values) -> float:
    return 1 + 2 * (values["y1"] + values["y2"]) + (0.0 if values["c"] == "a" else 1.0)


def zdt1(values) -> tuple[float, float]:
    """ZDT1 (Zitzler, Deb and Thiele 2000) on x, y1, y2 and a category: f1 = x, f2 = g (1 -
    sqrt(f1 / g)), g = 1 + 2 (y1 + y2) + (0 if c is "a" else 1). The front: y1 = y2 = 0, c =
    "a", f2 = 1 - sqrt(f1); its hypervolume up to (1, 3) is 3 - 1/3."""
    g, f1 = _g(values), values["x"]
    return f1, g * (1 - np.sqrt(f1 / g))


REFERENCE = (1.0, 3.0)
TRUE_HV = 3 - 1 / 3


def _metrics(values, epochs: int = 1) -> dict[str, float]:
    """The two objectives as a trial reports them: f1 as 10^(3 + 3 f1) parameters (the oracle
    compares costs on a log scale, so it sees f1), f2 as an accuracy (1 - f2 / 10), less for
    fewer epochs (a longer training is better, in the same order)."""
    f1, f2 = zdt1(values)
    return {"val_accuracy": (1 - f2 / 10) * (1 - 0.1 / epochs), "params": 10 ** (3 + 3 * f1)}


def _oracle(tmp_path, seed=7, max_epochs=1, iterations=60, name="p", **settings):
    oracle = MotpeOracle(objective=kt.Objective("val_accuracy", "max"),
                         hyperparameters=_space(), seed=seed, max_epochs=max_epochs, factor=3,
                         hyperband_iterations=iterations, objectives=GOALS,
                         bohb=BohbSettings(**{"min_points_in_model": 4, **settings}))
    oracle._set_project_dir(str(tmp_path), name)
    oracle.verbose = 0
    return oracle


def run_fake(oracle, n: int, metrics=_metrics) -> list[dict]:
    """The fake trial runner: create, report, end, ``n`` times (or until Hyperband stops)."""
    out = []
    for i in range(n):
        trial = oracle.create_trial(f"t{i}")
        if trial.status == "STOPPED":
            break
        values = dict(trial.hyperparameters.values)
        oracle.update_trial(trial.trial_id, metrics(values, values.get("tuner/epochs", 1)))
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        out.append(values)
    return out


def _hv(tried: list[dict]) -> float:
    return pareto.hypervolume(np.array([zdt1(v) for v in tried]), REFERENCE)


def test_mo_tpe_converges_toward_a_known_front_faster_than_random_search(tmp_path):
    """Same budget (40 trials), same seeds: MO-TPE (a third of its draws still random) against
    the same oracle drawing every configuration uniformly."""
    found, uniform = [], []
    for seed in range(1, 6):
        tried = run_fake(_oracle(tmp_path, seed, name=f"m{seed}"), 40)
        drawn = run_fake(_oracle(tmp_path, seed, name=f"r{seed}", random_fraction=1.0), 40)
        found.append(_hv(tried))
        uniform.append(_hv(drawn))
        assert _hv(tried) > _hv(tried[:20])  # still improving
        # how far from the front (g = 1 on it): the model's late proposals against the draws
        late = [_g(v) for v in tried[20:] if v[PROPOSAL] == "model"]
        assert late and np.mean(late) < np.mean([_g(v) for v in drawn[20:]]) - 0.8
    print("hypervolume (true front 2.667): MO-TPE", np.round(found, 3), "random",
          np.round(uniform, 3))
    assert all(f > u for f, u in zip(found, uniform, strict=True))
    assert np.mean(found) / TRUE_HV > 0.7 > np.mean(uniform) / TRUE_HV


def test_proposals_start_after_the_first_results_and_never_repeat(tmp_path):
    tried = run_fake(_oracle(tmp_path, random_fraction=0.0), 12)
    # N_min = 4: the model needs 6 results at a budget
    assert [v[PROPOSAL] for v in tried] == ["random"] * 6 + ["model"] * 6
    assert len({config_key(v) for v in tried}) == 12


def _rung(points: list[tuple[float, float]]):
    """A fake runner that gives the i-th new configuration ``points[i]`` (accuracy, params),
    and a promoted one its parent's, a little better."""
    by_config: dict[str, tuple[float, float]] = {}

    def metrics(values, epochs):
        key = config_key(values)
        if key not in by_config:
            by_config[key] = points[len(by_config)]
        accuracy, params = by_config[key]
        return {"val_accuracy": accuracy + 0.01 * epochs, "params": params}

    return metrics, by_config


def test_rounds_promote_by_rank_then_crowding_not_by_accuracy(tmp_path):
    """Hyperband's first bracket (9 configurations of 1 epoch, 3 to 3 epochs, 1 to 9): the
    three promoted are the front's (its two extremes first), not the three most accurate."""
    points = [(0.70, 50_000), (0.88, 950_000), (0.90, 900_000), (0.75, 400_000),
              (0.80, 100_000), (0.85, 300_000), (0.60, 800_000), (0.78, 500_000),
              (0.65, 700_000)]
    metrics, by_config = _rung(points)
    tried = run_fake(_oracle(tmp_path, max_epochs=9, iterations=1, random_fraction=1.0), 13,
                     metrics)
    first = [by_config[config_key(v)] for v in tried[:9]]
    assert first == points
    to_3 = [by_config[config_key(v)] for v in tried if v["tuner/epochs"] == 3
            and "tuner/trial_id" in v]
    # front: 50K/.70, 100K/.80, 300K/.85, 900K/.90; extremes first, then the most crowded out
    assert to_3[:2] == [(0.70, 50_000), (0.90, 900_000)]
    assert to_3[2] in [(0.80, 100_000), (0.85, 300_000)]
    assert (0.88, 950_000) not in to_3  # second by accuracy, dominated by 900K/.90
    to_9 = [v for v in tried if v["tuner/epochs"] == 9]
    assert len(to_9) == 1 and by_config[config_key(to_9[0])] in to_3[:2]
    assert all(v[PROPOSAL] == "promoted" for v in tried if "tuner/trial_id" in v)


def test_a_rejected_configuration_is_never_promoted_and_counts_as_bad(tmp_path):
    oracle = _oracle(tmp_path, max_epochs=3, iterations=3, random_fraction=0.0,
                     min_points_in_model=1)
    for i in range(12):
        trial = oracle.create_trial(f"t{i}")
        if trial.status == "STOPPED":
            break
        values = trial.hyperparameters.values
        if "tuner/trial_id" not in values and values["x"] > 0.5:
            trial.status = "FAILED"  # as --max-params rejects it
        else:
            oracle.update_trial(trial.trial_id, _metrics(values))
            trial.status = "COMPLETED"
        oracle.end_trial(trial)
    promoted = [t for t in oracle.trials.values() if "tuner/trial_id" in t.hyperparameters.values]
    parents = {t.hyperparameters.values["tuner/trial_id"] for t in promoted}
    assert parents and all(oracle.trials[p].status == "COMPLETED" for p in parents)
    status = {json.dumps(t.hyperparameters.values, sort_keys=True): t.status
              for t in oracle.trials.values()}
    compared = 0
    for budget in oracle.observations().values():  # MO-TPE's order of each budget's results
        places = {"FAILED": [], "COMPLETED": []}
        for values, place in budget:
            places[status[json.dumps(values, sort_keys=True)]].append(place)
        if places["FAILED"] and places["COMPLETED"]:
            assert min(places["FAILED"]) > max(places["COMPLETED"])  # behind every feasible
            compared += 1
    assert compared


def test_a_reloaded_oracle_proposes_what_the_first_would_have(tmp_path):
    first = _oracle(tmp_path, random_fraction=0.0)
    run_fake(first, 9)
    first.save()
    saved = json.loads((tmp_path / "p" / "oracle.json").read_text())
    assert saved["motpe"]["objectives"] == list(GOALS)
    assert saved["bohb"]["rng"]["bit_generator"] == "PCG64"
    again = _oracle(tmp_path, random_fraction=0.0)
    again.reload()
    a = first.create_trial("next").hyperparameters.values
    b = again.create_trial("next").hyperparameters.values
    assert a == b and a[PROPOSAL] == "model"


# --------------------------------------------------------------------------- real searches

PRESET = ('tuner = "motpe"\ntrials = {trials}\nepochs = 1\niterations = {trials}\npatience = 0\n'
          'objectives = ["val_accuracy:max", "params:min"]\n'
          "[bohb]\nrandom_fraction = 0.0\nmin_points_in_model = 2\n")


def _motpe_args(csv_data, tmp_path, project: str, trials: int, *extra) -> list[str]:
    """A tiny MO-TPE search: 1-epoch trials (every trial a new configuration at budget 1),
    the model from the 5th trial on."""
    preset = tmp_path / "motpe.toml"
    preset.write_text(PRESET.format(trials=trials))
    args = search_args(csv_data, tmp_path, project, trials, "--search", str(preset), *extra)
    args[args.index("random")] = "motpe"
    return args


def _records(root: Path, project: str) -> list[dict]:
    return [store.read_trial_record(d) for d in store.trial_dirs(root / project)]


def _costs_measured(record: dict) -> bool:
    inference = record.get("inference") or {}
    return (record["ms_per_image"] > 0 and record["model_bytes"] > 1000
            and inference.get("batch_size", 0) >= 1 and inference.get("threads", 0) >= 1)


@pytest.mark.slow
def test_a_tiny_motpe_search_measures_every_objective_and_ends_on_a_front(tmp_path, csv_data,
                                                                          capsys):
    root = tmp_path / "res"
    assert main(_motpe_args(csv_data, tmp_path, "m", 6)) == 0
    out = capsys.readouterr().out
    assert "motpe tuner, objectives val_accuracy:max, params:min" in " ".join(out.split())
    records = _records(root, "m")
    assert [r["status"] for r in records] == ["COMPLETED"] * 6
    assert all(_costs_measured(r) for r in records)
    assert [r["proposal"] for r in records][-1] == "model"
    trial_json = json.loads((root / "m" / f"trial_{records[0]['trial_id']}" /
                             "trial.json").read_text())
    assert {"params", "ms_per_image", "model_bytes"} <= set(trial_json["metrics"]["metrics"])
    run = json.loads((root / "m" / "run.json").read_text())
    assert run["identity"]["objectives"] == list(GOALS)
    front = pareto.front_rows(root, "m")
    assert front and all(r["pareto_rank"] == 0 for r in front)


@pytest.mark.slow
def test_kill_9_then_resume_repeats_no_trial_and_loses_none(tmp_path, csv_data):
    root = tmp_path / "res"
    cmd = [sys.executable, "-m", "fmnist_search", *_motpe_args(csv_data, tmp_path, "k", 7)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180

    def finished() -> list[str]:
        return sorted(r["trial"] for r in results.trial_rows(root, "k")
                      if r["status"] == "COMPLETED")

    while time.time() < deadline and len(finished()) < 3:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = finished()
    assert len(first) >= 3, "no trial finished before the deadline"
    kept = {t: (root / "k" / f"trial_{t}" / "record.json").read_text() for t in first}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    records = _records(root, "k")
    assert [r["status"] for r in records] == ["COMPLETED"] * 7
    assert len({r["trial_id"] for r in records}) == 7
    assert len({config_key(r["values"]) for r in records}) == 7
    for t, text in kept.items():
        assert (root / "k" / f"trial_{t}" / "record.json").read_text() == text
    assert all(_costs_measured(r) for r in records)
    assert records[-1]["proposal"] == "model"
    assert "motpe" in json.loads((root / "k" / "oracle.json").read_text())


@pytest.mark.slow
def test_two_workers_complete_a_motpe_search(tmp_path, csv_data, capsys):
    root = tmp_path / "res"
    assert main(_motpe_args(csv_data, tmp_path, "w", 6, "--workers", "2")) == 0
    assert "Started 2 workers" in capsys.readouterr().out
    records = _records(root, "w")
    assert [r["status"] for r in records] == ["COMPLETED"] * 6
    assert len({config_key(r["values"]) for r in records}) == 6
    assert all(_costs_measured(r) for r in records)
    assert all(r["inference"]["threads"] == 1 for r in records)  # a worker's share of 2 cores
