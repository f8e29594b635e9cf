"""Predictions from a trained run, written as a Kaggle-style ``id,label`` CSV."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from fmnist_search import dataset, sources, store
from fmnist_search.errors import UserError
from fmnist_search.results import load_run


@dataclass(frozen=True)
class Columns:
    """The id and label column names; a column the user named must exist in the input."""

    id: str = "id"
    label: str = "label"
    id_named: bool = False
    label_named: bool = False


@dataclass
class Predictions:
    ids: np.ndarray
    labels: np.ndarray  # the training data's labels (Fashion-MNIST ids for IDX-trained models)
    truth: np.ndarray | None
    warnings: list[str] = field(default_factory=list)

    def accuracy(self) -> float | None:
        """Over the labelled rows of classes the model knows (truth -1 marks the others)."""
        if self.truth is None:
            return None
        scored = self.truth >= 0
        return float(np.mean(self.labels[scored] == self.truth[scored]))


def predict_run(run_dir: Path, input_csv: str | None, columns: Columns = Columns(),
                data_dir: str | None = None) -> Predictions:
    metrics = load_run(run_dir)
    trained_on = metrics.get("data", {})
    classes = np.asarray(trained_on.get("classes", list(range(10))))
    x, truth, ids, warnings = _inputs(input_csv, trained_on, columns, data_dir, run_dir)
    model = load_model(run_dir, metrics)
    from fmnist_search.training import predict

    probs, _ = predict(model, dataset.scale(x), tta=bool(metrics.get("values", {}).get("tta")))
    labels = classes[probs.argmax(axis=1)]
    if ids is None:
        ids = np.arange(len(labels))
    if truth is not None and len(classes) < 10:
        keep = np.isin(truth, classes)  # images of classes the model never saw are not scored
        truth = np.where(keep, truth.astype(int), -1)
    return Predictions(ids, labels, truth, warnings)


def load_model(run_dir: Path, metrics: dict | None = None):
    """A run's trained ``model.keras``; a damaged file is one error naming it and the command
    that trains it again (checked before TensorFlow loads)."""
    path = run_dir / store.MODEL_FILE
    problem = store.model_damage(path)
    if problem is None:
        import keras  # TensorFlow loads once the model file is known whole (seconds)

        from fmnist_search import augment, losses  # noqa: F401  (registers them for load_model)

        try:
            return keras.models.load_model(path)
        except Exception as exc:  # noqa: BLE001 - whatever Keras says, the file is the culprit
            problem = f"Keras cannot load it ({type(exc).__name__}: {exc})"
    raise UserError(f"{path} is damaged: {problem}. Train the model again "
                    f"({_retrain_command(metrics if metrics is not None else load_run(run_dir))}"
                    "; a damaged run is not reused), or give another run.")


def _retrain_command(metrics: dict) -> str:
    source, kind = metrics.get("source") or {}, metrics.get("kind")
    if kind == "baseline" and source.get("baseline"):
        return f"`fmnist-search baseline {source['baseline']}`"
    if kind == "retrained" and source.get("project"):
        return f"`fmnist-search retrain {source['project']} --trial {source.get('trial')}`"
    if source.get("project"):
        return f"`fmnist-search finalize {source['project']}`"
    return f"the command that trained it, in its {store.METRICS_JSON}"


def _inputs(input_csv: str | None, trained_on: dict, columns: Columns, data_dir: str | None,
            run_dir: Path) -> tuple:
    """Images, labels, ids and warnings: from --input, else the data the model was tested on.

    A CSV-trained model's labels need not be Fashion-MNIST's, so it never defaults to the
    official test set: its own test CSV, or --input.
    """
    from fmnist_search import csvdata

    option = "--input"
    if not input_csv and trained_on.get("train_csv"):
        input_csv, option = trained_on.get("test_csv"), "the run's test CSV"
        if not input_csv:
            raise UserError(f"{run_dir} was trained on {trained_on['train_csv']} without a test "
                            "CSV: give the images to predict with --input FILE.")
    if not input_csv:
        raw = dataset.load_idx_dir(sources.locate(data_dir))
        return raw.x_test, raw.y_test, None, []
    table = csvdata.read_csv(input_csv, label_column=columns.label, id_column=columns.id,
                             require_labels=columns.label_named, require_id=columns.id_named,
                             option=option)
    warning = csvdata.duplicate_ids(table, input_csv)
    return table.x, table.y, table.ids, [warning] if warning else []


def write_csv(pred: Predictions, out: Path | TextIO, id_column: str = "id",
              label_column: str = "label") -> None:
    """The ``id,label`` CSV to a file (its folder made) or to an open text stream."""
    import pandas as pd

    from fmnist_search.preflight import writing

    frame = pd.DataFrame({id_column: pred.ids, label_column: pred.labels})
    if not isinstance(out, Path):
        frame.to_csv(out, index=False)
        return
    with writing(out, "--out"):
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)
