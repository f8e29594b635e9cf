"""A trial's score and weights are a function of the project seed, its configuration and the
data: the same in another process, after a resume, and on a distributed worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import search_args

from fmnist_search import store
from fmnist_search.reproducibility import trial_seed


def test_trial_seeds_are_stable_and_distinct():
    assert trial_seed(5, "00") == trial_seed(5, "00")  # no per-process hash salt
    seeds = {trial_seed(s, f"{t:02d}") for s in range(5) for t in range(50)}
    assert len(seeds) == 250 and all(0 <= s < 2**31 for s in seeds)
    assert trial_seed(5, "00") != trial_seed(6, "00")


def _half_the_cores() -> list[int]:
    """The cores one of two local workers gets (the supervisor divides them equally)."""
    cores = sorted(os.sched_getaffinity(0))
    return cores[: max(1, len(cores) // 2)]


def _start(args: list[str], log: Path, cores: list[int] | None = None) -> subprocess.Popen:
    """A command in its own process; ``cores`` pins it (TensorFlow sizes its thread pools to
    the cores a process may use, and the order of a sum over threads changes the last bits
    of a float: measured 1.5e-8 in a weight between 1 and 2 threads)."""
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    return subprocess.Popen([sys.executable, "-m", "fmnist_search", *args], text=True,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, preexec_fn=pin)


def _finish(proc: subprocess.Popen, log: Path) -> None:
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]


def _weights(trial_dir: Path) -> list[np.ndarray]:
    import h5py

    out: list[np.ndarray] = []
    with h5py.File(trial_dir / "checkpoint.weights.h5", "r") as fh:
        fh.visititems(lambda name, obj: out.append(np.asarray(obj))
                      if isinstance(obj, h5py.Dataset) else None)
    assert out, f"no weights in {trial_dir}"
    return out


def _trials(root: Path) -> dict[str, tuple[dict, list[np.ndarray]]]:
    trials = {}
    for d in store.trial_dirs(root / "p"):
        record = store.read_trial_record(d)
        trials[record["trial_id"]] = (record, _weights(d))
    return trials


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_a_trial_is_the_same_in_another_process_after_a_resume_and_on_a_worker(tmp_path,
                                                                               csv_data):
    def args(name: str, trials: int, *extra: str) -> list[str]:
        out = search_args(csv_data, tmp_path / name, "p", trials, "--seed", "3", *extra)
        out[out.index("--epochs") + 1] = "2"
        return out

    # Trial 1 of one process, trial 2 of another (a resume), both against two workers, each a
    # process of its own with as many threads as a worker of two gets, so all compare exactly.
    # The two searches share nothing (folders, pinned thread counts), so they run side by
    # side: each of these processes leaves a core idle while it loads TensorFlow.
    cores = _half_the_cores()
    logs = {name: tmp_path / f"{name}.log" for name in ("resumed-1", "resumed-2", "workers")}
    workers = _start(args("workers", 2, "--workers", "2"), logs["workers"])
    try:
        _finish(_start(args("resumed", 1), logs["resumed-1"], cores), logs["resumed-1"])
        _finish(_start(args("resumed", 2), logs["resumed-2"], cores),  # trial 2 after a resume
                logs["resumed-2"])
        _finish(workers, logs["workers"])
    finally:
        if workers.poll() is None:
            workers.kill()
            workers.wait()
    runs = {name: _trials(tmp_path / name / "res") for name in ("resumed", "workers")}
    reference = runs.pop("workers")
    assert len(reference) == 2
    for name, trials in runs.items():
        assert sorted(trials) == sorted(reference), name
        for trial_id, (record, weights) in trials.items():
            expected, expected_weights = reference[trial_id]
            assert record["values"] == expected["values"], (name, trial_id)
            assert record["seed"] == expected["seed"] == trial_seed(3, trial_id)
            assert record["val_accuracy"] == expected["val_accuracy"], (name, trial_id)
            assert len(weights) == len(expected_weights)
            for a, b in zip(weights, expected_weights, strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"{name} trial {trial_id}")
