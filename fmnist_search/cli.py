"""Command line: arguments -> one function per command. No model or tuner code lives here."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console

from fmnist_search import options
from fmnist_search.errors import UserError

if TYPE_CHECKING:
    from fmnist_search.data import Dataset, DataSettings

# Piped output (CI logs, files) gets a wide page: the leaderboard would not fit 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


# --------------------------------------------------------------------------- shared options


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
    g.add_argument("--batch-size", type=options.positive_int,
                   help="override the protocol's batch size")
    options.add_precision(g)
    return p


def data_settings(args: argparse.Namespace, subset: float | None = None):
    from fmnist_search.checks import check_seed
    from fmnist_search.data import DataSettings, parse_classes

    check_seed(args.seed)
    return DataSettings(
        classes=parse_classes(args.classes),
        val_fraction=args.val_fraction,
        subset=args.subset if args.subset is not None else (subset or 1.0),
        seed=args.seed if args.seed is not None else 42,
        data_dir=args.data_dir,
        train_csv=args.train_csv,
        test_csv=args.test_csv,
        fashion_labels=args.fashion_labels,
    )


def prepare_data(settings: DataSettings) -> Dataset:
    """The training commands' data: when no copy is found anywhere, the official files are
    downloaded into the project cache first (offline, the one message saying what to do)."""
    from fmnist_search import data

    data.ensure_local_copy(settings, console)
    return data.prepare(settings)


# --------------------------------------------------------------------------- commands


def cmd_data(args: argparse.Namespace) -> int:
    import numpy as np

    from fmnist_search import data, report

    if args.fetch:
        cache = data.fetch(data_dir=args.data_dir, console=console)
        console.print(f"Fashion-MNIST is in the project cache {cache} (checksums verified).")
    settings = data_settings(args)
    data.ensure_local_copy(settings, console)
    raw = data.load_raw(settings)
    ds = data.prepare(settings, raw)
    console.print(f"Source: {ds.source}")
    console.print("Checksums: all four files match their known SHA-256 (decompressed content)."
                  if not settings.train_csv else "Training images read from CSV.")
    k = ds.num_classes
    counts = {
        "train (before split)": np.bincount(data.select_classes(raw.x_train, raw.y_train,
                                                                ds.classes)[1], minlength=k).tolist(),
        "train": np.bincount(ds.y_train, minlength=k).tolist(),
        "validation": np.bincount(ds.y_val, minlength=k).tolist(),
    }
    if ds.y_test is not None:
        counts["test"] = np.bincount(ds.y_test, minlength=k).tolist()
    console.print(report.data_table(counts, ds.class_names, ds.classes))
    if ds.test_note:
        console.print(f"Test set: {ds.test_note}" + (f" ({len(ds.x_test):,} images)"
                                                     if len(ds.x_test) else "") + ".")
    console.print(f"Split: {settings.val_fraction:.0%} stratified validation, seed "
                  f"{settings.seed}, subset {settings.subset:g}.")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from fmnist_search import builder

    _check_num_classes(args.num_classes)
    values, title = _describe_values(args.name)
    from fmnist_search import report, training  # Keras loads only for a valid request

    model = builder.build_model(values, args.num_classes, compile=False)
    console.print(report.layer_table(model, title))
    console.print(report.param_totals(*training.count_params(model)))
    console.print(f"Architecture: {builder.short_name(values, args.num_classes)}")
    return 0


def _check_num_classes(num_classes: int) -> None:
    from fmnist_search.checks import check_range
    from fmnist_search.data import CLASS_NAMES

    check_range("--num-classes", num_classes, 2, len(CLASS_NAMES),
                " (a classifier of Fashion-MNIST's images has 2 to 10 classes)")


def _describe_values(name: str) -> tuple[dict, str]:
    """A baseline's values, or a space's default point; an unknown name lists both kinds."""
    from fmnist_search import baselines, catalog, space

    if name in catalog.list_baselines():
        base = baselines.load(name)
        values = dict(base.values)
        if values.get("weights") == "imagenet":
            values["weights"] = "none"  # same shapes and counts, no download
        return values, f"{base.name}: {base.title}"
    if not catalog.is_path(name) and name not in catalog.list_spaces():
        raise UserError(
            f"describe {name!r}: not a baseline ({', '.join(catalog.list_baselines())}), not a "
            f"space ({', '.join(catalog.list_spaces())}) and not a path to a .toml file."
        )
    sp = space.load_named(name, option="describe")
    return sp.default_values(), f"space {sp.name}: default point"


def cmd_baseline(args: argparse.Namespace) -> int:
    from fmnist_search import baselines, catalog, preflight, report
    from fmnist_search.pretrained import resolve_weights
    from fmnist_search.results import results_root

    names = catalog.list_baselines() if args.model == "all" else [args.model]
    models = [baselines.load(n) for n in names]
    _check_baseline_options(args)
    if args.weights not in (None, "none", "imagenet"):
        resolve_weights("imagenet", args.weights)  # the file must exist
    elif args.weights in (None, "imagenet") and any(
            b.values.get("weights") == "imagenet" for b in models):
        resolve_weights("imagenet")  # fail before training anything, not after model4
    root = results_root(args.results_dir) / "baselines"
    for base in models:  # before the data and the training, not after them
        preflight.ensure_writable_results(root / base.name)
    settings = data_settings(args)
    ds = prepare_data(settings)
    from fmnist_search import runs  # loads TensorFlow: only once the options are known good

    finished: list[dict] = []
    for base in models:
        values = dict(base.values)
        if args.batch_size:
            values["batch_size"] = args.batch_size
        if args.weights == "none":
            values["weights"] = "none"
        spec = runs.RunSpec(
            kind="baseline", name=base.name, values=values,
            epochs=args.epochs or int(values["epochs"]), seed=settings.seed,
            precision=args.precision,
            weights_path=args.weights if args.weights not in (None, "none", "imagenet") else None,
            source={"baseline": base.name, "file": str(base.path)},
            patience=args.patience or None,
        )
        path, metrics = runs.train_run(spec, ds, root / base.name, console)
        console.print(*report.run_tables(metrics), report.report_comparison(metrics, base.report))
        console.print(f"Run directory: {path}")
        finished.append(metrics)
    if len(finished) > 1:
        console.print(report.baselines_table(finished))
    return 0


def _check_baseline_options(args: argparse.Namespace) -> None:
    from fmnist_search.checks import check_at_least, check_domain
    from fmnist_search.pretrained import check_weights_file

    check_domain("--epochs", args.epochs, "epochs")
    check_domain("--batch-size", args.batch_size, "batch_size")
    check_at_least("--patience", args.patience, 0, " (0 turns early stopping off)")
    if args.weights not in (None, "none", "imagenet"):
        check_weights_file(args.weights)


# --------------------------------------------------------------------------- parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "data": cmd_data,
    "describe": cmd_describe,
    "baseline": cmd_baseline,
}


class Parser(argparse.ArgumentParser):
    """argparse, with its errors printed like every other error: one paragraph, status 2."""

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


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS, with the defaults in main's namespace: a subcommand must not reset
    # `fmnist-search --debug run` to False (parents share their option objects).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors, and TensorFlow's own log lines")
    common.add_argument("--results-dir", default=argparse.SUPPRESS,
                        help="where runs live (default tuner_results/, or FMNIST_RESULTS)")
    parser = Parser(
        prog="fmnist-search", parents=[common],
        description="Search small CNNs and ResNets for Fashion-MNIST with Keras Tuner.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dopts, topts = _data_options(), _train_options()

    p = sub.add_parser("data", parents=[common, dopts],
                       help="where the data is, checksums, images per class")
    p.add_argument("--fetch", action="store_true",
                   help="put the files in the data/ cache (found ones copied, else downloaded)")

    p = sub.add_parser("describe", parents=[common],
                       help="layer table of a baseline or of a space's default point")
    p.add_argument("name", help="a baseline (model1..model6) or a space name or .toml path")
    p.add_argument("--num-classes", type=options.positive_int, default=10,
                   help="output width (default 10)")

    p = sub.add_parser("baseline", parents=[common, dopts, topts],
                       help="train one of the report's models (or all) with its protocol")
    p.add_argument("model", help="model1 .. model6, or all")
    p.add_argument("--weights", help="model5: imagenet (default), none (train from scratch), "
                   "or a path to the ResNet50 no-top weights file")
    options.add_patience(p, 0, "early stopping on val_loss (0, the report's protocol: off)")

    _add_later_commands(sub, common, dopts, topts)
    return parser


def _add_later_commands(sub, common, dopts, topts) -> None:
    """Commands defined in other modules register here (keeps this file one screen each)."""
    from fmnist_search import cli_search

    cli_search.register(sub, common, dopts, topts, COMMANDS)


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


def main(argv: Sequence[str] | None = None) -> int:
    """The ``fmnist-search`` command. ``argv`` None means this process is that command and
    owns its stderr, so TensorFlow's native log lines are filtered out (unless ``--debug``)."""
    parser = build_parser()
    own_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv, argparse.Namespace(debug=False, results_dir=None))
    except SystemExit as exc:  # --help (0) or a bad option, already printed (2)
        return exc.code if isinstance(exc.code, int) else 2
    args.argv = argv  # what a run records as its command
    if own_process and not args.debug:
        from fmnist_search import native_logs

        native_logs.hide()
    try:
        return COMMANDS[args.command](args)
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
