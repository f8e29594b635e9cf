"""Ctrl-C and SIGTERM during a search: stop cleanly, never in the middle of a state write.

SIGTERM is what ``kill``, Docker, systemd and Slurm send; it is treated exactly like Ctrl-C.
Python raises ``KeyboardInterrupt`` wherever the main thread happens to be; when that is a weakref
callback inside the garbage collection Keras runs between trials, Python carries on (and would
print "Exception ignored" with a traceback, which ``installed`` silences for a stop), so the
handler also sets a flag that the search checks at every epoch end and trial start. Inside a ``critical()`` section (writing a state file, ending a trial) the
signal only sets the flag and the stop happens when the section is over, so the files on disk
always agree with each other.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """The search was asked to stop by a signal; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class StopSignals:
    """The stop request of one search (no class-level state: two searches never share it)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._depth = 0

    def handler(self, signum, frame) -> None:
        self.signum = signum
        if self._depth == 0:
            raise Stopped(signum)

    def check(self) -> None:
        if self.signum is not None and self._depth == 0:
            raise Stopped(self.signum)

    @contextmanager
    def critical(self) -> Iterator[None]:
        """Defer a stop until the block is done (nesting allowed). Only the main thread stops
        here: a distributed chief writes state from its server's threads, and the stop belongs
        to its main loop."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if threading.current_thread() is threading.main_thread():
            self.check()

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        previous = {s: signal.signal(s, self.handler) for s in HANDLED}
        previous_hook = sys.unraisablehook

        def unraisable(args) -> None:
            # A stop raised where Python cannot raise (a weakref callback, a __del__): the
            # flag holds it, and a traceback would tell the user something went wrong.
            if not isinstance(args.exc_value, Stopped):
                previous_hook(args)

        sys.unraisablehook = unraisable
        try:
            yield self
        finally:
            sys.unraisablehook = previous_hook
            for s, handler in previous.items():
                signal.signal(s, handler)
