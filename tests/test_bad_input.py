"""Bad input of every kind: exit status 2, the culprit named, no traceback, nothing trained.

One table of command lines, each run through ``fmnist_search.cli.main``. The files they name
are written once into a temporary folder: tiny CSVs, broken space and preset files, and a
results folder with a hand-made project and run (no model is ever trained here).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fmnist_search.cli import main

ROOT = Path(__file__).resolve().parents[1]
HEADER = ",".join(["label"] + [f"pixel{i}" for i in range(784)])
# As root, permission bits do not stop a write; /proc/version refuses one from anybody.
READ_ONLY = "/proc/version" if os.geteuid() == 0 else "{d}/read-only/out.csv"


def _rows(labels, ids=None, seed=0) -> list[str]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (len(labels), 784))
    return [",".join(([str(ids[i])] if ids is not None else []) + [str(label)]
                     + [str(v) for v in pixels[i]]) for i, label in enumerate(labels)]


def _write_csvs(d: Path) -> None:
    five = list(np.repeat(np.arange(5), 8))
    good = _rows(five)
    files = {
        "five.csv": [HEADER, *good],
        "test5.csv": ["id," + HEADER, *_rows([0, 1, 2, 3, 4] * 2, ids=range(100, 110), seed=1)],
        "test_ID.csv": ["ID," + HEADER, *_rows([0, 1, 2, 3, 4], ids=range(5), seed=2)],
        "test_stray.csv": [HEADER, *_rows([0, 1, 7, 2], seed=3)],
        "extra.csv": [HEADER, "17," + good[0], *good[1:]],
        "trailing.csv": [HEADER, good[0], good[1] + ",", *good[2:]],
        "short.csv": [HEADER, *good[:2], good[2].rsplit(",", 1)[0], *good[3:]],
        "header_comma.csv": [HEADER + ",", *(row + "," for row in good)],
        "dupcol.csv": [HEADER.replace("pixel6,", "pixel5,"), *good],
        "header_only.csv": [HEADER],
        "single.csv": [HEADER, *_rows([3] * 10)],
        "lonely.csv": [HEADER, *_rows([0, 0, 1, 1, 2, 2, 3, 3, 4])],
        "nolabel.csv": [HEADER.replace("label,", ""), *(r.split(",", 1)[1] for r in good)],
        "badlabel.csv": [HEADER, *good[:3], "12," + good[3].split(",", 1)[1], *good[4:]],
    }
    for name, lines in files.items():
        (d / name).write_text("\n".join(lines) + "\n")
    row = good[0].split(",")
    row[10] = "300"  # pixel9
    (d / "badpixel.csv").write_text("\n".join([HEADER, ",".join(row), *good[1:]]) + "\n")
    row[10], row[4] = "7", "abc"  # pixel3
    (d / "textpixel.csv").write_text("\n".join([HEADER, *good[:2], ",".join(row)]) + "\n")
    row[4] = ""
    (d / "emptypixel.csv").write_text("\n".join([HEADER, *good[:4], ",".join(row)]) + "\n")
    (d / "empty.csv").write_text("")
    (d / "fake.csv.gz").write_text((d / "five.csv").read_text())
    (d / "binary.csv").write_bytes(bytes(range(256)) * 8)
    # 784 columns, the first named foo: neither an id, a label nor a pixel
    (d / "foo.csv").write_text("\n".join(["foo," + ",".join(HEADER.split(",")[1:-1]),
                                          *(r.rsplit(",", 1)[0] for r in good[:3])]) + "\n")
    (d / "semicolon.csv").write_text("\n".join(line.replace(",", ";")
                                               for line in [HEADER, *good]) + "\n")


SPACES = {
    "empty.toml": "",
    "desc_only.toml": 'description = "nothing to search"\n',
    "huge.toml": '[hp.filters_1]\ntype = "int"\nmin = 1\nmax = 1000000000\n',
    "int64.toml": f'[hp.filters_1]\ntype = "int"\nmin = 1\nmax = {2**70}\n',
    "batch.toml": '[hp.batch_size]\ntype = "int"\nmin = 1\nmax = 1000000000000\n',
    "dense.toml": '[hp.dense_units_1]\ntype = "int"\nmin = 8\nmax = 1000000000\nstep = 8\n',
    "when_nested.toml": ('[hp.dense_layers]\ntype = "int"\nmin = 1\nmax = 2\n'
                         '[hp.dense_units_2]\ntype = "int"\nmin = 32\nmax = 64\nstep = 32\n'
                         'when = { dense_layers = [2] }\n'
                         '[hp.dense_activation]\ntype = "choice"\nvalues = ["relu", "elu"]\n'
                         'when = { dense_units_2 = [32] }\n'),
    "when_huge.toml": ('[hp.dense_layers]\ntype = "int"\nmin = 0\nmax = 2\n'
                       '[hp.dense_units_1]\ntype = "int"\nmin = 8\nmax = 64\n'
                       'when = { dense_layers = [1000000000000] }\n'),
    "default_huge.toml": ('[hp.filters_1]\ntype = "int"\nmin = 8\nmax = 64\n'
                          'default = 1000000000000000\n'),
    "inf.toml": '[hp.learning_rate]\ntype = "float"\nmin = 1e-4\nmax = inf\n',
    "inline.toml": "[hp]\nfilters_1 = { min = 32, max = 128 }\n",
    "preset_fixed.toml": "trials = 2\nfixed = 3\n",
    "preset_precision.toml": 'precision = "fp64"\n',
    "preset_epochs.toml": "epochs = 100000\n",
    "preset_bohb.toml": 'tuner = "bohb"\n[bohb]\nrandom_fraction = 1.5\n',
    "preset_objectives.toml": 'tuner = "motpe"\nobjectives = ["val_accuracy:max", "latency:min"]\n',
    "preset_motpe_one.toml": 'tuner = "motpe"\n',
    "preset_objectives_prune.toml": ('tuner = "motpe"\nprune_after = 2\n'
                                     'objectives = ["val_accuracy:max", "params:min"]\n'),
    "preset_samples.toml": 'tuner = "bohb"\n[bohb]\nnum_samples = 1000000000000\n',
    "preset_bandwidth.toml": 'tuner = "bohb"\n[bohb]\nbandwidth_factor = inf\n',
    "preset_min_points.toml": f'tuner = "bohb"\n[bohb]\nmin_points_in_model = {2 * 10**30}\n',
    "preset_trials.toml": "trials = 100000000000000000000\n",
}


def _write_results(d: Path) -> None:
    """A project 'p' searched on five.csv (trial 00 recorded, trial 01's record.json lost) and
    a run directory trained on it, all hand-made: nothing here was trained."""
    root = d / "res"
    data = {"classes": [0, 1, 2, 3, 4], "val_fraction": 0.2, "subset": 1.0, "seed": 42,
            "train_csv": str(d / "five.csv"), "test_csv": None, "fashion_labels": False}
    project = root / "p"
    project.mkdir(parents=True)
    record = {"project": "p", "data": data, "space_name": "tiny",
              "preset": {"epochs": 1, "precision": "fp32", "patience": 0}}
    (project / "run.json").write_text(json.dumps(record))
    (project / "workers").mkdir()  # as if a chief were serving it
    (project / "workers" / "chief.json").write_text(json.dumps({"session": record}))
    values = {"stages": 1, "filters_1": 4, "dense_layers": 0, "learning_rate": 0.002}
    for trial in ("00", "01"):
        folder = project / f"trial_{trial}"
        folder.mkdir()
        (folder / "trial.json").write_text(json.dumps({
            "trial_id": trial, "status": "COMPLETED", "hyperparameters": {"values": values}}))
    (project / "trial_00" / "record.json").write_text(json.dumps({
        "status": "COMPLETED", "val_accuracy": 0.5, "val_loss": 1.2, "params": 31413,
        "seconds_per_epoch": 0.1, "epochs": 1, "architecture": "C4-P | F", "history": []}))
    (d / "outside").mkdir()  # a user's folder elsewhere, and a project name linking to it
    (d / "outside" / "mine.txt").write_text("not the tool's\n")
    (root / "link").symlink_to(d / "outside")
    run = d / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"not loaded: every case fails before")
    (run / "metrics.json").write_text(json.dumps({"model": "m", "data": data}))
    empty = d / "run0"  # a model.keras truncated to nothing
    empty.mkdir()
    (empty / "model.keras").write_bytes(b"")
    (empty / "metrics.json").write_text(json.dumps({
        "model": "model1", "kind": "baseline", "source": {"baseline": "model1"}, "data": data}))


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    """A port something listens on: a chief's port in use, or a chief that answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    _write_csvs(d)
    for name, text in SPACES.items():
        (d / name).write_text(text)
    (d / "bin.toml").write_bytes(bytes(range(128, 256)) * 20)
    for folder in ("adir", "dir.toml", "plots.png"):
        (d / folder).mkdir()
    (d / "notweights.h5").write_text("these are not weights\n")
    (d / "weights.bin").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    _write_results(d)
    if os.geteuid() != 0:
        (d / "read-only").mkdir(mode=0o555)
    return d


T = "--train-csv"
D = "{d}/"
R = ["--results-dir", "{d}/res"]
CASES = [
    # ---------------------------------------------------------------- training CSVs
    ("csv missing", ["data", T, D + "missing.csv"], ["missing.csv"]),
    ("csv is a directory", ["data", T, D + "adir"], ["adir", "directory"]),
    ("csv binary", ["data", T, D + "binary.csv"], ["binary.csv", "not a text"]),
    ("csv.gz not gzip", ["data", T, D + "fake.csv.gz"], ["fake.csv.gz", "gzip"]),
    ("csv empty file", ["data", T, D + "empty.csv"], ["empty.csv", "empty"]),
    ("csv header only", ["data", T, D + "header_only.csv"], ["header_only.csv", "no data rows"]),
    ("csv extra leading field", ["data", T, D + "extra.csv"], ["extra.csv", "line 2", "786"]),
    ("csv trailing comma", ["data", T, D + "trailing.csv"], ["trailing.csv", "line 3", "comma"]),
    ("csv missing field", ["data", T, D + "short.csv"], ["short.csv", "line 4", "missing"]),
    ("csv header trailing comma", ["data", T, D + "header_comma.csv"],
     ["header_comma.csv", "line 1", "no name"]),
    ("csv duplicate column", ["data", T, D + "dupcol.csv"], ["dupcol.csv", "'pixel5' twice"]),
    ("csv single class", ["data", T, D + "single.csv"], ["single.csv", "labelled 3"]),
    ("csv class with one image", ["data", T, D + "lonely.csv"], ["lonely.csv", "class 4"]),
    ("csv no label column", ["data", T, D + "nolabel.csv"], ["nolabel.csv", "'label'"]),
    ("csv label 12", ["data", T, D + "badlabel.csv"], ["badlabel.csv", "line 5", "12"]),
    ("csv pixel 300", ["data", T, D + "badpixel.csv"], ["badpixel.csv", "pixel9", "300"]),
    ("csv pixel text", ["data", T, D + "textpixel.csv"], ["textpixel.csv", "line 4", "'abc'"]),
    ("csv pixel empty", ["data", T, D + "emptypixel.csv"],
     ["emptypixel.csv", "line 6", "pixel3", "empty"]),
    ("test csv label not trained", ["data", T, D + "five.csv", "--test-csv",
                                    D + "test_stray.csv"], ["test_stray.csv", "7"]),
    ("test csv header only", ["data", T, D + "five.csv", "--test-csv", D + "header_only.csv"],
     ["header_only.csv"]),
    # ---------------------------------------------------------------- data options
    ("subset 0.0001", ["data", T, D + "five.csv", "--subset", "0.0001"], ["--subset 0.0001"]),
    ("subset 0", ["data", T, D + "five.csv", "--subset", "0"], ["--subset 0"]),
    ("classes empty", ["data", T, D + "five.csv", "--classes", ""], ["--classes ''"]),
    ("classes one", ["data", T, D + "five.csv", "--classes", "3"], ["--classes '3'"]),
    ("classes not in csv", ["data", T, D + "five.csv", "--classes", "0,7"],
     ["0,7", "five.csv", "include 7"]),
    ("val fraction 1.5", ["data", T, D + "five.csv", "--val-fraction", "1.5"],
     ["--val-fraction 1.5"]),
    ("seed -1", ["data", T, D + "five.csv", "--seed", "-1"], ["--seed -1"]),
    ("data dir missing", ["data", "--data-dir", D + "nowhere"], ["nowhere"]),
    # ---------------------------------------------------------------- describe and spaces
    ("describe unknown name", ["describe", "model7"], ["model7", "model1", "cnn"]),
    ("export unknown format", ["export", "model1", "--format", "pdf"], ["pdf", "onnx"]),
    ("export unknown model", ["export", "no-such-model", "--results-dir", D + "empty"],
     ["no-such-model"]),
    ("export negative check images", ["export", "model1", "--check-images", "-1"],
     ["--check-images"]),
    ("describe 1 class", ["describe", "model1", "--num-classes", "1"], ["--num-classes 1"]),
    ("describe 0 classes", ["describe", "model1", "--num-classes", "0"], ["--num-classes 0"]),
    ("describe binary file", ["describe", D + "bin.toml"], ["bin.toml", "not a text file"]),
    ("describe a directory", ["describe", D + "dir.toml"], ["dir.toml", "directory"]),
    ("space empty", ["describe", D + "empty.toml"], ["empty.toml", "no hyperparameters"]),
    ("space description only", ["describe", D + "desc_only.toml"], ["desc_only.toml"]),
    ("space max 1e9", ["describe", D + "huge.toml"], ["huge.toml", "filters_1", "1000000000"]),
    ("space max beyond int64", ["describe", D + "int64.toml"], ["int64.toml", "filters_1"]),
    ("space huge batch_size", ["describe", D + "batch.toml"], ["batch.toml", "batch_size"]),
    ("space huge dense_units", ["describe", D + "dense.toml"], ["dense.toml", "dense_units_1"]),
    ("space when nested", ["describe", D + "when_nested.toml"],
     ["when_nested.toml", "dense_activation", "dense_units_2", "itself conditional"]),
    ("space when huge", ["describe", D + "when_huge.toml"], ["when_huge.toml", "dense_layers"]),
    ("space default huge", ["describe", D + "default_huge.toml"],
     ["default_huge.toml", "default"]),
    ("space max inf", ["describe", D + "inf.toml"], ["inf.toml", "learning_rate", "inf"]),
    # ---------------------------------------------------------------- run
    ("run binary space", ["run", "--space", D + "bin.toml", T, D + "five.csv", *R],
     ["bin.toml"]),
    ("run space directory", ["run", "--space", D + "dir.toml", T, D + "five.csv", *R],
     ["dir.toml", "directory"]),
    ("run empty space", ["run", "--space", D + "empty.toml", T, D + "five.csv", *R],
     ["empty.toml"]),
    ("run huge space", ["run", "--space", D + "huge.toml", T, D + "five.csv", *R],
     ["huge.toml", "filters_1"]),
    ("run binary preset", ["run", "--search", D + "bin.toml", T, D + "five.csv", *R],
     ["bin.toml"]),
    ("preset fixed not a table", ["run", "--search", D + "preset_fixed.toml", *R],
     ["preset_fixed.toml", "fixed"]),
    ("preset precision", ["run", "--search", D + "preset_precision.toml", *R],
     ["preset_precision.toml", "fp64"]),
    ("preset epochs", ["run", "--search", D + "preset_epochs.toml", *R],
     ["preset_epochs.toml", "100000"]),
    ("preset bohb setting", ["run", "--search", D + "preset_bohb.toml", *R],
     ["preset_bohb.toml", "[bohb] random_fraction = 1.5", "a fraction in [0, 1]"]),
    ("run patience -1", ["run", "--patience", "-1", T, D + "five.csv", *R], ["--patience -1"]),
    ("run top -1", ["run", "--top", "-1", T, D + "five.csv", *R], ["--top -1"]),
    ("run batch size", ["run", "--batch-size", "100000", *R], ["--batch-size 100000"]),
    # ---------------------------------------------------------------- baseline
    ("baseline patience -1", ["baseline", "model1", "--patience", "-1", *R], ["--patience -1"]),
    ("baseline epochs 5000", ["baseline", "model1", "--epochs", "5000", *R], ["--epochs 5000"]),
    ("weights not hdf5", ["baseline", "model5", "--weights", D + "notweights.h5", *R],
     ["notweights.h5"]),
    ("weights wrong suffix", ["baseline", "model5", "--weights", D + "weights.bin", *R],
     ["weights.bin"]),
    ("weights directory", ["baseline", "model5", "--weights", D + "adir", *R],
     ["adir", "directory"]),
    # ---------------------------------------------------------------- leaderboard, compare, show
    ("leaderboard top -1", ["leaderboard", "--top", "-1", *R], ["--top -1"]),
    ("leaderboard csv directory", ["leaderboard", "--csv", D + "adir", *R], ["adir"]),
    ("leaderboard csv read-only", ["leaderboard", "--csv", READ_ONLY, *R],
     [READ_ONLY, "not writable"]),
    ("compare out directory", ["compare", "--out", D + "plots.png", *R], ["plots.png"]),
    ("compare out format", ["compare", "--out", D + "cmp.xyz", *R], ["cmp.xyz", "png"]),
    ("compare out read-only", ["compare", "--out", READ_ONLY, *R], [READ_ONLY]),
    ("show lost record.json", ["show", "p", "--trial", "01", *R], ["trial_01", "record.json"]),
    ("analyze project name", ["analyze", "../p", *R], ["'../p'", "one path component"]),
    ("analyze unknown project", ["analyze", "nope", *R], ["'nope'", "Projects there"]),
    ("analyze top 0", ["analyze", "p", "--top", "0", *R], ["--top 0"]),
    ("analyze out is a file", ["analyze", "p", "--out-dir", D + "five.csv", *R],
     ["five.csv"]),
    ("analyze csv read-only", ["analyze", "p", "--csv", READ_ONLY, *R], [READ_ONLY]),
    # ---------------------------------------------------------------- predict, retrain
    ("predict header only", ["predict", D + "run", "--input", D + "header_only.csv",
                             "--out", D + "o.csv", *R], ["header_only.csv"]),
    ("predict extra field", ["predict", D + "run", "--input", D + "extra.csv",
                             "--out", D + "o.csv", *R], ["extra.csv", "line 2"]),
    ("predict binary input", ["predict", D + "run", "--input", D + "binary.csv",
                              "--out", D + "o.csv", *R], ["binary.csv"]),
    ("predict id column missing", ["predict", D + "run", "--input", D + "test5.csv",
                                   "--id-column", "ImageId", "--out", D + "o.csv", *R],
     ["ImageId", "--id-column"]),
    ("predict label column missing", ["predict", D + "run", "--input", D + "test5.csv",
                                      "--label-column", "Class", "--out", D + "o.csv", *R],
     ["Class", "--label-column"]),
    ("predict id column misnamed", ["predict", D + "run", "--input", D + "test_ID.csv",
                                    "--out", D + "o.csv", *R], ["test_ID.csv", "'ID'"]),
    ("predict out directory", ["predict", D + "run", "--input", D + "test5.csv",
                               "--out", D + "adir", *R], ["adir", "directory"]),
    ("predict out read-only", ["predict", D + "run", "--input", D + "test5.csv",
                               "--out", READ_ONLY, *R], [READ_ONLY]),
    ("predict csv model no input", ["predict", D + "run", "--out", D + "o.csv", *R],
     ["five.csv", "--input"]),
    ("predict project-best not retrained", ["predict", "p-best", "--out", D + "o.csv", *R],
     ["retrain p --trial 00"]),
    ("retrain test csv header only", ["retrain", "p", "--test-csv", D + "header_only.csv", *R],
     ["header_only.csv"]),
    ("retrain test csv directory", ["retrain", "p", "--test-csv", D + "adir", *R],
     ["adir", "directory"]),
    # ---------------------------------------------------------------- limits, finalize
    ("run max params 0", ["run", "--max-params", "0", *R], ["--max-params 0"]),
    ("run max seconds per epoch -1", ["run", "--max-seconds-per-epoch", "-1", *R],
     ["--max-seconds-per-epoch -1"]),
    # ---------------------------------------------------------------- objectives
    ("run objectives unknown", ["run", "--objectives", "accuracy:max,params:min", *R],
     ["--objectives", "'accuracy:max' is not an objective", "val_accuracy:max", "params:min",
      "ms_per_image:min", "model_bytes:min"]),
    ("run objectives direction", ["run", "--objectives", "val_accuracy:min,params:min", *R],
     ["--objectives", "'val_accuracy:min'", "can only be maximised", "val_accuracy:max"]),
    ("run objectives no direction", ["run", "--objectives", "val_accuracy:max,params", *R],
     ["--objectives", "'params' needs its direction", "params:min"]),
    ("run objectives four", ["run", "--objectives", "val_accuracy:max,params:min,"
                             "val_loss:min,model_bytes:min", *R],
     ["--objectives", "two or three"]),
    ("run objectives one", ["run", "--objectives", "params:min", *R],
     ["--objectives", "two or three", "val_accuracy:max alone"]),
    ("run objectives twice", ["run", "--objectives", "params:min,params:min", *R],
     ["--objectives", "'params:min' is named twice"]),
    ("run objectives with hyperband", ["run", "--tuner", "hyperband", "--objectives",
                                       "val_accuracy:max,params:min", *R],
     ["objectives val_accuracy:max,params:min", "tuner = \"motpe\"", "'hyperband'"]),
    ("preset objectives unknown", ["run", "--search", D + "preset_objectives.toml", *R],
     ["preset_objectives.toml: objectives", "'latency:min' is not an objective",
      "ms_per_image:min"]),
    ("preset motpe one objective", ["run", "--search", D + "preset_motpe_one.toml", *R],
     ["tuner \"motpe\" searches two or three objectives", "--objectives"]),
    ("preset objectives with pruning", ["run", "--search", D + "preset_objectives_prune.toml",
                                        *R], ["prune_after 2", "set prune_after = 0"]),
    ("finalize unknown project", ["finalize", "nope", *R], ["nope"]),
    ("finalize top 0", ["finalize", "p", "--top", "0", *R], ["--top 0"]),
    ("finalize epochs 0", ["finalize", "p", "--epochs", "0", *R], ["--epochs 0"]),
    # ---------------------------------------------------------------- distributed
    ("run workers 0", ["run", "--workers", "0", *R], ["--workers 0"]),
    ("run workers per gpu 0", ["run", "--workers-per-gpu", "0", *R], ["--workers-per-gpu 0"]),
    ("run heartbeat timeout 0", ["run", "--heartbeat-timeout", "0", *R],
     ["--heartbeat-timeout 0"]),
    ("chief port too large", ["chief", "--port", "70000", *R], ["--port", "70000"]),
    ("chief bind not an address", ["chief", "--bind", "my laptop", *R],
     ["--bind", "'my laptop'"]),
    ("worker chief without port", ["worker", "--chief", "node1", "--project", "p", *R],
     ["--chief", "'node1'"]),
    ("worker id with chief", ["worker", "--chief", "127.0.0.1:1", "--project", "p",
                              "--worker-id", "chief-2", *R], ["--worker-id", "'chief-2'"]),
    ("worker id with slash", ["worker", "--chief", "127.0.0.1:1", "--project", "p",
                              "--worker-id", "../w", *R], ["--worker-id", "'../w'"]),
    ("worker project escapes", ["worker", "--chief", "127.0.0.1:1", "--project", "../x", *R],
     ["--project", "'../x'"]),
    ("worker cpus not numbers", ["worker", "--chief", "127.0.0.1:1", "--project", "p",
                                 "--cpus", "a,b", *R], ["--cpus", "'a,b'"]),
    ("worker project space missing", ["worker", "--chief", "127.0.0.1:{port}", "--project",
                                      "p", "--worker-id", "w", *R], ["cannot join", "tiny"]),
    # ---------------------------------------------------------------- second hardening pass
    ("project name too long", ["run", "--project", "a" * 250, *R],
     ["250 characters", "at most 100"]),
    ("project starting with -", ["run", "--project=-x", *R], ["'-x'", "must not start"]),
    ("run project symlink", ["run", "--project", "link", *R], ["'link'", "symbolic link"]),
    ("overwrite project symlink", ["run", "--project", "link", "--overwrite", *R],
     ["'link'", "symbolic link"]),
    ("finalize project symlink", ["finalize", "link", *R], ["'link'", "symbolic link"]),
    ("show project symlink", ["show", "link", *R], ["'link'", "symbolic link"]),
    ("retrain project symlink", ["retrain", "link", *R], ["'link'", "symbolic link"]),
    ("analyze project symlink", ["analyze", "link", *R], ["'link'", "symbolic link"]),
    ("leaderboard project symlink", ["leaderboard", "link", *R], ["'link'", "symbolic link"]),
    ("worker project symlink", ["worker", "--chief", "127.0.0.1:{port}", "--project", "link",
                                *R], ["'link'", "symbolic link"]),
    ("results dir is a file", ["leaderboard", "--results-dir", D + "five.csv"],
     ["five.csv", "is a file"]),
    ("show results dir is a file", ["show", "p", "--results-dir", D + "five.csv"],
     ["five.csv", "is a file"]),
    ("chief address not here", ["chief", "--bind", "192.0.2.1", *R],
     ["192.0.2.1", "cannot listen", "nothing was created"]),
    ("chief port in use", ["chief", "--port", "{port}", *R], [":{port}", "in use"]),
    ("worker no chief", ["worker", "--chief", "127.0.0.1:1", "--project", "p",
                         "--chief-timeout", "0.3", *R], ["No chief at 127.0.0.1:1",
                                                         "--chief-timeout"]),
    ("worker chief without chief.json", ["worker", "--chief", "127.0.0.1:{port}", "--project",
                                         "nochief", "--chief-timeout", "0.3", *R],
     ["nochief", "chief.json", "--chief-timeout"]),
    ("empty preset", ["run", "--search", D + "empty.toml", *R], ["empty.toml", "sets nothing"]),
    ("space inline syntax", ["describe", D + "inline.toml"],
     ["inline.toml", "[hp.filters_1] has no type", "max, min"]),
    ("predict unknown first column", ["predict", D + "run", "--input", D + "foo.csv",
                                      "--out", D + "o.csv", *R], ["foo.csv", "'foo'"]),
    ("csv semicolons", ["data", T, D + "semicolon.csv"], ["semicolon.csv", "semicolons"]),
    ("classes negative", ["run", "--classes", "-1,2", *R], ["--classes '-1,2'"]),
    ("max time negative", ["run", "--max-time", "-5m", *R], ["--max-time '-5m'", "negative"]),
    ("hyperband factor 1", ["run", "--factor", "1", *R], ["--factor 1", "2 or more"]),
    ("show trial abc", ["show", "p", "--trial", "abc", *R], ["'abc'"]),
    # ---------------------------------------------------------------- third hardening pass
    ("preset bohb num_samples 10**12", ["run", "--search", D + "preset_samples.toml", *R],
     ["preset_samples.toml", "num_samples = 1000000000000", "from 1 to 4096"]),
    ("preset bohb bandwidth inf", ["run", "--search", D + "preset_bandwidth.toml", *R],
     ["preset_bandwidth.toml", "bandwidth_factor = inf", "at most 1000"]),
    ("preset bohb min points 2*10**30", ["run", "--search", D + "preset_min_points.toml", *R],
     ["preset_min_points.toml", "min_points_in_model", "to 10,000"]),
    ("preset trials 10**20", ["run", "--search", D + "preset_trials.toml", *R],
     ["preset_trials.toml", "trials 100000000000000000000", "at most 10,000"]),
    ("max time beyond a year", ["run", "--max-time", "99999999999999999999h", *R],
     ["--max-time '99999999999999999999h'", "more than a year"]),
    ("hyperband factor 10**20", ["run", "--factor", "100000000000000000000", *R],
     ["--factor 100000000000000000000", "more than 1,000"]),
    ("run trials 10**20", ["run", "--trials", "100000000000000000000", *R],
     ["--trials 100000000000000000000", "more than 10,000"]),
    ("run max seconds per epoch inf", ["run", "--max-seconds-per-epoch", "inf", *R],
     ["--max-seconds-per-epoch inf", "more than 86,400"]),
    ("finalize top 10**20", ["finalize", "p", "--top", "100000000000000000000", *R],
     ["--top 100000000000000000000", "more than 100"]),
    ("analyze resamples 10**20", ["analyze", "p", "--resamples", "100000000000000000000", *R],
     ["--resamples 100000000000000000000", "more than 1,000"]),
    ("space path of 5,005 bytes", ["run", "--space", "/tmp/" + "a/" * 2497 + "x.toml", *R],
     ["--space /tmp/a/a/", "5,005 bytes", "at most 4,095"]),
    ("results dir name of 300 bytes", ["run", "--results-dir", D + "b" * 300],
     ["--results-dir", "300 bytes", "at most 255"]),
    ("leaderboard results dir name of 300 bytes", ["leaderboard", "--results-dir", D + "b" * 300],
     ["--results-dir", "300 bytes", "at most 255"]),
    ("csv name of 304 bytes", ["data", T, D + "c" * 300 + ".csv"],
     ["--train-csv", "304 bytes", "at most 255"]),
    ("predict out name of 304 bytes", ["predict", D + "run", "--input", D + "test5.csv",
                                       "--out", D + "o" * 300 + ".csv", *R],
     ["--out", "304 bytes", "at most 255"]),
    ("predict damaged model.keras", ["predict", D + "run", "--input", D + "test5.csv",
                                     "--out", D + "o.csv", *R],
     ["run/model.keras is damaged", "no Keras model file"]),
    ("predict empty model.keras", ["predict", D + "run0", "--input", D + "test5.csv",
                                   "--out", D + "o.csv", *R],
     ["run0/model.keras is damaged", "0 bytes", "`fmnist-search baseline model1`"]),
]

# Refused from the arguments alone (names, options, paths, ports, small files): each answers
# before TensorFlow or any data loads (TensorFlow alone takes 5-10 s to import).
ARGUMENT_LEVEL = [
    "subset 0", "classes one", "seed -1", "describe 1 class", "run patience -1",
    "run batch size", "preset fixed not a table", "preset epochs", "preset bohb setting",
    "leaderboard top -1",
    "leaderboard csv directory", "show lost record.json",
    "analyze project name", "analyze unknown project", "predict binary input",
    "predict unknown first column", "predict out directory", "finalize unknown project",
    "run workers 0", "chief port too large", "worker chief without port",
    "worker project escapes", "project name too long", "project starting with -",
    "run project symlink", "overwrite project symlink", "finalize project symlink",
    "show project symlink", "retrain project symlink", "analyze project symlink",
    "leaderboard project symlink", "worker project symlink", "results dir is a file",
    "show results dir is a file", "chief address not here", "chief port in use",
    "worker no chief", "worker chief without chief.json", "empty preset", "classes negative",
    "max time negative", "hyperband factor 1", "show trial abc",
    "run objectives unknown", "run objectives direction", "run objectives with hyperband",
    "preset objectives unknown", "preset motpe one objective",
    "preset bohb num_samples 10**12", "preset bohb bandwidth inf",
    "preset bohb min points 2*10**30", "preset trials 10**20", "max time beyond a year",
    "hyperband factor 10**20", "run trials 10**20", "run max seconds per epoch inf",
    "finalize top 10**20", "analyze resamples 10**20", "space path of 5,005 bytes",
    "results dir name of 300 bytes", "leaderboard results dir name of 300 bytes",
    "predict out name of 304 bytes", "predict damaged model.keras", "predict empty model.keras",
]


@pytest.mark.parametrize("argv, culprits", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_naming_the_culprit(files, port, capsys, argv, culprits):
    argv = [a.format(d=files, port=port) for a in argv]
    before = sorted(p.name for p in files.rglob("*"))
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    message = " ".join(err.split())  # the message is wrapped at 100 columns
    assert message.startswith("error: ")
    for culprit in culprits:
        culprit = culprit.format(d=files, port=port)
        assert culprit in message, f"{culprit!r} not named in: {message}"
    assert sorted(p.name for p in files.rglob("*")) == before  # nothing written, nothing lost


def test_a_damaged_model_is_refused_by_the_api_too(files):
    from fmnist_search import api
    from fmnist_search.errors import UserError

    with pytest.raises(UserError, match="run0/model.keras is damaged: it is no Keras model"):
        api.run_model(files / "run0")


def test_a_record_json_that_is_a_folder_is_damaged_with_its_remedy(files, tmp_path, capsys):
    """leaderboard and analyze name the trial and what to do; they do not skip it."""
    import shutil

    root = tmp_path / "res"
    shutil.copytree(files / "res" / "p", root / "p")
    (root / "p" / "trial_01" / "record.json").mkdir()
    assert main(["leaderboard", "p", "--results-dir", str(root)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "DAMAGED" in out and "trial_01/record.json is a folder" in out
    assert main(["analyze", "p", "--no-figures", "--results-dir", str(root)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "damaged: trial 01 of p:" in out and "move or remove it" in out


@pytest.mark.slow
def test_resume_with_a_record_json_folder_is_refused_then_resumes(tmp_path, capsys):
    """The resume's repair would rewrite the record over the folder: one error naming it,
    nothing finished changed; once it is removed, the same command resumes."""
    from conftest import search_args, write_csvs

    argv = search_args(write_csvs(tmp_path, np.random.default_rng(0)), tmp_path, "p", 2)
    assert main(argv) == 0
    project = tmp_path / "res" / "p"
    kept = (project / "trial_0" / "record.json").read_bytes()
    (project / "trial_1" / "record.json").unlink()
    (project / "trial_1" / "record.json").mkdir()
    capsys.readouterr()
    assert main([*argv[:argv.index("--trials") + 1], "3", *argv[argv.index("--trials") + 2:]]) \
        == 2
    out, err = capsys.readouterr()
    message = " ".join(err.split())
    assert "Traceback" not in out + err and message.startswith("error: Cannot write")
    assert "trial_1/record.json: it is a folder" in message and "rerun" in message
    assert (project / "trial_0" / "record.json").read_bytes() == kept
    (project / "trial_1" / "record.json").rmdir()
    assert main(argv) == 0  # the same command: the record is rebuilt, nothing retrained
    assert "repaired:" in capsys.readouterr().out
    assert json.loads((project / "trial_1" / "record.json").read_text())["status"] \
        == "COMPLETED"


@pytest.mark.slow
def test_finalize_reuses_only_whole_runs_and_checks_every_folder_first(tmp_path, capsys):
    """A reused run's model.keras must open and its predictions.npz load: a damaged one is
    named in one line and trained again. A file where controls/ should be is refused before
    anything trains, final.json as it was."""
    import shutil

    from conftest import search_args, write_csvs

    argv = search_args(write_csvs(tmp_path, np.random.default_rng(0)), tmp_path, "p", 2)
    root = tmp_path / "res"
    finalize = ["finalize", "p", "--configs", "1", "--epochs", "1", "--results-dir", str(root)]
    assert main(argv) == 0 and main(finalize) == 0
    control = root / "controls" / "tiny_space-default"
    (first,) = control.iterdir()
    model = first / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    capsys.readouterr()
    assert main(finalize) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"{first} is damaged (model.keras: it is no Keras model file" in out
    assert out.count("is damaged") == 1 and out.count("not retrained") == 1  # the pick
    assert len(list(control.iterdir())) == 2  # trained again beside the damaged one
    rows = json.loads((root / "finalized" / "p" / "final.json").read_text())["rows"]
    pick = Path(next(r["path"] for r in rows if r["stage"] == "final"))
    (pick / "predictions.npz").write_bytes(b"not an npz")
    assert main(finalize) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"{pick} is damaged (predictions.npz cannot be read)" in out
    assert out.count("not retrained") == 1  # now the control

    final = (root / "finalized" / "p" / "final.json").read_bytes()
    shutil.move(root / "controls", tmp_path / "controls")
    (root / "controls").write_text("")
    assert main(finalize) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert f"{root / 'controls'} is a file where a folder should be" in message
    assert "Traceback" not in message
    assert (root / "finalized" / "p" / "final.json").read_bytes() == final


def test_show_of_a_record_rebuilt_after_it_was_lost(files, tmp_path, capsys):
    """The remedy for a lost record.json (rerun the search) rebuilds it from Keras Tuner's
    trial.json, without a parameter count or timings: show gave a TypeError on them."""
    import shutil

    from fmnist_search import store
    from fmnist_search.tuning.state import record_from_keras

    root = tmp_path / "res"
    shutil.copytree(files / "res" / "p", root / "p")
    trial = root / "p" / "trial_01"
    keras_state = {**store.read_keras_trial(trial), "score": 0.5}
    store.write_trial_record(trial, record_from_keras(keras_state, {}))
    assert main(["show", "p", "--trial", "01", "--results-dir", str(root)]) == 0
    out, err = capsys.readouterr()
    text = " ".join(out.split())
    assert "Traceback" not in out + err
    assert "val accuracy 0.5000, val loss -, - params, - s/epoch" in text
    assert "Its record.json was rebuilt from Keras Tuner's trial.json" in text


def test_every_command_has_cases_and_every_case_names_a_culprit():
    """A new command without a bad-input case fails here; a case naming nothing would pass
    its own test vacuously."""
    from fmnist_search.cli import COMMANDS

    assert {argv[0] for _, argv, _ in CASES} == set(COMMANDS)
    assert [name for name, _, culprits in CASES if not culprits] == []


def test_argument_level_cases_are_in_the_table():
    assert set(ARGUMENT_LEVEL) <= {c[0] for c in CASES}


TIMING_SCRIPT = """
import json, sys, time
from fmnist_search.cli import main
timings = []
for argv in json.loads(sys.argv[1]):
    start = time.perf_counter()
    code = main(argv)
    timings.append([code, time.perf_counter() - start, "tensorflow" in sys.modules])
print("TIMINGS", json.dumps(timings))
"""


@pytest.mark.serial
def test_argument_level_refusals_come_before_tensorflow_in_under_a_second(files, port):
    """Each case in a fresh interpreter would time Python's start; here they run one after
    another in one, each timed alone, and TensorFlow must never have been imported."""
    by_name = {c[0]: c[1] for c in CASES}
    cases = [[a.format(d=files, port=port) for a in by_name[name]] for name in ARGUMENT_LEVEL]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", TIMING_SCRIPT, json.dumps(cases)], env=env,
                          capture_output=True, text=True, timeout=300)
    timings = json.loads(proc.stdout.split("TIMINGS", 1)[1])
    for name, (code, seconds, tensorflow) in zip(ARGUMENT_LEVEL, timings, strict=True):
        assert code == 2, name
        assert not tensorflow, f"{name} imported TensorFlow"
        assert seconds < 1.0, f"{name} took {seconds:.2f} s"


HUGE_RANGE_SCRIPT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a regression fails, not the host
from fmnist_search.cli import main
code = main(["describe", sys.argv[1]])
# VmHWM is this program's peak; ru_maxrss would include pytest's, inherited across exec.
peak = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print("peak_kb", peak[0])
sys.exit(code)
"""


@pytest.mark.parametrize("top", ["1000000000", str(2**70)])
def test_huge_range_is_refused_in_a_second_with_bounded_memory(tmp_path, top):
    """The 24 GB regression: a range is checked by arithmetic, never expanded."""
    path = tmp_path / "huge.toml"
    path.write_text(f'[hp.filters_1]\ntype = "int"\nmin = 1\nmax = {top}\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", HUGE_RANGE_SCRIPT, str(path)], env=env,
                          capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "filters_1" in proc.stderr and top in proc.stderr.replace("\n", "")
    assert elapsed < 5
    peak_kb = int(proc.stdout.split("peak_kb")[1].split()[0])
    assert peak_kb < 300 * 1024  # Python, rich, numpy and the space module: about 45 MB


def test_huge_range_search_allocates_nothing_big(files, capsys):
    """Through ``run`` in-process: Python's allocations while refusing stay small."""
    import fmnist_search.tuning  # noqa: F401 - imported first, so only the check is measured

    argv = ["run", "--space", f"{files}/dense.toml", "--train-csv", f"{files}/five.csv",
            "--results-dir", f"{files}/res"]
    tracemalloc.start()
    start = time.perf_counter()
    try:
        assert main(argv) == 2
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < 20 * 2**20
    assert "dense_units_1" in capsys.readouterr().err


@pytest.mark.serial
def test_overwrite_of_a_project_being_searched_is_refused_at_once(tmp_path, capsys,
                                                                  monkeypatch):
    import fcntl

    from fmnist_search import dataset

    monkeypatch.setattr(dataset, "ensure_local_copy", lambda *a, **k: pytest.fail("data loaded"))
    root = tmp_path / "res"
    (root / "p").mkdir(parents=True)
    (root / "p" / "run.json").write_text("{}")
    with open(root / ".p.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running search holds it
        start = time.perf_counter()
        assert main(["run", "--project", "p", "--overwrite", "--results-dir", str(root)]) == 2
        assert time.perf_counter() - start < 1.0
    assert "being searched" in " ".join(capsys.readouterr().err.split())
    assert (root / "p" / "run.json").exists()


def test_workers_beyond_the_trials_are_capped_with_a_one_line_warning(files, capsys):
    argv = ["run", "--workers", "1000", "--trials", "1", "--space", f"{files}/bin.toml",
            "--results-dir", f"{files}/res"]
    assert main(argv) == 2  # refused later, for the space file: the warning came first
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == ("warning: --workers 1000 is more than the 1 trial(s) of the search: "
                        "starting 1.")
    assert lines[1].startswith("error: ") and "bin.toml" in " ".join(lines[1:])
