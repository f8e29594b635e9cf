"""What a command-line user expects of any tool: --version, output to a closed pipe or a full
device, ``-`` for standard output, help on every option, one meaning per option name (old
spellings kept as deprecated aliases), ``--json`` where a table is printed, and a source
distribution that carries its own tests' files."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
from synthetic import write_project

from fmnist_search import __version__
from fmnist_search.cli import COMMANDS, build_parser, main
from fmnist_search.cli.common import Parser, shared_options

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("conv") / "res"
    write_project(root, "synth", n=30)
    return root


def _cli(*argv: str, stdout=subprocess.PIPE, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmnist_search", *argv], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env=ENV, cwd=cwd, timeout=120)


# --------------------------------------------------------------------------- --version


def test_version_names_the_engines_without_importing_them():
    code = ("import sys\n"
            "from fmnist_search.cli import main\n"
            "code = main(['--version'])\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'keras_tuner', 'pandas') "
            "if m in sys.modules]\n"
            "print('RESULT', code, heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=ENV, timeout=60)
    assert proc.returncode == 0, proc.stderr
    first, result = proc.stdout.splitlines()
    assert result == "RESULT 0 []"
    assert first == (f"fmnist-search {__version__} (tensorflow {metadata.version('tensorflow')}, "
                     f"keras {metadata.version('keras')}, keras-tuner "
                     f"{metadata.version('keras-tuner')})")
    assert __version__ == metadata.version("fmnist-search")  # one version, in the package


# --------------------------------------------------------------------------- pipes, full disks

PIPED = [
    ["leaderboard", "--json", "--top", "0"],
    ["leaderboard", "--top", "0"],
    ["leaderboard", "--csv", "-", "--top", "0"],
    ["analyze", "synth", "--json", "--no-figures", "--resamples", "2"],
    ["analyze", "synth", "--csv", "-", "--no-figures", "--resamples", "2"],
    ["compare", "--csv", "-", "--out", "{tmp}/c.png"],
    ["show", "synth", "--json"],
    ["--help"],
]


@pytest.mark.parametrize("argv", PIPED, ids=" ".join)
def test_a_closed_pipe_ends_quietly(argv, synth, tmp_path):
    """`| head -0`: the reading end is closed before the command writes anything, so its
    first write fails, whatever the output's size (a `head -1` of a short output may read
    everything before closing, and then nothing fails)."""
    argv = [a.format(tmp=tmp_path) for a in argv] + ["--results-dir", str(synth)]
    if argv[0] == "--help":
        argv = ["--help"]
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as closed:
        proc = _cli(*argv, stdout=closed, cwd=tmp_path)
    assert proc.returncode in (0, 141), proc.stderr
    assert proc.stderr == "", proc.stderr


@pytest.mark.parametrize("command", ["leaderboard --json", "analyze synth --json --no-figures",
                                     "leaderboard --csv -"])
def test_head_dash_1_reads_one_line_and_no_traceback(command, synth):
    """The issue's own pipelines, through a shell."""
    line = (f"{sys.executable} -m fmnist_search {command} --results-dir {synth} | head -1; "
            "echo status ${PIPESTATUS[0]}")
    proc = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=ENV,
                          timeout=120)
    out = proc.stdout.splitlines()
    assert len(out) == 2 and out[1] in ("status 0", "status 141"), proc.stdout
    assert "Traceback" not in proc.stderr and proc.stderr == ""


@pytest.mark.parametrize("argv", [["leaderboard", "--json"], ["leaderboard", "--csv", "-"],
                                  ["leaderboard"], ["show", "synth", "--json"]],
                         ids=" ".join)
def test_a_full_device_is_one_error(argv, synth):
    with open("/dev/full", "w") as full:
        proc = _cli(*argv, "--results-dir", str(synth), stdout=full)
    assert proc.returncode == 2
    text = " ".join(proc.stderr.split())
    assert text.startswith("error: Standard output cannot be written: No space left on device")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 3


# --------------------------------------------------------------------------- - is stdout


def test_csv_dash_is_standard_output(synth, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    file = tmp_path / "board.csv"
    assert main(["leaderboard", "--top", "0", "--csv", str(file),
                 "--results-dir", str(synth)]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "--top", "0", "--csv", "-", "--results-dir", str(synth)]) == 0
    out = capsys.readouterr().out
    assert out == file.read_text()  # the CSV alone: no table, no "Wrote" line
    assert not (tmp_path / "-").exists()

    assert main(["analyze", "synth", "--csv", "-", "--no-figures", "--resamples", "2",
                 "--results-dir", str(synth)]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert frame["hyperparameter"].iloc[0] == "learning_rate"

    assert main(["compare", "--csv", "-", "--out", str(tmp_path / "c.png"),
                 "--results-dir", str(synth)]) == 0
    points = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(points) == 30 and (tmp_path / "c.png").stat().st_size > 0
    assert not (tmp_path / "-").exists() and not (tmp_path / "c.csv").exists()


def test_compare_out_dash_is_a_png_on_standard_output(synth, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fmnist_search", "compare", "--out", "-",
                           "--results-dir", str(synth)], capture_output=True, env=ENV,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no "-", no "-.csv"


def test_two_outputs_on_standard_output_are_refused(synth, capsys):
    assert main(["leaderboard", "--csv", "-", "--json", "--results-dir", str(synth)]) == 2
    assert "--csv - and --json would both print to standard output" in \
        " ".join(capsys.readouterr().err.split())


# --------------------------------------------------------------------------- options


def _parsers() -> dict[str, argparse.ArgumentParser]:
    shared = shared_options()
    top = Parser(prog="fmnist-search", parents=[shared.common])
    sub = top.add_subparsers(dest="command")
    for command in COMMANDS.values():
        command.add(sub, shared)
    return dict(sub.choices)


def _visible(parser):
    return [a for a in parser._actions if a.help != argparse.SUPPRESS
            and not isinstance(a, (argparse._SubParsersAction, argparse._HelpAction))]


def test_every_option_and_argument_has_help_text():
    missing = [f"{name} {a.option_strings[0] if a.option_strings else a.dest}"
               for name, parser in {"": build_parser(), **_parsers()}.items()
               for a in _visible(parser) if not (a.help or "").strip()]
    assert missing == []


def test_one_meaning_per_option_name():
    """An option spelled the same in two commands has the same destination, type and kind of
    value there (a default may differ: the search's own, say)."""
    meanings: dict[str, set] = {}
    for parser in _parsers().values():
        for action in _visible(parser):
            for option in action.option_strings:
                kind = getattr(action.type, "__name__", str(action.type))
                meanings.setdefault(option, set()).add(
                    (action.dest, kind, type(action).__name__, action.metavar))
    assert {o: m for o, m in meanings.items() if len(m) > 1} == {}


DEPRECATED = [
    (["finalize", "p", "--top", "2"], "configs", 2, "--top", "--configs"),
    (["analyze", "p", "--top", "3"], "slices", 3, "--top", "--slices"),
    (["analyze", "p", "--out", "figs"], "out_dir", Path("figs"), "--out", "--out-dir"),
    (["show", "p", "07"], "trial", "07", "TRIAL as a positional", "--trial ID"),
]


@pytest.mark.parametrize("argv, dest, value, old, new", DEPRECATED, ids=lambda v: str(v))
def test_old_spellings_still_work_with_a_one_line_warning(argv, dest, value, old, new, capsys):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"warning: {old} is deprecated and goes in the next release: use {new}."
    if old.startswith("--"):  # hidden from --help
        assert not re.search(rf"{old}(?![\w-])", _parsers()[argv[0]].format_help())


def test_new_spellings_are_silent(capsys):
    args = build_parser().parse_args(["show", "p", "--trial", "07"])
    assert args.trial == "07" and capsys.readouterr().err == ""
    assert build_parser().parse_args(["show", "p"]).trial == "best"
    assert build_parser().parse_args(["analyze", "p"]).slices == 4


# --------------------------------------------------------------------------- --json


def test_show_and_describe_json(synth, capsys):
    assert main(["show", "synth", "--trial", "03", "--json", "--results-dir", str(synth)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert record["trial"] == "03" and record["values"]["learning_rate"] > 0
    assert record["layers"] and sum(r["params"] for r in record["layers"]) == \
        record["trainable_params"] + record["non_trainable_params"]
    assert main(["describe", "model1", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    model = json.loads(line)
    assert model["params"] == 257_162 and model["layers"][1]["output_shape"] == [None, 28, 28, 32]
    assert model["architecture"].startswith("C32-P | C64-P")


def test_compare_json_is_one_object_per_point(synth, tmp_path, capsys):
    assert main(["compare", "--json", "--out", str(tmp_path / "c.png"),
                 "--results-dir", str(synth)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 30 and {"pareto_params", "val_accuracy"} <= set(rows[0])


# --------------------------------------------------------------------------- packaging


def test_license_and_project_metadata():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    meta = metadata.metadata("fmnist-search")
    assert meta.get_all("Classifier") and "License :: OSI Approved :: MIT License" in \
        meta.get_all("Classifier")
    assert meta.get_all("Project-URL")


@pytest.mark.slow
def test_the_sdist_carries_what_its_tests_read(tmp_path):
    """Built by hatchling (the build backend), unpacked, and its own docs test run in it."""
    if not (ROOT / ".git").exists():
        pytest.skip("builds the sdist from a git checkout (this is an unpacked copy)")
    proc = subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "sdist", "-d",
                           str(tmp_path / "dist")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        tar.extractall(tmp_path / "src", filter="data")
    tracked = subprocess.run(["git", "ls-files", "docs", "tests", "spaces", "search"],
                             cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert tracked and sorted(set(tracked) - names) == []
    assert {"LICENSE", "README.md", "pyproject.toml", "Makefile"} <= names
    (src,) = (tmp_path / "src").iterdir()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_docs.py"], cwd=src, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-3000:]
