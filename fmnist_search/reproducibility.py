"""Seeds that make a trial's result a function of its configuration, not of its process.

A search used to seed Keras once, when it started: every later trial drew its initial weights,
its shuffling order and its augmentation from wherever the previous trials had left the
generators, so the same configuration scored 0.8095 in one run and 0.8480 in another, and a
resumed or distributed trial differed again. Each trial now reseeds every generator (Python,
NumPy, TensorFlow and Keras' own) from the project seed and its trial id just before its model
is built; the seed is recorded with the trial.

Measured on this project's 2-core CPU (tests/test_reproducibility.py, benchmarks/
bench_determinism.py): with the seed alone, one trial trained twice in separate processes gives
identical weights; TensorFlow's op determinism is not needed on a CPU. On a GPU, cuDNN and
atomics make some kernels order-dependent, so ``op_determinism("auto")`` turns TensorFlow's
deterministic kernels on there only.
"""

from __future__ import annotations

import hashlib

from fmnist_search import backend

MODES = ("auto", "on", "off")


def trial_seed(project_seed: int, trial_id: str) -> int:
    """A 31-bit seed from the project seed and the trial id: stable across processes and
    Python versions (``hash()`` is salted per process), distinct for each trial."""
    digest = hashlib.sha256(f"{int(project_seed)}/{trial_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Python's, NumPy's, TensorFlow's and Keras' generators, all from one seed."""
    import keras

    keras.utils.set_random_seed(int(seed))


_DETERMINISTIC = {"on": False}  # whether this process turned deterministic kernels on


def op_determinism(mode: str) -> bool:
    """Turn TensorFlow's deterministic kernels on for ``on``, or for ``auto`` when a GPU is
    present; returns whether they are on. Process-wide and not undone: TensorFlow applies it
    to kernels as they are created, so switching it back mid-process would mix both kinds.

    A search asks for ``on`` only when its preset says ``deterministic = true``: on a GPU they
    cost speed (cuDNN's fastest kernels are not deterministic) and they make Keras resolve
    ``jit_compile="auto"`` to False, so trials trained without XLA while baselines (which never
    asked) had it, and their times could not be compared (issue 36)."""
    if mode not in MODES:
        raise ValueError(f"op determinism {mode!r}; valid: {', '.join(MODES)}")
    wanted = mode == "on" or (mode == "auto" and backend.has_gpu())
    if wanted and backend.enable_op_determinism():
        _DETERMINISTIC["on"] = True
    return _DETERMINISTIC["on"]


def deterministic() -> bool:
    """Whether this process trains with deterministic kernels (recorded with each trial)."""
    return _DETERMINISTIC["on"]
