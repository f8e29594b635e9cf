"""The Python API, for notebooks: what the command line does, returned as DataFrames, Keras
models and Matplotlib figures instead of printed.

    from fmnist_search import api

    api.search(space="cnn", search="quick", project="cnn-hyperband")   # as `fmnist-search run`
    board = api.trials("cnn-hyperband")          # the columns of `leaderboard --csv`
    found = api.analyze("cnn-hyperband")         # importance, history, slices (DataFrames)
    found.importance.table
    api.figures(found)["importance"]             # a matplotlib Figure
    model = api.model("cnn-hyperband")           # the best trial's trained Keras model
    model.predict(api.dataset("cnn-hyperband").x_test)

Every function takes ``results_dir`` (default as the CLI: ``$FMNIST_RESULTS`` or
``tuner_results/``). Readers take no lock and write nothing, so they work during a search.

``search`` and ``baseline`` take the command's options as keyword arguments
(``trials=20``, ``subset=0.1``, ``train_csv="train.csv"``) and run the command's own code:
the arguments are parsed by the CLI's parser, so every option is checked exactly as on the
command line, and the command's handler trains. One code path, so a notebook's search is the
command line's search (same defaults, same validation, same records); errors are raised as
``fmnist_search.errors.UserError`` rather than printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fmnist_search import analysis, results
from fmnist_search.analysis import Analysis
from fmnist_search.errors import UserError

__all__ = ["Analysis", "analyze", "baseline", "dataset", "figures", "model", "run_model",
           "search", "trials"]


def _root(results_dir: str | os.PathLike | None) -> Path:
    return results.results_root(str(results_dir) if results_dir is not None else None)


def trials(projects: str | list[str] | None = None, results_dir: str | os.PathLike | None = None,
           baselines: bool = True, include_failed: bool = False):
    """Trials of the named projects (all when None), best first, with the baseline runs beside
    them, as a DataFrame with the columns of ``fmnist-search leaderboard --csv`` (one column per
    hyperparameter that varies)."""
    import pandas as pd

    from fmnist_search import report

    if isinstance(projects, str):
        projects = [projects]
    rows = results.sort_rows(results.collect(_root(results_dir), projects or None,
                                             baselines=baselines, include_failed=include_failed))
    varying = results.varying(rows)
    return pd.DataFrame(report.leaderboard_records(rows, varying))


def analyze(project: str, results_dir: str | os.PathLike | None = None, top: int = 4,
            resamples: int = 8, seed: int = 0) -> Analysis:
    """What ``fmnist-search analyze`` computes: ``.importance.table``, ``.history``,
    ``.baselines``, ``.slices`` and ``.trials`` as DataFrames."""
    return analysis.analyze(_root(results_dir), project, top=top, resamples=resamples, seed=seed)


def figures(found: Analysis | str, results_dir: str | os.PathLike | None = None
            ) -> dict[str, Any]:
    """The analysis figures (``importance``, ``history``, ``slices``) as Matplotlib Figures,
    of an ``Analysis`` or a project name."""
    if isinstance(found, str):
        found = analyze(found, results_dir)
    return analysis.figures(found)


def model(project: str, trial: str = "best", results_dir: str | os.PathLike | None = None):
    """A search trial's Keras model (compiled) with the weights it was scored with: built from
    its values and loaded from Keras Tuner's checkpoint in the trial folder. Inputs are images
    scaled to 0-1, shape (n, 28, 28, 1). (A retrained trial's full-data model:
    ``run_model(f"{project}-{trial}")``.)"""
    from fmnist_search import builder

    root = _root(results_dir)
    run = results.load_project(root, project)
    row = results.find_trial(root, project, trial)
    checkpoints = sorted(Path(row["path"]).glob("*.weights.h5"))
    if not checkpoints:
        raise UserError(f"Trial {row['trial']} of '{project}' has no weights checkpoint in "
                        f"{row['path']} (Keras Tuner keeps one per finished trial): run "
                        f"`fmnist-search retrain {project} --trial {row['trial']}` and use "
                        f"run_model('{project}-{row['trial']}').")
    num_classes = len(run["data"]["classes"])
    net = builder.build_model(row["values"], num_classes, compile=False)
    net.load_weights(checkpoints[-1])  # before compiling: the search's optimizer state is not
    v = builder.resolve(row["values"])  # wanted (and would only warn that it was skipped)
    net.compile(optimizer=builder.make_optimizer(v), loss=builder.make_loss(v),
                metrics=["accuracy"])
    return net


def run_model(name_or_path: str | os.PathLike, results_dir: str | os.PathLike | None = None):
    """A baseline's or a retrained trial's trained model (``model.keras``): a run directory,
    a baseline name (its newest run) or ``PROJECT-TRIAL`` (retrained)."""
    import keras

    from fmnist_search import augment, losses  # noqa: F401  (registers them for load_model)

    path = results.find_run(_root(results_dir), str(name_or_path))
    return keras.models.load_model(path / "model.keras")


def dataset(project: str | None = None, results_dir: str | os.PathLike | None = None,
            **options: Any):
    """The images as a ``Dataset`` (``x_train``, ``y_train``, ``x_val``, ``y_val``, ``x_test``,
    ``y_test``, scaled to 0-1 with shape (n, 28, 28, 1), and ``class_names``): a project's own
    data settings on the whole training split (as ``retrain`` uses), or the data options
    (``classes="0,2,4"``, ``subset=0.1``, ``seed=``, ``data_dir=``, ``train_csv=``, ...)."""
    from fmnist_search.dataset import DataSettings, prepare

    if project is not None:
        run = results.load_project(_root(results_dir), project)
        settings = DataSettings.from_record(run["data"], options.get("data_dir"),
                                            options.get("test_csv"))
    else:
        classes = options.pop("classes", None)
        if isinstance(classes, (list, tuple)):
            classes = ",".join(map(str, classes))
        settings = DataSettings.from_options(classes=classes, **options)
    return prepare(settings)


def _argv(command: str, positional: list[str], options: dict[str, Any]) -> list[str]:
    """Keyword arguments as the command's options: ``train_csv="a.csv"`` -> ``--train-csv
    a.csv``; True -> the flag; False or None -> left out; a list -> comma-separated."""
    argv = [command, *positional]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, ",".join(map(str, value))]
        else:
            argv += [flag, str(value)]
    return argv


def _run_command(argv: list[str]) -> int:
    """Parse like the command line (a bad option is a UserError here), then run the handler."""
    import argparse
    import contextlib
    import io

    from fmnist_search.cli import COMMANDS, build_parser

    parser = build_parser()
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = parser.parse_args(argv, argparse.Namespace(debug=False, results_dir=None))
    except SystemExit as exc:
        raise UserError(errors.getvalue().strip().removeprefix("error: ")
                        or f"bad options: {argv}") from exc
    args.argv = argv
    return COMMANDS[args.command].run(args)


def search(space: str = "cnn", search: str = "standard", project: str | None = None,
           results_dir: str | os.PathLike | None = None, **options: Any):
    """``fmnist-search run`` with these options (``trials=``, ``epochs=``, ``tuner=``,
    ``subset=``, ``max_time="45m"``, ``train_csv=``, ...); resumes like the command. Returns
    the project's trials as ``trials(project)`` does (without baselines)."""
    if project is None:
        from fmnist_search import presets
        from fmnist_search import space as spaces

        tuner = options.get("tuner") or presets.load(search).tuner
        project = f"{spaces.load_named(space).name}-{tuner}"
    status = _run_command(_argv("run", [], {"space": space, "search": search,
                                            "project": project, "results_dir": results_dir,
                                            **options}))
    if status != 0:
        raise UserError(f"the search of '{project}' stopped (exit status {status}); rerun "
                        "the same call to resume.")
    return trials(project, results_dir, baselines=False)


def baseline(name: str, results_dir: str | os.PathLike | None = None, **options: Any
             ) -> dict[str, Any]:
    """``fmnist-search baseline NAME`` with these options (``epochs=``, ``subset=``, ...).
    Returns the run's metrics (``metrics.json``) with its ``path``; ``run_model(path)`` loads
    its model."""
    from fmnist_search import layout

    root = _root(results_dir)
    before = set(layout.run_dirs(root, results.BASELINES, name))
    status = _run_command(_argv("baseline", [name], {"results_dir": results_dir, **options}))
    if status != 0:
        raise UserError(f"baseline {name} stopped (exit status {status}).")
    new = [p for p in layout.run_dirs(root, results.BASELINES, name) if p not in before]
    if not new:
        raise UserError(f"baseline {name} finished but left no run under "
                        f"{root / results.BASELINES / name}.")
    return {**results.load_run(new[-1]), "path": str(new[-1])}
