"""What every command shares: the consoles, the error format, the shared options (each
defined once), and the data settings built from them."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console

from fmnist_search.cli import options

if TYPE_CHECKING:
    from fmnist_search.dataset import Dataset, DataSettings
    from fmnist_search.pipeline import DataOptions


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """Rich's own answer is ``SystemExit(1)``; ``main`` answers every closed pipe alike."""
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


# Piped output (CI logs, files) gets a wide page: the leaderboard would not fit 80 columns.
console = _Console(width=None if sys.stdout.isatty() else 160)
err_console = _Console(stderr=True)

STDOUT = "-"  # as a --csv or --out value: standard output


def is_stdout(path: str | os.PathLike | None) -> bool:
    return path is not None and os.fspath(path) == STDOUT


class StdoutError(Exception):
    """Standard output could not be written (a closed pipe, a full device). Not an OSError,
    so that no handler of a file's errors (``preflight.writing``) takes it for one."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error

    @property
    def closed_pipe(self) -> bool:
        return isinstance(self.error, BrokenPipeError) or self.error.errno == errno.EPIPE


class _Guarded:
    """``sys.stdout`` (or its binary ``buffer``) whose write errors are ``StdoutError``s."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def write(self, data):
        try:
            return self._stream.write(data)
        except OSError as exc:
            raise StdoutError(exc) from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise StdoutError(exc) from exc

    @property
    def buffer(self) -> _Guarded:
        return _Guarded(self._stream.buffer)


@contextlib.contextmanager
def guarded_stdout() -> Iterator[None]:
    """Every write to standard output inside (tables, JSON Lines, ``--csv -``) raises
    ``StdoutError`` on failure; what is buffered is flushed before the end, inside."""
    real = sys.stdout
    sys.stdout = _Guarded(real)
    try:
        yield
        sys.stdout.flush()
    finally:
        sys.stdout = real


def silence_stdout() -> None:
    """After a failed write: the rest of the output goes to /dev/null, so that Python's own
    flush at exit does not fail again (and print a traceback of its own)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def stdout_error_message(exc: StdoutError) -> str:
    reason = exc.error.strerror or str(exc.error)
    return (f"Standard output cannot be written: {reason}, so what was printed is incomplete. "
            "Send it where there is space (or to a file with --csv FILE / --out FILE); "
            "nothing in the results directory was changed by printing.")


def text_output(path: str | os.PathLike):
    """A --csv/--out value as pandas' ``to_csv`` takes it: standard output for ``-``."""
    return sys.stdout if is_stdout(path) else path


def check_one_stdout(parser_prog: str, **outputs: bool) -> None:
    """At most one of a command's outputs may be standard output."""
    from fmnist_search.errors import UserError

    named = [name for name, on in outputs.items() if on]
    if len(named) > 1:
        raise UserError(f"{' and '.join(named)} would both print to standard output: give "
                        f"one of them a file name. See `{parser_prog} --help`.")


def ensure_writable_output(path: str | os.PathLike | None, option: str) -> None:
    """``preflight.ensure_writable_file`` for a --csv/--out that may be ``-``."""
    if path is not None and not is_stdout(path):
        from fmnist_search import preflight

        preflight.ensure_writable_file(Path(path), option)


@dataclass(frozen=True)
class SharedOptions:
    """Parent parsers a command's parser inherits from."""

    common: argparse.ArgumentParser
    data: argparse.ArgumentParser
    train: argparse.ArgumentParser


def shared_options() -> SharedOptions:
    # SUPPRESS, with the defaults in main's namespace: a subcommand must not reset
    # `fmnist-search --debug run` to False (parents share their option objects).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors, and TensorFlow's own log lines")
    common.add_argument("--results-dir", default=argparse.SUPPRESS,
                        help="where runs live (default tuner_results/, or FMNIST_RESULTS)")
    return SharedOptions(common, _data_options(), _train_options())


def _data_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("data")
    options.add_data_dir(g)
    g.add_argument("--classes", type=options.class_list,
                   help="class subset such as 0,2,4,6,8 (renumbered 0..k-1)")
    g.add_argument("--val-fraction", type=options.split_fraction, default=0.2,
                   help="stratified validation split of the training set (default 0.2)")
    g.add_argument("--subset", type=options.fraction, default=None,
                   help="stratified fraction of the training set to use, for quick runs")
    g.add_argument("--seed", type=options.seed, default=None,
                   help="seed for splits and weights (42)")
    g.add_argument("--train-csv", help="Kaggle-style training CSV instead of the IDX train set")
    g.add_argument("--test-csv", help="Kaggle-style test CSV instead of the IDX test set")
    g.add_argument("--fashion-labels", action="store_true",
                   help="the training CSV's labels are Fashion-MNIST class ids: use its class "
                   "names (automatic when the CSV holds all ten labels)")
    return p


def _train_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("training")
    options.add_epochs(g)
    g.add_argument("--batch-size", type=options.in_domain("batch_size"),
                   help="override the protocol's batch size")
    options.add_precision(g)
    return p


def data_options(args: argparse.Namespace) -> DataOptions:
    """The data options as the library's requests take them."""
    from fmnist_search.pipeline import DataOptions

    return DataOptions(classes=args.classes, val_fraction=args.val_fraction,
                       subset=args.subset, seed=args.seed, data_dir=args.data_dir,
                       train_csv=args.train_csv, test_csv=args.test_csv,
                       fashion_labels=args.fashion_labels)


def data_settings(args: argparse.Namespace, subset: float | None = None) -> DataSettings:
    """The data options, layered over a preset's subset (command line first)."""
    return data_options(args).settings(subset)


def prepare_data(settings: DataSettings) -> Dataset:
    """``pipeline.prepare_data`` with this command's console."""
    from fmnist_search import pipeline

    return pipeline.prepare_data(settings, console)


class Parser(argparse.ArgumentParser):
    """argparse, with its errors printed like every other error: one paragraph, status 2.

    A value that starts with '-' and a digit is a value, not an option: argparse alone takes
    only plain numbers so (``-1`` but not ``--classes -1,2`` or ``--max-time -5m``, which it
    answered with "expected one argument"); the option's own check then names what is wrong.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message: str) -> NoReturn:
        match = re.fullmatch(r"argument ([^:]+): (.*)", message, re.S)
        if match:
            option, rest = match.groups()
            if rest.startswith(option):
                message = rest
            elif rest.startswith(("invalid", "expected", "ambiguous", "not allowed")):
                message = f"{option}: {rest}"
            else:  # the option types' messages continue the option's name
                message = f"{option} {rest}"
        sys.stderr.write(format_error(f"{message.rstrip('.')}. See `{self.prog} --help`.")
                         + "\n")
        raise SystemExit(2)


def format_error(message: str) -> str:
    """``error: message`` as one paragraph of at most 100 columns (fewer on a narrower
    terminal), broken only at spaces outside backquotes: paths, options and `commands` stay
    whole, so they can be copied from the terminal."""
    width = 100
    if sys.stderr.isatty():
        width = min(width, shutil.get_terminal_size().columns)
    glued = re.sub(r"`[^`]*`", lambda m: m.group().replace(" ", "\u00a0"), f"error: {message}")
    return textwrap.fill(glued, width=width, break_on_hyphens=False,
                         break_long_words=False).replace("\u00a0", " ")
