"""A synthetic project on disk, written through ``store`` as a search writes it, whose
objective depends on one hyperparameter only (``learning_rate``) plus noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist_search import store

DATA = {"classes": list(range(10)), "val_fraction": 0.2, "subset": 0.5, "seed": 42,
        "train_csv": None, "test_csv": None, "n_train": 24000, "n_val": 6000, "n_test": 10000}


def write_project(root: Path, project: str = "synth", n: int = 50, seed: int = 0,
                  noise: float = 0.003) -> Path:
    rng = np.random.default_rng(seed)
    path = root / project
    path.mkdir(parents=True)
    store.write_project(path, {"project": project, "space_name": "synthetic", "data": DATA,
                                "preset": {"epochs": 3}, "identity": {}})
    space = [{"class_name": "Float", "config": {"name": "learning_rate", "min_value": 1e-4,
                                                "max_value": 1e-2, "sampling": "log",
                                                "conditions": []}}]
    t0 = 1_700_000_000.0
    for i in range(n):
        dense = int(rng.integers(1, 3))
        values = {
            "learning_rate": float(10 ** rng.uniform(-4, -2)),
            "filters_1": int(rng.choice([16, 32, 64, 128])),
            "dropout_place": str(rng.choice(["pool", "conv", "none"])),
            "batchnorm": bool(rng.integers(0, 2)),
            "dense_layers": dense,
            "head": "flatten",  # the same in every trial: not a column
        }
        if dense == 2:
            values["dense_units_2"] = int(rng.choice([32, 64, 128]))  # conditional
        score = 0.9 - 0.08 * (np.log10(values["learning_rate"]) + 3) ** 2
        score += rng.normal(0, noise)
        trial_id = f"{i:02d}"
        trial_dir = path / f"trial_{trial_id}"
        trial_dir.mkdir()
        store.write_json(trial_dir / store.TRIAL_JSON, {
            "trial_id": trial_id, "hyperparameters": {"space": space, "values": values},
            "metrics": {}, "score": score, "best_step": 2, "status": "COMPLETED",
            "message": None})
        started = t0 + 60 * i
        store.write_trial_record(trial_dir, {
            "trial_id": trial_id, "values": values, "status": "COMPLETED",
            "started": started, "finished": started + 50, "wall_seconds": 50.0,
            "val_accuracy": score, "val_loss": 1 - score, "params": 1000 + i,
            "seconds_per_epoch": 10.0, "epochs": 3, "architecture": f"arch {i}",
            "history": []})
    return path
