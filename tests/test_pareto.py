"""Pareto fronts (``pareto.py``) on hand-made points: non-dominated sorting, crowding, the
orders a search ranks by, hypervolume against exact areas, the spread finalize trains, and a
project's front read from its records."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from fmnist_search import objectives, pareto

# Minimised, two objectives: A, B, D, F on the front (F a copy of B), C behind B, E behind all.
POINTS = np.array([[1, 5], [2, 3], [3, 4], [4, 1], [5, 5], [2, 3]], dtype=float)


def test_non_dominated_sorting_of_hand_made_points():
    assert pareto.ranks(POINTS).tolist() == [0, 0, 1, 0, 2, 0]
    # three fronts, one behind the other; a copy is not dominated by its twin
    layers = np.array([[1, 3], [3, 1], [2, 4], [4, 2], [5, 5], [2, 2]], dtype=float)
    assert pareto.ranks(layers).tolist() == [0, 0, 1, 1, 2, 0]
    assert pareto.dominates(np.array([1, 1]), np.array([1, 2]))
    assert not pareto.dominates(np.array([1, 2]), np.array([1, 2]))


def test_an_incomplete_point_ranks_after_every_complete_one():
    points = np.array([[1, np.nan], [3, 3], [2, 2]])
    assert pareto.ranks(points).tolist() == [2, 1, 0]
    assert pareto.promotion_order(points) == [2, 1, 0]


def test_three_objectives():
    points = np.array([[1, 2, 3], [2, 1, 3], [3, 3, 1], [3, 3, 3], [2, 2, 2]], dtype=float)
    assert pareto.ranks(points).tolist() == [0, 0, 0, 1, 0]


def test_crowding_distance_by_hand():
    front = np.array([[0, 10], [1, 6], [4, 2], [10, 0]], dtype=float)
    distance = pareto.crowding(front)
    assert distance[0] == distance[3] == math.inf
    # each neighbour gap over the range (10 and 10): (4 - 0)/10 + (10 - 2)/10, (10-1)/10 + (6-0)/10
    assert distance[1] == pytest.approx(0.4 + 0.8)
    assert distance[2] == pytest.approx(0.9 + 0.6)
    assert pareto.crowding(front[:2]).tolist() == [math.inf, math.inf]


def test_promotion_order_is_rank_then_crowding():
    # front: the two extremes (infinite crowding), then the less crowded middle point
    points = np.array([[0, 10], [1, 6], [4, 2], [10, 0], [5, 5], [2, 9]], dtype=float)
    assert pareto.ranks(points).tolist() == [0, 0, 0, 0, 1, 1]
    order = pareto.promotion_order(points)
    assert order[:2] == [0, 3] and order[2:4] == [2, 1] and set(order[4:]) == {4, 5}


def _grid_volume(points: np.ndarray, low: list[float], reference: list[float], n: int
                 ) -> float:
    """The dominated volume counted on a grid of ``n`` cells an axis from ``low`` to
    ``reference`` (exact where every coordinate lies on a cell boundary)."""
    axes = [np.linspace(lo, hi, n, endpoint=False) + (hi - lo) / (2 * n)
            for lo, hi in zip(low, reference, strict=True)]
    cell = np.prod([(hi - lo) / n for lo, hi in zip(low, reference, strict=True)])
    count = 0
    for c in itertools.product(*axes):
        count += bool(np.any(np.all(points <= np.array(c), axis=1)))
    return count * cell


def test_hypervolume_against_exact_areas_and_volumes():
    # the staircase of A, B, D up to (6, 6): 1*1 + 2*3 + 2*5
    assert pareto.hypervolume(POINTS, [6, 6]) == pytest.approx(17.0)
    assert pareto.hypervolume(POINTS[[4]], [5, 5]) == 0.0  # not inside the reference
    assert pareto.hypervolume(np.empty((0, 2)), [1, 1]) == 0.0
    three = np.array([[1, 2, 3], [2, 1, 3], [3, 3, 1]], dtype=float)
    # unit cells from (1, 1, 1) to (4, 4, 4); by inclusion-exclusion 6 + 6 + 3 - 4 - 1 - 1 + 1
    assert _grid_volume(three, [1, 1, 1], [4, 4, 4], 3) == pytest.approx(10.0)
    assert pareto.hypervolume(three, [4, 4, 4]) == pytest.approx(10.0)
    rng = np.random.default_rng(0)
    cloud = rng.integers(0, 6, (12, 3)).astype(float)
    assert pareto.hypervolume(cloud, [6, 6, 6]) == pytest.approx(
        _grid_volume(cloud, [0, 0, 0], [6, 6, 6], 6))
    # a known front: f2 = 1 - sqrt(f1) on [0, 1], reference (1, 2): 2 - 1/3
    f1 = np.linspace(0, 1, 4001)
    front = np.c_[f1, 1 - np.sqrt(f1)]
    assert pareto.hypervolume(front, [1, 2]) == pytest.approx(2 - 1 / 3, abs=1e-3)


def test_greedy_hypervolume_order_and_the_mo_tpe_split():
    # D and A are extremes; B adds the most area alone with this reference
    order = pareto.greedy_hypervolume_order(POINTS[[0, 1, 3]], [6, 6])
    assert order[0] == 1 and sorted(order) == [0, 1, 2]
    split = pareto.selection_order(POINTS)
    assert set(split[:4]) == {0, 1, 3, 5} and split[4:] == [2, 4]  # rank by rank


def test_spread_takes_the_extremes_first_then_the_farthest():
    f1 = np.linspace(0, 1, 11)
    front = np.c_[f1, 1 - f1]
    behind = front + 0.5
    points = np.vstack([front, behind])
    chosen = pareto.spread(points, 3)
    assert chosen[:2] == [0, 10] and chosen[2] == 5  # both extremes, then the middle
    five = pareto.spread(points, 5)
    assert five[:3] == [0, 10, 5] and sorted(five[3:]) == [2, 7]  # the quarters, then
    assert pareto.spread(points[[0, 10, 11]], 3) == [0, 1, 2]  # front of 2: then rank 1


def test_objectives_are_minimised_on_their_scales():
    accuracy, params = objectives.of(("val_accuracy:max", "params:min"))
    assert accuracy.minimised(0.9) == -0.9
    assert params.minimised(1000) == pytest.approx(3.0)  # a cost: log10
    assert math.isnan(params.minimised(None))


def test_budget_lines_round_up_to_two_figures():
    assert pareto.budget_label(48_000, " params") == "48K params"
    assert pareto.budget_label(257_162, " params") == "260K params"
    assert pareto.budget_label(1_000_000, " params") == "1M params"
    assert pareto.budget_label(0.0431, " ms") == "0.044 ms"


def test_a_projects_front_stands_each_configuration_once():
    rows = [
        {"status": "COMPLETED", "values": {"a": 1}, "epochs": 1, "val_accuracy": 0.80,
         "params": 1000},
        {"status": "COMPLETED", "values": {"a": 1, "tuner/epochs": 3}, "epochs": 3,
         "val_accuracy": 0.85, "params": 1000},
        {"status": "COMPLETED", "values": {"a": 2}, "epochs": 1, "val_accuracy": 0.90,
         "params": 5000},
        {"status": "COMPLETED", "values": {"a": 3}, "epochs": 1, "val_accuracy": 0.84,
         "params": 6000},
        {"status": "REJECTED", "values": {"a": 4}, "params": 2_000_000},
    ]
    ranked = pareto.with_ranks(rows, objectives.ACCURACY_AND_SIZE)
    assert [r.get("pareto_rank") for r in ranked] == [None, 0, 0, 1]
