"""Outputs are proven writable before the work that produces them (training, data, models)."""

from __future__ import annotations

import os

import pytest

from fmnist_search import preflight
from fmnist_search.cli import main
from fmnist_search.errors import UserError


@pytest.fixture
def blocked(tmp_path):
    """A path no one can create, root included: its parent is a file."""
    (tmp_path / "a-file").write_text("x")
    return tmp_path / "a-file" / "results"


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as loading data (training comes after)."""
    from fmnist_search import dataset

    def refuse(*args, **kwargs):
        raise AssertionError("data loaded before the results directory was checked")

    monkeypatch.setattr(dataset, "ensure_local_copy", refuse)


def test_missing_results_dir_is_probed_and_leaves_no_trace(tmp_path):
    target = tmp_path / "new" / "deeper"
    preflight.ensure_writable_results(target)
    assert list(tmp_path.iterdir()) == []  # created for the probe, then removed


def test_unwritable_results_dir_names_it(blocked):
    with pytest.raises(UserError, match=f"results directory {blocked} is not writable"):
        preflight.ensure_writable_results(blocked)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only directories")
def test_read_only_results_dir(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(UserError, match="Permission denied"):
            preflight.ensure_writable_results(tmp_path / "results")
    finally:
        tmp_path.chmod(0o755)


def test_baseline_refuses_before_loading_data_or_training(blocked, no_work, capsys):
    assert main(["baseline", "model1", "--epochs", "1", "--results-dir", str(blocked)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"results directory {blocked / 'baselines' / 'model1'} is not writable" in err
    assert "--results-dir DIR" in err and "Traceback" not in err


def test_run_refuses_before_loading_data(blocked, no_work, capsys):
    assert main(["run", "--results-dir", str(blocked), "--trials", "1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"results directory {blocked} is not writable" in err


@pytest.mark.parametrize("argv, option", [
    (["leaderboard", "--csv"], "--csv"),
    (["predict", "model1", "--out"], "--out"),
    (["compare", "--out"], "--out"),
])
def test_output_files_are_checked_first(argv, option, blocked, tmp_path, capsys):
    target = blocked / "out.csv"
    assert main([*argv, str(target), "--results-dir", str(tmp_path / "none")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{option} {target}: the folder {blocked} is not writable" in err


def test_output_file_that_is_a_directory(tmp_path, capsys):
    assert main(["leaderboard", "--csv", str(tmp_path), "--results-dir", str(tmp_path)]) == 2
    assert f"--csv {tmp_path} is a directory" in capsys.readouterr().err


def test_missing_weights_file_is_refused_before_data(tmp_path, no_work, capsys):
    missing = tmp_path / "resnet.h5"
    assert main(["baseline", "model5", "--weights", str(missing),
                 "--results-dir", str(tmp_path)]) == 2
    assert f"--weights {missing}: no such file" in " ".join(capsys.readouterr().err.split())
