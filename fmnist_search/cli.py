"""Command line: arguments -> one function per command. No model or tuner code lives here."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence

from rich.console import Console

from fmnist_search.errors import UserError

# Piped output (CI logs, files) gets a wide page: the leaderboard would not fit 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


# --------------------------------------------------------------------------- shared options


def _data_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", help="folder with the four IDX .gz files (else FMNIST_DATA, "
                   "data/, Debian's package, the Keras cache)")
    g.add_argument("--classes", help="class subset such as 0,2,4,6,8 (renumbered 0..k-1)")
    g.add_argument("--val-fraction", type=float, default=0.2,
                   help="stratified validation split of the training set (default 0.2)")
    g.add_argument("--subset", type=float, default=None,
                   help="stratified fraction of the training set to use, for quick runs")
    g.add_argument("--seed", type=int, default=None, help="seed for splits and weights (42)")
    g.add_argument("--train-csv", help="Kaggle-style training CSV instead of the IDX train set")
    g.add_argument("--test-csv", help="Kaggle-style test CSV instead of the IDX test set")
    g.add_argument("--fashion-labels", action="store_true",
                   help="the training CSV's labels are Fashion-MNIST class ids: use its class "
                   "names (automatic when the CSV holds all ten labels)")
    return p


def _train_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, help="override the protocol's epochs")
    g.add_argument("--batch-size", type=int, help="override the protocol's batch size")
    g.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="auto: bf16 on CPUs with AMX/AVX512-BF16, fp16 on CUDA, else fp32")
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


def check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UserError(f"{name} {value} must be a positive whole number.")


# --------------------------------------------------------------------------- commands


def cmd_data(args: argparse.Namespace) -> int:
    import numpy as np

    from fmnist_search import data, report

    if args.fetch:
        cache = data.fetch(data_dir=args.data_dir)
        console.print(f"Fashion-MNIST is in the project cache {cache} (checksums verified).")
    settings = data_settings(args)
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
    if ds.test_note and len(ds.x_test):
        console.print(f"Test set: {len(ds.x_test):,} images, {ds.test_note}.")
    elif ds.test_note:
        console.print("No test set: a training CSV is tested on --test-csv only.")
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
    from fmnist_search import baselines, catalog, data, report, runs

    names = catalog.list_baselines() if args.model == "all" else [args.model]
    models = [baselines.load(n) for n in names]
    _check_baseline_options(args)
    if args.weights in (None, "imagenet") and any(
            b.values.get("weights") == "imagenet" for b in models):
        from fmnist_search.pretrained import resolve_weights

        resolve_weights("imagenet")  # fail before training anything, not after model4
    settings = data_settings(args)
    ds = data.prepare(settings)
    root = runs.results_root(args.results_dir) / "baselines"
    finished = []
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

    check_positive("--epochs", args.epochs)
    check_domain("--epochs", args.epochs, "epochs")
    check_positive("--batch-size", args.batch_size)
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


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    common.add_argument("--results-dir", help="where runs live (default tuner_results/, or "
                        "FMNIST_RESULTS)")
    parser = argparse.ArgumentParser(
        prog="fmnist-search", parents=[common],
        description="Search small CNNs and ResNets for Fashion-MNIST with Keras Tuner.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dopts, topts = _data_options(), _train_options()

    p = sub.add_parser("data", parents=[common, dopts],
                       help="where the data is, checksums, images per class")
    p.add_argument("--fetch", action="store_true", help="put the files in the data/ cache")

    p = sub.add_parser("describe", parents=[common],
                       help="layer table of a baseline or of a space's default point")
    p.add_argument("name", help="a baseline (model1..model6) or a space name or .toml path")
    p.add_argument("--num-classes", type=int, default=10, help="output width (default 10)")

    p = sub.add_parser("baseline", parents=[common, dopts, topts],
                       help="train one of the report's models (or all) with its protocol")
    p.add_argument("model", help="model1 .. model6, or all")
    p.add_argument("--weights", help="model5: imagenet (default), none (train from scratch), "
                   "or a path to the ResNet50 no-top weights file")
    p.add_argument("--patience", type=int, default=0,
                   help="early stopping on val_loss (0, the report's protocol: off)")

    _add_later_commands(sub, common, dopts, topts)
    return parser


def _add_later_commands(sub, common, dopts, topts) -> None:
    """Commands defined in other modules register here (keeps this file one screen each)."""
    from fmnist_search import cli_search

    cli_search.register(sub, common, dopts, topts, COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        if args.debug:
            raise
        # Paths and options stay whole (no breaks at hyphens): they are copied from here.
        sys.stderr.write(textwrap.fill(f"error: {exc}", width=100, break_on_hyphens=False,
                                       break_long_words=False) + "\n")
        return 2
    except KeyboardInterrupt:
        err_console.print("Interrupted. Everything already finished is saved.")
        return 130


if __name__ == "__main__":
    sys.exit(main())
