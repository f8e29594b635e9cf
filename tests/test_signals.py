"""A stop by signal: raised where it can be, always remembered, never shown as a traceback."""

from __future__ import annotations

import signal
import sys
import weakref

import pytest

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


# --------------------------------------------------------------------------- finalize


FINAL_PRESET = """tuner = "random"
trials = 1
epochs = 1
subset = 0.5
patience = 0
precision = "fp32"
finalize_top = 1
final_epochs = 20
"""


def _stopped(argv: list[str], signum: int, after: str = "") -> tuple[int, str]:
    """``fmnist-search ARGV`` in a subprocess, sent ``signum`` once a final model is in its
    second epoch (after a line holding ``after``)."""
    import os
    import re
    import subprocess

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "fmnist_search", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = []
    for line in proc.stdout:
        out.append(line)
        if after in "".join(out) and re.search(r"epoch +2/20", line):
            proc.send_signal(signum)
            break
    out += proc.stdout.readlines()
    return proc.wait(timeout=120), " ".join("".join(out).split())


@pytest.mark.slow
def test_finalize_stops_on_sigterm_and_ctrl_c_as_a_search_does(tmp_path):
    """Finalize, alone or as the last stage of `run`, stopped by SIGTERM (143) or Ctrl-C
    (130): one line saying what is saved and how to resume, no traceback; then it resumes."""
    import numpy as np
    from conftest import TINY_SPACE, write_csvs

    from fmnist_search import store
    from fmnist_search.cli import main

    train, test = write_csvs(tmp_path, np.random.default_rng(0))
    (tmp_path / "final.toml").write_text(FINAL_PRESET)
    root = str(tmp_path / "res")
    run = ["run", "--space", TINY_SPACE, "--search", str(tmp_path / "final.toml"),
           "--train-csv", train, "--test-csv", test, "--project", "p", "--results-dir", root]
    status, out = _stopped(run, signal.SIGTERM, after="Finalize")
    assert status == 143, out
    assert "Stopped by SIGTERM. Every model finalize finished is saved" in out
    assert "rerun the same command to resume" in out and "Traceback" not in out
    finalize = ["finalize", "p", "--results-dir", root]
    status, out = _stopped(finalize, signal.SIGINT)
    assert status == 130 and "rerun `fmnist-search finalize p` to resume" in out, out
    status, out = _stopped(finalize, signal.SIGTERM)
    assert status == 143 and "Stopped by SIGTERM" in out and "Traceback" not in out, out
    assert main(finalize) == 0
    assert store.read_final(tmp_path / "res", "p")["complete"]
