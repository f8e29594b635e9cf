"""predict.py: a run's model on a CSV's images, to a Kaggle ``id,label`` CSV. The run is a
fake folder holding a tiny untrained model whose weights are set by hand (a bright image is
its second class, a dark one its first), so every prediction is known; nothing trains. The
``predict`` command itself is in test_csv_workflow.py and test_bad_input.py."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from fmnist_search import predict, store
from fmnist_search.errors import UserError

BRIGHT, DARK = 255, 0


def write_images(path, rows: list[tuple], header=("id", "label")) -> str:
    """A CSV of ``(id, label, brightness)`` rows: every pixel of an image the same."""
    frame = pd.DataFrame([[*r[:-1], *([r[-1]] * 784)] for r in rows],
                         columns=[*header, *(f"pixel{i}" for i in range(784))])
    frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def two_class_model():
    """28x28 images to 2 classes: the second when the mean pixel is over 0.5, else the first."""
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    kernel = np.zeros((784, 2), "float32")
    kernel[:, 1] = 1 / 784
    model.layers[-1].set_weights([kernel, np.array([0.5, 0.0], "float32")])
    return model


def write_run(folder, model=None, **metrics):
    folder.mkdir(parents=True, exist_ok=True)
    store.write_metrics(folder, {"kind": "baseline", "model": "model1",
                                  "source": {"baseline": "model1"}, "values": {}, **metrics})
    if model is not None:
        model.save(folder / store.MODEL_FILE)
    return folder


def test_accuracy_counts_only_the_labelled_rows_of_known_classes():
    labels = np.array([2, 0, 0, 2])
    assert predict.Predictions(np.arange(4), labels, None).accuracy() is None
    truth = np.array([2, 0, 2, -1])  # the last image's class is one the model never saw
    assert predict.Predictions(np.arange(4), labels, truth).accuracy() == pytest.approx(2 / 3)


def test_a_model_of_some_classes_predicts_their_labels_and_scores_only_them(
        tmp_path, two_class_model):
    run = write_run(tmp_path / "run", two_class_model, data={"classes": [0, 2]})
    images = write_images(tmp_path / "in.csv", [(10, 2, BRIGHT), (11, 0, DARK), (12, 2, DARK),
                                                (13, 5, BRIGHT)])
    pred = predict.predict_run(run, images)
    assert pred.ids.tolist() == [10, 11, 12, 13]
    assert pred.labels.tolist() == [2, 0, 0, 2]  # the data's labels, not the model's indices
    assert pred.truth.tolist() == [2, 0, 2, -1]
    assert pred.accuracy() == pytest.approx(2 / 3) and pred.warnings == []


def test_rows_without_ids_are_numbered_and_without_labels_are_not_scored(
        tmp_path, two_class_model):
    run = write_run(tmp_path / "run", two_class_model, data={"classes": [3, 7]})
    frame = pd.DataFrame([[BRIGHT] * 784, [DARK] * 784], columns=[f"pixel{i}" for i in range(784)])
    frame.to_csv(tmp_path / "in.csv", index=False)
    pred = predict.predict_run(run, str(tmp_path / "in.csv"))
    assert pred.ids.tolist() == [0, 1] and pred.labels.tolist() == [7, 3]
    assert pred.truth is None and pred.accuracy() is None


def test_a_repeated_id_is_a_warning_and_every_row_is_kept(tmp_path, two_class_model):
    run = write_run(tmp_path / "run", two_class_model, data={"classes": [0, 1]})
    images = write_images(tmp_path / "in.csv", [(5, 1, BRIGHT), (5, 0, DARK), (6, 1, BRIGHT)])
    pred = predict.predict_run(run, images)
    assert len(pred.labels) == 3
    assert len(pred.warnings) == 1 and "repeats 1 id(s), e.g. 5 on lines 2, 3" in pred.warnings[0]


def test_named_columns_are_read_and_required(tmp_path, two_class_model):
    run = write_run(tmp_path / "run", two_class_model, data={"classes": [0, 1]})
    images = write_images(tmp_path / "in.csv", [("a", 1, BRIGHT), ("b", 1, DARK)],
                          header=("ImageId", "y"))
    columns = predict.Columns(id="ImageId", label="y", id_named=True, label_named=True)
    pred = predict.predict_run(run, images, columns)
    assert pred.ids.tolist() == ["a", "b"] and pred.accuracy() == 0.5
    with pytest.raises(UserError, match=f"^{images} has no 'Id' column"):
        predict.predict_run(run, images, predict.Columns(id="Id", label="y", id_named=True))


def test_a_csv_trained_model_predicts_its_own_test_csv_or_asks_for_input(
        tmp_path, two_class_model):
    test_csv = write_images(tmp_path / "test.csv", [(1, 0, DARK), (2, 1, BRIGHT)])
    run = write_run(tmp_path / "run", two_class_model,
                    data={"classes": [0, 1], "train_csv": "train.csv", "test_csv": test_csv})
    assert predict.predict_run(run, None).accuracy() == 1.0
    bare = write_run(tmp_path / "bare", data={"classes": [0, 1], "train_csv": "train.csv"})
    with pytest.raises(UserError, match=f"^{bare} was trained on train.csv without a test CSV: "
                                        "give the images to predict with --input FILE."):
        predict.predict_run(bare, None)


@pytest.mark.parametrize("metrics, command", [
    ({}, "`fmnist-search baseline model1`"),
    ({"kind": "retrained", "source": {"project": "p", "trial": "07"}},
     "`fmnist-search retrain p --trial 07`"),
    ({"kind": "final", "source": {"project": "p", "trial": "07"}}, "`fmnist-search finalize p`"),
    ({"kind": "ensemble", "source": {}}, "the command that trained it, in its metrics.json"),
])
def test_a_damaged_model_is_one_error_naming_it_and_the_command_that_trains_it(
        tmp_path, metrics, command):
    run = write_run(tmp_path / "run", **metrics)
    (run / store.MODEL_FILE).write_bytes(b"PK\0\0" + b"\0" * 60)
    with pytest.raises(UserError) as err:
        predict.load_model(run)
    text = str(err.value)
    assert text.startswith(f"{run / store.MODEL_FILE} is damaged: it is no Keras model file")
    assert f"Train the model again ({command}; a damaged run is not reused)" in text


def test_a_model_keras_cannot_load_is_named_with_what_keras_said(tmp_path):
    import zipfile

    run = write_run(tmp_path / "run")
    with zipfile.ZipFile(run / store.MODEL_FILE, "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "NoSuchLayer", "config": {}}))
        archive.writestr("model.weights.h5", b"")
    with pytest.raises(UserError, match="is damaged: Keras cannot load it "):
        predict.load_model(run)


def test_the_submission_csv_goes_to_a_stream_or_a_new_folder(tmp_path):
    pred = predict.Predictions(np.array([3, 4]), np.array([9, 0]), None)
    out = io.StringIO()
    predict.write_csv(pred, out)
    assert out.getvalue().splitlines() == ["id,label", "3,9", "4,0"]
    path = tmp_path / "new" / "sub.csv"
    predict.write_csv(pred, path, id_column="ImageId", label_column="Label")
    assert path.read_text().splitlines() == ["ImageId,Label", "3,9", "4,0"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"^--out .*file/sub.csv cannot be written: "):
        predict.write_csv(pred, tmp_path / "file" / "sub.csv")
