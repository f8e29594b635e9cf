"""``analyze``: which hyperparameters mattered, how the search progressed, and the objective
against the most important ones. Read-only on the project (no lock, nothing written under the
results directory); the figures and CSVs go to ``--out``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fmnist_search.cli import options
from fmnist_search.cli.common import SharedOptions, console, err_console

SMALL = 0.01  # importance shares below this are counted, not listed, in the terminal


def cmd_analyze(args: argparse.Namespace) -> int:
    from fmnist_search import layout, preflight, results
    from fmnist_search.preflight import writing

    for project in args.projects:
        layout.check_name(project, "project")
    if args.csv:
        preflight.ensure_writable_file(args.csv, "--csv")
    root = results.results_root(args.results_dir)
    for project in args.projects:
        results.load_project(root, project)  # every name known before anything is computed
    if args.figures:
        for project in args.projects:
            preflight.ensure_writable_dir(args.out / project, "--out",
                                          "Give --out a writable folder.")
    from fmnist_search import analysis, plots, report  # pandas, Matplotlib: after the checks

    summaries, importance_rows = [], []
    for project in args.projects:
        found = analysis.analyze(root, project, top=args.top, resamples=args.resamples)
        summaries.append(found.summary())
        table = found.importance.table.assign(project=project, trials=found.n_trials)
        importance_rows.append(table)
        written = []
        if args.figures:
            folder = args.out / project
            with writing(folder, "--out"):
                folder.mkdir(parents=True, exist_ok=True)
                for stem, fig in analysis.figures(found).items():
                    fig.savefig(folder / f"{stem}.png", dpi=110)
                    written.append(f"{stem}.png")
                rows = results.collect(root, [project], baselines=True)
                if rows:  # the existing accuracy-vs-cost figure, not a new one
                    plots.compare(rows, folder / "pareto.png", f"{project}: accuracy vs cost")
                    written.append("pareto.png")
                for stem, frame in (("importance", found.importance.table),
                                    ("history", found.history), ("slices", found.slices)):
                    frame.to_csv(folder / f"{stem}.csv", index=False)
                    written.append(f"{stem}.csv")
        if args.json:
            continue
        console.print(f"[bold]{project}[/]: {len(found.trials)} trials, {found.n_trials} "
                      "finished (the analysis rests on these)")
        if found.importance.warning:
            err_console.print(f"warning: {project}: {found.importance.warning}", highlight=False)
        if found.importance.resamples:
            table = found.importance.table
            shown = table[(table["importance"] >= SMALL) | (table["rank"] <= args.top)]
            console.print(report.importance_table(shown, found.n_trials,
                                                  found.importance.resamples))
            if len(shown) < len(table):
                console.print(f"... and {len(table) - len(shown)} more below {SMALL} "
                              f"(all of them: --csv, --json, {args.out / project}/"
                              "importance.csv)", highlight=False)
        else:
            console.print("Importance: not enough finished trials with differing scores yet.")
        if found.importance.fixed:
            console.print(f"The same in every trial (no importance): "
                          f"{', '.join(found.importance.fixed)}", highlight=False)
        console.print(report.search_history_table(found.history, found.baselines,
                                                  f"{project}: trials that raised the best so "
                                                  "far"))
        if written:
            console.print(f"Wrote {', '.join(written)} to {args.out / project}/ (pareto.png is "
                          f"`fmnist-search compare {project}`'s accuracy-vs-cost figure)")
    if args.csv:
        import pandas as pd

        with writing(args.csv, "--csv"):
            pd.concat(importance_rows, ignore_index=True).to_csv(args.csv, index=False)
        if not args.json:
            console.print(f"Wrote the importance table to {args.csv}")
    if args.json:
        for summary in summaries:
            sys.stdout.write(json.dumps(summary, default=str) + "\n")
    return 0


def add_analyze(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    p = sub.add_parser("analyze", parents=[shared.common],
                       help="hyperparameter importance, search history and slices of projects "
                       "(read-only: works while they are searched)")
    p.add_argument("projects", nargs="+", metavar="PROJECT")
    p.add_argument("--out", type=Path, default=Path("analysis"),
                   help="figures and CSVs go to OUT/PROJECT/ (default analysis/PROJECT/ in "
                   "the current folder; the project itself is never written)")
    p.add_argument("--top", type=options.positive_int, default=4,
                   help="slices of the N most important hyperparameters (default 4)")
    p.add_argument("--resamples", type=options.positive_int, default=8,
                   help="bootstrap resamples (one forest each) behind the importance spread "
                   "(default 8)")
    p.add_argument("--figures", action=argparse.BooleanOptionalAction, default=True,
                   help="write the PNG figures and CSVs to --out (default on)")
    p.add_argument("--csv", type=Path, help="also write the importance table(s) to this CSV")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per project (the tables) instead of tables")
    return p
