"""The paired test on cases whose answer is known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fmnist_search import paired


def _predictions(n: int, a_only: int, b_only: int, both: int):
    """Labels 0 and predictions of A and B with the given agreement counts (the rest: both
    wrong)."""
    truth = np.zeros(n, dtype=int)
    a, b = np.ones(n, dtype=int), np.ones(n, dtype=int)
    a[:both] = b[:both] = 0
    a[both:both + a_only] = 0
    b[both + a_only:both + a_only + b_only] = 0
    return truth, a, b


def test_the_exact_p_value_is_the_binomial_tail_by_hand():
    # 9 discordant images, all for A: p = 2 * (1/2)^9
    truth, a, b = _predictions(100, 9, 0, 80)
    result = paired.compare("A", a, "B", b, truth)
    assert (result.a_only, result.b_only) == (9, 0)
    assert result.p_value == pytest.approx(2 * 0.5**9)
    assert result.verdict() == "beats"
    # 7 against 3: p = 2 * sum_{i<=3} C(10, i) / 2^10 = 2 * 176 / 1024
    truth, a, b = _predictions(100, 7, 3, 80)
    result = paired.compare("A", a, "B", b, truth)
    assert result.p_value == pytest.approx(2 * 176 / 1024)
    assert result.verdict() == "cannot be told from"


def test_identical_models_are_not_different_and_a_worse_one_does_not_beat():
    truth, a, _ = _predictions(50, 0, 0, 40)
    same = paired.compare("A", a, "B", a.copy(), truth)
    assert same.p_value == 1.0 and same.gain == 0 and same.standard_error == 0
    assert same.verdict() == "does not beat"
    truth, a, b = _predictions(1000, 0, 40, 900)
    worse = paired.compare("A", a, "B", b, truth)
    assert worse.p_value < 1e-9 and worse.verdict() == "does not beat"


def test_paired_error_is_tighter_than_the_unpaired_bound():
    """The case the control line was wrong about: 0.9424 against 0.9435 on 10,000 images, most
    images agreed on. Unpaired: ~0.0033; paired: from the 150 discordant images only."""
    truth, a, b = _predictions(10_000, 67, 78, 9_357)
    result = paired.compare("pick", a, "control", b, truth)
    assert result.accuracy_a == pytest.approx(0.9424) and result.accuracy_b == pytest.approx(0.9435)
    unpaired = math.sqrt((0.9424 * 0.0576 + 0.9435 * 0.0565) / 10_000)
    assert result.standard_error < unpaired / 2
    assert result.standard_error == pytest.approx(math.sqrt(145 - 11**2 / 10_000) / 10_000)
    # A +0.005 gain the unpaired bound cannot see (0.005 < 2 x 0.0033) is seen when paired
    truth, a, b = _predictions(10_000, 90, 40, 9_357)
    gain = paired.compare("pick", a, "control", b, truth)
    assert gain.gain == pytest.approx(0.005) and gain.p_value < 0.001
    assert "beats control: +0.0050" in gain.line()


def test_probabilities_are_argmaxed_and_mismatched_lengths_refused():
    truth = np.array([0, 1, 2])
    probs = np.eye(3)[[0, 1, 1]]
    result = paired.compare("A", probs, "B", np.array([0, 1, 2]), truth)
    assert (result.a_only, result.b_only) == (0, 1)
    with pytest.raises(ValueError, match="not the same images"):
        paired.compare("A", probs, "B", np.array([0, 1]), truth)


def test_random_models_of_equal_skill_reject_at_about_alpha():
    """The test's size: two models of the same accuracy, independent errors, 400 repetitions."""
    rng = np.random.default_rng(0)
    truth = np.zeros(2000, dtype=int)
    rejections = 0
    for _ in range(400):
        a = (rng.random(2000) > 0.9).astype(int)
        b = (rng.random(2000) > 0.9).astype(int)
        rejections += paired.compare("A", a, "B", b, truth).p_value < 0.05
    assert 0.02 <= rejections / 400 <= 0.08
