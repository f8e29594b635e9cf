"""The one rule for when a search may start another trial (``tuning/stop_rule.py``), on its
own; the single-process tuner's use of it is in test_tuner.py, the chief's in
test_distributed.py."""

from __future__ import annotations

import pytest

from fmnist_search.tuning.stop_rule import (
    MAX_CONSECUTIVE_FAILURES,
    TIME,
    TRIALS,
    WAIT,
    ConsecutiveFailures,
    SearchBudget,
    StopRule,
)


def _rule(trials=None, deadline=None, reserve=None, now=1000.0) -> StopRule:
    return StopRule(SearchBudget(trials, deadline, reserve), clock=lambda: now)


def test_the_count_stops_and_running_trials_make_a_chief_wait():
    rule = _rule(trials=3)
    assert rule.why_not(2) is None
    assert rule.why_not(2, running=1) == WAIT  # one of them may yet need a retry
    assert rule.why_not(3) == rule.why_not(5, running=2) == TRIALS
    assert _rule(trials=None).why_not(10**6, running=50) is None  # a worker: the chief counts


def test_the_deadline_less_the_reserve_stops_new_trials():
    assert _rule(deadline=1100.0).why_not(1) is None
    assert _rule(deadline=1000.0).why_not(1) == TIME
    assert _rule(deadline=1100.0, reserve=lambda: 99.0).why_not(1) is None
    assert _rule(deadline=1100.0, reserve=lambda: 100.0).why_not(1) == TIME


def test_a_budget_lets_one_trial_run_per_project_not_per_process():
    """Nothing finished yet: no trial to measure the reserve with, so the first one runs. A
    project with finished trials (an earlier part of a resumed run) gets no such trial."""
    rule = _rule(trials=10, deadline=900.0, reserve=lambda: 3600.0)
    assert rule.why_not(0) is None
    assert rule.why_not(1) == TIME  # a fresh rule (a new process) on a project with one


def test_failures_in_a_row_stop_the_search_and_rejections_do_not_count():
    rule = _rule(trials=10)
    for _ in range(MAX_CONSECUTIVE_FAILURES - 1):
        rule.trial_ended("FAILED", "nan loss")
    rule.trial_ended("REJECTED")  # neither counts nor breaks the run
    with pytest.raises(ConsecutiveFailures, match="out of memory"):
        rule.trial_ended("FAILED", "out of memory")
    rule = _rule(trials=10)
    for status in ("FAILED", "FAILED", "PRUNED", "FAILED", "FAILED", "COMPLETED", "FAILED"):
        rule.trial_ended(status, "x")  # a pruned or completed trial breaks the run
    assert rule.failures_in_a_row == 1
