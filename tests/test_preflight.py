"""Outputs are proven writable before the work that produces them (training, data, models)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from fmnist_search import preflight
from fmnist_search.cli import main
from fmnist_search.errors import UserError
from fmnist_search.tuning import supervisor


@pytest.fixture
def blocked(tmp_path):
    """A path no one can create, root included: its parent is a file."""
    (tmp_path / "a-file").write_text("x")
    return tmp_path / "a-file" / "results"


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder (created if missing) read-only: mode 0o555. Where the mode stops nothing
    (root, or any process with CAP_DAC_OVERRIDE, as in CI), the kernel's answer to anyone else
    is faked at the two calls preflight's probe makes: creating a file (``os.open`` with
    ``O_CREAT``: ``tempfile.mkstemp``, ``Path.touch``) or a folder (``os.mkdir``) directly in
    it fails with EACCES. Everything else is the real filesystem."""
    made: list[Path] = []
    faked: set[Path] = set()

    def refused(path) -> bool:
        return Path(os.path.realpath(os.fspath(path))).parent in faked

    def denied(path):
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    real_open, real_mkdir = os.open, os.mkdir

    def fake_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and refused(path):
            raise denied(path)
        return real_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if refused(path):
            raise denied(path)
        return real_mkdir(path, *args, **kwargs)

    def make(folder: Path) -> Path:
        folder.mkdir(exist_ok=True)
        folder.chmod(0o555)
        made.append(folder)
        probe = folder / ".can-i-write"
        try:
            probe.touch()
        except PermissionError:
            return folder  # the mode bits are enough here
        probe.unlink()
        faked.add(Path(os.path.realpath(folder)))
        monkeypatch.setattr(os, "open", fake_open)
        monkeypatch.setattr(os, "mkdir", fake_mkdir)
        return folder

    yield make
    for folder in made:
        folder.chmod(0o755)


def test_the_read_only_fake_refuses_what_a_read_only_folder_refuses(tmp_path, read_only):
    """Creating in the folder fails as EACCES, by each call preflight's probe makes; reading
    it, creating deeper in a folder that is not read-only, and writing elsewhere all work."""
    import tempfile

    folder = read_only(tmp_path / "ro")
    for create in (lambda: tempfile.mkstemp(dir=folder), lambda: (folder / "f").touch(),
                   lambda: (folder / "d").mkdir()):
        with pytest.raises(PermissionError) as err:
            create()
        assert err.value.errno == errno.EACCES
    assert list(folder.iterdir()) == []
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "f").touch()
    assert [p.name for p in (tmp_path / "elsewhere").iterdir()] == ["f"]


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


def test_read_only_results_dir(tmp_path, read_only):
    parent = read_only(tmp_path / "ro")
    target = parent / "results"
    with pytest.raises(UserError) as err:
        preflight.ensure_writable_results(target)
    text = " ".join(str(err.value).split())
    assert f"The results directory {target} is not writable (Permission denied)" in text
    assert "--results-dir DIR" in text
    assert list(parent.iterdir()) == []  # nothing was left behind


def test_run_in_a_read_only_results_dir_exits_2_naming_it(tmp_path, read_only, no_work, capsys):
    root = read_only(tmp_path / "ro")
    assert main(["run", "--results-dir", str(root), "--trials", "1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"results directory {root} is not writable (Permission denied)" in err
    assert "Traceback" not in err


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
    err = " ".join(capsys.readouterr().err.split())  # wrapped: a longer tmp path moves the break
    assert f"--csv {tmp_path} is a directory" in err


def test_missing_weights_file_is_refused_before_data(tmp_path, no_work, capsys):
    missing = tmp_path / "resnet.h5"
    assert main(["baseline", "model5", "--weights", str(missing),
                 "--results-dir", str(tmp_path)]) == 2
    assert f"--weights {missing}: no such file" in " ".join(capsys.readouterr().err.split())


# --------------------------------------------------------------------------- before TensorFlow


def test_a_project_being_searched_is_refused_without_creating_a_lock(tmp_path):
    import fcntl

    from fmnist_search import store

    preflight.check_not_searched(tmp_path, "p")  # no lock file: free, and none is created
    assert not store.lock_file(tmp_path, "p").exists()
    with open(store.lock_file(tmp_path, "p"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match="being searched by another"):
            preflight.check_project(tmp_path, "p")
    preflight.check_project(tmp_path, "p")  # released: free again


def test_a_read_only_project_folder_is_refused(tmp_path, read_only):
    read_only(tmp_path / "p")
    with pytest.raises(UserError) as err:
        preflight.check_project(tmp_path, "p")
    text = " ".join(str(err.value).split())
    assert (f"The project folder of 'p' {tmp_path / 'p'} is not writable (Permission denied)"
            in text) and "choose another --project" in text
    assert list((tmp_path / "p").iterdir()) == []


@pytest.mark.parametrize("requested, trials, gpus, cpus, count, warned", [
    (1000, 1, [], [0, 1], 1, ["more than the 1 trial(s) of the search: starting 1"]),
    (2, 5, [], [0, 1], 2, []),
    (4, 5, [], [0, 1], 4, ["more than the 2 core(s)", "106-112 trials/h"]),
    (4, 3, ["0", "1"], [0], 3, ["starting 3"]),  # two GPUs x 2 take 3: no core warning
])
def test_worker_count(requested, trials, gpus, cpus, count, warned):
    """Capped at the trials, warned (one line each) above the cores."""
    got, warnings = supervisor.worker_count(requested, trials, 2, gpus, cpus)
    assert got == count
    assert len(warnings) == (1 if warned else 0)
    assert all(fragment in " ".join(warnings) for fragment in warned)


def test_more_workers_than_gpus_take_is_refused_first():
    with pytest.raises(UserError, match="--workers-per-gpu"):
        supervisor.worker_count(3, 10, 1, ["0", "1"], [0])


def test_a_port_in_use_or_not_ours_cannot_be_bound():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"127.0.0.1:{port} .*in use"):
            preflight.ensure_bindable("127.0.0.1", port)
    preflight.ensure_bindable("127.0.0.1", port)  # released: free
    with pytest.raises(UserError, match="192.0.2.1"):
        preflight.ensure_bindable("192.0.2.1", 0)  # TEST-NET: on no machine


@pytest.mark.serial
def test_a_worker_gives_up_on_its_chief_after_chief_timeout(tmp_path):
    import time

    notes: list[str] = []
    start = time.monotonic()
    with pytest.raises(UserError, match="No chief at 127.0.0.1:1 .*0.5 s: --chief-timeout"):
        preflight.wait_for_chief("127.0.0.1", 1, tmp_path / "chief.json", 0.5, notes.append)
    assert 0.5 <= time.monotonic() - start < 1.5
    assert notes == ["waiting for the chief at 127.0.0.1:1 (Connection refused) ..."]
