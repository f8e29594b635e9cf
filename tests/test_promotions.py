"""tuning/promotions.py: Hyperband's rounds promote their best completed trials past failed,
rejected and retried ones, where Keras Tuner's own rule loses a promotion per failure."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from fmnist_search.tuning import kt_compat
from fmnist_search.tuning.bohb import HyperbandOracle


def _hyperband(tmp_path, cls, retries: int = 0):
    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = cls(objective=kt.Objective("score", "max"), hyperparameters=hp, seed=3,
                 max_epochs=9, factor=3, hyperband_iterations=1, max_retries_per_trial=retries,
                 max_consecutive_failed_trials=None)
    oracle._set_project_dir(str(tmp_path), "p")
    return oracle


def _brackets(oracle, fail: set[int], status: str = "FAILED") -> list[tuple[int, int, float]]:
    """Run a search to its end, failing the first attempt of the new configurations numbered
    in ``fail`` with ``status`` (FAILED: as a limit rejects them; INVALID: a crash that Keras
    Tuner retries); each trial scores its x. Returns (round, epochs, x) per attempt."""
    out, new, attempted = [], 0, set()
    for i in range(60):
        trial = oracle.create_trial(f"t{i}")
        if trial.status == "STOPPED":
            return out
        values = trial.hyperparameters.values
        promoted = "tuner/trial_id" in values
        first = trial.trial_id not in attempted
        attempted.add(trial.trial_id)
        if not promoted and new in fail and first:
            trial.status = status
        else:
            oracle.update_trial(trial.trial_id, {"score": values["x"]})
            trial.status = "COMPLETED"
        new += not promoted and trial.status != "INVALID"
        oracle.end_trial(trial)
        out.append((values["tuner/round"], values["tuner/epochs"], round(values["x"], 6)))
    raise AssertionError("the search did not stop")


@pytest.mark.parametrize("fail", [set(), {1, 5}, {0, 1, 2, 3, 4, 5, 7, 8}],
                         ids=["none-failed", "two-of-nine", "all-but-one"])
def test_a_round_promotes_its_best_completed_trials_past_failed_ones(tmp_path, fail):
    ours = _brackets(_hyperband(tmp_path / "ours", HyperbandOracle), fail)
    first = ours[:9]  # bracket 2, round 0: 9 new configurations of 1 epoch
    completed = sorted((x for k, (_, _, x) in enumerate(first) if k not in fail), reverse=True)
    to_3 = [x for r, e, x in ours if (r, e) == (1, 3)][:min(3, len(completed))]
    assert to_3 == completed[:3]  # the best completed ones, best first
    to_9 = [x for r, e, x in ours if (r, e) == (2, 9)]
    assert to_9 == [to_3[0]]  # and the best of those to 9 epochs
    # Then brackets 1 (5 new at 3 epochs, the best 2 to 9) and 0 (3 new at 9): 23 trials less
    # the promotions a round with fewer completed trials than places cannot make.
    assert len(ours) == 23 - (3 - len(to_3))
    plain = _brackets(_hyperband(tmp_path / "plain", kt.oracles.HyperbandOracle), fail)
    plain_to_3 = [x for r, e, x in plain[:13] if (r, e) == (1, 3)]
    # Keras Tuner's own rule (hyperband.py:184): f failures cost f promotions, and the 9-epoch
    # round after a short one never runs. If an upgrade fixes this, the patch can go.
    assert len(plain_to_3) == max(0, 3 - len(fail))
    if fail:
        assert not [1 for r, e, _ in plain if (r, e) == (2, 9)]


def test_a_retried_trial_is_promoted_on_its_retry_score(tmp_path):
    """A crash that Keras Tuner retries (INVALID, retries left) is not a thrown-out trial: its
    retry runs before any new trial is drawn, and the brackets come out as if it had never
    crashed. The retry queue is popped by ``create_trial`` before ``populate_space`` is asked,
    which is why ``missed_promotion`` never sees a queued trial in a plain search."""
    clean = _brackets(_hyperband(tmp_path / "clean", HyperbandOracle), set())
    crashed = _brackets(_hyperband(tmp_path / "crashed", HyperbandOracle, retries=1), {1, 5},
                        status="INVALID")
    assert len(crashed) == 23 + 2  # two crashed attempts, then the same 23 trials
    assert [t for k, t in enumerate(crashed) if k not in (1, 6)] == clean


def test_the_brackets_are_read_through_the_seam(tmp_path):
    """What the rule reads of a ``HyperbandOracle``: the brackets' sizes and epochs are Keras
    Tuner's (9, 3, 1 configurations of 1, 3, 9 epochs in bracket 2; max_epochs 9, factor 3)."""
    oracle = _hyperband(tmp_path, HyperbandOracle)
    assert [kt_compat.round_size(oracle, 2, r) for r in range(3)] == [9, 3, 1]
    assert [kt_compat.round_epochs(oracle, 2, r) for r in range(3)] == [1, 3, 9]
    trial = oracle.create_trial("t0")
    brackets = kt_compat.hyperband_brackets(oracle)
    assert [b["bracket_num"] for b in brackets] == [2]
    assert brackets[0]["rounds"][0] == [{"past_id": None, "id": trial.trial_id}]
