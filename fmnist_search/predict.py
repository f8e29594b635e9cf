"""Predictions from a trained run, written as a Kaggle-style ``id,label`` CSV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist_search import data
from fmnist_search.results import load_run


@dataclass
class Predictions:
    ids: np.ndarray
    labels: np.ndarray  # original Fashion-MNIST class ids (0-9), also for class-subset models
    truth: np.ndarray | None

    def accuracy(self) -> float | None:
        """Over the labelled rows of classes the model knows (truth -1 marks the others)."""
        if self.truth is None:
            return None
        scored = self.truth >= 0
        return float(np.mean(self.labels[scored] == self.truth[scored]))


def predict_run(run_dir: Path, input_csv: str | None, id_column: str = "id",
                label_column: str = "label", data_dir: str | None = None) -> Predictions:
    import keras

    metrics = load_run(run_dir)
    classes = np.asarray(metrics.get("data", {}).get("classes", list(range(10))))
    if input_csv:
        table = data.read_csv(input_csv, label_column=label_column, id_column=id_column,
                              require_labels=False)
        x, truth, ids = table.x, table.y, table.ids
    else:
        raw = data.load_idx_dir(data.locate(data_dir))
        x, truth, ids = raw.x_test, raw.y_test, None
    model = keras.models.load_model(run_dir / "model.keras")
    probs = model.predict(data.scale(x), batch_size=512, verbose=0)
    labels = classes[probs.argmax(axis=1)]
    if ids is None:
        ids = np.arange(len(labels))
    if truth is not None and len(classes) < 10:
        keep = np.isin(truth, classes)  # images of classes the model never saw are not scored
        return Predictions(ids, labels, np.where(keep, truth.astype(int), -1))
    return Predictions(ids, labels, truth)


def write_csv(pred: Predictions, out: Path, id_column: str = "id",
              label_column: str = "label") -> None:
    import pandas as pd

    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({id_column: pred.ids, label_column: pred.labels}).to_csv(out, index=False)
