"""Synthetic trial sets whose answer is known, for the importance tests and for measuring
where the ranking becomes stable (benchmarks/bench_importance.py).

A CNN-like space: ``stages`` (1-3) switches on stage 2's and stage 3's hyperparameters (its
children); the rest are set in every trial. ``learning_rate`` is sampled on a log scale, as
Keras Tuner would. Each set's objective depends on what its name says, plus Gaussian noise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

LOG = {"learning_rate"}
CHILDREN = {2: ["filters_2", "dropout_2"],
            3: ["filters_3", "kernel_3", "dropout_3", "batchnorm_3"]}
NOISE = 0.004


def _filters(value: int) -> float:
    """-1, -1/3, 1/3, 1 for 16, 32, 64, 128 filters: a centred effect."""
    return (np.log2(value) - 5.5) / 1.5


def sample(rng: np.random.Generator) -> dict[str, Any]:
    stages = int(rng.integers(1, 4))
    values: dict[str, Any] = {
        "stages": stages,
        "filters_1": int(rng.choice([16, 32, 64, 128])),
        "kernel_1": int(rng.choice([3, 5])),
        "dropout_1": float(rng.uniform(0, 0.5)),
        "learning_rate": float(10 ** rng.uniform(-4, -2)),
        "optimizer": str(rng.choice(["adam", "sgd"])),
        "batchnorm": bool(rng.integers(0, 2)),
    }
    if stages >= 2:
        values |= {"filters_2": int(rng.choice([16, 32, 64, 128])),
                   "dropout_2": float(rng.uniform(0, 0.5))}
    if stages >= 3:
        values |= {"filters_3": int(rng.choice([16, 32, 64, 128])),
                   "kernel_3": int(rng.choice([3, 5])),
                   "dropout_3": float(rng.uniform(0, 0.5)),
                   "batchnorm_3": bool(rng.integers(0, 2))}
    return values


def parent_only(v: dict[str, Any]) -> float:
    return 0.80 + 0.03 * v["stages"]


def child_only(v: dict[str, Any]) -> float:
    return 0.85 + (0.03 * _filters(v["filters_3"]) if "filters_3" in v else 0.0)


def two_effects(v: dict[str, Any]) -> float:
    return 0.85 + 0.02 * _filters(v["filters_1"]) + 0.02 * (1 if v["optimizer"] == "adam" else -1)


def weak_beside_noise(v: dict[str, Any]) -> float:
    """``filters_1`` strongly, ``dropout_1`` weakly; ``learning_rate`` (continuous) not at all."""
    return 0.85 + 0.03 * _filters(v["filters_1"]) - 0.012 * (v["dropout_1"] - 0.25) / 0.25


def noise_only(v: dict[str, Any]) -> float:
    return 0.85


SETS: dict[str, Callable[[dict[str, Any]], float]] = {
    "parent_only": parent_only, "child_only": child_only, "two_effects": two_effects,
    "weak_beside_noise": weak_beside_noise, "noise_only": noise_only,
}
# What matters in each set, the strongest first (two_effects: optimizer's effect has the larger
# variance, 0.02^2 against filters_1's 0.02^2 x 5/9).
MATTERS = {"parent_only": ["stages"], "child_only": ["filters_3"],
           "two_effects": ["optimizer", "filters_1"],
           "weak_beside_noise": ["filters_1", "dropout_1"], "noise_only": []}


def trial_set(name: str, n: int, seed: int = 0, noise: float = NOISE
              ) -> tuple[list[dict[str, Any]], list[float]]:
    """``n`` trials of the named set: their values and objectives."""
    rng = np.random.default_rng(seed)
    values = [sample(rng) for _ in range(n)]
    scores = [SETS[name](v) + float(rng.normal(0, noise)) for v in values]
    return values, scores
