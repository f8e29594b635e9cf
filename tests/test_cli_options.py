"""Option values are checked by argparse before anything heavy loads; errors stay copyable."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import pytest

from fmnist_search.cli import format_error, main, options

BAD = [
    (["run", "--trials", "0"], "--trials 0 must be a positive whole number"),
    (["run", "--epochs", "-2"], "--epochs -2 must be a positive whole number"),
    (["run", "--batch-size", "x"], "--batch-size 'x' is not a whole number"),
    (["run", "--factor", "0"], "--factor 0 must be 2 or more"),
    (["run", "--factor", "1"], "--factor 1 must be 2 or more"),
    (["run", "--patience", "-1"], "--patience -1 must be a whole number, 0 or more"),
    (["run", "--subset", "0"], "--subset 0 must be a fraction in (0, 1]"),
    (["run", "--subset", "nan"], "--subset 'nan' is not a number"),
    (["run", "--val-fraction", "1"], "--val-fraction 1 must be a fraction in (0, 1)"),
    (["run", "--seed", "-1"], "--seed -1 must be a whole number from 0 to 4294967295"),
    (["run", "--max-time", "soon"], "--max-time 'soon' is not a duration"),
    (["run", "--classes", "0,10"], "--classes '0,10': give at least two distinct ids"),
    (["run", "--tuner", "grid"], "--tuner: invalid choice: 'grid'"),
    (["baseline", "model1", "--epochs", "0"], "--epochs 0 must be a positive whole number"),
    (["baseline"], "the following arguments are required: model"),
    (["describe", "model1", "--num-classes", "0"], "--num-classes 0 must be from 2 to 10"),
    (["retrain", "p", "--epochs", "0"], "--epochs 0 must be a positive whole number"),
    (["leaderboard", "--top", "-1"], "--top -1 must be a whole number, 0 or more"),
]


@pytest.mark.parametrize("argv, message", BAD)
def test_bad_option_is_one_paragraph_and_status_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    text = " ".join(err.split())
    assert text.startswith(f"error: {message}") and "Traceback" not in err
    assert f"See `fmnist-search {argv[0]} --help`." in text and "usage:" not in err


# Refused by the command itself, still before anything loads TensorFlow.
EARLY = [["run", "--search", "fast"], ["run", "--space", "vgg"], ["baseline", "model9"]]


@pytest.mark.serial
def test_bad_options_are_refused_before_tensorflow_loads():
    """In a fresh interpreter: every refusal above leaves TensorFlow unimported, and fast."""
    script = (
        "import sys, time\n"
        "from fmnist_search.cli import main\n"
        f"for argv in {[argv for argv, _ in BAD] + EARLY!r}:\n"
        "    start = time.perf_counter()\n"
        "    assert main(argv) == 2, argv\n"
        "    assert time.perf_counter() - start < 1.0, argv\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_trials_0_command_fails_well_under_a_second_of_work():
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fmnist_search", "run", "--trials", "0"],
                          capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --trials 0 must be a positive whole number")
    assert elapsed < 3.0  # interpreter start included; TensorFlow alone takes 5-10 s here


def test_help_is_status_0(capsys):
    assert main(["run", "--help"]) == 0
    assert "--max-time" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--debug", "leaderboard"], ["leaderboard", "--debug"]])
def test_debug_is_seen_before_and_after_the_command(argv, tmp_path, capsys):
    from fmnist_search.errors import UserError

    with pytest.raises(UserError, match="Nothing to show"):  # --debug re-raises
        main([*argv, "--results-dir", str(tmp_path)])


@pytest.mark.parametrize(
    "func, good, bad",
    [
        (options.positive_int, {"1": 1, "64": 64}, ["0", "-3", "1.5", ""]),
        (options.non_negative_int, {"0": 0, "7": 7}, ["-1", "x"]),
        (options.seed, {"0": 0, str(2**32 - 1): 2**32 - 1}, ["-1", str(2**32)]),
        (options.fraction, {"1": 1.0, "0.05": 0.05}, ["0", "1.01", "-0.5", "inf", "nan"]),
        (options.split_fraction, {"0.2": 0.2}, ["0", "1", "nan"]),
        (options.duration, {"90s": 90.0, "1h30m": 5400.0, "15": 15.0}, ["soon", "", "5d"]),
        (options.class_list, {"0,2,4": "0,2,4"}, ["3", "1,1", "a,b"]),
    ],
)
def test_option_types(func, good, bad):
    for text, value in good.items():
        assert func(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            func(text)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("45m", 2700), ("2h", 7200),
                                           ("1h30m", 5400), ("15", 15)])
def test_parse_duration_matches_the_search(text, seconds):
    assert options.parse_duration(text) == seconds


def test_each_option_is_parsed_once_into_its_typed_value():
    """--max-time reaches the search as seconds and --chief as an address, parsed by argparse;
    the 120 s defaults of --heartbeat-timeout and --chief-timeout are the library's own."""
    from fmnist_search.cli import build_parser
    from fmnist_search.tuning import network, worker

    parser = build_parser()
    args = parser.parse_args(["run", "--max-time", "1h30m"])
    assert args.max_time == 5400.0 and args.heartbeat_timeout == network.HEARTBEAT_TIMEOUT
    args = parser.parse_args(["worker", "--chief", "[::1]:8470", "--project", "p"])
    assert args.chief == network.Address("::1", 8470)
    assert args.chief_timeout == worker.WorkerRequest.chief_timeout == network.CHIEF_TIMEOUT


def test_error_wrapping_keeps_paths_options_and_commands_whole():
    path = "/home/someone/long-project-name/fashion-mnist-data/train-images-idx3-ubyte.gz"
    message = (f"a fairly long sentence that pushes things along, the file {path} is bad; run "
               "`fmnist-search data --fetch --data-dir /tmp/x` or pass --val-fraction 0.2 "
               "with `apt-get install dataset-fashion-mnist` " + "and more words " * 8)
    text = format_error(message)
    lines = text.splitlines()
    assert len(lines) > 2 and all(len(line) <= 100 for line in lines)
    for whole in (path, "`fmnist-search data --fetch --data-dir /tmp/x`", "--val-fraction",
                  "`apt-get install dataset-fashion-mnist`"):
        assert any(whole in line for line in lines), whole
    assert " ".join(text.split()) == " ".join(f"error: {message}".split())
