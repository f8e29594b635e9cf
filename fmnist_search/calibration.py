"""A search's cost limit relative to this machine: epochs measured against the report's model1.

An absolute limit (``max_seconds_per_epoch``) holds on the machine it was chosen on only: the
same 847,914-parameter trial of the quick search took 7 s an epoch on the development machine
and 112 s on a loaded 2-core AVX2 one, where ``make demo`` then took 590 s instead of 107. A
relative one (``max_epoch_cost = R``) rejects a configuration whose epoch would cost more than
R times an epoch of the report's model1 (257,162 parameters, three convolutions) on the same
images, precision and machine, measured here when the search starts: fast and slow CPUs then
reject the same corner of the space, and the demo's time scales with the machine.

The measurement is model1's training steps on the search's own training images at batch 128,
timed as ``callbacks.EpochCostGuard`` times a trial's (a few steps for tracing left out, the
median of the next ones times the steps of an epoch), so the two estimates are alike.
"""

from __future__ import annotations

import math
import time

import numpy as np

WARMUP, TIMED = 3, 8  # as callbacks.EpochCostGuard
# A relative limit is never below this: on a few hundred images an epoch is mostly its fixed
# costs (the validation pass, callbacks, a retrace), which a model1 step time does not see,
# and a 300-image notebook search had every trial rejected for them.
FLOOR_SECONDS = 10.0
REFERENCE = "model1"
_CACHE: dict[tuple, float] = {}


def reference_seconds(x: np.ndarray, y: np.ndarray, num_classes: int, policy: str) -> float:
    """Seconds of one training epoch of model1 on ``x`` (steps only, as the guard estimates a
    trial), measured once per process, images and policy."""
    key = (len(x), x.shape[1:], num_classes, policy)
    if key in _CACHE:
        return _CACHE[key]
    import keras

    from fmnist_search import baselines, builder

    values = builder.resolve(baselines.load(REFERENCE).values)
    batch = int(values["batch_size"])
    model = builder.build_model(values, num_classes, policy=policy)
    n = min(len(x), batch)
    times = []
    for _ in range(WARMUP + TIMED):
        start = time.perf_counter()
        model.train_on_batch(x[:n], y[:n])
        times.append(time.perf_counter() - start)
    del model
    keras.backend.clear_session()
    seconds = float(np.median(times[WARMUP:])) * math.ceil(len(x) / batch)
    _CACHE[key] = seconds
    return seconds


def seconds_limit(max_seconds: float, max_cost: float, reference: float | None) -> float:
    """The tighter of the absolute limit and ``max_cost`` x the reference, the latter never
    under ``FLOOR_SECONDS`` (0: no limit)."""
    relative = max(max_cost * reference, FLOOR_SECONDS) if max_cost and reference else 0
    limits = [s for s in (max_seconds, relative) if s]
    return min(limits) if limits else 0.0


def describe(max_cost: float, reference: float, n: int) -> str:
    return (f"max_epoch_cost {max_cost:g}: at most {max_cost:g} x the report's {REFERENCE}, "
            f"whose epoch of {n:,} images measured {reference:.2f} s here: "
            f"{max(max_cost * reference, FLOOR_SECONDS):.1f} s an epoch (never under "
            f"{FLOOR_SECONDS:g} s)")
