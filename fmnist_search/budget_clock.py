"""``--max-time`` across resumes: the seconds a project's pipeline has already run.

``--max-time T`` covers the whole pipeline (screening, then finalize). A run stopped part-way
(a kill, a session that ends at its 180th minute, a laptop lid) and started again with the same
command used to get all of ``T`` again: a 3-hour run resumed once could screen for five hours.
Now each process that runs the pipeline under ``--max-time`` is one *part*, kept in the
project's ``clock.json`` (``store.CLOCK_JSON``) with its start and the last time it was seen
alive, rewritten every ``INTERVAL`` seconds by a daemon thread (so a ``kill -9`` loses at most
that much of the count); a resumed run's deadline is ``T`` less what the earlier parts ran.
The time between parts (the machine off) is not counted: it bought nothing.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import suppress
from itertools import pairwise
from pathlib import Path
from typing import Any

from fmnist_search import store
from fmnist_search.errors import UserError

INTERVAL = 15.0  # seconds between two writes of the running part's last-seen time


def _seconds(part: dict[str, Any]) -> float:
    try:
        return max(float(part["last"]) - float(part["start"]), 0.0)
    except (KeyError, TypeError, ValueError):
        return 0.0  # a damaged entry counts nothing rather than stopping a resume


class Clock:
    """The running part of a pipeline: its deadline, and the thread that keeps its count."""

    def __init__(self, project_dir: Path, max_time: float | None,
                 interval: float = INTERVAL) -> None:
        self.path = project_dir / store.CLOCK_JSON
        record = store.read_json(self.path) or {}
        earlier = [p for p in record.get("parts", []) if isinstance(p, dict)]
        self.spent_before = sum(_seconds(p) for p in earlier)
        now = time.time()
        self.part = {"start": now, "last": now, "max_time": max_time, "pid": os.getpid()}
        self.parts = [*earlier, self.part]
        self.deadline = now + max_time - self.spent_before if max_time else None
        self._stop = threading.Event()
        self._interval = interval
        self._write()
        self._thread = threading.Thread(target=self._run, name="budget-clock", daemon=True)
        self._thread.start()

    @property
    def resumed(self) -> bool:
        return len(self.parts) > 1

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._write()

    def _write(self) -> None:
        self.part["last"] = time.time()
        # a full disk stops the search where it writes its state, not here
        with suppress(UserError, OSError):
            store.write_json(self.path, {"parts": self.parts})

    def stop(self) -> None:
        """The part ends: its last count is written (idempotent)."""
        if not self._stop.is_set():
            self._stop.set()
            self._write()

    def note(self) -> str | None:
        """What a resumed run says about its budget, else None."""
        if not self.resumed or self.deadline is None:
            return None
        left = max(self.deadline - time.time(), 0.0)
        return (f"--max-time counts the {len(self.parts) - 1} earlier part(s) of this "
                f"pipeline: {self.spent_before / 60:.0f} min spent, {left / 60:.0f} min left.")


def seconds_off(project_dir: Path, start: float, end: float) -> float:
    """Of the span ``start``-``end``, the seconds between the pipeline's parts (the machine
    off, a session over): a stage's wall time that spans a resume, less these, is the time it
    ran. 0 for a pipeline of one part, or one not run under ``--max-time``."""
    record = store.read_json(project_dir / store.CLOCK_JSON) or {}
    parts = sorted((float(p["start"]), float(p["last"])) for p in record.get("parts", [])
                   if isinstance(p, dict) and _seconds(p) > 0)
    gaps = [(a[1], b[0]) for a, b in pairwise(parts) if b[0] > a[1]]
    return sum(max(min(g1, end) - max(g0, start), 0.0) for g0, g1 in gaps)


def start(project_dir: Path, max_time: float | None) -> Clock | None:
    """A clock for a pipeline under ``--max-time`` (None without one: nothing to count)."""
    return Clock(project_dir, max_time) if max_time else None
