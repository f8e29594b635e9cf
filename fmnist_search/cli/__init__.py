"""The ``fmnist-search`` command line: one table of commands, each a parser and a handler.

The CLI parses and prints; the library computes. Options are checked by argparse before any
command imports TensorFlow, so a typo is refused at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fmnist_search.cli import analysis_commands as analysis
from fmnist_search.cli import distributed_commands as distributed
from fmnist_search.cli import export_commands as export
from fmnist_search.cli import search_commands as search
from fmnist_search.cli import train_commands as train
from fmnist_search.cli.common import (
    Parser,
    StdoutError,
    err_console,
    format_error,
    guarded_stdout,
    shared_options,
    silence_stdout,
    stdout_error_message,
)
from fmnist_search.errors import UserError


@dataclass(frozen=True)
class Command:
    add: Callable[..., argparse.ArgumentParser]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "data": Command(train.add_data, train.cmd_data),
    "describe": Command(train.add_describe, train.cmd_describe),
    "baseline": Command(train.add_baseline, train.cmd_baseline),
    "run": Command(search.add_run, search.cmd_run),
    "chief": Command(distributed.add_chief, distributed.cmd_chief),
    "worker": Command(distributed.add_worker, distributed.cmd_worker),
    "finalize": Command(search.add_finalize, search.cmd_finalize),
    "leaderboard": Command(search.add_leaderboard, search.cmd_leaderboard),
    "show": Command(search.add_show, search.cmd_show),
    "retrain": Command(search.add_retrain, search.cmd_retrain),
    "predict": Command(search.add_predict, search.cmd_predict),
    "compare": Command(search.add_compare, search.cmd_compare),
    "analyze": Command(analysis.add_analyze, analysis.cmd_analyze),
    "export": Command(export.add_export, export.cmd_export),
}


def version_text() -> str:
    """This package's version and its engines', read from the installed packages' metadata:
    nothing is imported, so it answers in a few milliseconds."""
    from importlib import metadata

    from fmnist_search import __version__

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    engines = ", ".join(f"{name} {installed(name)}"
                        for name in ("tensorflow", "keras", "keras-tuner"))
    return f"fmnist-search {__version__} ({engines})"


class VersionAction(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        sys.stdout.write(version_text() + "\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    shared = shared_options()
    parser = Parser(
        prog="fmnist-search", parents=[shared.common],
        description="Search small CNNs and ResNets for Fashion-MNIST with Keras Tuner.")
    parser.add_argument("--version", action=VersionAction,
                        help="print the version of fmnist-search and of the TensorFlow, Keras "
                        "and Keras Tuner installed, and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        command.add(sub, shared)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``fmnist-search`` command. ``argv`` None means this process is that command and
    owns its stderr, so TensorFlow's native log lines are filtered out (unless ``--debug``).

    Standard output closed early (``| head``) ends the command quietly with status 141, as
    a tool killed by SIGPIPE; a full device (``> /dev/full``) is one error, status 2."""
    import os

    from fmnist_search import backend

    backend.share_gpu_memory(os.environ)  # before any command starts TensorFlow
    try:
        with guarded_stdout():
            return _run(argv)
    except StdoutError as exc:
        silence_stdout()
        if exc.closed_pipe:
            return 141
        sys.stderr.write(format_error(stdout_error_message(exc)) + "\n")
        return 2


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    own_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv, argparse.Namespace(debug=False, results_dir=None))
    except SystemExit as exc:  # --help, --version (0) or a bad option, already printed (2)
        return exc.code if isinstance(exc.code, int) else 2
    args.argv = argv  # what a run records as its command
    if own_process and not args.debug:
        from fmnist_search import native_logs

        native_logs.hide()
    try:
        return COMMANDS[args.command].run(args)
    except UserError as exc:
        if args.debug:
            raise
        sys.stderr.write(format_error(str(exc)) + "\n")
        return 2
    except KeyboardInterrupt:
        err_console.print("Interrupted. Everything already finished is saved.")
        return 130


if __name__ == "__main__":
    sys.exit(main())
