"""The Python API, for notebooks: what the command line does, returned as DataFrames, Keras
models and Matplotlib figures instead of printed.

    from fmnist_search import api

    api.search(space="cnn", search="quick", project="cnn-hyperband")   # as `fmnist-search run`
    board = api.trials("cnn-hyperband")          # the columns of `leaderboard --csv`
    api.front("cnn-pareto")                      # a search of several objectives: its front
    found = api.analyze("cnn-hyperband")         # importance, history, slices (DataFrames)
    found.importance.table
    api.figures(found)["importance"]             # a matplotlib Figure
    model = api.model("cnn-hyperband")           # the best trial's trained Keras model
    model.predict(api.dataset("cnn-hyperband").x_test)
    study = api.open("cnn-hyperband")            # best_params, best_value, trials_dataframe()
    api.search(space="cnn", search="quick", x_train=x, y_train=y)   # numpy arrays as data

Every function takes ``results_dir`` (default as the CLI: ``$FMNIST_RESULTS`` or
``tuner_results/``). Readers take no lock and write nothing, so they work during a search.

``search``, ``finalize``, ``baseline`` and ``retrain`` take the command's options as keyword
arguments (``trials=20``, ``subset=0.1``, ``train_csv="train.csv"``, ``max_time="45m"``) and
call the library functions the command line calls (``fmnist_search.pipeline``, with typed
requests): one code path, so a notebook's search is the command line's search (same
defaults, same checks, same records). Nothing here goes through the CLI; errors are raised as
``fmnist_search.errors.UserError``, and a stop (Ctrl-C) as ``KeyboardInterrupt``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from fmnist_search import analysis, results
from fmnist_search.analysis import Analysis
from fmnist_search.errors import UserError
from fmnist_search.study import Study

__all__ = ["Analysis", "Study", "analyze", "baseline", "dataset", "export", "figures", "finalize", "front",
           "model", "open", "retrain", "run_model", "search", "trials"]


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


def front(project: str, results_dir: str | os.PathLike | None = None, all_ranks: bool = False):
    """The project's Pareto front as a DataFrame (``fmnist_search.pareto.front_table``): its
    trials that no other trial beats on every objective it searched (a project of one
    objective: validation accuracy against parameters), with ``pareto_rank``, the measured
    objectives and the trial's values; ``all_ranks``: every trial, rank by rank.
    ``.attrs["objectives"]`` names the objectives."""
    from fmnist_search import pareto

    return pareto.front_table(_root(results_dir), project, all_ranks)


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
    from fmnist_search import builder, export

    net, row = export.trial_model(_root(results_dir), project, trial)
    # compiled after the weights are in: the search's optimizer state is not wanted (and
    # would only warn that it was skipped)
    v = builder.resolve(row["values"])
    net.compile(optimizer=builder.make_optimizer(v), loss=builder.make_loss(v),
                metrics=["accuracy"])
    return net


def run_model(name_or_path: str | os.PathLike, results_dir: str | os.PathLike | None = None):
    """A baseline's or a retrained trial's trained model (``model.keras``): a run directory,
    a baseline name (its newest run) or ``PROJECT-TRIAL`` (retrained)."""
    from fmnist_search import predict

    return predict.load_model(results.find_run(_root(results_dir), str(name_or_path)))


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


def _console():
    from rich.console import Console

    return Console()


def _split_options(options: dict[str, Any], request: type, where: str
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments -> (the request's fields, the data options); anything else is an
    error that names what is valid."""
    import dataclasses

    from fmnist_search.pipeline import DataOptions

    fields = {f.name for f in dataclasses.fields(request)} - {"root", "data"}
    data_fields = {f.name for f in dataclasses.fields(DataOptions)}
    unknown = sorted(set(options) - fields - data_fields)
    if unknown:
        raise UserError(f"{where}: unknown option(s) {', '.join(unknown)}; valid: "
                        f"{', '.join(sorted(fields | data_fields))}.")
    data = {k: v for k, v in options.items() if k in data_fields}
    if isinstance(data.get("classes"), (list, tuple)):
        data["classes"] = ",".join(map(str, data["classes"]))
    return {k: v for k, v in options.items() if k in fields}, data


def _with_arrays(options: dict[str, Any], root: Path, x_train: Any, y_train: Any,
                 validation: Any, test: Any) -> dict[str, Any]:
    """numpy arrays given as the data: stored once under the results directory, named by
    their digest (``fmnist_search.arrays``), and passed on as the ``arrays`` data option."""
    if x_train is None and y_train is None:
        if validation is not None or test is not None:
            raise UserError("validation= and test= arrays go with x_train= and y_train=.")
        return options
    if x_train is None or y_train is None:
        raise UserError("Give both x_train= and y_train= (the images and their labels).")
    if options.get("train_csv"):
        raise UserError("Give the training images once: as x_train= arrays or as train_csv=.")
    from fmnist_search import arrays

    return {**options, "arrays": str(arrays.store(root, x_train, y_train, validation, test))}


def search(space: str = "cnn", search: str = "standard", project: str | None = None,
           results_dir: str | os.PathLike | None = None, *, x_train: Any = None,
           y_train: Any = None, validation: Any = None, test: Any = None, **options: Any):
    """``fmnist-search run`` with these options (``trials=``, ``epochs=``, ``tuner=``,
    ``subset=``, ``max_time="45m"``, ``train_csv=``, ``finalize=False``, ...); resumes like
    the command, and finalizes when the preset asks for it. Returns the project's trials as
    ``trials(project)`` does (without baselines).

    The data may be numpy arrays instead of files: ``x_train`` (n, 28, 28) images (uint8
    0-255, or floats in 0-1) and ``y_train`` class ids 0-9, with an optional ``validation=(x,
    y)`` (else split off as from any data) and ``test=(x, y)`` (or the images alone). The same
    arrays given again resume the same project."""
    from fmnist_search import pipeline

    options = _with_arrays(options, _root(results_dir), x_train, y_train, validation, test)
    fields, data = _split_options(options, pipeline.SearchSpec, "search")
    spec = pipeline.SearchSpec(space=space, search=search, project=project,
                               root=_root(results_dir), data=pipeline.DataOptions(**data),
                               command="fmnist_search.api.search", **fields)
    console = _console()
    plan = pipeline.plan_search(spec, console)
    outcome = pipeline.search(plan, console)
    try:
        if plan.finalizes:
            pipeline.finalize(pipeline.FinalizeRequest(
                plan.root, plan.project, precision=spec.precision, data_dir=spec.data.data_dir,
                test_csv=spec.data.test_csv, deadline=outcome.deadline), console)
    finally:
        outcome.finish()
    return trials(plan.project, results_dir, baselines=False)


def finalize(project: str, results_dir: str | os.PathLike | None = None,
             top: int | None = None, epochs: int | None = None, precision: str | None = None,
             data_dir: str | None = None, test_csv: str | None = None) -> dict[str, Any]:
    """``fmnist-search finalize PROJECT``: its top configurations (and the preset's report
    models) trained with the final protocol. Returns ``final.json``'s record (``rows``: the
    final table)."""
    from fmnist_search import pipeline

    req = pipeline.FinalizeRequest(_root(results_dir), project, top, epochs,
                                   precision=precision, data_dir=data_dir, test_csv=test_csv)
    return pipeline.finalize(req, _console())


def retrain(project: str, trial: str = "best", results_dir: str | os.PathLike | None = None,
            **options: Any) -> dict[str, Any]:
    """``fmnist-search retrain PROJECT`` (``epochs=``, ``precision=``, ``data_dir=``,
    ``test_csv=``). Returns the run's metrics with its ``path``."""
    from fmnist_search import pipeline

    fields, data = _split_options(options, pipeline.RetrainRequest, "retrain")
    if data:
        raise UserError(f"retrain: {', '.join(sorted(data))}: a retrained trial keeps its "
                        "project's data settings (data_dir= and test_csv= may change).")
    path, metrics, _ = pipeline.retrain(pipeline.RetrainRequest(
        project, trial, _root(results_dir), **fields), _console())
    return {**metrics, "path": str(path)}


def baseline(name: str, results_dir: str | os.PathLike | None = None, *, x_train: Any = None,
             y_train: Any = None, validation: Any = None, test: Any = None, **options: Any
             ) -> dict[str, Any]:
    """``fmnist-search baseline NAME`` with these options (``epochs=``, ``subset=``, ...),
    on files or on numpy arrays as ``search`` takes them. Returns the run's metrics
    (``metrics.json``) with its ``path`` (the last model's, for ``"all"``); ``run_model(path)``
    loads its model."""
    from fmnist_search import pipeline

    options = _with_arrays(options, _root(results_dir), x_train, y_train, validation, test)
    fields, data = _split_options(options, pipeline.BaselineRequest, "baseline")
    fields.pop("model", None)
    req = pipeline.BaselineRequest(name, _root(results_dir), pipeline.DataOptions(**data),
                                   **fields)
    runs = list(pipeline.baseline(req, _console()))
    path, metrics = runs[-1]
    return {**metrics, "path": str(path)}


def open(project: str, results_dir: str | os.PathLike | None = None) -> Study:  # noqa: A001
    """The project as a ``Study``: ``best_params``, ``best_value``, ``best_trial``,
    ``best_model()``, ``trials_dataframe()``, ``leaderboard()``, ``front()`` and ``final()``,
    each read from its records when asked (nothing is written; works during a search)."""
    return Study(_root(results_dir), project, sys.modules[__name__])


def export(model: str, format: str = "keras", path: str | os.PathLike | None = None,  # noqa: A002
           trial: str | None = None, results_dir: str | os.PathLike | None = None,
           check_images: int = 1000):
    """``fmnist-search export``: ``model`` (a project, its best trial or ``trial``; a
    baseline; a run directory; ``PROJECT-TRIAL``) as ``format`` (``keras``, ``saved_model``,
    ``onnx``, ``litert``) at ``path``, opened by plain Keras / TensorFlow / onnxruntime /
    LiteRT without fmnist_search. Returns ``.path`` and ``.check`` (the exported file run in its
    own runtime on ``check_images`` test images against the Keras model: ``images``,
    ``same_class``, ``max_abs_difference``)."""
    from fmnist_search import export as exporting

    return exporting.export_model(_root(results_dir), model, format, path, trial, check_images)
