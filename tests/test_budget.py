from __future__ import annotations

import numpy as np
import pytest

from fmnist_search.budget import FLOOR_SECONDS, MARGIN, finalize_reserve


def test_reserve_scales_the_measured_epochs_of_the_top_k_to_the_full_split():
    # 2 models of 10 epochs at 30 s and 20 s per epoch on half the split: 2 x (30 + 20) x 10.
    reserve = finalize_reserve([30.0, 20.0, 5.0], top=2, final_epochs=10, scale=2.0)
    assert reserve == pytest.approx(1000 * (1 + MARGIN) + FLOOR_SECONDS)


def test_reserve_assumes_the_slowest_for_models_not_measured_yet():
    reserve = finalize_reserve([30.0], top=3, final_epochs=10, margin=0, floor=0)
    assert reserve == pytest.approx(900.0)


def test_reserve_counts_the_baselines_at_the_mean_measured_cost():
    reserve = finalize_reserve([30.0, 10.0], top=2, final_epochs=10, baseline_epochs=[5],
                               margin=0, floor=0)
    assert reserve == pytest.approx(400 + 20 * 5)


@pytest.mark.parametrize("measured, top", [([], 3), ([30.0], 0), ([float("nan"), 0.0], 2)])
def test_nothing_measured_or_nothing_to_finalize_reserves_nothing(measured, top):
    assert finalize_reserve(measured, top, 30) == 0.0


def test_median_stop_prunes_a_trial_below_the_earlier_trials_median():
    import keras

    from fmnist_search.callbacks import MedianStop

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 2, 64)

    def fit(curves):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        stop = MedianStop(curves, min_epochs=2)
        history = model.fit(x, y, validation_data=(x, y), epochs=4, verbose=0,
                            callbacks=[stop])
        return stop, len(history.history["loss"])

    better = [{1: 1.0, 2: 1.0, 3: 1.0}] * 2 + [{1: 0.0, 2: 1.0}]  # median 1.0 at epoch 2
    stop, epochs = fit(better)
    assert epochs == 2 and stop.pruned and "epoch 2" in stop.pruned
    stop, epochs = fit([{1: 0.0, 2: 0.0}] * 3)  # below every trial: trains on
    assert epochs == 4 and stop.pruned is None
    stop, epochs = fit([{1: 1.0, 2: 1.0}] * 2)  # too few earlier trials to judge
    assert epochs == 4 and stop.pruned is None
