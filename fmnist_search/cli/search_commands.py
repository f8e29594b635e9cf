"""Commands for searches and what they found: run, finalize, leaderboard, show, retrain,
predict, compare. Each parses, loads records through the library, and prints what it hands back."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from fmnist_search import results
from fmnist_search.cli import options
from fmnist_search.cli.common import (
    SharedOptions,
    check_one_stdout,
    console,
    data_options,
    ensure_writable_output,
    err_console,
    is_stdout,
    text_output,
)
from fmnist_search.errors import UserError
from fmnist_search.presets import MULTI_FIDELITY
from fmnist_search.tuning.network import HEARTBEAT_TIMEOUT


def cmd_run(args: argparse.Namespace, chief: bool = False) -> int:
    """A search in this process, or (``--workers N``, or the ``chief`` command) a chief that
    serves the oracle to worker processes; everything else is the same."""
    from fmnist_search import pipeline, report, results

    root = results.results_root(args.results_dir)
    spec = pipeline.SearchSpec(
        space=args.space, search=args.search, project=args.project, root=root,
        data=data_options(args), tuner=args.tuner, trials=args.trials, epochs=args.epochs,
        factor=args.factor, patience=args.patience, precision=args.precision,
        batch_size=args.batch_size, max_params=args.max_params,
        max_seconds_per_epoch=args.max_seconds_per_epoch, objectives=args.objectives,
        max_time=args.max_time,
        overwrite=args.overwrite, finalize=not args.no_finalize, debug=args.debug,
        command=" ".join(["fmnist-search", *map(shlex.quote, args.argv)]))
    parallel = (pipeline.ParallelSpec(bind=args.bind, port=args.port) if chief else
                pipeline.ParallelSpec(args.workers, args.workers_per_gpu))
    checked = pipeline.preflight_search(spec, parallel)
    for warning in checked.warnings:
        err_console.print(f"warning: {warning}", highlight=False, soft_wrap=True)
    plan = pipeline.plan_search(spec, console, checked)
    from fmnist_search import tuning  # loaded by the plan already (its data is known good)

    project, preset, ds = plan.project, plan.preset, plan.data
    goals = (f", objectives {', '.join(preset.objectives)}"
             if len(preset.objectives) > 1 else "")
    console.print(f"Project [bold]{project}[/] in {root}: space {plan.space.name}, "
                  f"{preset.tuner} tuner{goals}, {preset.trials} trials, {preset.epochs} epochs "
                  f"max, {len(ds.y_train):,} train / {len(ds.y_val):,} val images")
    signals = tuning.StopSignals()
    runner = _distributed_runner(args, chief, checked.workers)
    try:
        outcome = pipeline.search(plan, console, signals, runner)
    except KeyboardInterrupt as exc:
        done = tuning.finished_count(root / project)
        why = f"Stopped by {exc.args[0]}" if isinstance(exc, tuning.Stopped) else "Stopped"
        console.print(f"\n{why}. {done} finished trial(s) are saved in {root / project}. "
                      "Rerun the same command to resume (the interrupted trial runs again).")
        return exc.exit_status if isinstance(exc, tuning.Stopped) else 130
    if outcome.did_nothing:
        console.print(f"Project {project} already has {outcome.before}/{outcome.requested} "
                      "finished trials: nothing to do. Use a larger --trials to run more, or "
                      "--overwrite to start afresh.")
    else:
        ran = outcome.after - outcome.before
        note = " (stopped by --max-time)" if outcome.stopped_for_time else ""
        if outcome.exhausted:
            note = (f" (the {preset.tuner} tuner had nothing more to propose: Hyperband runs a "
                    "fixed set of brackets; raise --epochs or use another tuner for more)"
                    if preset.tuner in MULTI_FIDELITY
                    else " (the tuner had nothing more to propose)")
        console.print(f"Ran {ran} trial(s){note}; project {project} has {outcome.after}/"
                      f"{outcome.requested} finished.")
    from fmnist_search import pareto

    rows = results.sort_rows(pareto.mark(root, results.collect(
        root, [project], baselines=False, include_failed=True)))
    varying = results.varying(rows)
    records = report.leaderboard_records(rows[: args.top] if args.top else rows, varying)
    console.print(report.leaderboard_table(records, varying, f"Top trials of {project}"))
    if len(preset.objectives) > 1:
        front = pareto.front_rows(root, project)
        console.print(f"Pareto front of {project} ({', '.join(preset.objectives)}): "
                      f"{len(front)} non-dominated model(s); `fmnist-search leaderboard "
                      f"{project} --front` lists them, `fmnist-search compare {project}` "
                      "draws them beside the report's models.")
    status = 0
    if plan.finalizes:
        console.print(f"[bold]Finalize[/]: the top {preset.finalize_top} configuration(s), "
                      f"{preset.final_epoch_count} epochs on the whole training split")
        try:
            status = _finalize(root, project, args, deadline=outcome.deadline,
                               rerun="rerun the same command")
        finally:
            outcome.finish()
    elif outcome.after:
        from fmnist_search import finalize

        console.print(finalize.next_step(root, project), highlight=False)
    outcome.finish()
    return status


def _distributed_runner(args: argparse.Namespace, chief: bool, workers: int):
    """``workers``: the local workers to start, as ``pipeline.preflight_search`` counted them."""
    if not chief and workers <= 1:
        return None
    import os

    from fmnist_search import backend
    from fmnist_search.tuning import supervisor

    # The chief builds one model to learn the space: on a GPU it must not take the memory the
    # workers need (read when the backend starts; main() sets memory growth for every command).
    backend.share_gpu_memory(os.environ, shared=True)
    extra = (["--debug"] if args.debug else []) + (
        ["--data-dir", args.data_dir] if args.data_dir else [])
    listen = {"bind": args.bind, "port": args.port} if chief else {}  # else the loopback's
    opts = supervisor.DistributedOptions(
        workers=0 if chief else workers, workers_per_gpu=args.workers_per_gpu,
        heartbeat_timeout=args.heartbeat_timeout, worker_extra=extra, **listen)
    return supervisor.chief_runner(opts, console)


def _finalize(root: Path, project: str, args: argparse.Namespace, top: int | None = None,
              epochs: int | None = None, deadline: float | None = None,
              rerun: str | None = None) -> int:
    """Finalize, stopped by Ctrl-C or SIGTERM as a search is (``tuning.signals``): exit status
    130 or 143 and one line saying what is saved and how to resume (``rerun``)."""
    from fmnist_search import pipeline, report, store
    from fmnist_search.tuning.signals import Stopped, StopSignals

    req = pipeline.FinalizeRequest(root, project, top, epochs,
                                   precision=getattr(args, "precision", None),
                                   data_dir=getattr(args, "data_dir", None),
                                   test_csv=getattr(args, "test_csv", None),
                                   deadline=deadline,
                                   ensemble_size=getattr(args, "ensemble_size", None))
    signals = StopSignals()
    try:
        with signals.installed():
            record = pipeline.finalize(req, console)
            signals.check()  # a stop that landed where Python could not raise it
    except KeyboardInterrupt as exc:
        why = f"Stopped by {exc.args[0]}" if isinstance(exc, Stopped) else "Stopped"
        console.print(f"\n{why}. Every model finalize finished is saved (its run folder, and "
                      f"{store.final_dir(root, project) / store.FINAL_JSON}); "
                      f"{rerun or f'rerun `fmnist-search finalize {project}`'} to resume: "
                      "finished models are reused, the interrupted one goes on from its last "
                      "finished epoch.", highlight=False)
        return exc.exit_status if isinstance(exc, Stopped) else 130
    console.print(report.final_table(record))
    return 0


def cmd_finalize(args: argparse.Namespace) -> int:
    from fmnist_search import results

    return _finalize(results.results_root(args.results_dir), args.project, args, args.configs,
                     args.epochs)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from fmnist_search import report, results
    from fmnist_search.preflight import writing

    check_one_stdout("fmnist-search leaderboard", **{"--csv -": is_stdout(args.csv),
                                                     "--json": args.json})
    ensure_writable_output(args.csv, "--csv")
    root = results.results_root(args.results_dir)
    rows = results.collect(root, args.projects or None, baselines=args.baselines,
                           include_failed=args.all)
    if not rows:
        raise UserError(f"Nothing to show in {root}: run `fmnist-search run` or "
                        "`fmnist-search baseline` first.")
    from fmnist_search import pareto

    rows = pareto.mark(root, rows, front_only=args.front)  # each trial's rank on its front
    if args.front and not rows:
        raise UserError(f"No finished trial in {root} to make a front of: run `fmnist-search "
                        "run` first.")
    finals = [] if args.front else results.final_rows(root, args.projects or None)
    rows = results.sort_rows(rows, args.sort)
    varying = results.varying(rows)
    records = report.leaderboard_records(rows[: args.top] if args.top else rows, varying)
    records = report.leaderboard_records(finals, varying) + records if finals else records
    if args.csv:
        import pandas as pd

        with writing(args.csv, "--csv"):
            pd.DataFrame(records).to_csv(text_output(args.csv), index=False)
        if is_stdout(args.csv):
            return 0
        console.print(f"Wrote {len(records)} rows to {args.csv}")
    if args.json:
        for record in records:
            sys.stdout.write(json.dumps(record, default=str) + "\n")
        return 0
    for project, final in [] if args.front else results.final_records(root,
                                                                        args.projects or None):
        console.print(report.final_table(final, f"Final models of {project}"))
    screening = [r for r in records if r["stage"] != "final"]
    title = "Leaderboard (screening trials)" if finals else "Leaderboard"
    if args.front:
        title = "Pareto front of each project (its objectives; one objective: val_accuracy " \
                "against params)"
    console.print(report.leaderboard_table(screening, varying, title))
    from rich.markup import escape

    for note in report.damaged_notes(screening):
        console.print(f"[red]damaged[/]: {escape(note)}")
    return 0


PROPOSALS = {"model": "the model (best good/bad density ratio of its candidates)",
             "random": "a uniform random draw", "default": "the space's default point",
             "promoted": "Hyperband's promotion of an earlier trial, trained on"}


def _number(value, spec: str) -> str:
    """A trial's number as ``spec`` formats it, or - when its record does not have it."""
    return "-" if value is None else format(value, spec)


def cmd_show(args: argparse.Namespace) -> int:
    from fmnist_search import report, results, store

    root = results.results_root(args.results_dir)
    run = results.load_project(root, args.project)
    row = results.find_trial(root, args.project, args.trial)
    results.require_record(row, args.project)
    from fmnist_search import builder, training  # loads TensorFlow: once the trial is found
    num_classes = len(run["data"]["classes"])
    if args.json:
        model = builder.build_model(row["values"], num_classes, compile=False)
        trainable, frozen = training.count_params(model)
        record = {"project": args.project, "trial": row["trial"],
                  **{k: row.get(k) for k in ("status", "architecture", "val_accuracy",
                                             "val_loss", "params", "seconds_per_epoch",
                                             "epochs", "proposal")},
                  "values": row["values"], "layers": report.layer_records(model),
                  "trainable_params": trainable, "non_trainable_params": frozen,
                  "history": results.trial_history(row), "path": str(row["path"]),
                  "files": sorted(p.name for p in Path(row["path"]).iterdir())}
        sys.stdout.write(json.dumps(record, default=str) + "\n")
        return 0
    console.print(f"[bold]{args.project} trial {row['trial']}[/]: {row['architecture']}")
    console.print(f"val accuracy {_number(row['val_accuracy'], '.4f')}, val loss "
                  f"{_number(row['val_loss'], '.4f')}, {_number(row['params'], ',')} params, "
                  f"{_number(row['seconds_per_epoch'], '.1f')} s/epoch")
    rebuilt = (store.read_trial_record(Path(row["path"])) or {}).get("rebuilt")
    if rebuilt:  # a record lost and rebuilt on resume: its numbers are what Keras Tuner kept
        console.print(f"Its {store.RECORD_JSON} was rebuilt {rebuilt} (- marks what was "
                      "lost; the layers below count the parameters).", highlight=False)
    if row.get("proposal"):
        tuner = "MO-TPE" if run.get("preset", {}).get("tuner") == "motpe" else "BOHB"
        console.print(f"proposed by {tuner}: "
                      f"{PROPOSALS.get(row['proposal'], row['proposal'])}")
    if row.get("ms_per_image") is not None:
        console.print(f"inference {row['ms_per_image']:.3f} ms an image, saved model "
                      f"{row['model_bytes']:,} bytes")
    console.print(report.values_table(row["values"]))
    model = builder.build_model(row["values"], num_classes, compile=False)
    console.print(report.layer_table(model, "Layers"))
    console.print(report.param_totals(*training.count_params(model)))
    console.print(report.history_table(results.trial_history(row)))
    files = sorted(p.name for p in Path(row["path"]).iterdir())
    console.print(f"Files: {row['path']} ({', '.join(files)})")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from fmnist_search import pipeline, report, results

    req = pipeline.RetrainRequest(args.project, args.trial, results.results_root(
        args.results_dir), args.epochs, args.precision, args.data_dir, args.test_csv)
    path, metrics, row = pipeline.retrain(req, console)
    console.print(*report.run_tables(metrics))
    searched = f"{row['val_accuracy']:.4f}" if row["val_accuracy"] is not None else "-"
    test = metrics["test_accuracy"]
    console.print(f"Search said val accuracy {searched} (on its data subset); retrained: val "
                  f"{metrics['val_accuracy']:.4f}, test "
                  f"{f'{test:.4f}' if test is not None else metrics.get('test_note') or '-'}")
    console.print(f"Run directory: {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from fmnist_search import predict, results

    ensure_writable_output(args.out, "--out")
    root = results.results_root(args.results_dir)
    run_dir = results.find_run(root, args.model)
    columns = predict.Columns(args.id_column or "id", args.label_column or "label",
                              id_named=args.id_column is not None,
                              label_named=args.label_column is not None)
    pred = predict.predict_run(run_dir, args.input, columns, args.data_dir)
    for warning in pred.warnings:
        err_console.print(f"warning: {warning}", highlight=False)
    predict.write_csv(pred, text_output(args.out), columns.id, columns.label)
    acc = pred.accuracy()
    note = f"; accuracy against the file's labels {acc:.4f}" if acc is not None else ""
    where = "standard output" if is_stdout(args.out) else args.out
    (err_console if is_stdout(args.out) else console).print(
        f"Wrote {len(pred.labels):,} predictions from {run_dir} to {where}{note}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from fmnist_search import plots, results
    from fmnist_search.preflight import writing

    check_one_stdout("fmnist-search compare", **{"--out -": is_stdout(args.out),
                                                 "--csv -": is_stdout(args.csv),
                                                 "--json": args.json})
    csv = args.csv
    if csv is None and not is_stdout(args.out):  # beside the figure, as before --csv
        csv = args.out.with_suffix(".csv")
    ensure_writable_output(args.out, "--out")
    ensure_writable_output(csv, "--csv" if args.csv else "--out")
    if not is_stdout(args.out):
        plots.check_format(args.out, "--out")
    root = results.results_root(args.results_dir)
    rows = results.collect(root, args.projects or None, baselines=True)
    rows += [r for r in results.final_rows(root, args.projects or None) if r["stage"] == "final"]
    if not rows:
        raise UserError(f"Nothing to compare in {root}: run a search or a baseline first.")
    from fmnist_search import pareto

    rows = pareto.mark(root, rows)  # the fronts of the projects that searched several
    fronts = pareto.searched_fronts(root, rows)
    with writing(args.out, "--out"):
        if is_stdout(args.out):  # a PNG, as binary
            sys.stdout.flush()
            plots.compare(rows, sys.stdout.buffer, format="png", fronts=fronts)
        else:
            plots.compare(rows, args.out, fronts=fronts)
    table = results.compare_table(rows)
    if csv is not None:
        with writing(csv, "--csv" if args.csv else "--out"):
            table.to_csv(text_output(csv), index=False)
    if args.json:
        for record in table.to_dict("records"):
            sys.stdout.write(json.dumps(record, default=str) + "\n")
    elif not (is_stdout(args.out) or is_stdout(csv)):
        console.print(f"Wrote {args.out}{f' and {csv}' if csv else ''} ({len(table)} points: "
                      f"{int((table['kind'] == 'baseline').sum())} baselines, "
                      f"{int((table['stage'] == 'final').sum())} finalized)")
    return 0


def add_run(sub, shared: SharedOptions, name: str = "run",
            help: str = "a Keras Tuner search over a space (resumable)"
            ) -> argparse.ArgumentParser:
    p = sub.add_parser(name, parents=[shared.common, shared.data, shared.train], help=help)
    p.add_argument("--space", default="cnn", help="a named space (cnn, resnet) or a .toml path")
    p.add_argument("--search", default="standard",
                   help="search preset: quick, standard, report, best, pareto, or a .toml path")
    p.add_argument("--trials", type=options.trial_count,
                   help="total trials in the project (resume adds more)")
    p.add_argument("--tuner", choices=options.TUNERS,
                   help="the search algorithm (default: the preset's tuner)")
    p.add_argument("--factor", type=options.hyperband_factor,
                   help="Hyperband's reduction factor (2 or more)")
    p.add_argument("--objectives", type=options.objective_list, metavar="NAME:DIR,...",
                   help="two or three objectives to search a front of (tuner motpe or random), "
                   "e.g. val_accuracy:max,params:min; from val_accuracy:max, val_loss:min, "
                   "params:min, seconds_per_epoch:min, ms_per_image:min, model_bytes:min "
                   "(default: the preset's, else val_accuracy:max alone)")
    options.add_patience(p, None, "early stopping on val_loss after N epochs without progress "
                         "(0: off)")
    p.add_argument("--max-time", type=options.duration,
                   help="stop starting trials after this long: 90s, 45m, 2h")
    p.add_argument("--project", help="project name (default SPACE-TUNER)")
    p.add_argument("--overwrite", action="store_true", help="discard the project and start afresh")
    p.add_argument("--top", type=options.rows, default=10,
                   help="rows of the leaderboard printed at the end (0: all)")
    p.add_argument("--max-params", type=options.max_params,
                   help="reject a configuration with more parameters before it trains")
    p.add_argument("--max-seconds-per-epoch", type=options.max_seconds_per_epoch,
                   help="reject a configuration whose epoch (estimated from a few timed steps) "
                   "takes longer")
    p.add_argument("--no-finalize", action="store_true",
                   help="skip the preset's final stage (and its share of --max-time)")
    g = p.add_argument_group("parallel trials (Keras Tuner's chief/worker mode)")
    if name == "run":
        g.add_argument("--workers", type=options.workers, default=1,
                       help="trials trained at once, each in its own worker process (default 1: "
                       "in this process; on a CPU the cores are divided between workers)")
    g.add_argument("--workers-per-gpu", type=options.workers_per_gpu, default=1,
                   help="workers sharing one GPU (small models leave a large GPU mostly idle)")
    g.add_argument("--heartbeat-timeout", type=options.wait_seconds, default=HEARTBEAT_TIMEOUT,
                   help="seconds without a heartbeat after which a worker's trial is handed to "
                   f"another worker (default {HEARTBEAT_TIMEOUT:g})")
    return p


def add_finalize(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    p = sub.add_parser("finalize", parents=[shared.common],
                       help="train a search's top configurations with the final protocol on "
                       "the whole training split, and test them (resumable)")
    p.add_argument("project", help="the searched project")
    p.add_argument("--configs", type=options.final_count, metavar="N",
                   help="configurations to finalize, best first (default: the preset's "
                   "finalize_top, else 3)")
    options.add_renamed(p, "--top", "--configs", type=options.final_count)
    p.add_argument("--ensemble-size", type=options.ensemble_size, metavar="N",
                   help="greedy rounds of the ensemble of the final models (default: the "
                   "preset's ensemble_size, else 5; 0: no ensemble)")
    _add_training_run_options(p, "default: the preset's final_epochs, else its epochs",
                              "project's test CSV, else the official test set)")
    return p


def _add_training_run_options(p, epochs_help: str, test_csv_default: str) -> None:
    """What retrain and finalize share: they train a project's configurations again."""
    options.add_epochs(p, epochs_help)
    options.add_precision(p, None, "default: the search's")
    options.add_data_dir(p, "folder with the IDX files")
    p.add_argument("--test-csv", help="evaluate on this Kaggle-style CSV (default: the "
                   + test_csv_default)


def add_leaderboard(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    p = sub.add_parser("leaderboard", parents=[shared.common],
                       help="trials of all (or the named) projects, with the baselines beside")
    p.add_argument("projects", nargs="*", metavar="PROJECT", help="project names (default: all)")
    p.add_argument("--top", type=options.rows, default=20,
                   help="rows to show (0: all)")
    p.add_argument("--sort", default="val_accuracy", choices=results.SORTABLE,
                   help="column to sort by")
    p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                   help="show the baseline runs too (default on)")
    p.add_argument("--all", action="store_true", help="include failed and interrupted trials")
    p.add_argument("--front", action="store_true",
                   help="only each project's Pareto front: the trials no other trial of the "
                   "project beats on every objective (a project of one objective: "
                   "val_accuracy against params); no baselines or final models")
    p.add_argument("--csv", type=Path, metavar="FILE",
                   help="also write the rows to this CSV file (-: to standard output, "
                   "instead of the table)")
    p.add_argument("--json", action="store_true", help="print one JSON object per row instead")
    return p


def add_show(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    p = sub.add_parser("show", parents=[shared.common],
                       help="one trial: values, layers, history, files")
    p.add_argument("project", help="the searched project")
    p.add_argument("--trial", default="best", help="trial id or best (default)")
    p.add_argument("--json", action="store_true",
                   help="print the trial as one JSON object instead of tables")
    p.add_argument("trial", nargs="?", action=options.Deprecated, instead="--trial ID",
                   metavar="TRIAL")
    return p


def add_retrain(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    p = sub.add_parser("retrain", parents=[shared.common],
                       help="train a trial's configuration on the whole training split")
    p.add_argument("project", help="the searched project")
    p.add_argument("--trial", default="best", help="trial id or best (default)")
    _add_training_run_options(p, "default: the search's epochs per trial",
                              "project's test CSV; a CSV project without one has no test set)")
    return p


def add_predict(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", parents=[shared.common],
                       help="predictions of a trained run as an id,label CSV")
    p.add_argument("model", help="a run directory, a baseline name, or PROJECT-TRIAL (retrained)")
    p.add_argument("--input", help="Kaggle-style CSV (default: the official test set)")
    p.add_argument("--out", type=Path, default=Path("submission.csv"), metavar="FILE",
                   help="the id,label CSV to write (default submission.csv; -: standard "
                   "output)")
    p.add_argument("--id-column", help="column of ids in --input and in the output (default "
                   "id; named, it must exist)")
    p.add_argument("--label-column", help="column of labels (default label; named, it must "
                   "exist in --input)")
    options.add_data_dir(p, "folder with the IDX files (when no --input)")
    return p


def add_compare(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    p = sub.add_parser("compare", parents=[shared.common],
                       help="accuracy vs params and vs s/epoch for trials and baselines")
    p.add_argument("projects", nargs="*", metavar="PROJECT",
                   help="project names (default: all)")
    p.add_argument("--out", type=Path, default=Path("compare.png"), metavar="FILE",
                   help="the figure; its suffix picks the format (default compare.png; -: a PNG "
                   "to standard output)")
    p.add_argument("--csv", type=Path, metavar="FILE",
                   help="the points as CSV (default: beside --out, with the suffix .csv; -: "
                   "standard output)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per point instead of the summary line")
    return p
