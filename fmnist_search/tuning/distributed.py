"""The chief of a distributed search: Keras Tuner's own oracle servicer, with the edges filed off.

Keras Tuner's distributed mode serves the oracle over gRPC and lets workers ask it for trials
(``KERASTUNER_ORACLE_IP``/``PORT``/``TUNER_ID``). We keep its servicer and oracle and replace
only the chief's loop (``oracle_chief.start_server``), whose known faults are ours to fix:

- it has no heartbeat: a dead worker's trial stayed RUNNING and the chief waited forever. Here a
  local worker's death is seen by its supervisor at once, a remote one's by its heartbeat file
  going stale (``--heartbeat-timeout``); the trial is retried, and after ``MAX_ATTEMPTS`` deaths
  it ends FAILED with the reason instead of killing workers forever;
- it never stopped its server and polled every 20 s; here the loop ends as soon as the search is
  done and every worker has been told to stop, and the server is stopped;
- the stop rules (trial count, ``--max-time`` with the finalize reserve) are asked of the
  search's one rule (``stop_rule``, as the single-process tuner asks it) by the chief, instead
  of by each worker; the supervisor tells the chief what its workers did through methods
  (``expect_restart``, ``worker_failed``); a late report of a trial that already ended (a worker
  thought dead that was not) is ignored, so no trial is counted twice.

The oracle's own lock (``synchronized``) guards every change to its state; the servicer runs
one request at a time, as Keras Tuner's does.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmnist_search import store
from fmnist_search.errors import UserError
from fmnist_search.tuning import kt_compat
from fmnist_search.tuning.network import HEARTBEAT_TIMEOUT, Address
from fmnist_search.tuning.state import (
    FINISHED,
    HISTORY_METRICS,
    OBJECTIVE,
    RECORD_FINISHED,
    cost_metrics,
)
from fmnist_search.tuning.stop_rule import TIME, TRIALS

MAX_ATTEMPTS = 3  # deaths of its worker after which a trial ends FAILED
LOOP_EVERY = 0.5  # seconds between the chief's checks
STOP_GRACE = 15.0  # after the search is done: how long workers may still ask, to be told stop


@dataclass
class Beat:
    """What the chief last saw of a worker's heartbeat, timed by the chief's own clock (the
    workers' clocks may disagree with it)."""

    count: int = -1
    seen: float = field(default_factory=time.monotonic)
    state: dict[str, Any] = field(default_factory=dict)


class Chief:
    """The oracle's gatekeeper: what workers are handed, and when the search is over.

    ``sender`` is the worker id a report came with (gRPC metadata our workers add); a report
    about a trial that another worker now holds is ignored, so a worker presumed dead that was
    only slow cannot end (or add its numbers to) the trial its successor is training.
    """

    def __init__(self, tuner, display, signals, heartbeat_timeout: float = HEARTBEAT_TIMEOUT):
        self.oracle = tuner.oracle
        self.rule = tuner.stop_rule  # the count and the deadline; failures are each worker's
        self.project_dir = Path(tuner.project_dir)
        self.display = display
        self.signals = signals
        self.heartbeat_timeout = heartbeat_timeout
        self.lock = threading.RLock()
        self.attempts: Counter[str] = Counter()
        self.expected_restart: set[str] = set()  # told by the supervisor, not to count twice
        self.known: set[str] = set()
        self._told_to_stop: set[str] = set()
        self.stop_reason: str | None = None
        self.done_at: float | None = None
        self._fatal: str | None = None
        self.beats: dict[str, Beat] = {}
        self._silent: set[str] = set()  # workers presumed dead by their heartbeat

    # ---------------------------------------------------------------- called by the servicer

    def create_trial(self, tuner_id: str):
        from keras_tuner.engine import trial as trial_module

        with self.lock:
            self.known.add(tuner_id)
            ongoing = kt_compat.ongoing_trials(self.oracle).get(tuner_id)
            if ongoing is not None:  # this worker died and came back during its trial
                if tuner_id in self.expected_restart:
                    self.expected_restart.discard(tuner_id)
                else:
                    self.lost(tuner_id, "its worker started again during the trial")
                if tuner_id in kt_compat.ongoing_trials(self.oracle):
                    return self.oracle.create_trial(tuner_id)  # the same trial, retried
            reason = self._stop_reason()
            if reason == "wait":  # enough trials are running; one may yet need a retry
                return trial_module.Trial(self.oracle.get_space(),
                                          status=trial_module.TrialStatus.IDLE)
            if reason is not None:
                self._told_to_stop.add(tuner_id)
                return trial_module.Trial(self.oracle.get_space(),
                                          status=trial_module.TrialStatus.STOPPED)
            trial = self.oracle.create_trial(tuner_id)
            record = self._recorded(trial) \
                if trial.status == trial_module.TrialStatus.RUNNING else None
            if record:  # a worker recorded it and was killed before the chief heard
                self._finish_from_record(trial, record)
                return self.create_trial(tuner_id)
            if trial.status == trial_module.TrialStatus.STOPPED:
                self.stop_reason = self.stop_reason or "exhausted"
                self._told_to_stop.add(tuner_id)
            return trial

    def update_trial(self, trial_id: str, metrics: dict, step: int, sender: str | None = None):
        with self.lock:
            known = self.oracle.trials.get(trial_id)
            if known is None or known.status in FINISHED or self._not_theirs(trial_id, sender):
                return known  # a late report: the trial is final, or someone else's now
            return self.oracle.update_trial(trial_id, metrics, step=step)

    def end_trial(self, trial, sender: str | None = None) -> None:
        with self.lock:
            known = self.oracle.trials.get(trial.trial_id)
            if known is None or known.status in FINISHED or self._not_theirs(trial.trial_id,
                                                                             sender):
                self.display.note(f"a late report of trial {trial.trial_id} from "
                                  f"{sender or 'a worker'} was ignored (the trial had ended or "
                                  "had been handed to another worker)", "distributed")
                return
            self._end(trial)

    # ---------------------------------------------------------------- called by the loop

    def lost(self, tuner_id: str, why: str, requeue: bool = False) -> None:
        """A worker died (or went silent) during its trial: keep a result it had recorded,
        else retry the trial, or end it FAILED after ``MAX_ATTEMPTS`` deaths."""
        with self.lock:
            trial = kt_compat.ongoing_trials(self.oracle).get(tuner_id)
            if trial is None:
                return
            record = self._recorded(trial)
            if record:
                self._finish_from_record(trial, record)
                self.display.note(f"{tuner_id} was lost after it recorded trial "
                                  f"{trial.trial_id} ({record['status'].lower()}): the recorded "
                                  "result is kept, not rerun", "distributed")
                return
            self.attempts[trial.trial_id] += 1
            n = self.attempts[trial.trial_id]
            if n >= MAX_ATTEMPTS:
                self._fail(trial, f"its worker died {n} times while training it (the last "
                           f"time: {why}); a trial that kills its worker usually runs out of "
                           "memory")
                return
            kt_compat.forget_metrics(trial)  # a retry reports its own, not the lost attempt's
            if requeue:
                with kt_compat.oracle_locked(self.oracle):
                    kt_compat.release_worker(self.oracle, tuner_id)
                    kt_compat.queue_retry(self.oracle, trial.trial_id)
                    self.oracle.save()
            self.display.note(f"{tuner_id} was lost during trial {trial.trial_id} ({why}): the "
                              f"trial runs again (attempt {n + 1} of {MAX_ATTEMPTS})",
                              "distributed")

    def expect_restart(self, tuner_id: str, why: str) -> None:
        """The supervisor saw a local worker die and starts it again under the same id."""
        with self.lock:
            self.lost(tuner_id, why)
            self.beats.pop(tuner_id, None)  # the new process's heartbeats start afresh
            self._silent.discard(tuner_id)
            if tuner_id in kt_compat.ongoing_trials(self.oracle):
                self.expected_restart.add(tuner_id)

    def worker_failed(self, why: str) -> None:
        """A worker failed in a way a restart would not mend: the search ends with ``why``."""
        with self.lock:
            self._fatal = why

    @property
    def fatal(self) -> str | None:
        """Why the search ended in error (``worker_failed``), else None."""
        return self._fatal

    def presumed_dead(self, tuner_id: str) -> bool:
        """Whether the worker's heartbeat went stale and its trial went to another: a local
        one still alive is hung, and its supervisor kills it (and restarts it afresh)."""
        with self.lock:
            return tuner_id in self._silent

    def was_told_to_stop(self, tuner_id: str) -> bool:
        """Whether the worker was told the search is over (its exit is then expected)."""
        with self.lock:
            return tuner_id in self._told_to_stop

    def check_heartbeats(self) -> None:
        now = time.monotonic()
        with self.lock:
            for tuner_id in list(kt_compat.ongoing_trials(self.oracle)):
                path = store.worker_file(self.project_dir, tuner_id, ".json")
                state = store.read_json(path) or {}
                beat = self.beats.setdefault(tuner_id, Beat())
                if state.get("count", -1) != beat.count:
                    beat.count, beat.seen, beat.state = state.get("count", -1), now, state
                elif now - beat.seen > self.heartbeat_timeout:
                    self.lost(tuner_id, f"no heartbeat for {now - beat.seen:.0f} s",
                              requeue=True)
                    self._silent.add(tuner_id)
                    beat.seen = now

    def done(self) -> bool:
        """The search is over: a stop was decided, nothing runs, every worker was told."""
        with self.lock:
            if self._stop_reason() in (None, "wait") or kt_compat.ongoing_trials(self.oracle):
                self.done_at = None
                return False
            self.done_at = self.done_at or time.monotonic()
            waiting = self.known - self._told_to_stop
            return not waiting or time.monotonic() - self.done_at > STOP_GRACE

    # ---------------------------------------------------------------- internals

    def _not_theirs(self, trial_id: str, sender: str | None) -> bool:
        if sender is None:
            return False
        holders = [t for t, trial in kt_compat.ongoing_trials(self.oracle).items()
                   if trial.trial_id == trial_id]
        return bool(holders) and sender not in holders

    def _stop_reason(self) -> str | None:
        """None: hand out a trial; "wait": not now (IDLE); else why the search is over. The
        count and the deadline are the stop rule's (``stop_rule``); a failed worker, a signal,
        an exhausted oracle and the retries owed are the chief's own."""
        if self._fatal is not None:
            return "fatal"
        if self.signals.signum is not None:
            return "signal"
        if self.stop_reason in ("exhausted", "time", "trials"):
            return self.stop_reason
        if kt_compat.retry_queue(self.oracle):  # trials to retry are handed out before any stop
            return None
        finished = sum(1 for t in self.oracle.trials.values() if t.status in FINISHED)
        reason = self.rule.why_not(finished, running=len(kt_compat.ongoing_trials(self.oracle)))
        if reason in (TRIALS, TIME):
            self.stop_reason = reason  # final: a retry handed out later does not undo it
        return reason

    def _end(self, trial) -> None:
        with kt_compat.oracle_locked(self.oracle):
            kt_compat.unqueue_retry(self.oracle, trial.trial_id)
        self.oracle.end_trial(trial)
        self.oracle.save()  # Keras Tuner saved it before dropping the trial from ongoing

    def _recorded(self, trial) -> dict[str, Any] | None:
        """The trial's ``record.json`` when it says the trial finished, else None."""
        record = store.read_trial_record(store.trial_dir(self.project_dir, trial.trial_id))
        return record if record and record.get("status") in RECORD_FINISHED else None

    def _finish_from_record(self, trial, record: dict[str, Any]) -> None:
        """End a trial as its worker had recorded it (the kill came before Keras Tuner heard)."""
        from keras_tuner.engine import trial as trial_module

        ended = kt_compat.trial_copy(trial)
        if RECORD_FINISHED[record["status"]] == "FAILED":
            ended.status = trial_module.TrialStatus.FAILED
            ended.message = record.get("reason") or "failed"
        else:
            kt_compat.forget_metrics(trial)
            rows = record.get("history") or [{OBJECTIVE: record[OBJECTIVE]}]
            costs = cost_metrics(record)  # several objectives: what the oracle ranks by
            for step, row in enumerate(rows):
                metrics = {k: float(v) for k, v in row.items() if k in HISTORY_METRICS}
                if metrics and step == 0:
                    metrics.update(costs)
                if metrics:
                    self.oracle.update_trial(trial.trial_id, metrics, step=step)
            ended.status = trial_module.TrialStatus.COMPLETED
        self._end(ended)

    def _fail(self, trial, reason: str) -> None:
        from keras_tuner.engine import trial as trial_module

        trial_dir = store.trial_dir(self.project_dir, trial.trial_id)
        record = store.read_trial_record(trial_dir) or {}
        started = record.get("started", time.time())
        try:
            store.write_trial_record(trial_dir, {
                "trial_id": trial.trial_id, "values": dict(trial.hyperparameters.values),
                "started": started, "status": "FAILED", "reason": reason,
                "finished": time.time(), "wall_seconds": time.time() - started})
        except store.RecordFinishedError:  # its worker recorded the end first: that stands
            self._finish_from_record(trial, self._recorded(trial))
            return
        ended = kt_compat.trial_copy(trial)
        ended.status = trial_module.TrialStatus.FAILED
        ended.message = reason
        self._end(ended)
        self.display.note(f"trial {trial.trial_id} failed: {reason}", "distributed")


# ------------------------------------------------------------------------------ the server


def start_server(chief: Chief, address: Address):
    """Keras Tuner's servicer, with trial creation and ending routed through the chief."""
    from concurrent import futures

    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    kt_compat.add_servicer(
        server, chief.oracle, chief.create_trial,
        lambda trial_id, metrics, step, context: chief.update_trial(trial_id, metrics, step,
                                                                    _sender(context)),
        lambda trial, context: chief.end_trial(trial, _sender(context)))
    try:
        port = server.add_insecure_port(str(address))
    except RuntimeError:
        port = 0
    if not port:
        raise UserError(f"Cannot listen on {address}: the port is in use or the address is not "
                        "this machine's. Choose another --port (0 picks a free one) or --bind.")
    server.start()
    return server, Address(address.host, port)


SENDER_KEY = "fmnist-worker"  # gRPC metadata: which worker sends a report


def _sender(context) -> str | None:
    return dict(context.invocation_metadata() or ()).get(SENDER_KEY)


def security_warning(address: Address) -> str:
    return (f"The chief listens on {address} without authentication or encryption: anyone who "
            "can reach this port can read and change the search. Use it only on a private "
            "network, or bind 127.0.0.1 and reach it through an SSH tunnel.")


def serve(chief: Chief, supervise: Callable[[], bool], on_tick: Callable[[], None]) -> str | None:
    """The chief's loop, until ``supervise`` (the local workers, or remote ones' state) says
    the search is over. Returns the stop reason, as ``search.run_tuner`` does."""
    while True:
        chief.signals.check()
        chief.check_heartbeats()
        on_tick()
        if supervise():
            break
        time.sleep(LOOP_EVERY)
    if chief.fatal:
        raise UserError(chief.fatal)
    reason = chief.stop_reason
    return None if reason == "exhausted" else reason


def write_chief_json(project_dir: Path, address: Address, public: str,
                     session: dict[str, Any]) -> None:
    """Where the chief listens, and the search as this run of it has it (``session``: the
    shape of ``run.json``, with this run's preset, precision and versions), which workers
    build their search from and are checked against."""
    import os

    (project_dir / store.WORKERS).mkdir(parents=True, exist_ok=True)
    store.write_json(project_dir / store.WORKERS / store.CHIEF_JSON,
                      {"address": public, "bound": str(address), "pid": os.getpid(),
                       "host": socket.gethostname(), "started": time.time(),
                       "session": session})
