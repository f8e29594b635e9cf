"""When a search may start another trial: the one rule that the single-process tuner
(``tuner.RecordingMixin.pre_create_trial``) and the distributed chief (``Chief.create_trial``)
both ask.

The rule: no trial starts once the project has its requested count of finished trials (a chief
with as many running as are missing waits instead, for one may need a retry); none starts once
the time left before ``--max-time``'s deadline is under the finalize reserve, measured from the
best trials so far; and the search stops after ``MAX_CONSECUTIVE_FAILURES`` failures in a row.

The deadline spares one trial per *project*, not per process: with no finished trial there is
nothing to measure the reserve with, so a budget always lets the first one run; a resumed part
whose earlier parts finished trials is held to the deadline from its first trial on.

Failures are counted by the process that trains (a worker counts its own); Keras Tuner's own
count spans the project's whole history and raised before the failing trial was saved. A
rejected configuration (a limit: Keras Tuner's FAILED, our record's REJECTED) neither counts
nor breaks a run; a pruned trial is a success.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fmnist_search.errors import UserError

MAX_CONSECUTIVE_FAILURES = 3

# why_not's answers, besides None (another trial may start)
TRIALS = "trials"  # the requested count has finished
WAIT = "wait"  # not now: the running trials make the count, but one may need a retry
TIME = "time"  # the deadline, less the finalize reserve, has come


class ConsecutiveFailures(UserError):
    pass


@dataclass
class SearchBudget:
    """What the whole search may spend (a single trial's limits are ``TrialLimits``)."""

    trials: int | None  # None: a distributed worker, whose chief keeps the count
    deadline: float | None = None  # Unix time after which no trial starts
    reserve: Callable[[], float] | None = None  # seconds kept before the deadline (finalize)


class StopRule:
    """Asked before each trial whether another may start; told how each trial ended."""

    def __init__(self, budget: SearchBudget, clock: Callable[[], float] = time.time) -> None:
        self.budget = budget
        self.clock = clock
        self.failures_in_a_row = 0

    def why_not(self, finished: int, running: int = 0) -> str | None:
        """None when another trial may start, else why not (``TRIALS``, ``WAIT``, ``TIME``).

        ``finished``: the project's finished trials, every part of it; ``running``: the
        trials running elsewhere (a chief's workers; none in one process)."""
        trials = self.budget.trials
        if trials is not None and finished >= trials:
            return TRIALS
        if trials is not None and finished + running >= trials:
            return WAIT
        deadline = self.budget.deadline
        if finished and deadline is not None:  # the first trial measures what the rest cost
            reserve = self.budget.reserve() if self.budget.reserve else 0.0
            if self.clock() + reserve >= deadline:
                return TIME
        return None

    def trial_ended(self, status: str, reason: str = "") -> None:
        """Count a trial that ended here (its record's status); raise ``ConsecutiveFailures``
        at the ``MAX_CONSECUTIVE_FAILURES``-th failure in a row, after it was saved."""
        if status == "FAILED":
            self.failures_in_a_row += 1
        elif status != "REJECTED":  # a rejection neither counts nor breaks a run
            self.failures_in_a_row = 0
        if self.failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            raise ConsecutiveFailures(reason)
