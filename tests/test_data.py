from __future__ import annotations

import gzip
import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import REAL_DIR, idx_bytes, realdata, write_idx

from fmnist_search import csvdata, data
from fmnist_search.errors import UserError


def test_parse_idx_round_trip(rng):
    array = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    assert np.array_equal(data.parse_idx(idx_bytes(array)), array)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b"\x01\x00" + b[2:], "not an IDX file"),
        (lambda b: b[:2] + b"\x0d" + b[3:], "IDX type 0x0d"),
        (lambda b: b[:-10], "truncated"),
        (lambda b: b + b"\x00", "truncated or padded"),
    ],
)
def test_parse_idx_rejects_damage(rng, mutate, message):
    raw = idx_bytes(rng.integers(0, 256, (2, 28, 28), dtype=np.uint8))
    with pytest.raises(UserError, match=message):
        data.parse_idx(mutate(raw), "x.idx")


def test_truncated_gzip_names_the_file(tmp_path, rng):
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 9, (5, 28, 28)))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz.*truncated"):
        data.read_idx(path)


@pytest.mark.slow
def test_wrong_content_fails_checksum(tmp_path, rng):
    """A well-formed IDX file that is not the official one is refused, naming the file."""
    for spec in data.FILES.values():
        write_idx(tmp_path / spec.name, rng.integers(0, 9, spec.shape[:1] + spec.shape[1:]))
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte\.gz failed its checksum"):
        data.load_idx_dir(data.Source("--data-dir", tmp_path))


def test_locate_explicit_dir_must_hold_files(tmp_path, isolated_data_env):
    with pytest.raises(UserError, match="missing train-images"):
        data.locate(tmp_path)


def test_locate_nothing_anywhere_lists_places_and_remedies(isolated_data_env):
    with pytest.raises(UserError) as info:
        data.locate()
    text = str(info.value)
    assert "project cache" in text and "Keras cache" in text and "Debian" in text
    assert "--fetch" in text and "apt-get install dataset-fashion-mnist" in text


def test_locate_order_prefers_project_cache(isolated_data_env, rng):
    cache = isolated_data_env / "cache"
    cache.mkdir()
    keras_dir = data.keras_cache()
    keras_dir.mkdir(parents=True)
    for spec in data.FILES.values():
        write_idx(cache / spec.name, np.zeros((1, 1)))
        write_idx(keras_dir / spec.name, np.zeros((1, 1)))
    assert data.locate().label == "project cache"
    shutil.rmtree(cache)
    assert data.locate().label == "Keras cache"


# --------------------------------------------------------------------------- CSV


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


# --------------------------------------------------------------------------- preparing


def test_prepare_classes_subset_and_split(tiny_raw):
    settings = data.DataSettings(classes=(0, 2, 4, 6, 8), val_fraction=0.2, seed=3)
    ds = data.prepare(settings, tiny_raw)
    assert ds.class_names == ["T-shirt/top", "Pullover", "Coat", "Shirt", "Bag"]
    assert ds.x_train.shape[1:] == (28, 28, 1) and ds.x_train.dtype == np.float32
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    assert np.bincount(ds.y_train).tolist() == [16] * 5
    assert np.bincount(ds.y_val).tolist() == [4] * 5
    assert np.bincount(ds.y_test).tolist() == [5] * 5  # test keeps only the chosen classes


def test_prepare_subset_is_stratified_and_seeded(tiny_raw):
    a = data.prepare(data.DataSettings(subset=0.5, seed=7), tiny_raw)
    b = data.prepare(data.DataSettings(subset=0.5, seed=7), tiny_raw)
    assert len(a.y_train) + len(a.y_val) == 100
    assert np.bincount(np.concatenate([a.y_train, a.y_val])).tolist() == [10] * 10
    assert np.array_equal(a.x_val, b.x_val)


@pytest.mark.parametrize("text", ["1,x", "3", "0,0,1", "0,10"])
def test_parse_classes_rejects(text):
    with pytest.raises(UserError, match="--classes"):
        data.parse_classes(text)


# --------------------------------------------------------------------------- real data


@realdata
def test_real_data_counts():
    raw = data.load_idx_dir(data.Source("debian", REAL_DIR))
    assert raw.x_train.shape == (60000, 28, 28) and raw.x_test.shape == (10000, 28, 28)
    assert np.bincount(raw.y_train).tolist() == [6000] * 10
    assert np.bincount(raw.y_test).tolist() == [1000] * 10


@realdata
def test_fetch_copies_verified_local_files(isolated_data_env, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIR", REAL_DIR)
    cache = data.fetch()
    assert data.has_all_files(cache)
    data.load_idx_dir(data.Source("project cache", cache))


@realdata
def test_fetch_downloads_from_mirror_and_verifies(isolated_data_env):
    mirror = isolated_data_env / "mirror"
    shutil.copytree(REAL_DIR, mirror)
    cache = data.fetch(mirrors=[mirror.as_uri() + "/"])
    assert sorted(p.name for p in cache.iterdir()) == sorted(f.name for f in data.FILES.values())


def test_fetch_refuses_bad_download_and_leaves_nothing(isolated_data_env, rng):
    mirror = isolated_data_env / "mirror"
    mirror.mkdir()
    for spec in data.FILES.values():
        write_idx(mirror / spec.name, rng.integers(0, 9, (2, 28, 28)))
    with pytest.raises(UserError, match="Could not download train-images.*checksum"):
        data.fetch(mirrors=[mirror.as_uri() + "/"])
    assert list((isolated_data_env / "cache").iterdir()) == []


@realdata
def test_cli_data_reports_counts(capsys):
    from fmnist_search.cli import main

    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert "60,000" in out and "48,000" in out and "12,000" in out and "10,000" in out
    assert "6,000" in out and "1,000" in out


@realdata
def test_cli_corrupted_copy_exits_2_naming_file(tmp_path, capsys):
    for spec in data.FILES.values():
        shutil.copyfile(REAL_DIR / spec.name, tmp_path / spec.name)
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(target.read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    target.write_bytes(gzip.compress(bytes(raw)))
    from fmnist_search.cli import main

    assert main(["data", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "t10k-labels-idx1-ubyte.gz" in err and "checksum" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- first contact


@pytest.fixture
def fake_mirror(isolated_data_env, tiny_raw, monkeypatch):
    """A local mirror of small stand-ins for the four files, which FILES is patched to accept
    (hashes and shapes), so that downloading is tested end to end without the real data."""
    mirror = isolated_data_env / "mirror"
    mirror.mkdir()
    arrays = {"train_images": tiny_raw.x_train, "train_labels": tiny_raw.y_train,
              "test_images": tiny_raw.x_test, "test_labels": tiny_raw.y_test}
    files = {}
    for key, spec in data.FILES.items():
        raw = idx_bytes(arrays[key])
        (mirror / spec.name).write_bytes(gzip.compress(raw))
        files[key] = data.IdxFile(spec.name, hashlib.sha256(raw).hexdigest(), arrays[key].shape)
    monkeypatch.setattr(data, "FILES", files)
    monkeypatch.setattr(data, "MIRRORS", (mirror.as_uri() + "/",))
    return mirror


def _cache_listing(env) -> list[str]:
    cache = env / "cache"
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


def test_training_commands_fetch_when_nothing_is_found(fake_mirror, isolated_data_env, capsys):
    from fmnist_search.cli import main

    assert main(["data", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "was not found on this machine: downloading" in out
    assert f"Source: project cache: {isolated_data_env / 'cache'}" in out
    assert _cache_listing(isolated_data_env) == sorted(f.name for f in data.FILES.values())
    capsys.readouterr()
    assert main(["data", "--seed", "1"]) == 0  # found now: no second download
    assert "downloading" not in capsys.readouterr().out


def test_prepare_data_of_training_commands_fetches(fake_mirror, isolated_data_env):
    from fmnist_search.cli.common import prepare_data

    ds = prepare_data(data.DataSettings(seed=1))
    assert len(ds.y_train) + len(ds.y_val) == 200 and len(ds.y_test) == 50
    assert ds.source.startswith("project cache")


def test_offline_is_one_clear_message_and_caches_nothing(fake_mirror, isolated_data_env,
                                                          monkeypatch, capsys):
    import urllib.error
    import urllib.request

    from fmnist_search.cli import main

    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert main(["data"]) == 2
    err = capsys.readouterr().err
    text = " ".join(err.split())
    assert err.startswith("error: Fashion-MNIST was not found, and downloading it failed")
    assert "Name or service not known" in text and "rerun when online" in text
    assert "apt-get install dataset-fashion-mnist" in text and "--data-dir DIR" in text
    assert "Traceback" not in err and "\n\n" not in err  # one paragraph
    assert _cache_listing(isolated_data_env) == []


@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_bad_download_is_refused_and_not_cached(fake_mirror, isolated_data_env, damage):
    target = fake_mirror / data.FILES["test_images"].name
    raw = bytearray(gzip.decompress(target.read_bytes()))
    if damage == "corrupt":
        raw[-1] ^= 0xFF  # same shape, wrong content: only the checksum can tell
        target.write_bytes(gzip.compress(bytes(raw)))
    else:
        target.write_bytes(target.read_bytes()[:-30])
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte.gz.*failed verification"):
        data.fetch()
    assert data.FILES["test_images"].name not in _cache_listing(isolated_data_env)
    assert not [n for n in _cache_listing(isolated_data_env) if n.endswith(".part")]


def test_fetch_keeps_good_cached_files_and_replaces_bad_ones(fake_mirror, isolated_data_env,
                                                             monkeypatch):
    import urllib.request

    cache = isolated_data_env / "cache"
    cache.mkdir()
    labels, images = data.FILES["train_labels"].name, data.FILES["train_images"].name
    shutil.copyfile(fake_mirror / labels, cache / labels)
    (cache / images).write_bytes(b"not gzip")
    fetched = []
    real = urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: fetched.append(url) or real(url, timeout=timeout))
    data.fetch()
    assert sorted(url.rsplit("/", 1)[1] for url in fetched) == sorted(
        f.name for f in data.FILES.values() if f.name != labels)
    data.load_idx_dir(data.Source("project cache", cache))


def test_named_data_dir_is_never_replaced_by_a_download(fake_mirror, tmp_path, monkeypatch):
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("downloaded although --data-dir was given")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(UserError, match="does not hold the Fashion-MNIST files"):
        data.ensure_local_copy(data.DataSettings(data_dir=str(tmp_path / "empty")))
    monkeypatch.setenv("FMNIST_DATA", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="FMNIST_DATA"):
        data.ensure_local_copy(data.DataSettings())
