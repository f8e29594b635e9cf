"""Every use of Keras Tuner's internals, in one place, each with the upstream line it relies on.

Keras Tuner's public surface is ``keras_tuner.*`` (tuners, oracles, ``HyperParameters``,
``keras_tuner.engine.trial``) and the hooks ``Tuner.pre_create_trial``, ``on_trial_begin/end``,
``Oracle.populate_space``. What we need beyond it lives here and nowhere else (a test greps
``fmnist_search/`` for ``keras_tuner.src`` and for private attributes of Keras Tuner objects
outside this module). Line numbers are those of keras-tuner 1.4.8 (``keras_tuner/src/...``);
``SUPPORTED`` lists the versions these were checked against, and importing this module with
any other version is refused (``check_version``), so an upgrade fails at start with a message
instead of corrupting a search halfway.

Each patch is scoped: set for the duration of a ``with`` block and restored after it; patches
of a Keras Tuner *object* (the worker's gRPC client) live and die with that object.

Keras Tuner's saved state is a file format as well as code: its files (``oracle.json``,
``tuner0.json``, ``trial.json``; their names are the results store's, ``store``) are found,
read and reconciled by functions here (``oracle_file``, ``read_trial_state``,
``reconcile_oracle_state``, ...), which ``tuning/state.py`` repairs a project with; a test
(``tests/test_kt_compat.py``) fails on any other use of them, or of Keras Tuner's class names,
duck-typed attributes and oracle bookkeeping, outside this module.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fmnist_search.errors import UserError

SUPPORTED = ("1.4",)  # major.minor of keras-tuner tested with this module (1.4.7, 1.4.8)
ALLOW_UNTESTED_ENV = "FMNIST_SEARCH_ALLOW_UNTESTED_KERAS_TUNER"


def installed_version() -> str:
    """Keras Tuner's version, without importing it (and TensorFlow) when it is not yet: the
    command line refuses bad options before TensorFlow loads."""
    module = sys.modules.get("keras_tuner")
    if module is not None:
        return module.__version__
    from importlib.metadata import version

    return version("keras-tuner")


def check_version(installed: str | None = None) -> None:
    """Refuse a Keras Tuner this module was not checked against: its internals may differ."""
    installed = installed or installed_version()
    if ".".join(installed.split(".")[:2]) in SUPPORTED or os.environ.get(ALLOW_UNTESTED_ENV):
        return
    supported = ", ".join(f"{v}.x" for v in SUPPORTED)
    raise UserError(
        f"keras-tuner {installed} is installed, but fmnist-search was tested with keras-tuner "
        f"{supported} only: it relies on internals that change between releases (see "
        "fmnist_search/tuning/kt_compat.py). Install a supported version (pip install "
        f"'keras-tuner>={SUPPORTED[0]},<{_next_minor(SUPPORTED[-1])}'), or set "
        f"{ALLOW_UNTESTED_ENV}=1 to try this one at your own risk.")


def _next_minor(version: str) -> str:
    major, minor = version.split(".")
    return f"{major}.{int(minor) + 1}"


check_version()


# --------------------------------------------------------------------------- saves


@contextmanager
def json_saves(save: Callable[[str, Any], str]) -> Iterator[None]:
    """Route every JSON file Keras Tuner writes through ``save(path, obj) -> text``.

    Why: Keras Tuner rewrites ``oracle.json``, ``tuner0.json`` and ``trial.json`` in place, and
    a kill during the write leaves an empty file. Relies on: ``utils.save_json`` (utils.py:81)
    being looked up at each call by ``Stateful.save`` (engine/stateful.py:63) and by
    ``Tuner._build_and_fit_model``'s build config (engine/tuner.py:237).
    """
    from keras_tuner.src import utils as kt_utils

    original = kt_utils.save_json
    kt_utils.save_json = save
    try:
        yield
    finally:
        kt_utils.save_json = original


# --------------------------------------------------------------------------- output


@contextmanager
def trial_tracebacks(show: bool) -> Iterator[None]:
    """Whether Keras Tuner prints the traceback of each failed trial.

    Why: the reason is one line of our display and record; ``--debug`` shows the rest.
    Relies on: ``config.DEBUG`` (config.py:15), read by ``BaseTuner._try_run_and_update_trial``
    (engine/base_tuner.py:280) at each failure.
    """
    from keras_tuner.src import config as kt_config

    before = kt_config.DEBUG
    kt_config.DEBUG = show
    try:
        yield
    finally:
        kt_config.DEBUG = before


_quiet_lock = threading.Lock()
_quiet_depth = [0]


@contextmanager
def no_condition_print() -> Iterator[None]:
    """Silence the stray ``print`` in ``Parent.to_proto`` (engine/conditions.py:130-131, a
    leftover debug print of 1.4) while the block runs.

    Why: every gRPC conversion of a trial of a space with conditions would print its value in
    the chief's and each worker's output. Set only around those conversions (``servicer``,
    ``send_metadata``, ``quiet_space_updates``): a search in one process converts nothing.
    Nested and concurrent blocks share one patch, put on by the first and taken off by the last.
    """
    from keras_tuner.src.engine import conditions

    with _quiet_lock:
        _quiet_depth[0] += 1
        if _quiet_depth[0] == 1:
            original = conditions.Parent.to_proto

            def to_proto(self):
                with contextlib.redirect_stdout(io.StringIO()):
                    return original(self)

            to_proto.original = original
            conditions.Parent.to_proto = to_proto
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth[0] -= 1
            if _quiet_depth[0] == 0:
                conditions.Parent.to_proto = conditions.Parent.to_proto.original


# --------------------------------------------------------------------------- tuners


@functools.cache
def _hyperband_on() -> type:
    """Keras Tuner's Hyperband tuner on an oracle we built (ours subclasses its oracle).

    Relies on: ``Hyperband.__init__`` only building its ``HyperbandOracle`` before calling
    ``Tuner.__init__`` (tuners/hyperband.py:393-420); its ``run_trial`` and
    ``_build_hypermodel`` (hyperband.py:422-440) are what the tuner needs and are kept.
    """
    import keras_tuner as kt

    def __init__(self, oracle, hypermodel=None, **kwargs):
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)

    return type("HyperbandOn", (kt.Hyperband,), {"__init__": __init__})


def tuner_class(name: str) -> type:
    """The tuner class a search on a given oracle mixes our hooks into.

    ``RandomSearch`` and ``BayesianOptimization`` are ``Tuner`` with their oracle
    (tuners/randomsearch.py:164-174, tuners/bayesian.py:381-394): ``kt.Tuner`` itself, given
    our oracle, is the same tuner. Hyperband's tuner adds its own steps (``_hyperband_on``),
    which BOHB's and MO-TPE's brackets need as well (their oracles are ``HyperbandOracle``s,
    ``tuning.bohb``, ``tuning.motpe``).
    """
    import keras_tuner as kt

    return _hyperband_on() if name in ("hyperband", "bohb", "motpe") else kt.Tuner


class NoTensorBoardImport:
    """Mixed into our tuners: skip Keras Tuner's TensorBoard setup unless one is passed.

    Why: ``Tuner._configure_tensorboard_dir`` (engine/tuner.py:414) imports tensorboard for
    every trial even without a TensorBoard callback, and TensorFlow no longer installs it.
    """

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        if any(type(c).__name__ == "TensorBoard" for c in callbacks):
            super()._configure_tensorboard_dir(callbacks, trial, execution)


# --------------------------------------------------------------------------- epoch checkpoints


def with_fit_argument(kwargs: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    """``Tuner.run_trial``'s keywords with one more for our ``HyperModel.fit`` (the trial's epoch
    checkpoint, ``tuning.trial_checkpoints``).

    Relies on: ``Tuner.run_trial`` passing its keywords, a shallow copy with the callbacks
    added, to ``_build_and_fit_model`` (engine/tuner.py:302-314), which passes them on to
    ``HyperModel.fit`` (tuner.py:233); Hyperband's ``run_trial`` sets ``epochs`` and
    ``initial_epoch`` there the same way (tuners/hyperband.py:422-427). A trial that was running
    when the process died is run again under its own id, so in its own folder, where its
    checkpoint is: ``Oracle.reload`` queues the trials that were ongoing (engine/oracle.py:
    769-772) and ``create_trial`` hands the queue out first (460-466).
    """
    return {**kwargs, name: value}


def best_epoch_saver(callbacks) -> Any | None:
    """Keras Tuner's ``SaveBestEpoch`` among a trial's fit callbacks (None when absent).

    Relies on: ``Tuner.run_trial`` appending one ``SaveBestEpoch`` per trial, last, with the
    trial's ``checkpoint.weights.h5`` as its ``filepath`` (engine/tuner.py:298-301, 312;
    tuner_utils.py:49-60): the weights a Hyperband continuation starts from
    (tuners/hyperband.py:429-439) and ``Tuner.load_model`` loads (tuner.py:319-332).
    """
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

    return next((c for c in callbacks if isinstance(c, SaveBestEpoch)), None)


def fit_trial_id(callbacks) -> str | None:
    """The id of the trial a fit's callbacks belong to (None outside a search).

    Relies on: ``Tuner.run_trial`` appending a ``TunerCallback`` that carries the trial
    (``self.trial``, engine/tuner_utils.py:30-34; engine/tuner.py:310).
    """
    from keras_tuner.src.engine.tuner_utils import TunerCallback

    return next((c.trial.trial_id for c in callbacks if isinstance(c, TunerCallback)), None)


def trial_weights(trial_dir) -> Any | None:
    """The path of the weights Keras Tuner kept of a trial (its best epoch's), or None.

    Relies on: ``Tuner._get_checkpoint_fname`` (engine/tuner.py:445-450), the trial folder's
    ``checkpoint.weights.h5`` under Keras 3 (multi-backend); any ``*.weights.h5`` there is
    taken, the last by name.
    """
    found = sorted(Path(trial_dir).glob("*.weights.h5"))
    return found[-1] if found else None


def save_best_epochs_atomically(saver) -> None:
    """Make this ``SaveBestEpoch`` replace its weights file whole or not at all.

    Why: it writes ``checkpoint.weights.h5`` in place (tuner_utils.py:78-90), so a kill during
    the write left a truncated file, which a resumed trial (which no longer retrains from its
    first epoch and may never beat the best epoch again) would keep, and a Hyperband
    continuation would fail to load. Replaced on this object only, which Keras Tuner makes anew
    for every trial. Its non-chief temporary folders (``backend.io.write_filepath``, for a
    multi-worker ``tf.distribute`` strategy) are left out: a trial here trains in one process.
    """
    from fmnist_search.checkpoints import save_weights_atomically

    saver._save_model = lambda: save_weights_atomically(saver.model, saver.filepath)


def resume_best_epoch(saver, rows: list[dict[str, float]]) -> None:
    """Tell ``SaveBestEpoch`` the best objective value of the epochs a resumed trial restored.

    Why: a fresh one starts from minus infinity (tuner_utils.py:61-64) and saves at the first
    epoch it sees that beats it (73-76), so a trial resumed after its best epoch would
    overwrite that epoch's weights with a worse one's. Relies on: ``best_value``, ``objective``
    (``Objective.get_value``/``better_than``) as used at tuner_utils.py:73-76.
    """
    for row in rows:
        if saver.objective.has_value(row):
            value = saver.objective.get_value(row)
            if saver.objective.better_than(value, saver.best_value):
                saver.best_value = value


# --------------------------------------------------------------------------- the oracle


# Keras Tuner's files in a project folder: their names are the store's (``store``, the one
# owner of the results layout); reading and repairing them is done through the functions
# below. Relies on: ``Oracle._get_oracle_fname`` (engine/oracle.py:774-775, ``oracle.json``),
# ``BaseTuner._get_tuner_fname`` (engine/base_tuner.py:474-475, ``{tuner_id}.json``: ``tuner0``
# for the one tuner of a search) and ``Oracle._save_trial`` (engine/oracle.py:802-805,
# ``trial.json`` in each trial folder).


def oracle_file(project_dir) -> Any:
    """The oracle's saved state of a project (``oracle.json``)."""
    from fmnist_search import store

    return Path(project_dir) / store.ORACLE_JSON


def is_oracle_file(path) -> bool:
    """Whether ``path`` is the oracle's saved state, as Keras Tuner's JSON saves name it."""
    from fmnist_search import store

    return Path(path).name == store.ORACLE_JSON


def tuner_file(project_dir) -> Any:
    """The tuner's saved state of a project (``tuner0.json``; it holds no state of ours)."""
    from fmnist_search import store

    return Path(project_dir) / store.TUNER_JSON


def trial_file(trial_dir) -> Any:
    """A trial's saved state in its folder (``trial.json``)."""
    from fmnist_search import store

    return Path(trial_dir) / store.TRIAL_JSON


def read_trial_state(trial_dir) -> dict[str, Any] | None:
    """A trial's saved state (``Trial.get_state``, engine/trial.py:143-156), None when it is
    missing or unreadable."""
    from fmnist_search import store

    return store.read_json(trial_file(trial_dir))


def log_sampled(trial_dirs) -> set[str]:
    """Hyperparameters sampled on a log scale, as the space saved with the first trial that
    has one says. Relies on: ``HyperParameters.get_config`` (engine/hyperparameters/
    hyperparameters.py:555-562: ``space``, each a ``{"class_name", "config"}`` whose config
    has ``name`` and, for numbers, ``sampling``), saved in ``trial.json`` under
    ``hyperparameters`` (``Trial.get_state``, engine/trial.py:143-146)."""
    names: set[str] = set()
    for trial_dir in trial_dirs:
        trial = read_trial_state(trial_dir) or {}
        for hp in trial.get("hyperparameters", {}).get("space", []):
            config = hp.get("config", {})
            if config.get("sampling") in ("log", "reverse_log"):
                names.add(config.get("name"))
        if names:
            break
    return names


def values_hash(values: dict[str, Any]) -> str:
    """Keras Tuner's hash of a trial's values, as ``oracle.json`` keeps it (``id_to_hash``,
    ``tried_so_far``). Relies on: ``Oracle._compute_values_hash`` (engine/oracle.py:777-780)."""
    import hashlib

    text = "".join(f"{k}={values[k]}" for k in sorted(values))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def is_oracle_state(state: dict | None) -> bool:
    """Whether a parsed ``oracle.json`` is a whole oracle state (not an empty or foreign file).
    Relies on: ``Oracle.get_state`` always saving ``ongoing_trials`` (engine/oracle.py:692-712)."""
    return state is not None and "ongoing_trials" in state


def reconcile_oracle_state(oracle: dict, trials: dict[str, dict], finished: set[str],
                           order: Callable[[str], Any]) -> list[str]:
    """Make a saved oracle state (``oracle.json``, changed in place) agree with the trials
    there are (``trials``: trial id to its ``trial.json`` state; ``finished``: the ids of those
    that ended): references to missing trials dropped, finished ones ended, trials created but
    never registered added and queued to run. Returns the ids queued so, in ``order``.

    Relies on: the keys ``Oracle.get_state`` saves and ``set_state`` reads back
    (engine/oracle.py:692-733: ``ongoing_trials``, ``retry_queue``, ``start_order``,
    ``end_order``, ``run_times``, ``id_to_hash``, ``tried_so_far``), and the hash of a trial's
    values (``values_hash``).
    """
    ongoing = oracle.get("ongoing_trials", {})
    oracle["ongoing_trials"] = {k: v for k, v in ongoing.items()
                                if v in trials and v not in finished}
    oracle["retry_queue"] = [t for t in oracle.get("retry_queue", [])
                             if t in trials and t not in finished]
    oracle["start_order"] = [t for t in oracle.get("start_order", []) if t in trials]
    oracle["end_order"] = [t for t in oracle.get("end_order", []) if t in trials]
    run_times = oracle.setdefault("run_times", {})
    hashes = oracle.setdefault("id_to_hash", {})
    tried = oracle.setdefault("tried_so_far", [])
    queued = []
    for tid in sorted(trials, key=order):
        state = trials[tid]
        if tid not in oracle["start_order"]:
            oracle["start_order"].append(tid)
            digest = values_hash(state["hyperparameters"].get("values", {}))
            hashes[tid] = digest
            if digest not in tried:
                tried.append(digest)
            if tid not in finished:
                oracle["retry_queue"].append(tid)
                queued.append(tid)
        if tid in finished and tid not in oracle["end_order"]:
            oracle["end_order"].append(tid)
            run_times[tid] = max(1, int(run_times.get(tid, 0)))
    return queued


@contextmanager
def oracle_locked(oracle) -> Iterator[None]:
    """Keras Tuner's per-oracle lock, taken as its ``synchronized`` takes it (by thread name),
    but released even when the block raises (its decorator would keep it held forever).
    Relies on: ``LOCKS``/``THREADS`` (engine/oracle.py:39-41) and ``synchronized`` (44-100)."""
    from keras_tuner.src.engine.oracle import LOCKS, THREADS

    name = threading.current_thread().name
    mine = THREADS[oracle] == name
    if not mine:
        LOCKS[oracle].acquire()
        THREADS[oracle] = name
    try:
        yield
    finally:
        if not mine:
            THREADS[oracle] = None
            LOCKS[oracle].release()


def ongoing_trials(oracle) -> dict[str, Any]:
    """The trials running now, by the id of the tuner (worker) each was handed to: the oracle's
    own dict, read (change it only through ``release_worker``, under ``oracle_locked``).
    Relies on: ``Oracle.ongoing_trials`` (engine/oracle.py:338), filled by ``create_trial``
    (453-463, 494) and emptied by ``end_trial`` (597-599)."""
    return oracle.ongoing_trials


def release_worker(oracle, tuner_id: str) -> None:
    """Take a worker's running trial off the oracle's books and forget the worker, as if it had
    never asked (call under ``oracle_locked``; queue the trial with ``queue_retry``).
    Relies on: ``Oracle.ongoing_trials`` and ``tuner_ids`` (engine/oracle.py:338, 348), which
    ``create_trial`` fills (453-463) and which decide when a chief may exit (``exit_chief``,
    distribute/oracle_chief.py:71-73)."""
    oracle.ongoing_trials.pop(tuner_id)
    oracle.tuner_ids.discard(tuner_id)


def local_trials(oracle) -> dict[str, Any] | None:
    """The oracle's trials by id, or None where it is a worker's client of the chief's oracle,
    which holds none. Relies on: ``Oracle.trials`` (engine/oracle.py:336) and
    ``OracleClient.__getattr__`` refusing every attribute but four
    (distribute/oracle_client.py:51-60)."""
    return getattr(oracle, "trials", None)


def retry_queue(oracle) -> tuple[str, ...]:
    """The trials the oracle hands out again before any new one. Relies on:
    ``Oracle._retry_queue`` (engine/oracle.py:346, popped by ``create_trial`` at 460-461)."""
    return tuple(oracle._retry_queue)


def queue_retry(oracle, trial_id: str) -> None:
    """Queue a trial to be handed out again (call under ``oracle_locked``)."""
    oracle._retry_queue.append(trial_id)


def unqueue_retry(oracle, trial_id: str) -> None:
    """Take a trial that has ended off the retry queue (call under ``oracle_locked``)."""
    oracle._retry_queue[:] = [t for t in oracle._retry_queue if t != trial_id]


def trial_copy(trial):
    """A trial copied as the chief's servicer would receive it from a worker (``EndTrial``,
    distribute/oracle_chief.py:55-58): through its gRPC form, quietly (``no_condition_print``).
    Relies on: ``Trial.to_proto``/``from_proto`` (engine/trial.py:176-205)."""
    from keras_tuner.engine.trial import Trial

    with no_condition_print():
        return Trial.from_proto(trial.to_proto())


def forget_metrics(trial) -> None:
    """Drop a trial's reported metrics, so that a retry reports its own, not on top of a lost
    attempt's. Relies on: ``MetricsTracker`` (engine/metrics_tracking.py:188), which is what
    ``Trial.__init__`` sets (engine/trial.py:117)."""
    from keras_tuner.src.engine.metrics_tracking import MetricsTracker

    trial.metrics = MetricsTracker()


# --------------------------------------------------------------------------- gRPC


def add_servicer(server, oracle, create: Callable, update: Callable, end: Callable) -> None:
    """Keras Tuner's oracle servicer on ``server``, with trial creation, reports and ending
    routed through our functions: ``create(tuner_id) -> Trial``, ``update(trial_id, metrics,
    step, context) -> Trial | None``, ``end(trial, context)``.

    Relies on: ``OracleServicer`` (distribute/oracle_chief.py:27-67) and the generated gRPC
    service (``protos.get_service``/``get_service_grpc``, protos/__init__.py:31-36).
    """
    from keras_tuner.src import protos

    protos.get_service_grpc().add_OracleServicer_to_server(
        servicer(oracle, create, update, end), server)


def servicer(oracle, create: Callable, update: Callable, end: Callable):
    """``add_servicer``'s servicer: each answer converted to gRPC with ``no_condition_print``
    (the only place a chief converts trials and spaces: ``OracleServicer``'s ``GetSpace``,
    ``GetTrial`` and ``GetBestTrials``, distribute/oracle_chief.py:32-67, and ours below)."""
    from keras_tuner.engine.trial import Trial, TrialStatus
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    service = protos.get_service()

    class Servicer(OracleServicer):
        def GetSpace(self, request, context):  # noqa: N802 (gRPC's method name)
            with no_condition_print():
                return super().GetSpace(request, context)

        def GetTrial(self, request, context):  # noqa: N802
            with no_condition_print():
                return super().GetTrial(request, context)

        def GetBestTrials(self, request, context):  # noqa: N802
            with no_condition_print():
                return super().GetBestTrials(request, context)

        def CreateTrial(self, request, context):  # noqa: N802
            trial = create(request.tuner_id)
            with no_condition_print():
                return service.CreateTrialResponse(trial=trial.to_proto())

        def UpdateTrial(self, request, context):  # noqa: N802
            trial = update(request.trial_id, request.metrics, request.step, context)
            if trial is None:
                trial = Trial(oracle.get_space(), trial_id=request.trial_id,
                              status=TrialStatus.FAILED)
            with no_condition_print():
                return service.UpdateTrialResponse(trial=trial.to_proto())

        def EndTrial(self, request, context):  # noqa: N802
            end(Trial.from_proto(request.trial), context)
            return service.EndTrialResponse()

    return Servicer(oracle)


@contextmanager
def client_timeout(seconds: float) -> Iterator[None]:
    """How long a worker's call to the chief may wait. Relies on: ``oracle_client.TIMEOUT``
    (distribute/oracle_client.py:31), read by every call of ``OracleClient`` (66-122)."""
    from keras_tuner.src.distribute import oracle_client

    before = oracle_client.TIMEOUT
    oracle_client.TIMEOUT = seconds
    try:
        yield
    finally:
        oracle_client.TIMEOUT = before


def pace_idle_answers(client, pauses: tuple[float, float]) -> None:
    """Pause after each IDLE answer from the chief, longer each time up to ``pauses[1]``.

    Why: Hyperband answers IDLE while a bracket waits for its running trials, and Keras
    Tuner's worker asks again at once (engine/base_tuner.py:229-231), in a loop that keeps a
    core busy. Relies on: ``OracleClient.create_trial`` (distribute/oracle_client.py:80) being
    what the worker's tuner calls; replaced on this client object only.
    """
    from keras_tuner.engine.trial import TrialStatus

    ask = client.create_trial
    pause = [pauses[0]]

    def create_trial(tuner_id):
        trial = ask(tuner_id)
        if trial.status == TrialStatus.IDLE:
            time.sleep(pause[0])
            pause[0] = min(pause[0] * 2, pauses[1])
        else:
            pause[0] = pauses[0]
        return trial

    client.create_trial = create_trial


def send_metadata(client, metadata: tuple[tuple[str, str], ...]) -> None:
    """Send ``metadata`` with every report (UpdateTrial, EndTrial) of this client.

    Why: the chief tells a late report of a worker it presumed dead from its successor's.
    Relies on: ``OracleClient.update_trial``/``end_trial`` (distribute/oracle_client.py:88-108)
    and its ``stub``; replaced on this client object only.
    """
    from keras_tuner.engine.trial import Trial
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_client

    service = protos.get_service()

    def update_trial(trial_id, metrics, step=0):
        request = service.UpdateTrialRequest(trial_id=trial_id, metrics=metrics, step=step)
        response = client.stub.UpdateTrial(request, wait_for_ready=True,
                                           timeout=oracle_client.TIMEOUT, metadata=metadata)
        return Trial.from_proto(response.trial)

    def end_trial(trial):
        with no_condition_print():
            request = service.EndTrialRequest(trial=trial.to_proto())
        client.stub.EndTrial(request, wait_for_ready=True, timeout=oracle_client.TIMEOUT,
                             metadata=metadata)

    client.update_trial = update_trial
    client.end_trial = end_trial
    quiet_space_updates(client)


def quiet_space_updates(client) -> None:
    """Convert the space a worker sends the chief with ``no_condition_print``.

    Relies on: ``OracleClient.update_space`` (distribute/oracle_client.py:70-77) converting it
    (``HyperParameters.to_proto``); the worker's other conversion, ``end_trial``'s, is ours
    (``send_metadata``). Replaced on this client object only.
    """
    update_space = client.update_space

    def quiet(hyperparameters):
        with no_condition_print():
            return update_space(hyperparameters)

    client.update_space = quiet


# --------------------------------------------------------------------------- Hyperband brackets


def hyperband_brackets(oracle) -> list[dict[str, Any]]:
    """A ``HyperbandOracle``'s open brackets, those whose trials have all ended taken off first
    (``tuning.promotions`` reads and extends them).

    Relies on: ``HyperbandOracle._brackets``, a list of ``{"bracket_num", "rounds"}``, each round
    a list of ``{"past_id", "id"}`` (tuners/hyperband.py:141, 225-231), and
    ``_remove_completed_brackets`` (239-249), as ``populate_space`` calls it first (159).
    """
    oracle._remove_completed_brackets()
    return oracle._brackets


def round_size(oracle, bracket_num: int, round_num: int) -> int:
    """How many trials a round of a bracket holds. Relies on: ``HyperbandOracle._get_size``
    (tuners/hyperband.py:278-287)."""
    return oracle._get_size(bracket_num, round_num)


def round_epochs(oracle, bracket_num: int, round_num: int) -> int:
    """How many epochs a round of a bracket trains to. Relies on:
    ``HyperbandOracle._get_epochs`` (tuners/hyperband.py:289-292)."""
    return oracle._get_epochs(bracket_num, round_num)
