"""What a kill costs a final training: `finalize` killed (SIGKILL) at 75% of its epochs, resumed.

As a user would: a 1-trial quick search of the cnn space, then `fmnist-search finalize` of its
best configuration for ``--epochs`` epochs on the whole training split. When the epoch checkpoint
of 75% of the epochs is on disk, the benchmark waits half an epoch more (the worst case: half an
epoch of work since the checkpoint) and kills finalize's whole process group with SIGKILL; then
it runs the same finalize command again. Written: which epochs each part trained, the seconds of
work lost (kill time minus the checkpoint's write time), the resumed part's start-up seconds
before its first epoch, and whether anything before the checkpoint was trained again.

    .venv/bin/python benchmarks/bench_finalize_resume.py [--epochs 8] [--subset 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import common

EPOCH_LINE = re.compile(r"epoch\s+(\d+)/(\d+)\s.*?([\d.]+)s\s*$")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fmnist_search", *args]


def checkpoint_state(results: Path) -> dict | None:
    """The newest epoch checkpoint's state of any training under ``results``: the search has
    ended, so it is finalize's, wherever that run lives (a configuration that is the space's
    default point trains as the control, in ``controls/``, not in ``finalized/``)."""
    states = sorted(results.rglob(".checkpoint-*/state.json"),
                    key=lambda p: p.stat().st_mtime)
    for path in reversed(states):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced this instant
    return None


def run_logged(command: list[str], lines: list[tuple[float, str]],
               stop_when=None) -> tuple[int, float]:
    """Run ``command`` in its own process group, keeping (time, line) of its output; when
    ``stop_when()`` says so, SIGKILL the group. Returns (exit status, kill time or 0)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def read() -> None:
        for line in proc.stdout:
            lines.append((time.time(), line.rstrip()))
            print(line.rstrip(), flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    killed_at = 0.0
    while proc.poll() is None:
        if stop_when is not None and stop_when():
            killed_at = time.time()
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait()
    reader.join(timeout=5)
    return proc.returncode, killed_at


def epochs_of(lines: list[tuple[float, str]]) -> list[tuple[int, float, float]]:
    """(epoch, its seconds, the time its line was printed) of each epoch line."""
    out = []
    for when, line in lines:
        m = EPOCH_LINE.search(line)
        if m:
            out.append((int(m.group(1)), float(m.group(3)), when))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--subset", type=float, default=0.1, help="of the search's screening")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    kill_after = round(args.epochs * 0.75)

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        base = ["--results-dir", str(results)]
        search = cli("run", "--space", "cnn", "--search", "quick", "--trials", "1", "--project",
                     "p", "--subset", str(args.subset), "--seed", str(args.seed), *base)
        subprocess.run(search, check=True, stdout=subprocess.DEVNULL)
        finalize = cli("finalize", "p", "--configs", "1", "--epochs", str(args.epochs),
                       "--ensemble-size", "0", *base)

        first: list[tuple[float, str]] = []
        plan: dict = {}

        def due() -> bool:
            state = checkpoint_state(results)
            if not state or state.get("epoch", 0) < kill_after:
                return False
            if "written" not in plan:
                plan["written"] = time.time()
                plan["state"] = state
                epochs = epochs_of(first)
                plan["half"] = epochs[-1][1] / 2 if epochs else 0.0
            return time.time() >= plan["written"] + plan["half"]

        started = time.time()
        status, killed_at = run_logged(finalize, first, due)
        if not killed_at:
            raise SystemExit(f"finalize ended (status {status}) before the kill was due")
        second: list[tuple[float, str]] = []
        resumed_start = time.time()
        status2, _ = run_logged(finalize, second)
        ended = time.time()

    e1, e2 = epochs_of(first), epochs_of(second)
    resumed = [e for e, _, _ in e2]
    payload = {
        "settings": {"epochs": args.epochs, "killed_after_checkpoint_of_epoch": kill_after,
                     "search": "run --space cnn --search quick --trials 1 --subset "
                               f"{args.subset} --seed {args.seed}",
                     "finalize": "finalize p --configs 1 --epochs N --ensemble-size 0",
                     "signal": "SIGKILL to finalize's process group, half an epoch after "
                               "the checkpoint was seen"},
        "first_part_epochs": [e for e, _, _ in e1],
        "resumed_part_epochs": resumed,
        "retrained_before_checkpoint": sorted(set(resumed) & set(range(1, kill_after + 1))),
        "resumed_exit_status": status2,
        "epoch_seconds_median": sorted(s for _, s, _ in e1 + e2)[len(e1 + e2) // 2],
        "seconds_lost_since_checkpoint": killed_at - plan["written"],
        "resumed_startup_seconds": (e2[0][2] - e2[0][1] - resumed_start) if e2 else None,
        "first_part_seconds": killed_at - started,
        "resumed_part_seconds": ended - resumed_start,
    }
    payload["epochs_lost"] = payload["seconds_lost_since_checkpoint"] / payload[
        "epoch_seconds_median"]
    common.write("finalize_resume", payload)
    print(json.dumps({k: v for k, v in payload.items() if k != "settings"}, indent=2))


if __name__ == "__main__":
    main()
