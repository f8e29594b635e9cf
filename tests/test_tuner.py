"""Our hooks on Keras Tuner's tuners (``tuning/tuner.py``) that need no training."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from fmnist_search.tuning.tuner import DefaultFirst, default_values


def _oracle(tmp_path, cls=kt.oracles.RandomSearchOracle, default_first=False, **kwargs):
    if default_first:
        cls = type(f"DefaultFirst{cls.__name__}", (DefaultFirst, cls), {})
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
    oracle = _oracle(tmp_path, max_trials=20, default_first=True)
    first = oracle.create_trial("t").hyperparameters.values
    assert first == {"depth": 3, "head": "gap"}  # dropout is inactive at the default head
    later = [oracle.create_trial(f"t{i}").hyperparameters.values for i in range(6)]
    assert any(v != first for v in later) and first not in later


def test_without_it_the_first_trial_is_drawn_at_random(tmp_path):
    first = _oracle(tmp_path, max_trials=5).create_trial("t").hyperparameters.values
    assert first != {"depth": 3, "head": "gap"}  # (seed 3: a draw that is not the default)


def test_hyperband_starts_from_the_default_point_too(tmp_path):
    oracle = _oracle(tmp_path, cls=kt.oracles.HyperbandOracle, max_epochs=9, factor=3,
                     default_first=True)
    values = oracle.create_trial("t").hyperparameters.values
    assert {k: values[k] for k in ("depth", "head")} == {"depth": 3, "head": "gap"}
    assert values["tuner/epochs"] >= 1  # Hyperband's own bookkeeping is kept


def test_bayesian_starts_from_the_default_point_too(tmp_path):
    oracle = _oracle(tmp_path, cls=kt.oracles.BayesianOptimizationOracle, max_trials=10,
                     num_initial_points=3, default_first=True)
    assert oracle.create_trial("t").hyperparameters.values == {"depth": 3, "head": "gap"}


def test_default_values_follow_the_conditions():
    hp = kt.HyperParameters()
    hp.Choice("head", ["flatten", "gap"], default="flatten")
    with hp.conditional_scope("head", ["flatten"]):
        hp.Float("dropout", 0.0, 0.5, default=0.25)
    assert default_values(hp) == {"head": "flatten", "dropout": 0.25}


def test_a_resumed_project_is_not_sent_back_to_the_default(tmp_path):
    first = _oracle(tmp_path, max_trials=20)  # a project whose first trial was drawn
    drawn = first.create_trial("t").hyperparameters.values
    assert drawn != {"depth": 3, "head": "gap"}
    resumed = _oracle(tmp_path, max_trials=20, default_first=True)
    resumed.reload()
    assert list(resumed.trials) == ["00"]
    assert resumed.create_trial("u").hyperparameters.values != {"depth": 3, "head": "gap"}


# --------------------------------------------------------------------------- the stop rule


class _Base:
    """What RecordingMixin sits on in a real tuner, reduced to what pre_create_trial needs."""

    def __init__(self, oracle, **kwargs):
        self.oracle = oracle
        self.created = 0

    def pre_create_trial(self):
        self.created += 1


def _tuner(statuses, budget):
    from types import SimpleNamespace

    from fmnist_search.tuning.signals import StopSignals
    from fmnist_search.tuning.tuner import RecordingMixin

    oracle = SimpleNamespace(trials={str(i): SimpleNamespace(status=s)
                                     for i, s in enumerate(statuses)})
    cls = type("Tuner", (RecordingMixin, _Base), {})
    return cls(oracle=oracle, display=None, signals=StopSignals(), budget=budget)


def test_a_resumed_search_past_its_reserve_starts_no_trial():
    """The single-process tuner asks the stop rule. A project resumed after an earlier part
    finished trials, whose finalize reserve exceeds the time left, starts none (it used to
    let each process run one, whatever the budget: a Hyperband trial trained for a minute)."""
    import time

    from fmnist_search.tuning.stop_rule import SearchBudget
    from fmnist_search.tuning.tuner import SearchStopped

    late = SearchBudget(20, deadline=time.time() + 60, reserve=lambda: 3600.0)
    fresh = _tuner([], late)
    fresh.pre_create_trial()  # nothing finished: the first trial measures the reserve
    assert fresh.created == 1
    resumed = _tuner(["COMPLETED", "FAILED", "RUNNING"], late)
    with pytest.raises(SearchStopped) as stop:
        resumed.pre_create_trial()
    assert stop.value.reason == "time" and resumed.created == 0
    full = _tuner(["COMPLETED"] * 2, SearchBudget(2))
    with pytest.raises(SearchStopped, match="trials"):
        full.pre_create_trial()
    _tuner(["COMPLETED"], SearchBudget(2, time.time() + 7200, lambda: 60.0)).pre_create_trial()
