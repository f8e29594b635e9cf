"""A distributed worker: Keras Tuner's own worker tuner, on a project the chief already opened.

A worker learns the search from the running chief's ``workers/chief.json`` (the shape of
``run.json``, with this run's preset, precision and versions: a resume with new limits or
after an upgrade is what the chief has, not what the project was created with), so it is
started with only the chief's address and the project. It trains what the chief hands it with
the same hypermodel and records as a single-process search (``search.build_tuner``), and writes
a heartbeat (``workers/<id>.json``: its trial and epoch) every few seconds, which is how the
chief tells a dead worker from a slow one.

Before it asks for a trial it checks that it would train the chief's search and not another:
its code and library versions, the space file it finds here and the data it loads here must be
the chief's; otherwise it is refused, with what differs.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from fmnist_search import backend, store
from fmnist_search.errors import UserError
from fmnist_search.reproducibility import op_determinism
from fmnist_search.tuning.display import SearchDisplay
from fmnist_search.tuning.distributed import SENDER_KEY
from fmnist_search.tuning.network import CHIEF_TIMEOUT, HEARTBEAT_EVERY, Address
from fmnist_search.tuning.signals import StopSignals

PARENT_ENV = "FMNIST_SEARCH_PARENT_PID"  # set by a local supervisor: die with it
PARENT_CHECK = 0.25  # seconds between checks that the supervisor lives
ORPHAN_GRACE = 0.75  # seconds an orphan gets to stop cleanly (SIGTERM) before it exits
IDLE_PAUSE = (0.2, 5.0)  # Hyperband's "wait for this bracket": first and longest pause


@dataclass
class WorkerRequest:
    root: Path
    project: str
    chief: Address
    worker_id: str
    data_dir: str | None = None
    threads: int | None = None  # TensorFlow's threads (CPU workers share the cores)
    cpus: tuple[int, ...] | None = None  # cores this worker is pinned to
    debug: bool = False
    chief_timeout: float = CHIEF_TIMEOUT  # how long a call to the chief may wait for an answer

    @property
    def project_dir(self) -> Path:
        return store.project_dir(self.root, self.project)

    @property
    def chief_json(self) -> Path:
        return self.project_dir / store.WORKERS / store.CHIEF_JSON


# --------------------------------------------------------------------------- is it the same?


def version_differences(recorded: dict[str, str], here: dict[str, str]) -> list[str]:
    """What differs between the project's versions and this machine's (Python by minor)."""
    out = []
    for key, value in recorded.items():
        mine = here.get(key)
        if key == "python" and mine is not None:
            value, mine = ".".join(value.split(".")[:2]), ".".join(mine.split(".")[:2])
        if mine is not None and mine != value:
            out.append(f"{key} {mine} here, {value} in the project")
    return out


def _wait_for_chief(wreq: WorkerRequest, signals: StopSignals) -> dict[str, Any]:
    """The chief's session (``workers/chief.json``): the search as the running chief has it
    (the project's identity, and this run's preset, precision and versions)."""
    path = wreq.chief_json
    deadline = time.monotonic() + wreq.chief_timeout
    told = False
    while (record := (store.read_json(path) or {}).get("session")) is None:
        signals.check()
        if not told:
            print(f"waiting for the chief to create {path} ...", flush=True)
            told = True
        if time.monotonic() > deadline:
            raise UserError(
                f"No chief for project '{wreq.project}' in {wreq.root} ({path} not found after "
                f"{wreq.chief_timeout:g} s, --chief-timeout). Start the chief first (`fmnist-search chief`), and "
                "give every worker the same --results-dir, on a file system they all share.")
        time.sleep(1.0)
    return record


def check_session(record: dict[str, Any], wreq: WorkerRequest):
    """The cheap checks, before this worker shows itself to the chief: the same code and
    libraries, and the same space file here. Returns the space."""
    from fmnist_search import runs

    where = wreq.chief_json
    differ = version_differences(record.get("versions", {}), runs.versions())
    if differ:
        raise UserError(f"This worker cannot join project '{wreq.project}': its versions differ "
                        f"from the chief's in {where} ({'; '.join(differ)}). Install the same "
                        "fmnist-search checkout and packages on every machine.")
    return _same_space(record, record.get("identity", {}), where)


def request_from_session(record: dict[str, Any], sp, wreq: WorkerRequest,
                         prepare: Callable) -> Any:
    """The chief's search request, rebuilt here with data loaded here (refused if it differs)."""
    from fmnist_search import dataset, presets
    from fmnist_search.tuning.search_loop import SearchRequest

    where = wreq.chief_json
    preset = presets.from_dict(record["preset"])
    d = record["data"]
    ds = prepare(dataset.DataSettings.from_record(d, wreq.data_dir, subset=d["subset"]))
    here = ds.fingerprint()
    changed = sorted(k for k in set(d) | set(here) if d.get(k) != here.get(k))
    if record.get("data_digest") not in (None, ds.digest()):
        changed.append("the images themselves (data_digest)")
    if changed:
        raise UserError(f"This worker cannot join project '{wreq.project}': the data it loads "
                        f"here differs from the chief's ({', '.join(changed)} differ; see "
                        f"{where}). Give it the same data files (--data-dir, or the same CSV "
                        "paths) as the chief.")
    return SearchRequest(sp, preset, ds, wreq.root, wreq.project,
                         seed=record["identity"]["seed"], command=record.get("command", ""),
                         debug=wreq.debug)


def _same_space(record: dict[str, Any], identity: dict[str, Any], where: Path):
    from fmnist_search import space

    candidates = [record.get("space_path"), record.get("space_name")]
    for name in [c for c in candidates if c]:
        if name == record.get("space_path") and not Path(name).is_file():
            continue
        try:
            sp = space.load_named(name)
        except UserError:
            continue
        if sp.text != identity.get("space"):
            raise UserError(
                f"This worker cannot join: its space file {sp.path} differs from the space "
                f"the project was started with (recorded in {where}). Use the same "
                "checkout of the spaces on every machine.")
        return sp
    raise UserError(f"This worker cannot join: the project's space ({record.get('space_name')}, "
                    f"{record.get('space_path')}) was not found on this machine. Use the same "
                    "checkout of the spaces on every machine.")


def check_id_free(project_dir: Path, worker_id: str) -> None:
    """Two live workers under one id would be handed the same trial: refuse the second."""
    beat = store.read_json(store.worker_file(project_dir, worker_id, ".json")) or {}
    if beat.get("status") in (None, "stopped") or beat.get("pid") == os.getpid():
        return
    if beat.get("host") == socket.gethostname():
        alive = pid_alive(int(beat.get("pid", 0)))
    else:
        alive = time.time() - float(beat.get("time", 0)) < 6 * HEARTBEAT_EVERY
    if alive:
        raise UserError(
            f"Worker id {worker_id!r} is in use in project '{project_dir.name}' (process "
            f"{beat.get('pid')} on {beat.get('host')}). Give each worker its own --worker-id "
            "(and the same one when you restart it, so it resumes its trial).")


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with suppress(OSError):  # a zombie is dead: its parent has not reaped it yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1][:1] != "Z"
    return True


# --------------------------------------------------------------------------- heartbeat


def supervisor_pid() -> int | None:
    """The local supervisor's process id (``run --workers``), None for a worker started by hand."""
    value = os.environ.get(PARENT_ENV, "")
    return int(value) if value.isdigit() else None


_watching: set[int] = set()
_orphaned = threading.Event()


def watch_parent(parent: int | None) -> None:
    """Stop this worker when its supervisor dies (even ``kill -9``): within ``PARENT_CHECK``
    it is told SIGTERM (as Ctrl-C: a trial in progress runs again later), and after
    ``ORPHAN_GRACE`` it exits whatever it was doing (a call to the dead chief would wait for
    minutes; every state file is replaced whole, so an exit loses nothing). Started before
    TensorFlow loads, so a worker orphaned while it starts stops too."""
    if not parent or parent in _watching:
        return
    _watching.add(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK)
        _orphaned.set()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(ORPHAN_GRACE)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def exit_if_orphaned(status: int) -> None:
    """An orphan that stopped cleanly exits at once: the interpreter's own shutdown, with
    TensorFlow loaded, takes seconds (measured 3-4 s), and the watch thread cannot run then."""
    if _orphaned.is_set():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)



class Heartbeat:
    """``workers/<id>.json``, rewritten every few seconds by a thread: its count changing is
    what tells the chief this worker is alive; its trial and epoch feed the chief's display."""

    def __init__(self, project_dir: Path, worker_id: str, every: float = HEARTBEAT_EVERY,
                 parent: int | None = None):
        self.path = store.worker_file(project_dir, worker_id, ".json")
        self.every = every
        self.count = 0
        self.progress = None  # the worker's rich Progress, where its epoch bar lives
        self.state: dict[str, Any] = {"worker": worker_id, "host": socket.gethostname(),
                                      "pid": os.getpid(), "parent": parent,
                                      "status": "starting", "trial": None}
        self._stop = threading.Event()
        self.discarded = False

    def beat(self) -> None:
        state = dict(self.state)
        if state.get("trial") and self.progress is not None:
            epochs = [t for t in self.progress.tasks if t.description.strip() == "epochs"]
            if epochs:
                state.update(epoch=int(epochs[-1].completed), epochs=epochs[-1].total)
        self.count += 1
        with suppress(OSError, UserError):  # a full disk is reported by the trial's own writes
            self.path.parent.mkdir(parents=True, exist_ok=True)
            store.write_json(self.path, {**state, "count": self.count, "time": time.time()})

    def discard(self) -> None:
        self._stop.set()
        self.discarded = True

    @contextmanager
    def running(self, parent_pid: int | None) -> Iterator[Heartbeat]:
        self.beat()
        thread = threading.Thread(target=self._loop, args=(parent_pid,), daemon=True,
                                  name="heartbeat")
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=5)
            if self.discarded:
                with suppress(OSError):
                    self.path.unlink()
            else:
                self.state.update(status="stopped", trial=None)
                self.beat()

    def _loop(self, parent_pid: int | None) -> None:
        watch_parent(parent_pid)  # started by `fmnist-search worker` already; a library call
        while not self._stop.wait(self.every):
            self.beat()


class WorkerDisplay(SearchDisplay):
    """The worker's own log, which also keeps its heartbeat's trial current."""

    def __init__(self, console: Console, heartbeat: Heartbeat) -> None:
        super().__init__(console, 0, 0)
        self.heartbeat = heartbeat
        heartbeat.progress = self.progress
        heartbeat.state["status"] = "waiting for a trial"

    def trial_begin(self, trial_id: str, number: int, name: str, where: str = "") -> None:
        self.heartbeat.state.update(trial=trial_id, architecture=name, status="training")
        self.heartbeat.beat()
        self.console.print(f"[bold]trial {trial_id}[/] {name}")

    def trial_end(self, record: dict[str, Any], label: str = "") -> None:
        super().trial_end(record, label)
        self.heartbeat.state.update(trial=None, status="waiting for a trial")
        self.heartbeat.beat()


# --------------------------------------------------------------------------- the worker


@contextmanager
def id_lock(project_dir: Path, worker_id: str) -> Iterator[None]:
    """Held for the worker's life: a second live worker under the same id (on this machine,
    or on any sharing the results directory where its file system has locks) is refused.
    The file goes with the worker (refused or done); only a killed worker leaves it."""
    import fcntl

    path = store.worker_file(project_dir, worker_id, ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"Worker id {worker_id!r} is in use in project '{project_dir.name}' by another "
                "live worker. Give each worker its own --worker-id (and the same one when you "
                "restart it, so it resumes its trial).") from None
        try:
            yield
        finally:  # removed while still held: a worker opening it meanwhile is refused
            with suppress(OSError):
                path.unlink()


def configure_devices(threads: int | None, cpus: tuple[int, ...] | None) -> None:
    """Pin this process to its share of the cores, before TensorFlow starts its thread pools."""
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
    if threads:
        backend.set_threads(threads)


def run_worker(wreq: WorkerRequest, console: Console, prepare: Callable,
               signals: StopSignals | None = None) -> None:
    """Join the chief's search and train what it hands out, until it says stop."""
    import keras

    from fmnist_search import training

    signals = signals or StopSignals()
    configure_devices(wreq.threads, wreq.cpus)
    session = _wait_for_chief(wreq, signals)
    sp = check_session(session, wreq)
    check_id_free(wreq.project_dir, wreq.worker_id)
    parent = supervisor_pid()
    heartbeat = Heartbeat(wreq.project_dir, wreq.worker_id, parent=parent)
    # The heartbeat starts before the slow part (data, TensorFlow): a restarted worker that
    # is still starting is not taken for a dead one.
    with id_lock(wreq.project_dir, wreq.worker_id), heartbeat.running(parent):
        try:
            req = request_from_session(session, sp, wreq, prepare)
        except UserError:
            heartbeat.discard()  # refused: it never was a worker of this search
            raise
        os.environ.update(KERASTUNER_TUNER_ID=wreq.worker_id,
                          KERASTUNER_ORACLE_IP=wreq.chief.host,
                          KERASTUNER_ORACLE_PORT=str(wreq.chief.port))
        keras.utils.set_random_seed(req.seed)
        op_determinism("on" if req.preset.deterministic else "off")  # CPU kernels already are
        policy = training.choose_policy(req.preset.precision)  # the builder applies it
        display = WorkerDisplay(console, heartbeat)
        console.print(f"{wreq.worker_id}: joining project {wreq.project} at chief {wreq.chief}")
        _train(wreq, req, display, signals, policy)
    console.print(f"{wreq.worker_id}: the chief says the search is done")


def _train(wreq: WorkerRequest, req, display: WorkerDisplay, signals: StopSignals,
           policy: str) -> None:
    import grpc

    from fmnist_search.tuning import kt_compat
    from fmnist_search.tuning.search_loop import build_tuner, run_tuner, search_runtime
    from fmnist_search.tuning.stop_rule import SearchBudget

    with search_runtime(req, signals, wreq.chief_timeout), store.disk_errors(req.project_dir):
        try:
            tuner = build_tuner(req, display, signals, policy, SearchBudget(None))
            # Hyperband's IDLE answers are paced (its worker would ask again at once, a busy
            # core); every report names this worker, so a late one of a worker presumed dead
            # is told from its successor's.
            kt_compat.pace_idle_answers(tuner.oracle, IDLE_PAUSE)
            kt_compat.send_metadata(tuner.oracle, ((SENDER_KEY, wreq.worker_id),))
            run_tuner(tuner, req, display, signals)
        except grpc.RpcError as exc:
            raise UserError(
                f"The chief at {wreq.chief} did not answer ({exc.code().name} after up to "
                f"{wreq.chief_timeout:.0f} s): it has stopped or cannot be reached. What this "
                "worker finished is saved; start it again once the chief runs.") from exc
