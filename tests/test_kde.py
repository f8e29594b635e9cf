"""BOHB's good/bad densities (``tuning/kde.py``) on toy problems, numpy only."""

from __future__ import annotations

import numpy as np

from fmnist_search.tuning import kde


def _propose(points, losses, seed, n_min=3, samples=64):
    """The model's proposal on a toy problem: the best of ``samples`` candidates."""
    cats = (0,) * points.shape[1]
    good, bad = kde.split(points, losses, n_min, 15)
    good, bad = kde.Density.fit(good, cats, 1e-3), kde.Density.fit(bad, cats, 1e-3)
    candidates = good.sample(samples, np.random.default_rng(seed), 3.0)
    return candidates[kde.ranked(good, bad, candidates)[0]]


def _toy(seed=0, n=30):
    """1-D: the loss is the distance to 0.7 (good points cluster there)."""
    x = np.random.default_rng(seed).random((n, 1))
    return x, np.abs(x[:, 0] - 0.7)


def test_model_proposals_land_near_the_good_cluster():
    x, losses = _toy()
    proposals = np.array([_propose(x, losses, seed)[0] for seed in range(20)])
    assert np.all(np.abs(proposals - 0.7) < 0.15)
    uniform = np.random.default_rng(1).random(20)  # what random search would propose
    assert np.mean(np.abs(proposals - 0.7)) < np.mean(np.abs(uniform - 0.7)) / 3


def test_a_proposal_is_deterministic_under_a_seed():
    x, losses = _toy()
    assert np.array_equal(_propose(x, losses, 5), _propose(x, losses, 5))
    assert not np.array_equal(_propose(x, losses, 5), _propose(x, losses, 6))


def test_split_keeps_the_best_and_the_worst_as_the_paper_says():
    points = np.arange(20, dtype=float)[:, None]
    good, bad = kde.split(points, points[:, 0], min_points=3, top_n_percent=15)
    assert good[:, 0].tolist() == [0, 1, 2]  # max(N_min, 15% of 20) = 3
    assert bad[:, 0].tolist() == list(range(3, 20))  # max(N_min, 20 - 3) = 17
    good, bad = kde.split(points[:4], points[:4, 0], min_points=3, top_n_percent=15)
    assert good[:, 0].tolist() == [0, 1, 2] and bad[:, 0].tolist() == [1, 2, 3]  # they share


def test_inactive_dimensions_take_no_part():
    """A point without dimension 1 says nothing there (uniform); a configuration without it
    is scored on dimension 0 alone."""
    points = np.array([[0.2, 0.9], [0.25, np.nan], [0.3, 0.8]])
    density = kde.Density.fit(points, (0, 0), 1e-3)
    assert np.isfinite(density.bandwidth).all()
    one_d = kde.Density.fit(points[:, :1], (0,), 1e-3)
    lacking = np.array([[0.25, np.nan]])
    # With dimension 1 inactive in x, only dimension 0 counts (bandwidths differ with d).
    assert np.isfinite(density.log_pdf(lacking)).all()
    assert density.log_pdf(lacking)[0] > density.log_pdf(np.array([[0.9, np.nan]]))[0]
    assert one_d.log_pdf(np.array([[0.25]]))[0] > one_d.log_pdf(np.array([[0.9]]))[0]
    drawn = density.sample(200, np.random.default_rng(0), 3.0)
    assert not np.isnan(drawn).any() and ((drawn >= 0) & (drawn <= 1)).all()


def test_categorical_dimensions_prefer_the_good_category():
    rng = np.random.default_rng(0)
    cat = rng.integers(0, 4, 40).astype(float)
    points = np.column_stack([cat, rng.random(40)])
    losses = np.where(cat == 2, 0.0, 1.0) + 0.01 * rng.random(40)
    good, bad = kde.split(points, losses, 3, 15)
    good = kde.Density.fit(good, (4, 0), 1e-3)
    bad = kde.Density.fit(bad, (4, 0), 1e-3)
    drawn = good.sample(64, np.random.default_rng(1), 3.0)
    assert set(np.unique(drawn[:, 0])) <= {0.0, 1.0, 2.0, 3.0}
    best = drawn[kde.ranked(good, bad, drawn)[:10]]
    assert (best[:, 0] == 2).all()
