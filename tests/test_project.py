"""A search project's trial views (``tuning/project.py``)."""

from __future__ import annotations

from pathlib import Path

from fmnist_search import store
from fmnist_search.tuning import project


def _entry(trial_id: str, planned: int | None, accs: list[float],
           status: str = "COMPLETED") -> store.TrialEntry:
    values = {} if planned is None else {"tuner/epochs": planned}
    history = [{"epoch": i + 1, "val_accuracy": a} for i, a in enumerate(accs)]
    return store.TrialEntry(trial_id, Path(trial_id),
                             {"values": values, "history": history}, status)


def test_median_stopping_peers_can_be_limited_to_trials_planned_as_long():
    trials = [_entry("0", 3, [0.5, 0.7, 0.8]), _entry("1", 9, [0.4, 0.5]),
              _entry("2", 3, [0.6, 0.75], status="PRUNED"), _entry("3", None, [0.1]),
              _entry("4", 3, [0.9], status="FAILED")]
    every = project.val_curves(trials)
    assert every == [{1: 0.5, 2: 0.7, 3: 0.8}, {1: 0.4, 2: 0.5}, {1: 0.6, 2: 0.75}, {1: 0.1}]
    assert project.val_curves(trials, 3) == [{1: 0.5, 2: 0.7, 3: 0.8}, {1: 0.6, 2: 0.75}]
    assert project.val_curves(trials, 9) == [{1: 0.4, 2: 0.5}]
    # A record without values (written by an old version) has no plan: never a peer of one.
    assert project.val_curves(trials, 1) == []
