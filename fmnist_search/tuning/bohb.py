"""BOHB (Falkner, Klein and Hutter, ICML 2018): Hyperband whose new configurations come from a
model of the results so far, as a Keras Tuner oracle.

Keras Tuner's ``HyperbandOracle`` keeps running the brackets: which trial starts, at how many
epochs, which one is promoted and continued from its parent's checkpoint (``tuner/epochs``,
``tuner/initial_epoch``, ``tuner/trial_id``). Only the values of a *new* configuration (the
first round of a bracket, where Hyperband draws at random) are replaced, through the public
hook ``populate_space``, as ``tuner.DefaultFirst`` does: with probability ``random_fraction``,
or while no budget has ``min_points_in_model + 2`` results, a uniform draw; otherwise the best
of ``num_samples`` candidates drawn from the density of good configurations at the largest such
budget, by the ratio of the good density to the bad one (``kde``).

The results modelled are Keras Tuner's own finished trials (``oracle.trials``, reloaded from
each ``trial.json`` on resume and repaired from our records after a kill, ``state.repair``): a
trial's budget is its ``tuner/epochs``, its loss the negated score; a trial that failed or was
rejected by a limit counts as the worst result of its budget (as HpBandSter counts a crash), so
the model learns to avoid oversized configurations. They are not copied into the oracle's
state, where a kill between two saves could leave a copy that disagrees with them. What the
oracle adds to its state (``get_state``/``set_state``, saved in ``oracle.json``) is its random
generator, so a resumed search draws on from where it stopped.

How each trial was proposed travels with its values, as ``tuner/proposal`` ("random",
"model", "default" for a first trial at the space's default point, "promoted" for a Hyperband
continuation): a distributed worker receives it with the trial and writes it into the record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import keras_tuner as kt
import numpy as np
from keras_tuner.engine.hyperparameters import Boolean, Choice, Fixed

from fmnist_search.presets import BohbSettings
from fmnist_search.tuning import kde
from fmnist_search.tuning.promotions import HyperbandPromotions

PROPOSAL = "tuner/proposal"
EPOCHS = "tuner/epochs"
FRESH_TRIES = 20  # uniform redraws of a configuration already tried (Keras Tuner's collisions)


@dataclass(frozen=True)
class Encoding:
    """The searched (not fixed) hyperparameters of a space as vectors (``kde``'s encoding)."""

    space: tuple  # every hyperparameter, Fixed ones included, in registration order
    dims: tuple  # the searched ones, one per name

    @classmethod
    def of(cls, hyperparameters: kt.HyperParameters) -> Encoding:
        seen: dict[str, Any] = {}
        for hp in hyperparameters.space:
            if not isinstance(hp, Fixed):
                seen.setdefault(hp.name, hp)
        return cls(tuple(hyperparameters.space), tuple(seen.values()))

    @property
    def categories(self) -> tuple[int, ...]:
        return tuple(_categories(hp) for hp in self.dims)

    def encode(self, values: dict[str, Any]) -> np.ndarray:
        out = np.full(len(self.dims), np.nan)
        for j, hp in enumerate(self.dims):
            if hp.name in values:
                out[j] = _encode(hp, values[hp.name])
        return out

    def decode(self, vector: np.ndarray) -> dict[str, Any]:
        """The values of ``vector``, the active hyperparameters only (conditions followed in
        registration order, as Keras Tuner's own sampling does)."""
        index = {hp.name: j for j, hp in enumerate(self.dims)}
        hps = kt.HyperParameters()
        for hp in self.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            j = index.get(hp.name)
            hps.values[hp.name] = hp.default if j is None else _decode(hp, vector[j])  # Fixed
        return hps.values

    def uniform(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.integers(0, c) if c else rng.random() for c in self.categories])


def _categories(hp) -> int:
    if isinstance(hp, Boolean):
        return 2
    if isinstance(hp, Choice):
        return len(hp.values)
    return 0


def _encode(hp, value: Any) -> float:
    if isinstance(hp, Boolean):
        return float(bool(value))
    if isinstance(hp, Choice):
        return float(list(hp.values).index(value)) if value in hp.values else np.nan
    return float(np.clip(hp.value_to_prob(value), 0.0, 1.0))


def _decode(hp, x: float) -> Any:
    if isinstance(hp, Boolean):
        return bool(int(x))
    if isinstance(hp, Choice):
        return hp.values[int(x)]
    return hp.prob_to_value(min(max(float(x), 0.0), 1.0 - 1e-9))


def config_key(values: dict[str, Any]) -> str:
    """A configuration as its hyperparameter values, Hyperband's bookkeeping left out."""
    return json.dumps({k: v for k, v in values.items() if not k.startswith("tuner/")},
                      sort_keys=True, default=str)


class HyperbandOracle(HyperbandPromotions, kt.oracles.HyperbandOracle):
    """Keras Tuner's Hyperband oracle, whose rounds also promote past failed and rejected trials
    (``promotions.HyperbandPromotions``): ``tuner = "hyperband"`` and BOHB's brackets."""


class BohbOracle(HyperbandOracle):
    """Keras Tuner's Hyperband oracle whose new configurations BOHB's model proposes."""

    def __init__(self, *args, bohb: BohbSettings | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.bohb = bohb or BohbSettings()
        self.bohb_rng = np.random.default_rng(self.seed)

    def populate_space(self, trial_id):
        response = super().populate_space(trial_id)
        values = response.get("values")
        if response.get("status") != "RUNNING" or not values:
            return response
        if "tuner/trial_id" in values:  # a promotion: the same configuration, trained on
            return {**response, "values": {**values, PROPOSAL: "promoted"}}
        bookkeeping = {k: v for k, v in values.items() if k.startswith("tuner/")}
        chosen, source = self.propose(values)
        return {**response, "values": {**chosen, **bookkeeping, PROPOSAL: source}}

    def propose(self, drawn: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """A new configuration and where it came from ("model" or "random"); ``drawn`` is
        Hyperband's own random draw, kept when nothing new can be found."""
        encoding = Encoding.of(self.hyperparameters)
        if not encoding.dims:
            return drawn, "random"
        tried = {config_key(t.hyperparameters.values) for t in self.trials.values()}
        if self.bohb_rng.random() >= self.bohb.random_fraction:
            model = self.density_model(encoding)
            if model is not None:
                good, bad = model
                candidates = good.sample(self.bohb.num_samples, self.bohb_rng,
                                         self.bohb.bandwidth_factor)
                chosen = [encoding.decode(c) for c in candidates]
                active = np.array([encoding.encode(v) for v in chosen])
                for i in kde.ranked(good, bad, active):
                    if config_key(chosen[i]) not in tried:
                        return chosen[i], "model"
        for _ in range(FRESH_TRIES):
            values = encoding.decode(encoding.uniform(self.bohb_rng))
            if config_key(values) not in tried:
                return values, "random"
        return drawn, "random"

    def min_points(self, encoding: Encoding) -> int:
        return self.bohb.min_points_in_model or len(encoding.dims) + 1

    def observations(self) -> dict[int, list[tuple[dict[str, Any], float]]]:
        """Finished trials by budget, in trial order: (values, loss), the lower the better; a
        failed or rejected trial counts as the worst of its budget."""
        sign = -1.0 if self.objective.direction == "max" else 1.0
        out: dict[int, list[tuple[dict[str, Any], float]]] = {}
        for trial_id in sorted(self.trials):  # trial order: a reload lists them as it finds them
            trial = self.trials[trial_id]
            budget = trial.hyperparameters.values.get(EPOCHS)
            if budget is None:
                continue
            if trial.status == "COMPLETED" and trial.score is not None \
                    and np.isfinite(trial.score):
                loss = sign * float(trial.score)
            elif trial.status == "FAILED":
                loss = np.inf
            else:
                continue
            out.setdefault(int(budget), []).append((trial.hyperparameters.values, loss))
        return out

    def density_model(self, encoding: Encoding) -> tuple[kde.Density, kde.Density] | None:
        """The good and bad densities at the largest budget with ``N_min + 2`` results (the
        paper's Algorithm 2), or None while no budget has that many."""
        n_min = self.min_points(encoding)
        results = self.observations()
        budgets = [b for b, obs in results.items() if len(obs) >= n_min + 2]
        if not budgets:
            return None
        obs = results[max(budgets)]
        points = np.array([encoding.encode(v) for v, _ in obs])
        losses = np.array([loss for _, loss in obs])
        good, bad = kde.split(points, losses, n_min, self.bohb.top_n_percent)
        fit = kde.Density.fit
        return (fit(good, encoding.categories, self.bohb.min_bandwidth),
                fit(bad, encoding.categories, self.bohb.min_bandwidth))

    def get_state(self):
        state = super().get_state()
        state["bohb"] = {"settings": self.bohb.as_dict(),
                         "rng": self.bohb_rng.bit_generator.state}
        return state

    def set_state(self, state):
        super().set_state(state)
        if "bohb" in state:
            self.bohb_rng.bit_generator.state = state["bohb"]["rng"]
