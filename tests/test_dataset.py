"""Loading, class selection, subsets and splits (``fmnist_search.dataset``)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REAL_DIR, cache_listing, realdata

from fmnist_search import dataset, sources
from fmnist_search.errors import UserError


def test_prepare_classes_subset_and_split(tiny_raw):
    settings = dataset.DataSettings(classes=(0, 2, 4, 6, 8), val_fraction=0.2, seed=3)
    ds = dataset.prepare(settings, tiny_raw)
    assert ds.class_names == ["T-shirt/top", "Pullover", "Coat", "Shirt", "Bag"]
    assert ds.x_train.shape[1:] == (28, 28, 1) and ds.x_train.dtype == np.float32
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    assert np.bincount(ds.y_train).tolist() == [16] * 5
    assert np.bincount(ds.y_val).tolist() == [4] * 5
    assert np.bincount(ds.y_test).tolist() == [5] * 5  # test keeps only the chosen classes


def test_prepare_subset_is_stratified_and_seeded(tiny_raw):
    a = dataset.prepare(dataset.DataSettings(subset=0.5, seed=7), tiny_raw)
    b = dataset.prepare(dataset.DataSettings(subset=0.5, seed=7), tiny_raw)
    assert len(a.y_train) + len(a.y_val) == 100
    assert np.bincount(np.concatenate([a.y_train, a.y_val])).tolist() == [10] * 10
    assert np.array_equal(a.x_val, b.x_val)


@pytest.mark.parametrize("text", ["1,x", "3", "0,0,1", "0,10"])
def test_parse_classes_rejects(text):
    with pytest.raises(UserError, match="--classes"):
        dataset.parse_classes(text)


@realdata
def test_real_data_counts():
    raw = dataset.load_idx_dir(sources.Source("debian", REAL_DIR))
    assert raw.x_train.shape == (60000, 28, 28) and raw.x_test.shape == (10000, 28, 28)
    assert np.bincount(raw.y_train).tolist() == [6000] * 10
    assert np.bincount(raw.y_test).tolist() == [1000] * 10


@realdata
def test_cli_data_reports_counts(capsys):
    from fmnist_search.cli import main

    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert "60,000" in out and "48,000" in out and "12,000" in out and "10,000" in out
    assert "6,000" in out and "1,000" in out


def test_training_commands_fetch_when_nothing_is_found(fake_mirror, isolated_data_env, capsys):
    from fmnist_search.cli import main

    assert main(["data", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "was not found on this machine: downloading" in out
    assert f"Source: project cache: {isolated_data_env / 'cache'}" in out
    assert cache_listing(isolated_data_env) == sorted(f.name for f in sources.FILES.values())
    capsys.readouterr()
    assert main(["data", "--seed", "1"]) == 0  # found now: no second download
    assert "downloading" not in capsys.readouterr().out


def test_prepare_data_of_training_commands_fetches(fake_mirror, isolated_data_env):
    from fmnist_search.cli.common import prepare_data

    ds = prepare_data(dataset.DataSettings(seed=1))
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
    assert cache_listing(isolated_data_env) == []


def test_named_data_dir_is_never_replaced_by_a_download(fake_mirror, tmp_path, monkeypatch):
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("downloaded although --data-dir was given")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(UserError, match="does not hold the Fashion-MNIST files"):
        dataset.ensure_local_copy(dataset.DataSettings(data_dir=str(tmp_path / "empty")))
    monkeypatch.setenv("FMNIST_DATA", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="FMNIST_DATA"):
        dataset.ensure_local_copy(dataset.DataSettings())

