from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from fmnist_search import dataset, sources

TINY_SPACE = str(Path(__file__).with_name("tiny_space.toml"))

REAL_DIR = sources.DEBIAN_DIR
HAS_REAL = sources.has_all_files(REAL_DIR)
realdata = pytest.mark.realdata  # skipped where the files are not installed (see below)
_NO_REAL_REASON = "real Fashion-MNIST files not installed (apt-get install dataset-fashion-mnist)"

# Modules whose every test trains models or starts subprocess searches (`make test-fast` skips
# them); single slow tests elsewhere carry @pytest.mark.slow themselves.
SLOW_MODULES = {"test_tuning", "test_tuning_state", "test_csv_workflow", "test_results_cli",
                "test_runs", "test_native_logs"}


def pytest_collection_modifyitems(config, items):
    skip_real = pytest.mark.skip(reason=_NO_REAL_REASON)
    for item in items:
        if item.module.__name__ in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if "realdata" in item.keywords and not HAS_REAL:
            item.add_marker(skip_real)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    with gzip.open(path, "wb", compresslevel=1) as fh:  # 60,000 images: level 9 took 10 s
        fh.write(idx_bytes(array))
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def tiny_raw(rng) -> dataset.RawData:
    """200 train and 50 test random images, classes balanced: enough to train for one epoch."""
    y_train = np.repeat(np.arange(10, dtype=np.uint8), 20)
    y_test = np.repeat(np.arange(10, dtype=np.uint8), 5)
    x_train = rng.integers(0, 256, (len(y_train), 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (len(y_test), 28, 28), dtype=np.uint8)
    return dataset.RawData(x_train, y_train, x_test, y_test, source="synthetic")


@pytest.fixture
def tiny_dataset(tiny_raw) -> dataset.Dataset:
    return dataset.prepare(dataset.DataSettings(seed=1), tiny_raw)


@pytest.fixture
def isolated_data_env(tmp_path, monkeypatch):
    """No data anywhere: project cache, Debian dir and Keras cache all point into tmp."""
    monkeypatch.setenv("FMNIST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    monkeypatch.setattr(sources, "DEBIAN_DIR", tmp_path / "debian")
    return tmp_path


@pytest.fixture
def fake_mirror(isolated_data_env, tiny_raw, monkeypatch):
    """A local mirror of small stand-ins for the four files, which FILES is patched to accept
    (hashes and shapes), so that downloading is tested end to end without the real data."""
    mirror = isolated_data_env / "mirror"
    mirror.mkdir()
    arrays = {"train_images": tiny_raw.x_train, "train_labels": tiny_raw.y_train,
              "test_images": tiny_raw.x_test, "test_labels": tiny_raw.y_test}
    files = {}
    for key, spec in sources.FILES.items():
        raw = idx_bytes(arrays[key])
        (mirror / spec.name).write_bytes(gzip.compress(raw))
        files[key] = sources.IdxFile(spec.name, hashlib.sha256(raw).hexdigest(), arrays[key].shape)
    monkeypatch.setattr(sources, "FILES", files)
    monkeypatch.setattr(sources, "MIRRORS", (mirror.as_uri() + "/",))
    return mirror


def cache_listing(env) -> list[str]:
    """The files in the isolated project cache (none when it was never created)."""
    cache = env / "cache"
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


def write_csvs(directory: Path, rng: np.random.Generator) -> list[str]:
    """Kaggle-style CSVs (so search tests need no real data): 400 train and 50 test images."""
    import pandas as pd

    paths = []
    for name, n in (("train.csv", 400), ("test.csv", 50)):
        labels = np.repeat(np.arange(10), n // 10)
        frame = pd.DataFrame(rng.integers(0, 256, (n, 784)),
                             columns=[f"pixel{i}" for i in range(784)])
        frame.insert(0, "label", labels)
        frame.to_csv(directory / name, index=False)
        paths.append(str(directory / name))
    return paths


@pytest.fixture
def csv_data(tmp_path, rng) -> list[str]:
    return write_csvs(tmp_path, rng)


def search_args(csv_data, tmp_path, project="p", trials=3, *extra) -> list[str]:
    """A tiny random search on the CSVs: 1 epoch per trial, results under tmp_path/res."""
    return ["run", "--space", TINY_SPACE, "--tuner", "random", "--trials", str(trials),
            "--epochs", "1", "--train-csv", csv_data[0], "--test-csv", csv_data[1],
            "--subset", "0.5", "--precision", "fp32", "--project", project,
            "--results-dir", str(tmp_path / "res"), *extra]
