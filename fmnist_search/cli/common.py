"""What every command shares: the consoles, the error format, the shared options (each
defined once), and the data settings built from them."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console

from fmnist_search.cli import options

if TYPE_CHECKING:
    from fmnist_search.dataset import Dataset, DataSettings
    from fmnist_search.pipeline import DataOptions

# Piped output (CI logs, files) gets a wide page: the leaderboard would not fit 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


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
