"""Trials per hour: one process against ``--workers N``, on the same search, interleaved.

Runs ``fmnist-search run --space cnn --search quick --trials T --workers N`` (a subprocess: the
command a user types, start-up included) for each N in ``--workers``, in a fresh results
directory each time, alternating the contestants for ``--rounds`` rounds, so that a machine
that drifts slows every contestant alike. On a GPU machine all workers share its first GPU
(``--workers-per-gpu N``), which is the question there: does one GPU run small CNNs faster
with several trainings at once. Writes ``benchmarks/results/workers.json``:

    python benchmarks/bench_workers.py                       # this machine: 1 and 2 workers
    python benchmarks/bench_workers.py --workers 1,2,4 --gpu # one GPU shared by 1, 2, 4

Trials per hour depends on which trials ran (Hyperband gives some 1 epoch, some 3); epochs
per hour, also written, counts the work itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common


def run_once(workers: int, trials: int, gpu: bool, extra: list[str]) -> dict:
    from fmnist_search import store

    root = Path(tempfile.mkdtemp(prefix=f"bench-workers-{workers}-"))
    cmd = [sys.executable, "-m", "fmnist_search", "run", "--space", "cnn", "--search", "quick",
           "--trials", str(trials), "--project", "w", "--results-dir", str(root),
           "--no-finalize", "--workers", str(workers), *extra]
    if gpu and workers > 1:
        cmd += ["--workers-per-gpu", str(workers)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=common.REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    records = [r for d in store.trial_dirs(root / "w")
               if (r := store.read_trial_record(d)) and r.get("status") != "RUNNING"]
    epochs = sum(int(r.get("epochs") or 0) for r in records)
    fit = sum(float(r.get("fit_seconds") or 0) for r in records)
    per_epoch = [float(r["seconds_per_epoch"]) for r in records if r.get("seconds_per_epoch")]
    row = {"workers": workers, "exit_status": proc.returncode, "wall_seconds": wall,
           "trials": len(records), "epochs": epochs, "fit_seconds": fit,
           "trials_per_hour": 3600 * len(records) / wall, "epochs_per_hour": 3600 * epochs / wall,
           "median_seconds_per_epoch": statistics.median(per_epoch) if per_epoch else None,
           "best_val_accuracy": max((r.get("val_accuracy") or 0 for r in records), default=None)}
    if proc.returncode != 0:
        row["output_tail"] = (proc.stdout + proc.stderr)[-2000:]
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2", help="contestants, e.g. 1,2 or 1,2,4")
    parser.add_argument("--trials", type=int, default=6, help="trials per search (default 6)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    parser.add_argument("--gpu", action="store_true", help="share the first GPU between workers")
    parser.add_argument("--out", type=Path, help="JSON file (default results/workers.json)")
    parser.add_argument("extra", nargs="*", help="after --: more options for `run`")
    args = parser.parse_args()
    contestants = [int(w) for w in args.workers.split(",")]
    rows = [run_once(w, args.trials, args.gpu, args.extra)
            for _ in range(args.rounds) for w in contestants]
    summary = {}
    for w in contestants:
        mine = [r for r in rows if r["workers"] == w and r["exit_status"] == 0]
        if mine:
            summary[str(w)] = {
                "trials_per_hour": sum(r["trials_per_hour"] for r in mine) / len(mine),
                "epochs_per_hour": sum(r["epochs_per_hour"] for r in mine) / len(mine)}
    payload = {"command": "run --space cnn --search quick "
               f"--trials {args.trials} --no-finalize --workers N", "gpu": args.gpu,
               "runs": rows, "mean_by_workers": summary}
    if args.out:
        args.out.write_text(json.dumps({"benchmark": "workers", "machine": common.machine(),
                                        **payload}, indent=2))
    else:
        common.write("workers", payload)
    print(json.dumps(summary, indent=2))
    return 0 if all(r["exit_status"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
