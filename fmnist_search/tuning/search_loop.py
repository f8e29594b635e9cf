"""The search loop: one project, resumed where it stopped, within a trial count and a budget.

Keras Tuner already persists every trial and resumes a project (a trial that was running when
the process died is queued for retry), so resuming is Keras Tuner's. Around it: the project's
identity and lock (``project``), atomic state and repair (``state``), signals (``signals``),
records (``tuner``), when a trial may start (``stop_rule``), each trial's epoch checkpoint
(``trial_checkpoints``: the retried trial continues from its last epoch), and the live display
(``display``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from fmnist_search import budget, budget_clock, store, training
from fmnist_search.callbacks import StopCheck
from fmnist_search.dataset import Dataset, DataSettings
from fmnist_search.errors import UserError
from fmnist_search.objectives import several
from fmnist_search.presets import MODEL_BASED, MULTI_FIDELITY, Preset
from fmnist_search.reproducibility import op_determinism
from fmnist_search.space import Space
from fmnist_search.tuning import project as project_mod
from fmnist_search.tuning import state, trial_checkpoints
from fmnist_search.tuning.display import SearchDisplay
from fmnist_search.tuning.hypermodel import DiskFull, SearchHyperModel, TrialLimits
from fmnist_search.tuning.signals import StopSignals
from fmnist_search.tuning.stop_rule import ConsecutiveFailures, SearchBudget
from fmnist_search.tuning.tuner import SearchStopped, make_tuner


@dataclass
class SearchRequest:
    space: Space
    preset: Preset
    data: Dataset
    root: Path
    project: str
    seed: int
    overwrite: bool = False
    max_time: float | None = None
    command: str = ""
    debug: bool = False  # show Keras Tuner's traceback of each failed trial
    finalize: bool = True  # reserve --max-time for finalize when the preset has finalize_top

    def finalize_reserve(self, cache: project_mod.TrialCache | None = None) -> float:
        """Seconds the final stage needs, from the best trials measured so far (``budget``),
        at most what ``min_search_share`` leaves: the search is never starved by an estimate."""
        p = self.preset
        if not (self.finalize and p.finalize_top):
            return 0.0
        trials = cache.refresh() if cache else self.project_dir
        measured = project_mod.top_seconds_per_epoch(trials, p.finalize_top)
        reserve = budget.finalize_reserve(measured, p.finalize_top, p.final_epoch_count,
                                          scale=1.0 / p.subset,
                                          baseline_epochs=self._baseline_epochs())
        if self.max_time and p.min_search_share:
            return min(reserve, (1 - p.min_search_share) * self.max_time)
        return reserve

    def _baseline_epochs(self) -> list[int]:
        """Epochs of the control and the report models finalize will train. One already trained
        on the same data for as many epochs is reused by finalize, so it needs no time: a second
        search in the same results directory gets that time for screening."""
        from fmnist_search import baselines, results

        p = self.preset
        final_data = DataSettings.from_record(self.data.fingerprint()).fingerprint()
        out = [] if self._control_reusable(final_data) else [p.final_epoch_count]
        for base in map(baselines.load, p.final_baselines):
            n = base.final_epochs(p.final_epoch_count, p.final_baselines_epochs)
            if results.finished_run(self.root / store.BASELINES / base.name, n,
                                    final_data) is None:
                out.append(n)
        return out

    def _control_reusable(self, final_data: dict[str, Any]) -> bool:
        """Whether finalize will reuse a finished run of the control (``finalize``)."""
        from fmnist_search import results

        p = self.preset
        values = self.space.control_values(p.fixed, p.final, p.final_epoch_count)
        return results.finished_run(store.control_dir(self.root, self.space.name),
                                    p.final_epoch_count, final_data, values) is not None

    @property
    def project_dir(self) -> Path:
        return store.project_dir(self.root, self.project)

    def identity(self) -> dict[str, Any]:
        """What must not change between resumes of one project."""
        p = self.preset
        return {"space": self.space.text, "data": self.data.fingerprint(), "tuner": p.tuner,
                "factor": p.factor, "iterations": p.iterations, "fixed": p.fixed,
                "patience": p.patience, "epochs": p.epochs, "seed": self.seed,
                **({"bohb": p.bohb.as_dict()} if p.tuner in MODEL_BASED else {}),
                # only when not the default: a project of one objective keeps its identity
                **({"objectives": list(p.objectives)} if several(p.objectives) else {})}

    def run_record(self, policy: str) -> dict[str, Any]:
        from fmnist_search.runs import now, versions

        return {"project": self.project, "command": self.command,
                "space_name": self.space.name, "space_path": str(self.space.path),
                "preset": self.preset.as_dict(), "precision": policy,
                "data": self.data.fingerprint(), "data_digest": self.data.digest(),
                "versions": versions(), "created": now()}


@dataclass
class SearchOutcome:
    project_dir: Path
    before: int
    after: int
    requested: int
    stopped_for_time: bool
    did_nothing: bool
    exhausted: bool = False  # the oracle had nothing more to propose (e.g. Hyperband's brackets)
    repairs: list[str] = field(default_factory=list)
    deadline: float | None = None  # Unix time --max-time ends: finalize's deadline too
    # --max-time's count across resumes (``budget_clock``): still running, so that finalize's
    # time counts too; the caller stops it when the pipeline ends (``finish``)
    clock: Any = None

    def finish(self) -> None:
        if self.clock is not None:
            self.clock.stop()


Runner = Callable[..., "str | None"]  # (tuner, request, display, signals) -> stop reason


@contextmanager
def _startup_objects_frozen() -> Iterator[None]:
    """Keep the garbage collector off the objects that live for the whole process.

    Keras Tuner calls ``clear_session()`` and ``gc.collect()`` before every trial. A full
    collection walks every tracked object, and TensorFlow and Keras leave over 400,000 of
    them: measured here, 0.2 s per collection, two per trial. ``gc.freeze()`` moves
    the objects that exist now (imports, the dataset, the tuner) out of the collector's view;
    a trial's own garbage is created later and is still collected. Undone when the search
    returns, so that a caller running several searches in one process frees the old ones.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def quiet_keras(debug: bool) -> Iterator[None]:
    """Silence, for the search only, what every trial would repeat by design.

    Hyperband reloads a previous round's weights into a freshly compiled model whose optimizer
    has no slots yet, and every trial is a new model, so TensorFlow warns about retracing.
    Keras Tuner prints the traceback of every failed trial (its ``DEBUG`` is on by default);
    the reason is one line of the display and of the record, and ``--debug`` shows the rest.
    (Keras Tuner's stray print at every gRPC conversion of a trial is silenced where a chief
    or a worker converts one: ``kt_compat.no_condition_print``.)
    """
    from fmnist_search.tuning import kt_compat

    logger = logging.getLogger("tensorflow")
    level = logger.level
    with warnings.catch_warnings(), kt_compat.trial_tracebacks(debug):
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(level)


@contextmanager
def search_runtime(req: SearchRequest, signals: StopSignals,
                   chief_timeout: float | None = None) -> Iterator[None]:
    """Every process-wide setting a search changes, set for the search and restored after it:
    Keras Tuner's JSON saves made atomic (``state.atomic_saves``), its and TensorFlow's
    per-trial output quieted (``quiet_keras``) and, on a worker, how long a call to the chief
    may wait (``kt_compat.client_timeout``). The dtype policy is not among them: the builder
    applies it to each model (``builder.build_model(policy=...)``)."""
    from fmnist_search.tuning import kt_compat

    timeout = (kt_compat.client_timeout(chief_timeout) if chief_timeout is not None
               else contextlib.nullcontext())
    with state.atomic_saves(signals.critical), quiet_keras(req.debug), timeout:
        yield


def search(req: SearchRequest, console: Console, signals: StopSignals | None = None,
           runner: Runner | None = None) -> SearchOutcome:
    """Run (or resume) the project until it has ``preset.trials`` finished trials.

    ``runner`` drives the tuner once it is built (default: ``run_tuner``, trials in this
    process); the distributed chief passes its own, which serves the oracle to workers.
    """
    import keras

    signals = signals or StopSignals()
    project_dir = req.project_dir
    with project_mod.project_lock(req.root, req.project):
        if req.overwrite:
            store.remove_project(req.root, req.project)
        keras.utils.set_random_seed(req.seed)
        op_determinism("on" if req.preset.deterministic else "off")  # CPU kernels already are
        policy = training.choose_policy(req.preset.precision)  # the builder applies it
        project_mod.check_or_write_run_json(project_dir, req.identity(), req.run_record(policy))
        clock = budget_clock.start(project_dir, req.max_time)  # the whole pipeline's
        try:
            outcome = _search_locked(req, console, signals, runner, policy, clock)
        except BaseException:
            if clock is not None:
                clock.stop()
            raise
        outcome.clock = clock
        return outcome


def _search_locked(req: SearchRequest, console: Console, signals: StopSignals,
                   runner: Runner | None, policy: str, clock) -> SearchOutcome:
    """The search, in the project's lock, with ``clock``'s deadline (None: no --max-time)."""
    project_dir = req.project_dir
    deadline = clock.deadline if clock is not None else None
    repairs = state.repair(project_dir)
    trial_checkpoints.sweep(project_dir)  # what a kill left in trials that had ended
    trials = store.read_trials(project_dir)  # once: the view every count below starts from
    before = project_mod.finished_count(trials)
    display = SearchDisplay(console, req.preset.trials, before,
                            project_mod.best_so_far(trials))
    for note in repairs:  # said even when there is nothing left to run
        display.note(note)
    if clock is not None and clock.note():
        display.note(clock.note())
    if before >= req.preset.trials:
        return SearchOutcome(project_dir, before, before, req.preset.trials, False, True,
                             repairs=repairs, deadline=deadline)
    cache = project_mod.TrialCache(project_dir, trials)
    search_budget = SearchBudget(req.preset.trials, deadline, lambda: req.finalize_reserve(cache))
    with search_runtime(req, signals), store.disk_errors(project_dir):
        tuner = build_tuner(req, display, signals, policy, search_budget, cache)
        stopped = (runner or run_tuner)(tuner, req, display, signals)
    after = project_mod.finished_count(cache.refresh())  # only new records are read
    return SearchOutcome(project_dir, before, after, req.preset.trials, stopped == "time",
                         False, exhausted=stopped is None and after < req.preset.trials,
                         repairs=repairs, deadline=deadline)


def build_tuner(req: SearchRequest, display: SearchDisplay, signals: StopSignals, policy: str,
                search_budget: SearchBudget, cache: project_mod.TrialCache | None = None):
    """The project's tuner and hypermodel: the same in one process, a chief or a worker."""
    p = req.preset
    cache = cache or project_mod.TrialCache(req.project_dir, [])
    seconds, label = _seconds_limit(req, display, policy)
    trial_limits = TrialLimits(p.max_params, seconds, p.prune_after,
                               lambda planned=None: project_mod.val_curves(cache.refresh(),
                                                                           planned),
                               cost_label=label)
    hypermodel = SearchHyperModel(req.space, req.data.num_classes, p.patience,
                                  display.progress, StopCheck(signals.check), policy,
                                  trial_limits, p.fixed, measure_costs=several(p.objectives))
    return make_tuner(hypermodel, p, req.root, req.project, display, signals, search_budget,
                      req.seed, data={"data": req.data.fingerprint(), "digest": req.data.digest()})


def _seconds_limit(req: SearchRequest, display: SearchDisplay, policy: str) -> tuple[float, str]:
    """The seconds an epoch may take: ``max_seconds_per_epoch``, or ``max_epoch_cost`` times
    model1's epoch measured here (``calibration``), whichever is tighter."""
    from fmnist_search import calibration

    p = req.preset
    if not p.max_epoch_cost:
        return p.max_seconds_per_epoch, ""
    reference = calibration.reference_seconds(req.data.x_train, req.data.y_train,
                                              req.data.num_classes, policy)
    seconds = calibration.seconds_limit(p.max_seconds_per_epoch, p.max_epoch_cost, reference)
    text = calibration.describe(p.max_epoch_cost, reference, len(req.data.y_train))
    display.note(text, "cost limit")
    relative = seconds < (p.max_seconds_per_epoch or float("inf"))
    return seconds, (f"{seconds:.1f} s (max_epoch_cost {p.max_epoch_cost:g} x model1 here)"
                     if relative else "")


def run_tuner(tuner, req: SearchRequest, display: SearchDisplay, signals: StopSignals
              ) -> str | None:
    """Train trials in this process until the tuner stops; the reason ("trials", "time") or
    None when the oracle had nothing more to propose."""
    kwargs = {} if req.preset.tuner in MULTI_FIDELITY else {"epochs": req.preset.epochs}
    with _startup_objects_frozen(), display.progress, signals.installed():
        try:
            tuner.search(req.data.x_train, req.data.y_train,
                         validation_data=(req.data.x_val, req.data.y_val), verbose=0, **kwargs)
        except SearchStopped as stop:
            return stop.reason
        except ConsecutiveFailures as exc:
            raise UserError(
                f"The search stopped: 3 trials in a row failed (the last: {exc}). Check the "
                f"space file {req.space.path} for values that cannot train; finished trials are "
                f"kept in {req.project_dir}, and a rerun goes on with new trials."
            ) from exc
        except DiskFull as exc:
            if isinstance(exc.__cause__, store.StateWriteError):  # it names its own file
                raise exc.__cause__ from exc
            raise store.disk_error(req.project_dir, exc) from exc
    return None
