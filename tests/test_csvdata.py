"""Reading Kaggle-style CSVs (``fmnist_search.csvdata``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fmnist_search import csvdata
from fmnist_search.errors import UserError


def _csv(tmp_path, frame: pd.DataFrame, name="train.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _frame(rng, n=4, label=True, ids=False):
    pixels = pd.DataFrame(rng.integers(0, 256, (n, 784)), columns=[f"pixel{i}" for i in range(784)])
    if label:
        pixels.insert(0, "label", rng.integers(0, 10, n))
    if ids:
        pixels.insert(0, "id", np.arange(100, 100 + n))
    return pixels


def test_csv_reads_labels_ids_and_pixels(tmp_path, rng):
    frame = _frame(rng, ids=True)
    got = csvdata.read_csv(_csv(tmp_path, frame))
    assert got.x.shape == (4, 28, 28)
    assert got.y.tolist() == frame["label"].tolist()
    assert got.ids.tolist() == [100, 101, 102, 103]
    assert got.x[2].ravel().tolist() == frame.iloc[2, 2:].tolist()


def test_csv_test_file_without_labels(tmp_path, rng):
    got = csvdata.read_csv(_csv(tmp_path, _frame(rng, label=False, ids=True)), require_labels=False)
    assert got.y is None and len(got.ids) == 4


def test_csv_wrong_column_count(tmp_path, rng):
    frame = _frame(rng).iloc[:, :-1]
    with pytest.raises(UserError, match="783 pixel columns.*expected 784"):
        csvdata.read_csv(_csv(tmp_path, frame))


def test_csv_non_numeric_value_names_line(tmp_path, rng):
    frame = _frame(rng).astype(object)
    frame.iloc[2, 5] = "abc"
    with pytest.raises(UserError, match=r"line 4, column 'pixel4': value 'abc'"):
        csvdata.read_csv(_csv(tmp_path, frame))


def test_csv_out_of_range_pixel_names_line(tmp_path, rng):
    frame = _frame(rng)
    frame.iloc[0, 10] = 300
    with pytest.raises(UserError, match=r"line 2, column 'pixel9': value 300"):
        csvdata.read_csv(_csv(tmp_path, frame))


def test_csv_bad_label_names_line(tmp_path, rng):
    frame = _frame(rng)
    frame.loc[3, "label"] = 12
    with pytest.raises(UserError, match=r"line 5: label 12 is not a class id"):
        csvdata.read_csv(_csv(tmp_path, frame))


def test_csv_training_file_needs_labels(tmp_path, rng):
    with pytest.raises(UserError, match="no 'label' column"):
        csvdata.read_csv(_csv(tmp_path, _frame(rng, label=False)))
