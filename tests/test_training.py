"""training.py: the protocol's fit and what it measures."""

from __future__ import annotations

import time

import numpy as np


def test_fit_seconds_cover_the_whole_fit_call(monkeypatch):
    """Overhead is measured against the whole model.fit call, set-up included."""
    import keras

    from fmnist_search import baselines, builder, training

    values = builder.resolve(baselines.load("model1").values)
    model = builder.build_model(values, 10)
    real_fit = model.fit

    def slow_start_fit(*args, **kwargs):
        time.sleep(0.5)  # stands for the set-up Keras does before on_train_begin
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(model, "fit", slow_start_fit)
    x = np.zeros((32, 28, 28, 1), "float32")
    y = np.zeros(32, "int64")
    result = training.fit(model, values, (x, y), (x, y), epochs=1)
    assert result.fit_seconds >= 0.5 + sum(r["seconds"] for r in result.history) - 1e-6
    keras.backend.clear_session()


def test_nan_guard_stops_a_real_divergence():
    """A real NaN loss (not a stand-in for fit) goes through NanGuard in training.fit."""
    import keras
    import pytest

    from fmnist_search import baselines, builder, training
    from fmnist_search.callbacks import NanLossError

    values = {**builder.resolve(baselines.load("model1").values), "learning_rate": 1e30}
    model = builder.build_model(values, 10)
    rng = np.random.default_rng(0)
    x = rng.random((256, 28, 28, 1), "float32")
    y = rng.integers(0, 10, 256)
    with pytest.raises(NanLossError, match="the loss became nan in epoch 1"):
        training.fit(model, values, (x, y), (x, y), epochs=3)
    keras.backend.clear_session()


def test_out_of_memory_and_full_disk_are_told_apart():
    """OOM fails the trial (the configuration is too big); a full disk stops the search."""
    import keras_tuner as kt
    import tensorflow as tf

    from fmnist_search.callbacks import LowDiskSpace
    from fmnist_search.tuning.hypermodel import DiskFull, classify_failure

    oom = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
    for exc in (oom, MemoryError("Unable to allocate 24.0 GiB")):
        mapped = classify_failure(exc)
        assert isinstance(mapped, kt.errors.FailedTrialError)
        assert str(mapped).startswith("out of memory")
    assert isinstance(classify_failure(OSError(28, "No space left on device")), DiskFull)
    assert isinstance(classify_failure(LowDiskSpace("No space left on device: 4 bytes")),
                      DiskFull)
    other = ValueError("a bug")
    assert classify_failure(other) is other
