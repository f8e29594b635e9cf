"""The pipeline as library calls: each command is a function of a typed request.

``cli/`` parses arguments into these requests and prints what the calls return; ``api.py``
builds the same requests from keyword arguments. Nothing here parses argv, prints a summary
or exits: errors are ``UserError``, progress goes to the ``console`` a caller passes.

    plan = plan_search(SearchSpec(space="cnn", search="quick", trials=10), console)
    outcome = search(plan, console)

``preflight_search`` is the checks before anything heavy loads (the CLI calls it first, to print
its warnings before the data loads); ``plan_search`` makes them itself when not handed them.
    record = finalize(FinalizeRequest(plan.root, plan.project), console)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from fmnist_search import results, store
from fmnist_search.errors import UserError
from fmnist_search.finalize import FinalizeRequest

if TYPE_CHECKING:
    from fmnist_search.dataset import Dataset, DataSettings
    from fmnist_search.presets import Preset
    from fmnist_search.space import Space
    from fmnist_search.tuning import SearchOutcome, SearchRequest, StopSignals

__all__ = ["BaselineRequest", "DataOptions", "FinalizeRequest", "ParallelSpec", "RetrainRequest",
           "SearchPlan", "SearchPreflight", "SearchSpec", "baseline", "finalize", "plan_search",
           "preflight_search", "prepare_data", "retrain", "search"]

MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's seeds are unsigned 32-bit


@dataclass
class DataOptions:
    """Which images, and how they are split (the data options of every training command)."""

    classes: str | Sequence[int] | None = None  # "0,2,4" or [0, 2, 4]; None: all ten
    val_fraction: float = 0.2
    subset: float | None = None  # None: the preset's (a search) or the whole split
    seed: int | None = None  # None: 42
    data_dir: str | None = None
    train_csv: str | None = None
    test_csv: str | None = None
    fashion_labels: bool = False
    arrays: str | None = None  # a stored .npz (``arrays.store``; api.search(x_train=...))

    def settings(self, subset: float | None = None) -> DataSettings:
        """``subset``: the preset's, when none is given. Fractions and classes are checked
        where the data is prepared (``dataset.prepare``), for every caller."""
        from fmnist_search.dataset import DataSettings

        if self.seed is not None and not (isinstance(self.seed, int)
                                          and 0 <= self.seed <= MAX_SEED):
            raise UserError(f"seed {self.seed!r} must be a whole number from 0 to {MAX_SEED}.")
        classes = self.classes
        if classes is not None and not isinstance(classes, str):
            classes = ",".join(map(str, classes))
        return DataSettings.from_options(
            classes=classes, val_fraction=self.val_fraction,
            subset=self.subset if self.subset is not None else subset, seed=self.seed,
            data_dir=self.data_dir, train_csv=self.train_csv, test_csv=self.test_csv,
            fashion_labels=self.fashion_labels, arrays=self.arrays)


def prepare_data(settings: DataSettings, console: Console) -> Dataset:
    """The training commands' data: when no copy is found anywhere, the official files are
    downloaded into the project cache first (offline, the one message saying what to do)."""
    from fmnist_search import dataset

    dataset.ensure_local_copy(settings, console)
    return dataset.prepare(settings)


# --------------------------------------------------------------------------- search


@dataclass
class SearchSpec:
    """What ``fmnist-search run`` is asked: a space, a search preset and overrides of it
    (None: the preset's), the data, and where the results go."""

    space: str = "cnn"
    search: str = "standard"
    project: str | None = None  # None: "<space>-<tuner>"
    root: Path = field(default_factory=results.results_root)
    data: DataOptions = field(default_factory=DataOptions)
    tuner: str | None = None
    trials: int | None = None
    epochs: int | None = None
    factor: int | None = None
    patience: int | None = None
    precision: str | None = None
    batch_size: int | None = None
    max_params: int | None = None
    max_seconds_per_epoch: float | None = None
    # "val_accuracy:max,params:min" or a list of such: a front of two or three (``objectives``)
    objectives: str | Sequence[str] | None = None
    max_time: float | str | None = None  # seconds, or "45m", "2h", "1h30m"
    overwrite: bool = False
    finalize: bool = True  # run finalize after the search when the preset asks for it
    debug: bool = False
    command: str = ""  # what run.json records as the command (the CLI's argv)


@dataclass
class ParallelSpec:
    """Trials trained at once: ``run --workers N`` (local worker processes) or a chief (the
    ``chief`` command, listening on ``bind``:``port`` for workers started by hand)."""

    workers: int = 1  # local worker processes (1: every trial in this process)
    workers_per_gpu: int = 1
    bind: str | None = None  # a chief: the address it listens on, checked free before the data
    port: int = 0


@dataclass
class SearchPreflight:
    """What ``preflight_search`` checked before the space and the data load TensorFlow: the
    project's name, the preset with the spec's overrides, ``max_time`` in seconds, and how many
    local workers to start (``warnings``: why that is not what was asked, for the caller to
    show)."""

    project: str
    preset: Preset
    max_time: float | None
    workers: int = 1  # 1: trials in this process (a chief starts none: workers join by hand)
    warnings: list[str] = field(default_factory=list)


@dataclass
class SearchPlan:
    """A checked search, its data loaded: what ``search`` runs."""

    spec: SearchSpec
    preset: Preset
    space: Space
    data: Dataset
    request: SearchRequest
    preflight: SearchPreflight

    @property
    def root(self) -> Path:
        return self.request.root

    @property
    def project(self) -> str:
        return self.request.project

    @property
    def project_dir(self) -> Path:
        return self.request.project_dir

    @property
    def finalizes(self) -> bool:
        return bool(self.preset.finalize_top and self.spec.finalize)


def preflight_search(spec: SearchSpec, parallel: ParallelSpec | None = None
                     ) -> SearchPreflight:
    """The checks of a search that load nothing heavy, cheapest first: names, preset, options,
    the project (a real, writable folder not being searched) and, for trials in parallel, the
    worker count and the chief's address. Nothing is written but the results directory."""
    from fmnist_search import budget, catalog, preflight, presets

    _check_choices(spec)
    if spec.project is not None:
        store.check_name(spec.project)  # before anything is read, trained or deleted
    preflight.ensure_writable_results(spec.root)
    preset = presets.load(spec.search)
    fixed = {"batch_size": spec.batch_size} if spec.batch_size else {}
    preset = preset.with_overrides(tuner=spec.tuner, trials=spec.trials, epochs=spec.epochs,
                                   factor=spec.factor, subset=spec.data.subset,
                                   patience=spec.patience, precision=spec.precision,
                                   fixed=fixed, max_params=spec.max_params,
                                   max_seconds_per_epoch=spec.max_seconds_per_epoch,
                                   objectives=_objectives(spec.objectives))
    presets.validate(preset, "the search's options")
    max_time = spec.max_time
    if isinstance(max_time, str):
        try:
            max_time = budget.parse_duration(max_time)
        except ValueError as exc:
            raise UserError(f"max_time: {exc}.") from None
    if max_time is not None and not 0 < max_time <= budget.MAX_SECONDS:
        raise UserError(f"max_time {max_time!r} must be a number of seconds above 0, at most "
                        f"{budget.MAX_SECONDS:,} (a year).")
    project = store.check_name(
        spec.project or f"{catalog.space_path(spec.space).stem}-{preset.tuner}")
    preflight.check_project(spec.root, project)  # a real, writable folder not being searched
    checked = SearchPreflight(project, preset, max_time)
    parallel = parallel or ParallelSpec()
    if parallel.bind is not None:
        preflight.ensure_bindable(parallel.bind, parallel.port)
    elif parallel.workers > 1:
        from fmnist_search.tuning import supervisor  # light: no TensorFlow

        checked.workers, checked.warnings = supervisor.worker_count(
            parallel.workers, preset.trials, parallel.workers_per_gpu,
            supervisor.visible_gpus(), supervisor.available_cpus())
    return checked


def plan_search(spec: SearchSpec, console: Console,
                checked: SearchPreflight | None = None) -> SearchPlan:
    """Check everything a search needs before it starts (``preflight_search``, unless
    ``checked`` is what it returned for ``spec``), then load the space and the data; nothing
    is trained or written but the results directory itself."""
    from fmnist_search import space

    checked = checked or preflight_search(spec)
    sp = space.load_named(spec.space)  # last: checking a space loads Keras Tuner (seconds)
    ds = prepare_data(spec.data.settings(subset=checked.preset.subset), console)
    from fmnist_search import tuning  # loads TensorFlow: only once the options are known good

    request = tuning.SearchRequest(sp, checked.preset, ds, spec.root, checked.project,
                                   seed=ds.settings.seed, overwrite=spec.overwrite,
                                   max_time=checked.max_time, command=spec.command,
                                   debug=spec.debug, finalize=spec.finalize)
    return SearchPlan(spec, checked.preset, sp, ds, request, checked)


def _objectives(given: str | Sequence[str] | None) -> tuple[str, ...] | None:
    from fmnist_search import objectives

    if given is None:
        return None
    try:
        return objectives.parse(given, "objectives")
    except ValueError as exc:
        raise UserError(f"{exc}.") from None


def _check_choices(spec: SearchSpec) -> None:
    """What argparse's choices and types check on the command line, for every caller."""
    from fmnist_search.builder import DOMAINS  # plain data: no Keras behind it
    from fmnist_search.presets import PRECISIONS, TUNERS

    for name, value, valid in (("tuner", spec.tuner, TUNERS),
                               ("precision", spec.precision, PRECISIONS)):
        if value is not None and value not in valid:
            raise UserError(f"{name} {value!r}; valid: {', '.join(valid)}.")
    domain = DOMAINS["batch_size"]
    if spec.batch_size is not None and not domain.low <= spec.batch_size <= domain.high:
        raise UserError(f"batch_size {spec.batch_size} must be from {int(domain.low)} to "
                        f"{int(domain.high)} (what the builder supports).")


def search(plan: SearchPlan, console: Console, signals: StopSignals | None = None,
           runner=None) -> SearchOutcome:
    """Run (or resume) the planned search; ``runner``: a distributed chief's (default: trials
    in this process). A stop (Ctrl-C, a signal) is raised as ``KeyboardInterrupt``."""
    from fmnist_search import tuning

    return tuning.search(plan.request, console, signals, runner)


# --------------------------------------------------------------------------- the rest


def finalize(req: FinalizeRequest, console: Console) -> dict[str, Any]:
    """Train (or reuse) the final table's models; returns ``final.json``'s record."""
    from fmnist_search import finalize as finalize_mod
    from fmnist_search import preflight
    from fmnist_search.presets import LIMITS

    most, why = LIMITS["finalize_top"]
    if req.top is not None and not (isinstance(req.top, int) and 1 <= req.top <= most):
        raise UserError(f"finalize: top {req.top!r} must be a whole number from 1 to {most} "
                        f"({why}).")
    results.load_project(req.root, req.project)  # a name that is no project is refused first
    preflight.ensure_writable_results(req.root / store.FINALIZED / req.project)
    # Every model's folder (controls/, baselines/, finalized/) before the first one trains: a
    # file in the way found after an hour's training lost that hour.
    _, candidates, _ = finalize_mod.plan_final_table(req)
    for folder in dict.fromkeys(c.parent for c in candidates):
        preflight.ensure_writable_results(folder)
    return finalize_mod.finalize(req, console, lambda s: prepare_data(s, console))


@dataclass
class BaselineRequest:
    """``fmnist-search baseline``: one of the report's models (or ``"all"``), its protocol."""

    model: str
    root: Path = field(default_factory=results.results_root)
    data: DataOptions = field(default_factory=DataOptions)
    epochs: int | None = None
    batch_size: int | None = None
    precision: str | None = "auto"
    weights: str | None = None  # model5: "imagenet" (default), "none", or a weights file
    patience: int = 0


def baseline(req: BaselineRequest, console: Console
             ) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Train the model(s), yielding each run's directory and metrics as it finishes (every
    check is made before the first model trains)."""
    from fmnist_search import baselines, catalog, preflight
    from fmnist_search.pretrained import resolve_weights

    names = catalog.list_baselines() if req.model == "all" else [req.model]
    models = [baselines.load(n) for n in names]
    if req.weights not in (None, "none", "imagenet"):
        resolve_weights("imagenet", req.weights)  # the file must exist
    elif req.weights in (None, "imagenet") and any(
            b.values.get("weights") == "imagenet" for b in models):
        resolve_weights("imagenet")  # fail before training anything, not after model4
    root = req.root / store.BASELINES
    for base in models:  # before the data and the training, not after them
        preflight.ensure_writable_results(root / base.name)
    settings = req.data.settings()
    ds = prepare_data(settings, console)
    from fmnist_search import runs  # loads TensorFlow: only once the options are known good

    for base in models:
        values = dict(base.values)
        if req.batch_size:
            values["batch_size"] = req.batch_size
        if req.weights == "none":
            values["weights"] = "none"
        spec = runs.RunSpec(
            kind="baseline", name=base.name, values=values,
            epochs=req.epochs or int(values["epochs"]), seed=settings.seed,
            precision=req.precision,
            weights_path=req.weights if req.weights not in (None, "none", "imagenet") else None,
            source={"baseline": base.name, "file": str(base.path)},
            patience=req.patience or None,
        )
        yield runs.train_run(spec, ds, root / base.name, console)


@dataclass
class RetrainRequest:
    """``fmnist-search retrain``: a search trial on the whole training split."""

    project: str
    trial: str = "best"
    root: Path = field(default_factory=results.results_root)
    epochs: int | None = None  # None: the search's
    precision: str | None = None  # None: the search's
    data_dir: str | None = None
    test_csv: str | None = None  # None: the project's own


def retrain(req: RetrainRequest, console: Console
            ) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Train the trial; returns the run directory, its metrics and the trial's row."""
    from fmnist_search import dataset, preflight

    run = results.load_project(req.root, req.project)
    row = results.find_trial(req.root, req.project, req.trial)
    d = run["data"]
    settings = dataset.DataSettings.from_record(d, req.data_dir, req.test_csv)
    name = f"{req.project}-{row['trial']}"
    preflight.ensure_writable_results(req.root / store.RETRAINED / name)
    ds = prepare_data(settings, console)
    from fmnist_search import runs  # loads TensorFlow: only once the options are known good

    preset = run["preset"]
    spec = runs.RunSpec(
        kind="retrained", name=name, values=row["values"],
        epochs=req.epochs or int(preset["epochs"]), seed=d["seed"],
        precision=req.precision or preset["precision"], patience=preset["patience"] or None,
        source={"project": req.project, "trial": row["trial"]},
    )
    path, metrics = runs.train_run(spec, ds, req.root / store.RETRAINED / name, console)
    return path, metrics, row
