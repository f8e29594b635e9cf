"""Training one configuration end to end and writing its run directory.

The run directory is the contract the leaderboard, ``show`` and ``predict`` read. It is built
under a hidden temporary name and renamed into place only when every file is written, so a
crash or kill never leaves a directory that looks finished but is not.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console

from fmnist_search import builder, export, plots, store, training
from fmnist_search.dataset import DEFAULT_SEED, Dataset
from fmnist_search.results import results_root  # noqa: F401 - defined there, without TensorFlow
from fmnist_search.versions import code_digest, versions  # noqa: F401 - callers not yet moved

RUN_FILES = store.RUN_FILES


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-%f")


@dataclass
class RunSpec:
    """What to train: a name, pinned values, and the protocol overrides for this run."""

    kind: str  # "baseline" or "retrained"
    name: str
    values: dict[str, Any]
    epochs: int
    seed: int = DEFAULT_SEED
    precision: str = "auto"
    weights_path: str | None = None
    patience: int | None = None
    source: dict[str, Any] | None = None  # where the values came from (baseline file, trial)


def train_run(spec: RunSpec, data: Dataset, parent: Path, console: Console) -> tuple[Path, dict]:
    """Train, evaluate and write ``parent/<run-id>/``; returns it and its metrics.

    Every epoch is checkpointed beside the runs (``checkpoints``, except with ``patience``):
    a training killed part-way continues from its last finished epoch when it is run again,
    and ends with the weights it would have had; the checkpoint goes once the run is written.
    """
    import keras

    from fmnist_search import checkpoints
    from fmnist_search.callbacks import EpochLog, EpochProgress
    from fmnist_search.progress import make_progress

    policy = training.choose_policy(spec.precision)
    started, clock = now(), time.perf_counter()
    values = builder.resolve(spec.values)

    def fresh_model():
        keras.backend.clear_session()
        keras.utils.set_random_seed(spec.seed)
        return builder.build_model(values, data.num_classes, weights_path=spec.weights_path,
                                   policy=policy)

    model = fresh_model()
    log = EpochLog()
    digest = checkpoints.identity_digest(checkpoint_identity(spec, values, policy, data))
    folder = checkpoints.folder(parent, digest) if not spec.patience else None
    point = None
    if folder is not None:
        try:
            point = checkpoints.load(folder, digest, spec.epochs)
            if point is not None:
                checkpoints.restore(model, point, log)
        except checkpoints.Damaged as exc:
            console.print(f"ignored the checkpoint in {folder}: {exc}; training starts over")
            point, model, log = None, fresh_model(), EpochLog()  # it may be part-way in
    if point is not None:
        console.print(f"resumed from epoch {point.epoch} of {spec.epochs} (checkpoint of "
                      f"{point.written})")
        started = point.started
    trainable, frozen = training.count_params(model)
    console.print(f"[bold]{spec.name}[/]: {builder.short_name(values, data.num_classes)}  "
                  f"({trainable + frozen:,} params, {len(data.y_train):,} train / "
                  f"{len(data.y_val):,} val images, policy {policy})")
    extra: list = []
    if folder is not None:
        extra.append(checkpoints.EpochCheckpoint(folder, digest, log, started, clock, point))
    with make_progress(console) as progress:
        extra.insert(0, EpochProgress(progress, log, spec.epochs, spec.name))
        if point is not None:  # the bar starts where the checkpoint left off
            progress.update(extra[0].epoch_task, completed=point.epoch)
        result = training.fit(model, values, (data.x_train, data.y_train), (data.x_val, data.y_val),
                              spec.epochs, spec.patience, log=log, extra_callbacks=extra,
                              initial_epoch=point.epoch if point else 0)
    tta = bool(values["tta"])
    val = training.evaluate(model, data.x_val, data.y_val, data.class_names, tta=tta)
    test = (training.evaluate(model, data.x_test, data.y_test, data.class_names, tta=tta)
            if data.y_test is not None else None)
    metrics = {
        "kind": spec.kind,
        "model": spec.name,
        "architecture": builder.short_name(values, data.num_classes),
        "values": spec.values,
        "source": spec.source or {},
        "params": trainable + frozen,
        "trainable_params": trainable,
        "non_trainable_params": frozen,
        "epochs": result.epochs_trained,
        "resumed_at": [*point.resumed_at, point.epoch] if point else [],
        "batch_size": int(values["batch_size"]),
        "precision": policy,
        "seconds_per_epoch": result.seconds_per_epoch,
        "fit_seconds": result.fit_seconds + (point.fit_seconds if point else 0.0),
        "predict_seconds": (test or val)["predict_seconds"],
        "val_accuracy": val["accuracy"],
        "val_loss": val["loss"],
        "test_accuracy": test["accuracy"] if test else None,
        "test_loss": test["loss"] if test else None,
        "test_note": None if test else data.test_note or "no test set",
        "per_class": (test or val)["per_class"],
        "per_class_split": "test" if test else "validation",
        "confusion_matrix": (test or val)["confusion_matrix"],
        "val_confusion_matrix": val["confusion_matrix"],
        "classes": data.class_names,
        "n_train": len(data.y_train),
        "n_val": len(data.y_val),
        "n_test": len(data.x_test),
        "data": data.fingerprint(),
        "seed": spec.seed,
        "versions": versions(),
        "started": started,
        "finished": now(),
        # the timestamps are whole seconds; a resumed run adds what its checkpoint kept
        "wall_seconds": time.perf_counter() - clock + (point.wall_seconds if point else 0.0),
    }
    probabilities = {"val": val["probs"], **({"test": test["probs"]} if test else {})}
    path = write_run(parent, metrics, result.history, model, probabilities)
    if folder is not None:
        checkpoints.remove(folder)
    return path, metrics


def checkpoint_identity(spec: RunSpec, values: Mapping[str, Any], policy: str,
                        data: Dataset) -> dict[str, Any]:
    """What makes two trainings the same, so that only the same one resumes a checkpoint (the
    values that differ from their defaults: a hyperparameter added later, at a default that
    changes nothing, must not orphan the checkpoint of a training in flight)."""
    return {"kind": spec.kind, "name": spec.name, "values": builder.explicit(values),
            "epochs": spec.epochs,
            "seed": spec.seed, "policy": policy, "weights_path": spec.weights_path,
            "data": data.fingerprint(), "data_digest": data.digest()}


def write_run(parent: Path, metrics: Mapping[str, Any], history: list[dict], model,
              probabilities: Mapping[str, Any] | None = None) -> Path:
    import pandas as pd

    with store.new_run(parent, new_run_id()) as run:
        partial = run.partial
        if history:  # an ensemble trains nothing: no history, no curves
            pd.DataFrame(history).to_csv(partial / store.HISTORY_CSV, index=False)
            plots.curves(history, partial / store.CURVES_PNG, metrics["model"])
        plots.confusion(metrics["confusion_matrix"], metrics["classes"],
                        partial / store.CONFUSION_PNG,
                        f"{metrics['model']}: {metrics['per_class_split']} set")
        model.save(partial / store.MODEL_FILE)
        # the same model as plain Keras (no fmnist_search needed to open it, TTA inside)
        export.inference_for_run(model, metrics).save(partial / store.INFERENCE_FILE)
        if probabilities:
            store.write_predictions(partial, probabilities)
        store.write_metrics(partial, metrics)  # last: what makes the run a finished one
    return run.path
