"""``analyze``: which hyperparameters mattered, how the search progressed, and the objective
against the most important ones. Read-only on the project (no lock, nothing written under the
results directory); the figures and CSVs go to ``--out-dir``, an HParams experiment for
TensorBoard to ``--tensorboard``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fmnist_search.cli import options
from fmnist_search.cli.common import (
    SharedOptions,
    check_one_stdout,
    console,
    ensure_writable_output,
    is_stdout,
    text_output,
)

SMALL = 0.01  # importance shares below this are counted, not listed, in the terminal


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output place writable before anything is computed."""
    from fmnist_search import hparams, preflight

    ensure_writable_output(args.csv, "--csv")
    for project in args.projects:
        if args.figures:
            preflight.ensure_writable_dir(args.out_dir / project, "--out-dir",
                                          "Give --out-dir a writable folder.")
        if args.tensorboard:
            preflight.ensure_writable_dir(args.tensorboard / project, "--tensorboard",
                                          "Give --tensorboard a writable folder.")
    if args.tensorboard:
        hparams.require()


def _write_files(found, root: Path, folder: Path) -> list[str]:
    """The figures (none drawn empty), the accuracy-vs-cost figure and the tables as CSV."""
    from fmnist_search import analysis, plots, results
    from fmnist_search.preflight import writing

    written = []
    with writing(folder, "--out-dir"):
        folder.mkdir(parents=True, exist_ok=True)
        for stem, fig in analysis.figures(found).items():
            fig.savefig(folder / f"{stem}.png", dpi=110)
            written.append(f"{stem}.png")
        rows = results.collect(root, [found.project], baselines=True)
        if any(r["kind"] == "trial" for r in rows):  # the accuracy-vs-cost figure, as compare's
            plots.compare(rows, folder / "pareto.png", f"{found.project}: accuracy vs cost")
            written.append("pareto.png")
        tables = {"importance": found.importance.table if found.importance.resamples else None,
                  "history": found.history, "slices": found.slices}
        for stem, frame in tables.items():
            if frame is not None and len(frame):
                frame.to_csv(folder / f"{stem}.csv", index=False)
                written.append(f"{stem}.csv")
    return written


def _print(found, args: argparse.Namespace, written: list[str], exported: int | None) -> None:
    from fmnist_search import analysis, report

    project, imp = found.project, found.importance
    console.print(f"[bold]{project}[/]: {len(found.trials)} trials, {found.n_trials} finished "
                  "configurations (a continued Hyperband configuration counts once, at its "
                  "highest budget)")
    from rich.markup import escape

    for lost in found.damaged():
        console.print(f"[red]damaged[/]: trial {lost['trial']} of {project}: "
                      f"{escape(lost['reason'])}.")
    if imp.message:
        follows = "the history and slices follow" if len(found.history) else \
            "nothing has finished to show yet"
        console.print(f"{project}: {imp.message}; {follows}.", highlight=False)
    else:
        table = imp.table
        shown = table[(table["importance"] >= SMALL) | (table["rank"] <= args.slices)]
        console.print(report.importance_table(shown, found.n_trials, imp.resamples))
        if len(shown) < len(table):
            console.print(f"... and {len(table) - len(shown)} more below {SMALL} (all of them: "
                          f"--csv, --json, {args.out_dir / project}/importance.csv)",
                          highlight=False)
    if imp.fixed:
        console.print("The same in every trial that has it (no importance of its own): "
                      f"{', '.join(imp.fixed)}",
                      highlight=False)
    if len(found.history):
        console.print(report.search_history_table(found.history, found.baselines,
                                                  f"{project}: trials that raised the best so "
                                                  "far"))
        order = "most important first" if found.slices_by == "importance" else \
            "no ranking yet: by name"
        console.print(report.slices_table(analysis.slice_summary(found.slices),
                                          f"{project}: val accuracy by value ({order})"))
    if written:
        console.print(f"Wrote {', '.join(written)} to {args.out_dir / project}/",
                      highlight=False)
    if exported is not None:
        console.print(f"Wrote an HParams experiment of {exported} trials to "
                      f"{args.tensorboard / project}/ (view: tensorboard --logdir "
                      f"{args.tensorboard})", highlight=False)


def cmd_analyze(args: argparse.Namespace) -> int:
    from fmnist_search import results, store
    from fmnist_search.preflight import writing

    check_one_stdout("fmnist-search analyze", **{"--csv -": is_stdout(args.csv),
                                                 "--json": args.json})
    quiet = args.json or is_stdout(args.csv)  # standard output is the data
    for project in args.projects:
        store.check_name(project, "project")
    root = results.results_root(args.results_dir)
    for project in args.projects:
        results.load_project(root, project)  # every name known before anything is computed
    _check_outputs(args)
    from fmnist_search import analysis, hparams  # pandas, Matplotlib: after the checks

    summaries, importance_rows = [], []
    for project in args.projects:
        found = analysis.analyze(root, project, top=args.slices, resamples=args.resamples)
        summaries.append(found.summary())
        if found.importance.resamples:
            importance_rows.append(found.importance.table.assign(project=project,
                                                                 trials=found.n_trials))
        written = _write_files(found, root, args.out_dir / project) if args.figures else []
        exported = None
        if args.tensorboard:
            with writing(args.tensorboard / project, "--tensorboard"):
                exported = hparams.export(found.trials, args.tensorboard / project)
        if not quiet:
            _print(found, args, written, exported)
    if args.csv:
        import pandas as pd

        with writing(args.csv, "--csv"):
            frame = (pd.concat(importance_rows, ignore_index=True) if importance_rows
                     else pd.DataFrame(columns=[*analysis.IMPORTANCE_COLUMNS, "project",
                                                "trials"]))
            frame.to_csv(text_output(args.csv), index=False)
        if not quiet:
            console.print(f"Wrote the importance table{'s' if len(summaries) > 1 else ''} to "
                          f"{args.csv}" + ("" if importance_rows else " (no ranking yet: empty)"))
    if args.json:
        for summary in summaries:
            sys.stdout.write(json.dumps(summary, default=str) + "\n")
    return 0


def add_analyze(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    from fmnist_search.report import MIN_TRIALS

    p = sub.add_parser("analyze", parents=[shared.common],
                       help="hyperparameter importance, search history and slices of projects "
                       "(read-only: works while they are searched)")
    p.add_argument("projects", nargs="+", metavar="PROJECT", help="searched projects")
    p.add_argument("--out-dir", type=Path, default=Path("analysis"), metavar="DIR",
                   help="figures and CSVs go to DIR/PROJECT/ (default analysis/PROJECT/ in "
                   "the current folder; the project itself is never written)")
    options.add_renamed(p, "--out", "--out-dir", type=Path)
    p.add_argument("--slices", type=options.slices, default=4, metavar="N",
                   help="slices of the N most important hyperparameters (default 4)")
    options.add_renamed(p, "--top", "--slices", type=options.slices)
    p.add_argument("--resamples", type=options.resamples, default=8,
                   help="bootstrap resamples (one forest each) behind the importance spread "
                   f"(default 8); importance needs {MIN_TRIALS} finished configurations")
    p.add_argument("--figures", action=argparse.BooleanOptionalAction, default=True,
                   help="write the PNG figures and CSVs to --out-dir (default on)")
    p.add_argument("--csv", type=Path, metavar="FILE",
                   help="also write the importance table(s) to this CSV (-: to standard "
                   "output, instead of the tables)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per project (everything the figures show) "
                   "instead of tables")
    p.add_argument("--tensorboard", type=Path, metavar="DIR",
                   help="also write each project's trials as a TensorBoard HParams experiment "
                   "to DIR/PROJECT/ (needs `pip install tensorboard`; view with "
                   "`tensorboard --logdir DIR`)")
    return p
