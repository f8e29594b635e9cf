"""Finding, verifying and fetching the four Fashion-MNIST files (``fmnist_search.sources``)."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from conftest import REAL_DIR, cache_listing, idx_bytes, realdata, write_idx

from fmnist_search import sources
from fmnist_search.errors import UserError


def _verify_all(directory) -> None:
    for spec in sources.FILES.values():
        sources.read_idx(directory / spec.name, spec)


def test_parse_idx_round_trip(rng):
    array = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    assert np.array_equal(sources.parse_idx(idx_bytes(array)), array)


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
        sources.parse_idx(mutate(raw), "x.idx")


def test_truncated_gzip_names_the_file(tmp_path, rng):
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 9, (5, 28, 28)))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz.*truncated"):
        sources.read_idx(path)


@pytest.mark.slow
def test_wrong_content_fails_checksum(tmp_path, rng):
    """A well-formed IDX file that is not the official one is refused, naming the file."""
    spec = sources.FILES["train_images"]
    write_idx(tmp_path / spec.name, rng.integers(0, 9, spec.shape, dtype=np.uint8))
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte\.gz failed its checksum"):
        sources.read_idx(tmp_path / spec.name, spec)


def test_locate_explicit_dir_must_hold_files(tmp_path, isolated_data_env):
    with pytest.raises(UserError, match="missing train-images"):
        sources.locate(tmp_path)


def test_locate_nothing_anywhere_lists_places_and_remedies(isolated_data_env):
    with pytest.raises(UserError) as info:
        sources.locate()
    text = str(info.value)
    assert "project cache" in text and "Keras cache" in text and "Debian" in text
    assert "--fetch" in text and "apt-get install dataset-fashion-mnist" in text


def test_locate_order_prefers_project_cache(isolated_data_env, rng):
    cache = isolated_data_env / "cache"
    cache.mkdir()
    keras_dir = sources.keras_cache()
    keras_dir.mkdir(parents=True)
    for spec in sources.FILES.values():
        write_idx(cache / spec.name, np.zeros((1, 1)))
        write_idx(keras_dir / spec.name, np.zeros((1, 1)))
    assert sources.locate().label == "project cache"
    shutil.rmtree(cache)
    assert sources.locate().label == "Keras cache"


@realdata
def test_fetch_copies_verified_local_files(isolated_data_env, monkeypatch):
    monkeypatch.setattr(sources, "DEBIAN_DIR", REAL_DIR)
    cache = sources.fetch()
    assert sources.has_all_files(cache)
    _verify_all(cache)


@realdata
def test_fetch_downloads_from_mirror_and_verifies(isolated_data_env):
    mirror = isolated_data_env / "mirror"
    shutil.copytree(REAL_DIR, mirror)
    cache = sources.fetch(mirrors=[mirror.as_uri() + "/"])
    assert sorted(p.name for p in cache.iterdir()) == sorted(f.name for f in sources.FILES.values())


def test_fetch_refuses_bad_download_and_leaves_nothing(isolated_data_env, rng):
    mirror = isolated_data_env / "mirror"
    mirror.mkdir()
    for spec in sources.FILES.values():
        write_idx(mirror / spec.name, rng.integers(0, 9, (2, 28, 28)))
    with pytest.raises(UserError, match="Could not download train-images.*checksum"):
        sources.fetch(mirrors=[mirror.as_uri() + "/"])
    assert list((isolated_data_env / "cache").iterdir()) == []


@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_bad_download_is_refused_and_not_cached(fake_mirror, isolated_data_env, damage):
    target = fake_mirror / sources.FILES["test_images"].name
    raw = bytearray(gzip.decompress(target.read_bytes()))
    if damage == "corrupt":
        raw[-1] ^= 0xFF  # same shape, wrong content: only the checksum can tell
        target.write_bytes(gzip.compress(bytes(raw)))
    else:
        target.write_bytes(target.read_bytes()[:-30])
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte.gz.*failed verification"):
        sources.fetch()
    assert sources.FILES["test_images"].name not in cache_listing(isolated_data_env)
    assert not [n for n in cache_listing(isolated_data_env) if n.endswith(".part")]


def test_fetch_keeps_good_cached_files_and_replaces_bad_ones(fake_mirror, isolated_data_env,
                                                             monkeypatch):
    import urllib.request

    cache = isolated_data_env / "cache"
    cache.mkdir()
    labels, images = sources.FILES["train_labels"].name, sources.FILES["train_images"].name
    shutil.copyfile(fake_mirror / labels, cache / labels)
    (cache / images).write_bytes(b"not gzip")
    fetched = []
    real = urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: fetched.append(url) or real(url, timeout=timeout))
    sources.fetch()
    assert sorted(url.rsplit("/", 1)[1] for url in fetched) == sorted(
        f.name for f in sources.FILES.values() if f.name != labels)
    _verify_all(cache)


@realdata
def test_cli_corrupted_copy_exits_2_naming_file(tmp_path, capsys):
    for spec in sources.FILES.values():
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
