"""MO-TPE on Hyperband's brackets: a search of two or three objectives, as a Keras Tuner oracle.

The algorithm, and why this one. Of the three published candidates (NSGA-II with Deb's
constraint handling, ParEGO's random scalarisations over a Gaussian process, MO-TPE), this is
the multi-objective tree-structured Parzen estimator of Ozaki, Tanigaki, Watanabe and Onishi
("Multiobjective tree-structured Parzen estimator for computationally expensive optimization
problems", GECCO 2020; Optuna's ``TPESampler`` for several objectives), because:

- a search here is 20-50 trials. NSGA-II needs a population per generation (tens of trials)
  and several generations before selection pays; MO-TPE models every result from its first few
  on, and Ozaki et al. found it ahead of NSGA-II and ParEGO at such budgets on neural
  architecture problems;
- it is BOHB's model with another split: the kernel densities of good and bad configurations
  (``kde``, conditional hyperparameters handled), the random share, the candidates drawn from
  the good density and ranked by l/g, are ``tuning.bohb``'s, tested there. Only "good" changes:
  the best ``top_n_percent`` by non-dominated rank, the boundary front cut by greedy
  hypervolume-subset selection (``pareto.selection_order``), as the paper does;
- ParEGO's Gaussian process (Keras Tuner's Bayesian oracle) handles neither conditional
  hyperparameters nor Hyperband's budgets.

Hyperband's brackets run as for ``hyperband`` and ``bohb`` (the same epochs, rounds and
checkpoint continuations), so a trial costs what theirs do. A round promotes by NSGA-II's
crowded comparison, non-dominated rank first, then crowding distance within the rank, over the
round's completed trials (MO-ASHA, Schmucker et al. 2021, with its NSGA-II selection), through
``promotions.HyperbandPromotions.promotion_order``: promotions past failed and rejected trials
included. New configurations of a bracket come from the model, fitted at the largest budget
with ``min_points_in_model + 2`` results, as BOHB's are.

Hard limits stay constraints (Deb's constrained domination, in its simplest form): a
configuration over ``max_params`` or ``max_seconds_per_epoch`` is rejected before it trains
(Keras Tuner's FAILED), is never promoted, and counts among the bad configurations behind every
feasible one, so the model learns to avoid what the limits forbid.

Objectives are Keras Tuner metrics of each trial (``hypermodel.trial_metrics``: the best epoch's
validation numbers, the parameters, seconds per epoch and measured costs), read from the
oracle's trials: the same in one process and on a distributed chief, and reloaded from each
``trial.json`` on resume (repaired from our records after a kill, ``state.cost_metrics``). The
oracle's own state (``get_state``/``set_state`` in ``oracle.json``) is BOHB's random generator
and its objectives, so a resumed search draws on from where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fmnist_search import pareto
from fmnist_search.objectives import ACCURACY_AND_SIZE, Objective, of, parse
from fmnist_search.tuning.bohb import EPOCHS, BohbOracle


class MotpeOracle(BohbOracle):
    """Hyperband's brackets, MO-ASHA's promotions and MO-TPE's proposals."""

    def __init__(self, *args, objectives: Sequence[str] = ACCURACY_AND_SIZE, **kwargs):
        super().__init__(*args, **kwargs)
        self.goals = objectives_of(objectives)

    def point(self, trial) -> np.ndarray:
        """A completed trial's objectives as a vector to minimise (NaN where it lacks one)."""
        out = []
        for goal in self.goals:
            value = trial.metrics.get_last_value(goal.name) \
                if trial.metrics.exists(goal.name) else None
            out.append(goal.minimised(value))
        return np.array(out, dtype=float)

    def promotion_order(self, trials: list) -> list:
        """A round's completed trials, best first by rank and crowding (MO-ASHA)."""
        if not trials:
            return []
        points = np.array([self.point(t) for t in trials])
        return [trials[i] for i in pareto.promotion_order(points)]

    def observations(self) -> dict[int, list[tuple[dict[str, Any], float]]]:
        """Finished trials by budget, in trial order, as (values, position): the position in
        MO-TPE's order of that budget (``pareto.selection_order``; lower is better), with the
        failed and rejected ones, and any without every objective, after all the rest. BOHB's
        ``density_model`` splits the largest budget with ``N_min + 2`` results by it."""
        by_budget: dict[int, list[tuple[dict[str, Any], np.ndarray | None]]] = {}
        for trial_id in sorted(self.trials):
            trial = self.trials[trial_id]
            budget = trial.hyperparameters.values.get(EPOCHS)
            if budget is None:
                continue
            if trial.status == "COMPLETED":
                point = self.point(trial)
                entry = point if not np.isnan(point).any() else None
            elif trial.status == "FAILED":
                entry = None  # over a limit, or could not train: behind every feasible one
            else:
                continue
            by_budget.setdefault(int(budget), []).append((trial.hyperparameters.values, entry))
        out: dict[int, list[tuple[dict[str, Any], float]]] = {}
        for budget, obs in by_budget.items():
            feasible = [i for i, (_, p) in enumerate(obs) if p is not None]
            position = np.full(len(obs), float(len(obs)))  # infeasible: after every feasible
            if feasible:
                order = pareto.selection_order(np.array([obs[i][1] for i in feasible]))
                for place, k in enumerate(order):
                    position[feasible[k]] = float(place)
            out[budget] = [(values, float(position[i])) for i, (values, _) in enumerate(obs)]
        return out

    def get_state(self):
        state = super().get_state()
        state["motpe"] = {"objectives": [str(g) for g in self.goals]}
        return state

    def set_state(self, state):
        super().set_state(state)
        if "motpe" in state:
            self.goals = objectives_of(state["motpe"]["objectives"])


def objectives_of(names: Sequence[str]) -> tuple[Objective, ...]:
    return of(parse(list(names), "objectives"))
