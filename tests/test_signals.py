"""A stop by signal: raised where it can be, always remembered, never shown as a traceback."""

from __future__ import annotations

import signal
import sys
import weakref

from fmnist_search.tuning.signals import StopSignals


class _Thing:
    pass


def _dropped(callback) -> None:
    """Run ``callback`` the way the garbage collector does: from a weakref whose object goes."""
    thing = _Thing()
    ref = weakref.ref(thing, lambda _: callback())
    del thing
    assert ref() is None


def test_a_stop_landing_in_a_weakref_callback_is_kept_and_not_printed(monkeypatch):
    """SIGTERM during Keras's garbage collection raised inside a weakref callback: Python
    reported it as "Exception ignored" with a traceback (seen in the SIGTERM test's stderr).
    The stop is remembered by the flag; other such errors are still reported."""
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    signals = StopSignals()

    def fail() -> None:
        raise ValueError("not a stop")

    with signals.installed():
        _dropped(lambda: signals.handler(signal.SIGTERM, None))
        _dropped(fail)
    assert signals.signum == signal.SIGTERM
    assert [type(a.exc_value) for a in reported] == [ValueError]
    assert sys.unraisablehook == reported.append  # restored
