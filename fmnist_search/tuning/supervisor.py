"""``run --workers N`` and ``chief``: the chief in this process, and (for ``run``) N local workers.

The chief serves the oracle (``distributed``); each local worker is ``fmnist-search worker`` in a
child process with its own share of the machine (``plan_devices``): a GPU each, K workers to a
GPU with ``--workers-per-gpu K``, or on a CPU the cores divided between them. A worker that dies
is started again under the same id, so Keras Tuner hands it the same trial; the chief ends a
trial that keeps killing its worker as FAILED. Ctrl-C, SIGTERM or the end of the search stop
every worker (SIGTERM, then SIGKILL after a grace period), and a worker whose supervisor dies
(even ``kill -9``) stops itself (``worker.Heartbeat``): no process is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from fmnist_search import backend, store
from fmnist_search.errors import UserError
from fmnist_search.tuning.display import RecordWatcher
from fmnist_search.tuning.distributed import (
    Chief,
    security_warning,
    serve,
    start_server,
    write_chief_json,
)
from fmnist_search.tuning.network import HEARTBEAT_TIMEOUT, LOOPBACK, Address
from fmnist_search.tuning.worker import PARENT_ENV

# bench_workers.py, measured on this project's 2-core machine (docs/distributed.md).
WORKERS_MEASURED = "on 2 cores --workers 2 ran 106-112 trials/h against 115-118 in one process"

STOP_WAIT = 30.0  # seconds workers get to stop before SIGKILL
MAX_RESTARTS = 5  # deaths of one worker in a row, with no trial ending, before giving up


@dataclass(frozen=True)
class WorkerDevice:
    """One worker's share of the machine."""

    label: str
    env: dict[str, str] = field(default_factory=dict)
    threads: int | None = None
    cpus: tuple[int, ...] | None = None


def visible_gpus() -> list[str]:
    """The GPUs this process may use, without starting CUDA here (the chief trains nothing)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU")]


def plan_devices(workers: int, per_gpu: int, gpus: list[str], cpus: list[int]
                 ) -> list[WorkerDevice]:
    """A GPU for every ``per_gpu`` workers; with no GPU, the cores divided into equal groups."""
    if gpus:
        if workers > len(gpus) * per_gpu:
            raise UserError(
                f"--workers {workers} needs more GPUs than the {len(gpus)} visible "
                f"({', '.join(gpus)}) at --workers-per-gpu {per_gpu}: use --workers "
                f"{len(gpus) * per_gpu} or less, or raise --workers-per-gpu.")
        env: dict[str, str] = {}
        backend.share_gpu_memory(env, shared=per_gpu > 1)
        return [WorkerDevice(f"GPU {gpus[i // per_gpu]}",
                             {**env, "CUDA_VISIBLE_DEVICES": gpus[i // per_gpu]})
                for i in range(workers)]
    cpus = sorted(cpus) or [0]
    share = max(1, len(cpus) // workers)
    plans = []
    for i in range(workers):
        mine = tuple(cpus[(i * share + j) % len(cpus)] for j in range(share))
        plans.append(WorkerDevice(f"CPU {','.join(map(str, mine))}",
                                  {"CUDA_VISIBLE_DEVICES": ""}, threads=len(mine), cpus=mine))
    return plans


def available_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


QUICK_DEATH = 60.0  # a worker dying sooner than this after its start counts toward MAX_RESTARTS


@dataclass
class _Worker:
    worker_id: str
    device: WorkerDevice
    proc: subprocess.Popen | None = None
    deaths_in_a_row: int = 0
    started: float = 0.0
    done: bool = False


class LocalWorkers:
    """N ``fmnist-search worker`` child processes: started, watched, restarted, stopped."""

    def __init__(self, devices: list[WorkerDevice], address: Address, root: Path, project: str,
                 extra: list[str], console: Console) -> None:
        self.address = address
        self.root = root
        self.project = project
        self.extra = extra
        self.console = console
        self.workers = [_Worker(f"worker-{i + 1}", d) for i, d in enumerate(devices)]
        self.stopping = False

    def start(self, chief: Chief) -> None:
        for w in self.workers:
            self._spawn(w, chief)
        shares = ", ".join(f"{w.worker_id} on {w.device.label}" for w in self.workers)
        self.console.print(f"Started {len(self.workers)} workers ({shares}); their output is in "
                           f"{store.project_dir(self.root, self.project) / store.WORKERS}")

    def _spawn(self, w: _Worker, chief: Chief) -> None:
        cmd = [sys.executable, "-m", "fmnist_search", "worker", "--chief", str(self.address),
               "--project", self.project, "--results-dir", str(self.root),
               "--worker-id", w.worker_id, *self.extra]
        if w.device.threads:
            cmd += ["--threads", str(w.device.threads)]
        if w.device.cpus:
            cmd += ["--cpus", ",".join(map(str, w.device.cpus))]
        log = store.worker_file(store.project_dir(self.root, self.project), w.worker_id, ".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **w.device.env, PARENT_ENV: str(os.getpid())}
        with open(log, "a") as out:
            w.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, env=env)
        w.started = time.monotonic()

    def poll(self, chief: Chief) -> bool:
        """Restart the dead; True once every worker has exited for good."""
        for w in self.workers:
            rc = None if w.done or w.proc is None else w.proc.poll()
            if rc is None and chief.presumed_dead(w.worker_id):  # alive but hung: its trial
                _signal(w.proc, signal.SIGKILL)  # has gone to another worker; start it afresh
                rc = w.proc.wait()
            if rc is None:
                continue
            if rc == 0 or self.stopping or chief.signals.signum is not None \
                    or chief.was_told_to_stop(w.worker_id):  # its work was over anyway
                w.done = True
            elif rc == 2:
                chief.worker_failed(f"{w.worker_id} stopped: {_last_error(self._log(w))}")
                w.done = True
            else:
                self._restart(w, chief, _describe(rc))
        return chief.fatal is not None or all(w.done for w in self.workers)

    def _restart(self, w: _Worker, chief: Chief, why: str) -> None:
        quick = time.monotonic() - w.started < QUICK_DEATH
        w.deaths_in_a_row = w.deaths_in_a_row + 1 if quick else 1
        if w.deaths_in_a_row > MAX_RESTARTS:
            chief.worker_failed(f"{w.worker_id} died {w.deaths_in_a_row} times in a row, each "
                                f"within {QUICK_DEATH:.0f} s of its start ({why}); see "
                                f"{self._log(w)}")
            w.done = True
            return
        self.console.print(f"[yellow]{w.worker_id} {escape(why)}: started again[/]")
        chief.expect_restart(w.worker_id, why)
        self._spawn(w, chief)

    def _log(self, w: _Worker) -> Path:
        return store.worker_file(store.project_dir(self.root, self.project), w.worker_id,
                                  ".log")

    def stop(self) -> None:
        """SIGTERM to every live worker, SIGKILL to any still running after ``STOP_WAIT``."""
        self.stopping = True
        alive = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for proc in alive:
            _signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        for proc in alive:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(proc, signal.SIGKILL)
                proc.wait()


def stop_orphans(project_dir: Path) -> list[int]:
    """Stop this machine's workers of the project whose supervisor is gone (killed with
    ``kill -9`` a moment ago): they stop by themselves within seconds, but a rerun must not
    start beside them. Workers of a live supervisor or of another machine are left alone."""
    from fmnist_search.tuning.worker import pid_alive

    folder = project_dir / store.WORKERS
    stopped = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        beat = store.read_json(path) or {}
        pid, parent = int(beat.get("pid") or 0), int(beat.get("parent") or 0)
        if (beat.get("host") != socket.gethostname() or beat.get("status") == "stopped"
                or not parent or pid_alive(parent) or not pid_alive(pid)):
            continue
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stopped.append(pid)
    return stopped


def _signal(proc: subprocess.Popen, signum: int) -> None:
    with suppress(ProcessLookupError):
        proc.send_signal(signum)


def _describe(rc: int) -> str:
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with status {rc}"


def _last_error(log: Path) -> str:
    try:
        text = log.read_text(errors="replace")[-4000:]
    except OSError:
        return f"see {log}"
    at = text.rfind("error:")
    tail = text[at + len("error:"):] if at >= 0 else text[-600:]
    return " ".join(tail.split()) + f" (its log: {log})"


# --------------------------------------------------------------------------- the runner


@dataclass
class DistributedOptions:
    workers: int = 0  # local workers to start (0: only the chief; workers join by hand)
    workers_per_gpu: int = 1
    bind: str = LOOPBACK
    port: int = 0
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    worker_extra: list[str] = field(default_factory=list)  # options passed on to each worker


def chief_runner(opts: DistributedOptions, console: Console):
    """A ``search.Runner`` that serves the tuner's oracle instead of training in-process."""

    def run(tuner, req, display, signals) -> str | None:
        tuner.oracle.verbose = 0  # its display would print each trial's table here
        tuner.save()  # tuner0.json: what a resume (in one process or distributed) reloads
        for pid in stop_orphans(req.project_dir):
            console.print(f"stopped worker process {pid} left by an earlier run")
        chief = Chief(tuner, display, signals, opts.heartbeat_timeout)
        server, address = start_server(chief, Address(opts.bind, opts.port))
        workers = None
        try:
            public = _public_address(address)
            session = {**req.run_record(tuner.hypermodel.policy), "identity": req.identity()}
            write_chief_json(req.project_dir, address, str(public), session)
            if not address.loopback:
                console.print(f"[bold yellow]warning[/]: {escape(security_warning(address))}")
            if opts.workers:
                devices = plan_devices(opts.workers, opts.workers_per_gpu, visible_gpus(),
                                       available_cpus())
                workers = LocalWorkers(devices, address, req.root, req.project,
                                       opts.worker_extra, console)
            else:
                console.print(
                    f"Chief of project [bold]{req.project}[/] listening on {address}. Start "
                    f"workers (on machines that share {req.root}) with:\n  fmnist-search worker "
                    f"--chief {public} --project {req.project} --results-dir {req.root}")
            watcher = RecordWatcher(display, req.project_dir)
            with display.progress, signals.installed():
                if workers:
                    workers.start(chief)
                supervise = (lambda: workers.poll(chief)) if workers else chief.done
                reason = serve(chief, supervise, watcher.tick)
                watcher.tick()
                return reason
        finally:
            if workers:
                workers.stop()
            server.stop(grace=2).wait()

    return run


def _public_address(address: Address) -> Address:
    """What a worker on another machine should dial: the bound address, or this host's name
    when bound to every interface."""
    if address.host in ("0.0.0.0", "::"):
        return Address(socket.gethostname(), address.port)
    return address


def worker_count(requested: int, trials: int, per_gpu: int, gpus: list[str],
                 cpus: list[int]) -> tuple[int, list[str]]:
    """How many local workers to start, and warnings: never more than the trials; more than
    the cores (no GPU) is allowed with a warning; more than GPUs x ``per_gpu`` is refused."""
    warnings = []
    count = min(requested, trials)
    if count < requested:
        warnings.append(f"--workers {requested} is more than the {trials} trial(s) of the "
                        f"search: starting {count}.")
    if gpus:
        plan_devices(count, per_gpu, gpus, cpus)  # refuses more than the GPUs can take
    elif count > len(cpus):
        warnings.append(f"--workers {count} is more than the {len(cpus)} core(s) this process "
                        f"may use: the workers share them, so the search is not faster "
                        f"({WORKERS_MEASURED}).")
    return count, warnings
