"""--max-time across resumes: each part of a pipeline counted, a killed one too."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from fmnist_search import budget_clock, store


def test_a_resumed_pipeline_gets_what_is_left_of_its_budget(tmp_path):
    first = budget_clock.Clock(tmp_path, 100.0, interval=0.05)
    assert not first.resumed and first.note() is None
    assert first.deadline == pytest.approx(time.time() + 100.0, abs=1.0)
    time.sleep(0.3)
    first.stop()
    first.stop()  # idempotent
    spent = first.part["last"] - first.part["start"]
    assert spent >= 0.3
    time.sleep(0.2)  # the gap between two parts (the machine off) is not counted
    second = budget_clock.Clock(tmp_path, 100.0, interval=0.05)
    second.stop()
    assert second.spent_before == pytest.approx(spent)
    assert second.deadline == pytest.approx(second.part["start"] + 100.0 - spent)
    assert second.resumed and "1 earlier part(s)" in second.note()
    parts = store.read_json(tmp_path / store.CLOCK_JSON)["parts"]
    assert len(parts) == 2 and parts[1]["max_time"] == 100.0
    assert budget_clock.start(tmp_path, None) is None  # no --max-time: nothing counted


def test_a_damaged_clock_counts_nothing_and_a_bad_entry_is_skipped(tmp_path):
    (tmp_path / store.CLOCK_JSON).write_text('{"parts": [')
    clock = budget_clock.Clock(tmp_path, 60.0, interval=10)
    clock.stop()
    assert clock.spent_before == 0
    store.write_json(tmp_path / store.CLOCK_JSON,
                      {"parts": [{"start": "x"}, 7, {"start": 10.0, "last": 40.0}]})
    again = budget_clock.Clock(tmp_path, 60.0, interval=10)
    again.stop()
    assert again.spent_before == 30.0


@pytest.mark.slow
def test_a_part_killed_with_sigkill_is_counted_to_its_last_beat(tmp_path):
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from fmnist_search import budget_clock
        budget_clock.Clock(Path({str(tmp_path)!r}), 3600.0, interval=0.1)
        print("started", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    resumed = budget_clock.Clock(tmp_path, 3600.0, interval=10)
    resumed.stop()
    assert 0.8 <= resumed.spent_before <= 1.5  # lost at most one interval of the count


def test_the_time_between_parts_is_what_a_stage_spanning_them_did_not_run(tmp_path):
    """Screening from 100 to 400 across parts 50-200 and 300-500: 100 s of it was a pause
    (the seed-1 proof run's record once counted a 2-hour pause as screening)."""
    store.write_json(tmp_path / store.CLOCK_JSON, {"parts": [
        {"start": 50.0, "last": 200.0}, {"start": 300.0, "last": 500.0}, {"start": "bad"}]})
    assert budget_clock.seconds_off(tmp_path, 100.0, 400.0) == 100.0
    assert budget_clock.seconds_off(tmp_path, 250.0, 400.0) == 50.0  # starts inside the gap
    assert budget_clock.seconds_off(tmp_path, 300.0, 400.0) == 0.0  # all in the second part
    assert budget_clock.seconds_off(tmp_path / "none", 0.0, 1e9) == 0.0  # no clock: one part
