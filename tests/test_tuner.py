"""Our hooks on Keras Tuner's tuners (``tuning/tuner.py``) that need no training."""

from __future__ import annotations

import keras_tuner as kt

from fmnist_search.tuning.tuner import start_from_default


def _oracle(tmp_path, cls=kt.oracles.RandomSearchOracle, **kwargs):
    hp = kt.HyperParameters()
    hp.Int("depth", 1, 9, default=3)
    hp.Choice("head", ["flatten", "gap"], default="gap")
    with hp.conditional_scope("head", ["flatten"]):
        hp.Float("dropout", 0.0, 0.5, default=0.25)
    oracle = cls(objective=kt.Objective("val_accuracy", "max"), hyperparameters=hp, seed=3,
                 **kwargs)
    oracle._set_project_dir(str(tmp_path), "p")
    return oracle


def test_the_first_trial_is_the_default_point_then_the_search_samples(tmp_path):
    oracle = _oracle(tmp_path, max_trials=20)
    start_from_default(oracle)
    first = oracle.create_trial("t").hyperparameters.values
    assert first == {"depth": 3, "head": "gap"}  # dropout is inactive at the default head
    later = [oracle.create_trial(f"t{i}").hyperparameters.values for i in range(6)]
    assert any(v != first for v in later) and first not in later


def test_without_it_the_first_trial_is_drawn_at_random(tmp_path):
    first = _oracle(tmp_path, max_trials=5).create_trial("t").hyperparameters.values
    assert first != {"depth": 3, "head": "gap"}  # (seed 3: a draw that is not the default)


def test_hyperband_starts_from_the_default_point_too(tmp_path):
    oracle = _oracle(tmp_path, cls=kt.oracles.HyperbandOracle, max_epochs=9, factor=3)
    start_from_default(oracle)
    values = oracle.create_trial("t").hyperparameters.values
    assert {k: values[k] for k in ("depth", "head")} == {"depth": 3, "head": "gap"}
    assert values["tuner/epochs"] >= 1  # Hyperband's own bookkeeping is kept


def test_a_resumed_project_is_not_sent_back_to_the_default(tmp_path):
    oracle = _oracle(tmp_path, max_trials=20)
    oracle.create_trial("t")  # a trial exists (as after a resume)
    start_from_default(oracle)
    assert oracle.create_trial("u").hyperparameters.values != {"depth": 3, "head": "gap"}
