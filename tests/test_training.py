"""training.py: the protocol's fit and what it measures."""

from __future__ import annotations

import time

import numpy as np
import pytest


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


# --------------------------------------------------------------------------- schedules, TTA


def test_cosine_schedule_warms_up_then_falls_to_zero():
    from fmnist_search.callbacks import scheduled_rate

    rates = [scheduled_rate("cosine", 0.1, step, 100, warmup=10) for step in range(100)]
    assert rates[0] == pytest.approx(0.01) and rates[9] == pytest.approx(0.1)  # linear warm-up
    assert all(a <= b for a, b in zip(rates[:9], rates[1:10], strict=True))
    assert all(a >= b for a, b in zip(rates[9:-1], rates[10:], strict=True))
    assert rates[55] == pytest.approx(0.05) and rates[-1] < 1e-3
    assert scheduled_rate("cosine", 0.1, 0, 100) == pytest.approx(0.1)  # no warm-up


def test_onecycle_schedule_rises_then_anneals():
    from fmnist_search.callbacks import scheduled_rate

    rates = [scheduled_rate("onecycle", 0.1, step, 100) for step in range(100)]
    assert rates[0] == pytest.approx(0.1 / 25)
    assert max(rates) == pytest.approx(0.1) and rates.index(max(rates)) == 30
    assert rates[-1] == pytest.approx(0.1 / 25e4)


@pytest.mark.parametrize("schedule", ["exponential", "cosine", "onecycle"])
def test_fit_follows_the_schedule_step_by_step(schedule):
    """The logged lr is the rate of the epoch's last step, and the optimizer really used it."""
    import keras

    from fmnist_search import builder, training
    from fmnist_search.callbacks import scheduled_rate

    values = builder.resolve({"stages": 1, "filters_1": 4, "dense_layers": 0, "batch_size": 16,
                              "learning_rate": 0.01, "schedule": schedule, "warmup_epochs": 1})
    model = builder.build_model(values, 10)
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(np.asarray(self.model.optimizer.learning_rate)))

    x = np.random.default_rng(0).random((64, 28, 28, 1), "float32")
    result = training.fit(model, values, (x, np.arange(64) % 10), (x, np.arange(64) % 10),
                          epochs=3, extra_callbacks=[Watch()])
    lrs = [row["lr"] for row in result.history]
    if schedule == "exponential":
        assert lrs == pytest.approx([0.01, 0.009, 0.0081])
        assert seen == pytest.approx([0.01] * 4 + [0.009] * 4 + [0.0081] * 4)
        return
    expected = [scheduled_rate(schedule, 0.01, step, 12, warmup=4) for step in range(12)]
    assert seen == pytest.approx(expected, rel=1e-5)  # 4 steps an epoch, 12 in all
    assert lrs == pytest.approx(expected[3::4], rel=1e-5)
    keras.backend.clear_session()


def test_resumed_fit_continues_the_schedule():
    """Hyperband resumes a trial with initial_epoch: the curve goes on from that epoch."""
    from fmnist_search import builder, training
    from fmnist_search.callbacks import scheduled_rate

    values = builder.resolve({"stages": 1, "filters_1": 4, "dense_layers": 0, "batch_size": 32,
                              "learning_rate": 0.01, "schedule": "cosine"})
    model = builder.build_model(values, 10)
    x = np.zeros((64, 28, 28, 1), "float32")
    y = np.zeros(64, "int64")
    result = training.fit(model, values, (x, y), (x, y), epochs=4, initial_epoch=2)
    assert [r["epoch"] for r in result.history] == [3, 4]
    assert result.history[0]["lr"] == pytest.approx(scheduled_rate("cosine", 0.01, 5, 8))


def test_weight_decay_and_label_smoothing_change_training():
    """Same seed, same data: decoupled decay shrinks the weights; smoothing raises the loss."""
    import keras

    from fmnist_search import builder, training

    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), "float32")
    y = np.arange(64) % 10

    def train(**extra):
        keras.utils.set_random_seed(0)
        values = builder.resolve({"stages": 1, "filters_1": 4, "dense_layers": 0,
                                  "batch_size": 16, "optimizer": "adamw", "learning_rate": 0.01,
                                  **extra})
        model = builder.build_model(values, 10)
        result = training.fit(model, values, (x, y), (x, y), epochs=2)
        norm = sum(float(np.sum(np.square(w))) for w in model.get_weights())
        return norm, result.history[-1]["loss"]

    plain_norm, plain_loss = train()
    decayed_norm, _ = train(weight_decay=1.0)
    _, smoothed_loss = train(label_smoothing=0.3)
    assert decayed_norm < plain_norm * 0.95
    assert smoothed_loss > plain_loss


def test_tta_averages_with_the_mirror_image():
    """A model that is not flip-invariant predicts differently with TTA; mirror-symmetric
    images give the same answer either way."""
    import keras

    from fmnist_search import builder, training

    keras.utils.set_random_seed(0)
    model = builder.build_model({"stages": 1, "filters_1": 4, "dense_layers": 0}, 10)
    rng = np.random.default_rng(0)
    x = rng.random((32, 28, 28, 1), "float32")
    y = np.arange(32) % 10
    classes = [str(i) for i in range(10)]
    plain, _ = training.predict(model, x)
    mirrored, _ = training.predict(model, x[:, :, ::-1])
    averaged, _ = training.predict(model, x, tta=True)
    assert not np.allclose(plain, averaged)
    np.testing.assert_allclose(averaged, (plain + mirrored) / 2, rtol=1e-5, atol=1e-7)
    symmetric = (x + x[:, :, ::-1]) / 2
    np.testing.assert_allclose(training.predict(model, symmetric, tta=True)[0],
                               training.predict(model, symmetric)[0], rtol=1e-5, atol=1e-7)
    loss = training.evaluate(model, x, y, classes)["loss"]
    assert training.evaluate(model, x, y, classes, tta=True)["loss"] != loss


def test_one_epoch_cost_leaves_out_the_first_batches_tracing(monkeypatch):
    """A one-epoch trial's seconds per epoch is its epoch less the first training and first
    validation batch's excess over the median batch (tracing), not the whole first epoch."""
    from fmnist_search import callbacks

    clock = iter([0.0,                   # epoch begins
                  0.0, 10.0, 11.0, 12.0,  # train batch starts: 10 s, then 1 s batches
                  13.0, 17.0, 17.5, 18.0,  # validation batch starts: 4 s, then 0.5 s
                  18.5])                  # epoch ends
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    log = callbacks.EpochLog()
    log.on_epoch_begin(0)
    for batch in range(4):
        log.on_train_batch_begin(batch)
    for batch in range(4):
        log.on_test_batch_begin(batch)
    log.on_epoch_end(0, {"loss": 1.0, "learning_rate": 1e-3})
    assert log.rows[0]["seconds"] == 18.5
    assert log.tracing_seconds == pytest.approx(9.0 + 3.5)
    assert log.seconds_per_epoch() == pytest.approx(18.5 - 12.5)


def test_epoch_cost_of_a_real_fit_is_positive_and_below_its_first_epoch():
    """Adversarial side: a real fit whose batches are all about as cheap (a tiny model) still
    reports a positive cost, no more than the first epoch's wall time; with more than one
    epoch, the first epoch is left out as before."""
    import keras

    from fmnist_search.callbacks import EpochLog

    x = np.zeros((256, 4), "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    log = EpochLog()
    model.fit(x, np.zeros(256), batch_size=16, epochs=1, validation_data=(x, np.zeros(256)),
              verbose=0, callbacks=[log])
    assert 0 < log.seconds_per_epoch() <= log.rows[0]["seconds"]
    assert log.tracing_seconds > 0  # the first batch traced the training function
    model.fit(x, np.zeros(256), batch_size=16, epochs=3, verbose=0, callbacks=[two := EpochLog()])
    assert two.seconds_per_epoch() == pytest.approx(np.median([r["seconds"]
                                                               for r in two.rows[1:]]))
    keras.backend.clear_session()


def test_weight_averaging_assigns_the_mean_of_the_last_epochs_weights():
    """swa_epochs = 2 of 4: the model ends with the mean of its weights after epochs 3 and 4
    (no batch norm here, so nothing is recomputed); 0 leaves the last weights."""
    import keras

    from fmnist_search import builder, training

    rng = np.random.default_rng(0)
    x, y = rng.random((64, 28, 28, 1), "float32"), np.arange(64) % 10
    ends = []

    class Keep(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append([w.numpy().copy() for w in self.model.trainable_weights])

    for swa in (2, 0):
        ends.clear()
        values = builder.resolve({"stages": 1, "filters_1": 4, "dense_layers": 0,
                                  "batch_size": 16, "learning_rate": 0.01, "swa_epochs": swa})
        keras.utils.set_random_seed(1)
        model = builder.build_model(values, 10, policy="float32")
        training.fit(model, values, (x, y), (x, y), epochs=4, extra_callbacks=[Keep()])
        final = [w.numpy() for w in model.trainable_weights]
        want = ([(a + b) / 2 for a, b in zip(ends[2], ends[3], strict=True)] if swa
                else ends[3])
        for got, expected in zip(final, want, strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
        assert not np.allclose(ends[2][0], ends[3][0])  # the two epochs did differ
    assert "swa2" in builder.short_name(builder.resolve({"swa_epochs": 2}))


def test_batchnorm_statistics_are_recomputed_as_the_mean_over_the_batches():
    import keras

    from fmnist_search.callbacks import recompute_batchnorm

    inputs = keras.Input((4,))
    bn = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, keras.layers.Dense(2)(bn(inputs)))
    x = np.random.default_rng(2).normal(3.0, 2.0, (96, 4)).astype("float32")
    recompute_batchnorm(model, x, 32)
    batches = x.reshape(3, 32, 4)
    np.testing.assert_allclose(bn.moving_mean.numpy(), batches.mean(axis=1).mean(axis=0),
                               rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), batches.var(axis=1).mean(axis=0),
                               rtol=1e-4)
    assert bn.momentum == 0.99  # restored
