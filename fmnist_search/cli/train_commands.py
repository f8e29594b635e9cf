"""Commands around the report's models and the data: data, describe, baseline."""

from __future__ import annotations

import argparse
import json
import sys

from fmnist_search.cli import options
from fmnist_search.cli.common import SharedOptions, console, data_options, data_settings
from fmnist_search.errors import UserError


def add_data(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    p = sub.add_parser("data", parents=[shared.common, shared.data],
                       help="where the data is, checksums, images per class")
    p.add_argument("--fetch", action="store_true",
                   help="put the files in the data/ cache (found ones copied, else downloaded)")
    return p


def add_describe(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    p = sub.add_parser("describe", parents=[shared.common],
                       help="layer table of a baseline or of a space's default point")
    p.add_argument("name", help="a baseline (model1..model6) or a space name or .toml path")
    p.add_argument("--num-classes", type=options.num_classes, default=10,
                   help="output width, 2 to 10 (default 10)")
    p.add_argument("--json", action="store_true",
                   help="print the model as one JSON object (layers, totals, architecture) "
                   "instead of tables")
    return p


def add_baseline(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    p = sub.add_parser("baseline", parents=[shared.common, shared.data, shared.train],
                       help="train one of the report's models (or all) with its protocol")
    p.add_argument("model", help="model1 .. model6, or all")
    p.add_argument("--weights", help="model5: imagenet (default), none (train from scratch), "
                   "or a path to the ResNet50 no-top weights file")
    options.add_patience(p, 0, "early stopping on val_loss (0, the report's protocol: off)")
    return p


def cmd_data(args: argparse.Namespace) -> int:
    from fmnist_search import dataset, report, sources

    if args.fetch:
        cache = sources.fetch(data_dir=args.data_dir, console=console)
        console.print(f"Fashion-MNIST is in the project cache {cache} (checksums verified).")
    settings = data_settings(args)
    dataset.ensure_local_copy(settings, console)
    raw = dataset.load_raw(settings)
    ds = dataset.prepare(settings, raw)
    console.print(f"Source: {ds.source}")
    console.print("Checksums: all four files match their known SHA-256 (decompressed content)."
                  if not settings.train_csv else "Training images read from CSV.")
    counts = dataset.class_counts(raw, ds)
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

    values, title = _describe_values(args.name)
    from fmnist_search import report, training  # Keras loads only for a valid request

    model = builder.build_model(values, args.num_classes, compile=False)
    if args.json:
        trainable, frozen = training.count_params(model)
        record = {"name": args.name, "title": title, "num_classes": args.num_classes,
                  "architecture": builder.short_name(values, args.num_classes),
                  "params": trainable + frozen, "trainable_params": trainable,
                  "non_trainable_params": frozen, "layers": report.layer_records(model)}
        sys.stdout.write(json.dumps(record, default=str) + "\n")
        return 0
    console.print(report.layer_table(model, title))
    console.print(report.param_totals(*training.count_params(model)))
    console.print(f"Architecture: {builder.short_name(values, args.num_classes)}")
    return 0


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
    from fmnist_search import baselines, pipeline, report
    from fmnist_search.results import results_root

    req = pipeline.BaselineRequest(args.model, results_root(args.results_dir),
                                   data_options(args), args.epochs, args.batch_size,
                                   args.precision, args.weights, args.patience)
    finished: list[dict] = []
    for path, metrics in pipeline.baseline(req, console):
        base = baselines.load(metrics["model"])
        console.print(*report.run_tables(metrics), report.report_comparison(metrics, base.report))
        console.print(f"Run directory: {path}")
        finished.append(metrics)
    if len(finished) > 1:
        console.print(report.baselines_table(finished))
    return 0
