"""Paired comparison of two models scored on the same images: "A beats B", with its p-value.

Two test accuracies of 0.9424 and 0.9435 on the same 10,000 images are not two independent
proportions: most images both models get right (or both wrong), and only the images on which
they disagree say which is better. Treating them as independent binomials (what the control
line did before) gives an error of ~0.0033 for that pair, an upper bound; the paired error is
computed from the discordant images only and is usually far smaller, so a real gain of +0.005
is seen where the unpaired bound cannot see it.

The test is McNemar's, exact (Edwards 1948; Dietterich 1998 recommends it for comparing two
classifiers on one test set): under "neither is better", each discordant image is a fair coin,
so the p-value is the two-sided binomial tail of the smaller discordant count
(``scipy.stats.binomtest``). The ± is the standard error of the paired difference of two
accuracies, ``sqrt(d - g**2 / n) / n`` with ``d`` the discordant count and ``g`` the
difference in images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05  # the level at which a line says "beats"


@dataclass(frozen=True)
class Paired:
    """What two models' predictions on the same labelled images say about their difference."""

    a: str
    b: str
    n: int
    accuracy_a: float
    accuracy_b: float
    a_only: int  # images A gets right and B gets wrong
    b_only: int  # images B gets right and A gets wrong
    p_value: float  # exact McNemar, two-sided

    @property
    def gain(self) -> float:
        return self.accuracy_a - self.accuracy_b

    @property
    def standard_error(self) -> float:
        d, g = self.a_only + self.b_only, self.a_only - self.b_only
        return math.sqrt(max(d - g * g / self.n, 0.0)) / self.n if self.n else 0.0

    def verdict(self, alpha: float = ALPHA) -> str:
        """``beats`` (better at p < alpha), ``does not beat`` (no better), else ``cannot be
        told from`` (better on these images, but not beyond chance)."""
        if self.gain > 0 and self.p_value < alpha:
            return "beats"
        return "does not beat" if self.gain <= 0 else "cannot be told from"

    def line(self, what: str = "test accuracy") -> str:
        return (f"{self.a} {self.verdict()} {self.b}: {self.gain:+.4f} ± "
                f"{self.standard_error:.4f} {what} (paired, on the same {self.n:,} images: "
                f"{self.a_only} right only by {self.a}, {self.b_only} only by {self.b}; "
                f"McNemar exact p = {_p(self.p_value)})")

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "n": self.n, "accuracy_a": self.accuracy_a,
                "accuracy_b": self.accuracy_b, "gain": self.gain,
                "standard_error": self.standard_error, "a_only": self.a_only,
                "b_only": self.b_only, "p_value": self.p_value, "verdict": self.verdict(),
                "test": "McNemar exact (two-sided binomial on the discordant images)"}


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: the binomial(a_only + b_only, 1/2) tail of the smaller
    count, doubled (1 when the two models never disagree)."""
    from scipy.stats import binomtest

    d = a_only + b_only
    if d == 0:
        return 1.0
    return float(binomtest(min(a_only, b_only), d, 0.5, alternative="two-sided").pvalue)


def compare(a: str, pred_a: np.ndarray, b: str, pred_b: np.ndarray,
            truth: np.ndarray) -> Paired:
    """A against B from their predicted labels (or class probabilities, argmaxed) on the same
    images, in the same order."""
    pa, pb, y = _labels(pred_a), _labels(pred_b), np.asarray(truth).astype(int)
    if not (len(pa) == len(pb) == len(y)):
        raise ValueError(f"paired comparison of {a} ({len(pa)} predictions) and {b} "
                         f"({len(pb)}) on {len(y)} labels: not the same images")
    right_a, right_b = pa == y, pb == y
    a_only = int(np.sum(right_a & ~right_b))
    b_only = int(np.sum(right_b & ~right_a))
    n = len(y)
    return Paired(a, b, n, float(right_a.mean()) if n else 0.0,
                  float(right_b.mean()) if n else 0.0, a_only, b_only,
                  mcnemar_p(a_only, b_only))


def _labels(pred: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred)
    return pred.argmax(axis=1) if pred.ndim == 2 else pred.astype(int)
