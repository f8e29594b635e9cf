"""BOHB's model of the results so far: kernel densities of good and of bad configurations.

Falkner, Klein and Hutter (ICML 2018), section 3.1, in plain numpy. A configuration is a vector
with one entry per searched hyperparameter: a continuous one (Keras Tuner's ``Int`` and
``Float``) as its position in [0, 1] (``value_to_prob``, so a log-sampled range is uniform
here), a categorical one (``Choice``, ``Boolean``) as its index. An inactive hyperparameter (its
condition does not hold) is NaN and takes no part in a density: a point that does not have it
says nothing about it (its kernel there is the uniform density), and a configuration that does
not have it is scored on the dimensions it has. ``l(x) / g(x)``, the ratio the model maximises,
compares both densities on the same dimensions of ``x``.

Kernels, as in the paper's reference implementation (HpBandSter on statsmodels): a Gaussian of
bandwidth ``bw`` for a continuous entry, Aitchison-Aitken for a categorical one (the same
category with probability ``1 - bw``, each other one with ``bw / (c - 1)``); bandwidths by the
normal reference rule, at least ``min_bandwidth``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRUNCATION_TRIES = 20  # redraws of a continuous entry that fell outside [0, 1] before clipping


@dataclass(frozen=True)
class Density:
    """A kernel density over encoded configurations (``points``: n x d, NaN when inactive)."""

    points: np.ndarray
    categories: tuple[int, ...]  # per dimension: 0 continuous, c > 1 one of c categories
    bandwidth: np.ndarray  # per dimension

    @classmethod
    def fit(cls, points: np.ndarray, categories: tuple[int, ...],
            min_bandwidth: float) -> Density:
        return cls(points, categories, bandwidths(points, categories, min_bandwidth))

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """The log density of each row of ``x`` (m x d) on the dimensions active in it."""
        x = np.atleast_2d(x)
        logk = np.zeros((x.shape[0], self.points.shape[0], x.shape[1]))
        for j, c in enumerate(self.categories):
            xj, pj, bw = x[:, j][:, None], self.points[:, j][None, :], self.bandwidth[j]
            if c:
                same = np.log1p(-bw) if bw < 1 else -np.inf
                kernel = np.where(xj == pj, same, np.log(bw / (c - 1)))
                uniform = -np.log(c)
            else:
                kernel = -0.5 * ((xj - pj) / bw) ** 2 - np.log(bw * np.sqrt(2 * np.pi))
                uniform = 0.0  # the uniform density on [0, 1]
            kernel = np.where(np.isnan(pj), uniform, kernel)  # the point lacks it
            logk[:, :, j] = np.where(np.isnan(xj), 0.0, kernel)  # x lacks it: not scored
        total = logk.sum(axis=2)
        top = total.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(total - top).mean(axis=1, keepdims=True)))[:, 0]

    def sample(self, n: int, rng: np.random.Generator, bandwidth_factor: float) -> np.ndarray:
        """``n`` full vectors (every dimension drawn), each around a random point of the
        density with its bandwidths widened by ``bandwidth_factor`` (the paper's ``b_w``: it
        explores around the good configurations); where that point lacks a dimension, uniform.
        The caller keeps the dimensions that are active in each vector."""
        out = np.empty((n, len(self.categories)))
        centers = self.points[rng.integers(0, len(self.points), n)]
        for j, c in enumerate(self.categories):
            bw = self.bandwidth[j] * bandwidth_factor
            mean = centers[:, j]
            if c:
                keep = rng.random(n) < 1 - min(bw, 1.0)
                col = np.where(keep, mean, rng.integers(0, c, n))
            else:
                col = _truncated_normal(mean, bw, rng)
            lacking = np.isnan(mean)
            col[lacking] = (rng.integers(0, c, lacking.sum()) if c
                            else rng.random(lacking.sum()))
            out[:, j] = col
        return out


def bandwidths(points: np.ndarray, categories: tuple[int, ...],
               min_bandwidth: float) -> np.ndarray:
    """Per dimension, the normal reference rule ``1.06 sd n^(-1/(4+d))`` (statsmodels'
    ``normal_reference``) over the points that have it, at least ``min_bandwidth``; a
    categorical one at most ``(c-1)/c`` (beyond it the kernel would prefer other categories)."""
    d = points.shape[1]
    out = np.empty(d)
    for j, c in enumerate(categories):
        col = points[:, j][~np.isnan(points[:, j])]
        bw = 1.06 * col.std() * len(col) ** (-1.0 / (4 + d)) if len(col) > 1 else 0.0
        bw = max(bw, min_bandwidth)
        out[j] = min(bw, (c - 1) / c) if c else bw
    return out


def _truncated_normal(mean: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Normal draws around ``mean`` kept inside [0, 1] (redrawn, then clipped)."""
    out = rng.normal(mean, sd)
    for _ in range(TRUNCATION_TRIES):
        outside = (out < 0) | (out > 1)
        if not outside.any():
            break
        out[outside] = rng.normal(mean[outside], sd)
    return np.clip(out, 0.0, 1.0)


def split(points: np.ndarray, losses: np.ndarray, min_points: int,
          top_n_percent: float) -> tuple[np.ndarray, np.ndarray]:
    """The good and the bad points (the paper's equations 2 and 3): the best
    ``max(min_points, q n)`` and the worst ``max(min_points, n - that)``; with few points the
    two may share some."""
    order = np.argsort(losses, kind="stable")
    n = len(order)
    n_good = max(min_points, int(top_n_percent * n // 100))
    n_bad = max(min_points, n - n_good)
    return points[order[:n_good]], points[order[n - n_bad:]]


def ranked(good: Density, bad: Density, candidates: np.ndarray) -> np.ndarray:
    """Indices of ``candidates``, the highest ``l(x) / g(x)`` first."""
    score = good.log_pdf(candidates) - bad.log_pdf(candidates)
    return np.argsort(-score, kind="stable")
