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
