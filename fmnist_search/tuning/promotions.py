"""Hyperband's promotions past failed and rejected trials: our rule, on Keras Tuner's brackets.

Keras Tuner promotes the best waiting trial of a round while more *completed* ones wait than
the next round will leave behind (tuners/hyperband.py:184, ``len(candidates) > past_size -
size``). A failed trial is never a candidate, so a round of 9 with 2 rejected configurations
promotes 1 instead of 3, and the rounds after it, short of entries, never fill (seen on the cnn
space, 2026-11-29: 2 of the first bracket's 9 configurations over --max-params, 1 promoted to 3
epochs, none ever to 9; Keras Tuner started the next bracket instead). Here the failed trials,
and the entries a round will never get because the round before it is over, count as thrown
out first, so the best ``min(size, completed)`` go on. The rest of ``populate_space`` (new
configurations, new brackets, the stop) is Keras Tuner's.

The brackets are read through the compat seam (``kt_compat.hyperband_brackets``,
``round_size``, ``round_epochs``, ``retry_queue``); the hook is ``Oracle.populate_space``, a
public one. Used by BOHB's and MO-TPE's oracles (``tuning.bohb``, ``tuning.motpe``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fmnist_search.tuning import kt_compat

GONE = ("FAILED", "INVALID")  # ended without a score: never promoted, thrown out first
ENDED = ("COMPLETED", *GONE)


class HyperbandPromotions:
    """Mixed in front of Keras Tuner's ``HyperbandOracle``: a round in which some trials failed
    or were rejected by a limit still promotes its best completed trials to the next round.

    The values a promotion carries are Keras Tuner's (``tuner/trial_id``, ``tuner/epochs``,
    ``tuner/initial_epoch``, ``tuner/bracket``, ``tuner/round``: hyperband.py:194-203;
    ``tuner/bracket`` here is the bracket's own number where Keras Tuner writes the current
    one, the same unless an older bracket promotes).
    """

    # A subclass's ranking of a round's completed trials, best first (``order(trials) ->
    # trials``): then every promotion is ours, by that order, where Keras Tuner sorts by score
    # (hyperband.py:185-189). A search of several objectives ranks by non-dominated rank and
    # crowding distance (``tuning.motpe``). None: by score, Keras Tuner's.
    promotion_order: Callable[[list], list] | None = None

    def populate_space(self, trial_id):
        return missed_promotion(self, trial_id, self.promotion_order) \
            or super().populate_space(trial_id)


def missed_promotion(oracle, trial_id: str, order: Callable[[list], list] | None = None
                     ) -> dict[str, Any] | None:
    """The promotion Keras Tuner's rule misses at the first place its loop would look, or None
    where Keras Tuner's own ``populate_space`` decides (it promotes, draws, or stops). With
    ``order``, Keras Tuner's own promotions are made here too, by that order, so that its
    ``populate_space`` only ever draws a configuration or starts a bracket."""
    brackets = kt_compat.hyperband_brackets(oracle)
    retrying = set(kt_compat.retry_queue(oracle))
    for bracket in brackets:
        num, rounds = bracket["bracket_num"], bracket["rounds"]
        if len(rounds[0]) < kt_compat.round_size(oracle, num, 0):
            return None  # Keras Tuner draws this bracket's next configuration
        over = _ended(oracle, rounds[0], retrying)  # round 0 full: over once all have ended
        for r in range(1, len(rounds)):
            past, here = rounds[r - 1], rounds[r]
            size = kt_compat.round_size(oracle, num, r)
            past_size = kt_compat.round_size(oracle, num, r - 1)
            taken = {entry["past_id"] for entry in here}
            trials = [oracle.trials.get(entry["id"]) for entry in past]
            waiting = [t for t in trials
                       if t is not None and t.trial_id not in taken and t.status == "COMPLETED"]
            completed = [t for t in trials if t is not None and t.status == "COMPLETED"]
            if len(waiting) > past_size - size:
                if order is None:
                    return None  # Keras Tuner's own rule promotes here
                return _promote(oracle, trial_id, bracket, r, waiting, order, completed)
            gone = sum(1 for t in trials if t is not None and t.status in GONE
                       and t.trial_id not in retrying)
            never = past_size - len(past) if over else 0
            if waiting and len(waiting) + gone + never > past_size - size:
                return _promote(oracle, trial_id, bracket, r, waiting, order, completed)
            over = over and (not waiting or len(here) >= size) and _ended(oracle, here, retrying)
    return None


def _ended(oracle, entries: list[dict[str, Any]], retrying: set[str]) -> bool:
    trials = [oracle.trials.get(entry["id"]) for entry in entries]
    return all(t is not None and t.status in ENDED and t.trial_id not in retrying
               for t in trials)


def _promote(oracle, trial_id: str, bracket: dict[str, Any], r: int, waiting: list,
             order: Callable[[list], list] | None = None,
             completed: list | None = None) -> dict[str, Any]:
    """Promote the best waiting trial: by score, or the first waiting one in ``order`` of
    the round's completed trials (those promoted already included: a ranking that depends on
    the whole set, such as crowding, is the round's, not the leftovers')."""
    if order is None:
        best = sorted(waiting, key=lambda t: t.score,
                      reverse=oracle.objective.direction == "max")[0]
    else:
        left = {t.trial_id for t in waiting}
        best = next(t for t in order(completed or waiting) if t.trial_id in left)
    num = bracket["bracket_num"]
    values = {**best.hyperparameters.values, "tuner/trial_id": best.trial_id,
              "tuner/epochs": kt_compat.round_epochs(oracle, num, r),
              "tuner/initial_epoch": kt_compat.round_epochs(oracle, num, r - 1),
              "tuner/bracket": num, "tuner/round": r}
    bracket["rounds"][r].append({"past_id": best.trial_id, "id": trial_id})
    return {"status": "RUNNING", "values": values}
