"""callbacks.py: the protocol's Keras callbacks, driven hook by hook (no training: a stub model
and a faked clock stand in for a fit). Real fits through them are in test_training.py
(schedules, NaN, SWA, batch norm), test_finalize.py (the cost guard) and test_budget.py
(median stopping)."""

from __future__ import annotations

import io
import math
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from rich.console import Console

from fmnist_search import callbacks
from fmnist_search.callbacks import (
    EpochCostGuard,
    EpochLog,
    EpochProgress,
    MedianStop,
    NanGuard,
    NanLossError,
    OverLimit,
    StepSchedule,
    StopCheck,
    first_batch_excess,
    scheduled_rate,
)


class Clock:
    """``time.perf_counter`` as the test sets it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(callbacks.time, "perf_counter", fake)
    return fake


def stub_model(lr: float = 1e-3):
    """What the callbacks touch of a model: its optimizer's rate and ``stop_training``."""
    return SimpleNamespace(optimizer=SimpleNamespace(learning_rate=lr), stop_training=False,
                           weights=[])


def attached(callback, model=None, **params):
    callback.set_model(model if model is not None else stub_model())
    callback.set_params(params)
    return callback


# --------------------------------------------------------------------------- protocol_callbacks


@pytest.mark.parametrize("schedule", ["exponential", "cosine", "onecycle"])
def test_protocol_callbacks_pick_the_schedule_and_add_early_stopping_only_when_asked(schedule):
    values = {"learning_rate": 0.01, "lr_decay": 0.9, "schedule": schedule, "warmup_epochs": 2}
    log = EpochLog()
    plain = callbacks.protocol_callbacks(values, log)
    kinds = [type(c) for c in plain]
    want = (keras.callbacks.LearningRateScheduler if schedule == "exponential"
            else StepSchedule)
    assert kinds == [want, NanGuard, EpochLog] and plain[2] is log
    if schedule == "exponential":  # lr * decay ** epoch
        assert plain[0].schedule(3) == pytest.approx(0.01 * 0.9**3)
    else:
        assert (plain[0].schedule, plain[0].learning_rate, plain[0].warmup_epochs) == (
            schedule, 0.01, 2)
    stopping = callbacks.protocol_callbacks(values, log, patience=4)[-1]
    assert isinstance(stopping, keras.callbacks.EarlyStopping)
    assert (stopping.monitor, stopping.patience, stopping.restore_best_weights) == (
        "val_loss", 4, True)


# --------------------------------------------------------------------------- StepSchedule


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_step_schedule_sets_each_steps_rate_before_the_step(schedule):
    """3 epochs of 4 steps, warm-up 1 epoch: the optimizer holds step k's rate during step k,
    counted across epochs; the epoch logs its last step's rate."""
    model = stub_model()
    sched = attached(StepSchedule(schedule, 0.1, warmup_epochs=1), model, steps=4, epochs=3)
    sched.on_train_begin()
    seen, logged = [], []
    for epoch in range(3):
        sched.on_epoch_begin(epoch)
        for batch in range(4):
            sched.on_train_batch_begin(batch)
            seen.append(model.optimizer.learning_rate)
        logs: dict = {}
        sched.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
    want = [scheduled_rate(schedule, 0.1, k, 12, warmup=4) for k in range(12)]
    assert seen == pytest.approx(want)
    assert logged == pytest.approx(want[3::4])
    assert len(set(seen)) > 6  # the rate changed step by step, not epoch by epoch


def test_step_schedule_resumed_at_a_later_epoch_continues_the_curve():
    """Hyperband continues a trial with ``initial_epoch``: the first hook is epoch 2, and the
    rate is step 8's of 12 (the fit's total), not step 0's."""
    model = stub_model()
    sched = attached(StepSchedule("cosine", 0.1), model, steps=4, epochs=3)
    sched.on_train_begin()
    sched.on_epoch_begin(2)
    sched.on_train_batch_begin(0)
    assert model.optimizer.learning_rate == pytest.approx(scheduled_rate("cosine", 0.1, 8, 12))
    assert model.optimizer.learning_rate < 0.1 / 2


def test_step_schedule_without_a_step_count_counts_one_a_epoch():
    model = stub_model()
    sched = attached(StepSchedule("cosine", 0.1), model, steps=None, epochs=4)
    sched.on_train_begin()
    assert (sched.steps, sched.total) == (1, 4)
    sched.on_epoch_begin(2)
    sched.on_train_batch_begin(0)
    assert model.optimizer.learning_rate == pytest.approx(scheduled_rate("cosine", 0.1, 2, 4))


def test_an_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="step"):
        scheduled_rate("step", 0.1, 0, 10)


# --------------------------------------------------------------------------- NanGuard


@pytest.mark.parametrize("loss", [float("nan"), float("inf"), -float("inf"), np.float32("nan")])
def test_nan_guard_stops_a_loss_that_is_not_finite_naming_the_epoch(loss):
    with pytest.raises(NanLossError, match=r"the loss became (nan|inf|-inf) in epoch 3: "
                                           r"training diverged \(try a lower learning rate\)"):
        NanGuard().on_epoch_end(2, {"loss": loss})


@pytest.mark.parametrize("logs", [{"loss": 2.3}, {"loss": np.float32(0.0)}, {}, None,
                                  {"val_loss": float("nan")}])
def test_nan_guard_lets_a_finite_or_missing_training_loss_through(logs):
    NanGuard().on_epoch_end(0, logs)


# --------------------------------------------------------------------------- EpochLog


def _epoch(log: EpochLog, clock: Clock, epoch: int, train: list[float], test: list[float],
           logs: dict) -> None:
    """One epoch whose batches start at the given times (seconds from the epoch's start)."""
    start = clock.now
    log.on_epoch_begin(epoch)
    for batch, at in enumerate(train):
        clock.now = start + at
        log.on_train_batch_begin(batch)
    for batch, at in enumerate(test):
        clock.now = start + at
        log.on_test_batch_begin(batch)
    clock.now = start + (test or train)[-1] + 1.0
    log.on_epoch_end(epoch, dict(logs))


def test_epoch_log_times_every_epoch_and_leaves_tracing_out_of_the_first_only(clock):
    """Epoch 1: 4 train batches (a 5 s first one, then 1 s) and 4 validation batches (a 2 s
    first one, then 0.5 s): tracing 4 + 1.5 s. Epochs 2 and 3 have slow first batches too, but
    only the first epoch traces, so their whole seconds count."""
    log = attached(EpochLog(), stub_model())
    _epoch(log, clock, 0, [0, 5, 6, 7], [8, 10, 10.5, 11], {"loss": 1.0, "learning_rate": 0.1})
    _epoch(log, clock, 1, [0, 3, 4, 5], [6, 7, 7.5], {"loss": 0.5, "learning_rate": 0.05})
    _epoch(log, clock, 2, [0, 1, 2, 3], [4, 5, 5.5], {"loss": 0.25, "learning_rate": 0.025})
    assert [r["seconds"] for r in log.rows] == [12.0, 8.5, 6.5]
    assert [r["epoch"] for r in log.rows] == [1, 2, 3]
    assert log.tracing_seconds == pytest.approx(4.0 + 1.5)
    assert log.epoch_cost(0) == pytest.approx(12.0 - 5.5)
    assert log.epoch_cost() == log.epoch_cost(2) == 6.5  # not the first: nothing taken off
    assert log.seconds_per_epoch() == pytest.approx(np.median([8.5, 6.5]))  # after the first
    assert [r["lr"] for r in log.rows] == [0.1, 0.05, 0.025]
    assert all("learning_rate" not in r for r in log.rows)  # popped into "lr"


def test_epoch_log_reads_the_rate_from_the_optimizer_when_the_logs_have_none(clock):
    log = attached(EpochLog(), stub_model(lr=np.float32(0.003)))
    _epoch(log, clock, 0, [0, 1], [], {"loss": np.float32(0.5), "accuracy": 0.25})
    row = log.rows[0]
    assert row["lr"] == pytest.approx(0.003) and type(row["lr"]) is float
    assert row["loss"] == 0.5 and type(row["loss"]) is float and row["accuracy"] == 0.25


def test_a_one_epoch_fit_costs_its_epoch_less_tracing_but_never_nothing(clock):
    """Tracing longer than the epoch measured (clock jitter) falls back to the whole epoch."""
    log = attached(EpochLog(), stub_model())
    _epoch(log, clock, 0, [0, 5, 6, 7], [], {"loss": 1.0, "learning_rate": 0.1})
    assert log.seconds_per_epoch() == log.epoch_cost(0) == pytest.approx(8.0 - 4.0)
    log.tracing_seconds = 100.0
    assert log.seconds_per_epoch() == 8.0


def test_an_empty_log_has_no_seconds_per_epoch():
    assert math.isnan(EpochLog().seconds_per_epoch())


@pytest.mark.parametrize("times, excess", [([], 0.0), ([9.0], 0.0), ([9.0, 1.0], 0.0),
                                           ([9.0, 1.0, 3.0], 7.0), ([1.0, 2.0, 2.0, 2.0], 0.0)])
def test_first_batch_excess(times, excess):
    """Over the median of the others; none with fewer than three batches or a quick first."""
    assert first_batch_excess(times) == excess


# --------------------------------------------------------------------------- MedianStop


def _median_stop(curves, values, min_epochs=2, min_peers=3):
    model = stub_model()
    stop = attached(MedianStop(curves, min_epochs=min_epochs, min_peers=min_peers), model)
    for epoch, value in enumerate(values):
        stop.on_epoch_end(epoch, {"val_accuracy": value})
        if model.stop_training:
            return stop, epoch + 1
    return stop, None


def test_median_stop_compares_the_best_so_far_with_the_median_at_the_same_epoch():
    curves = [{1: 0.5, 2: 0.6, 3: 0.7}, {1: 0.5, 2: 0.8, 3: 0.9}, {1: 0.5, 2: 0.7, 3: 0.8}]
    stop, at = _median_stop(curves, [0.75, 0.1, 0.1])  # best 0.75 >= 0.7 at 2, < 0.8 at 3
    assert at == 3
    assert stop.pruned == ("epoch 3: best val_accuracy 0.7500 < median 0.8000 of 3 earlier "
                           "trials")
    stop, at = _median_stop(curves, [0.2, 0.7, 0.8])  # at the median: not below it
    assert (at, stop.pruned) == (None, None)


def test_median_stop_waits_for_min_epochs_and_enough_peers():
    low = [0.0, 0.0, 0.0, 0.0]
    high = [{1: 0.9, 2: 0.9, 3: 0.9, 4: 0.9}] * 3
    assert _median_stop(high, low, min_epochs=3)[1] == 3  # not at 1 or 2
    assert _median_stop(high, low, min_epochs=0)[1] == 1  # min_epochs counts from 1
    assert _median_stop(high[:2], low)[1] is None  # 2 peers < 3
    assert _median_stop(high[:2], low, min_peers=2)[1] == 2
    short = [{1: 0.9, 2: 0.9}] * 3 + [{1: 0.9}]  # peers are the trials that reached the epoch
    stop, at = _median_stop(short, low)
    assert at == 2 and stop.pruned.endswith("of 3 earlier trials")


def test_median_stop_ignores_an_epoch_without_val_accuracy():
    model = stub_model()
    stop = attached(MedianStop([{1: 0.9}] * 3, min_epochs=1), model)
    stop.on_epoch_end(0, {"loss": 1.0})
    stop.on_epoch_end(0, None)
    assert not model.stop_training and stop.pruned is None and stop.best == -math.inf


# --------------------------------------------------------------------------- EpochCostGuard


def _steps(guard: EpochCostGuard, clock: Clock, durations: list[float]) -> None:
    for batch, seconds in enumerate(durations):
        guard.on_train_batch_begin(batch)
        clock.now += seconds
        guard.on_train_batch_end(batch)


def test_cost_guard_estimates_from_the_median_step_after_the_warm_up(clock):
    """100 steps an epoch: the 3 warm-up steps (tracing, 50 s each) are left out, the next 8
    are timed, and their median times the steps is the estimate, made once."""
    guard = attached(EpochCostGuard(3600), steps=100)
    timed = [0.1, 0.3, 0.2, 0.2, 0.9, 0.2, 0.1, 0.3]
    _steps(guard, clock, [50.0] * EpochCostGuard.WARMUP + timed)
    assert guard.times == pytest.approx(timed)
    assert guard.estimate == pytest.approx(float(np.median(timed)) * 100)
    _steps(guard, clock, [99.0] * 5)  # later steps change nothing
    assert guard.estimate == pytest.approx(20.0) and len(guard.times) == 8


def test_cost_guard_rejects_over_the_limit_naming_the_estimate_and_its_label(clock):
    guard = attached(EpochCostGuard(10), steps=100)
    with pytest.raises(OverLimit, match=r"^rejected: ~20\.0 s per epoch \(from 8 timed steps\) "
                                       r"> --max-seconds-per-epoch 10$"):
        _steps(guard, clock, [1.0] * 3 + [0.2] * 8)
    labelled = attached(EpochCostGuard(10, label="max_epoch_cost 3 (30 s here)"), steps=100)
    with pytest.raises(OverLimit, match=r"> max_epoch_cost 3 \(30 s here\)$"):
        _steps(labelled, clock, [1.0] * 3 + [0.2] * 8)


def test_cost_guard_measures_a_short_epoch_whole(clock):
    """5 steps, fewer than warm-up + timed: the 2 after the warm-up are the sample."""
    guard = attached(EpochCostGuard(3600), steps=5)
    _steps(guard, clock, [9.0, 9.0, 9.0, 1.0, 3.0])
    assert guard.estimate == pytest.approx(2.0 * 5)


def test_cost_guard_of_a_continued_trial_estimates_nothing(clock):
    guard = attached(EpochCostGuard(1e-9, estimate=False), steps=100)
    _steps(guard, clock, [5.0] * 20)
    assert guard.estimate == 0.0 and guard.times == []


def test_cost_guard_holds_the_logged_epoch_less_its_tracing_to_the_limit(clock):
    """With the fit's EpochLog: the first epoch is judged without its tracing (12 s less
    5.5 s is under 7), a later epoch on its whole seconds (8.5 s is over 7)."""
    log = attached(EpochLog(), stub_model())
    guard = attached(EpochCostGuard(7.0, log, estimate=False), steps=4)
    _epoch(log, clock, 0, [0, 5, 6, 7], [8, 10, 10.5, 11], {"loss": 1.0, "learning_rate": 0.1})
    guard.on_epoch_end(0)
    _epoch(log, clock, 1, [0, 3, 4, 5], [6, 7, 7.5], {"loss": 0.5, "learning_rate": 0.1})
    with pytest.raises(OverLimit, match=r"^rejected: epoch 2 took 8\.5 s > "
                                       r"--max-seconds-per-epoch 7$"):
        guard.on_epoch_end(1)
    attached(EpochCostGuard(1e-9), steps=4).on_epoch_end(0)  # no log: nothing to hold


# --------------------------------------------------------------------------- the others


def test_stop_check_is_asked_at_every_epoch_end():
    asked = []
    check = StopCheck(lambda: asked.append(1))
    check.on_epoch_end(0)
    check.on_epoch_end(1, {"loss": 1.0})
    assert asked == [1, 1]


def test_the_disk_guard_goes_before_keras_tuners_checkpoint_and_stops_short_of_a_full_disk(
        tmp_path, monkeypatch):
    """Only the checkpoint callback it is given (Keras Tuner's SaveBestEpoch, which the search
    finds with ``kt_compat.best_epoch_saver``) gets a guard, in its folder; the guard needs the
    weights' bytes with a fifth to spare plus MIN_FREE_BYTES."""
    import collections

    import keras_tuner as kt
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

    weights = [SimpleNamespace(shape=(1000, 10), dtype="float32")]  # 40,000 bytes
    need = int(40_000 * 1.2) + callbacks.MIN_FREE_BYTES
    objective = kt.Objective("val_accuracy", "max")
    checkpoint = SaveBestEpoch(objective, str(tmp_path / "trial_0" / "checkpoint.weights.h5"))
    other = keras.callbacks.ModelCheckpoint(str(tmp_path / "other.keras"))  # a filepath too
    guarded = callbacks.with_disk_guard([other, checkpoint], SimpleNamespace(weights=weights),
                                        checkpoint)
    assert guarded[0] is other and guarded[2] is checkpoint and len(guarded) == 3
    guard = guarded[1]
    assert guard.directory == str(tmp_path / "trial_0")
    usage = collections.namedtuple("usage", "total used free")
    asked = []

    def disk_usage(path):
        asked.append(path)
        return usage(0, 0, free)

    monkeypatch.setattr(callbacks.shutil, "disk_usage", disk_usage)
    free = need
    guard.on_epoch_end(0)
    free = need - 1
    with pytest.raises(callbacks.LowDiskSpace, match=f"{free:,} bytes free, and this trial's "
                                                     f"checkpoint needs about {need:,}"):
        guard.on_epoch_end(1)
    assert asked == [str(tmp_path / "trial_0")] * 2
    no_path = SaveBestEpoch(objective, "")
    assert callbacks.with_disk_guard([no_path], SimpleNamespace(weights=weights),
                                     no_path) == [no_path]
    assert callbacks.with_disk_guard([checkpoint], SimpleNamespace(weights=weights),
                                     None) == [checkpoint]  # no saver: nothing to guard


def test_epoch_progress_drives_its_bars_and_prints_each_epoch():
    from fmnist_search.progress import make_progress

    out = io.StringIO()
    progress = make_progress(Console(file=out, width=120, color_system=None))
    log = EpochLog()
    bars = attached(EpochProgress(progress, log, epochs=2, label="model1", keep=False),
                    steps=60)
    bars.on_train_begin()
    batches = progress._tasks[bars.batch_task]
    assert (batches.total, batches.visible) == (60, True)
    bars.on_epoch_begin(0)
    bars.on_train_batch_end(25, {"loss": 0.12345})
    assert batches.completed == 26 and batches.fields["status"] == "loss 0.1235"
    bars.on_train_batch_end(26, {"loss": 9.0})  # between reads: not shown (a device sync)
    assert batches.completed == 26
    log.rows.append({"epoch": 1, "loss": 0.5, "val_accuracy": 0.8125, "lr": 1e-3,
                     "seconds": 2.0})
    bars.on_epoch_end(0)
    epochs = progress._tasks[bars.epoch_task]
    assert epochs.completed == 1 and epochs.fields["status"] == "val_acc 0.8125"
    assert "epoch   1/2  loss 0.5000  val_acc 0.8125  lr 1.00e-03  2.0s" in out.getvalue()
    bars.on_train_end()
    assert progress.task_ids == []  # keep=False: a search shows one trial's bars at a time
