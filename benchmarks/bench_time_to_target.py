"""Time to target: how long a search took to find a trial at least as good (validation
accuracy) as the best of the report's baselines trained under the same data settings.

Reads finished projects and baseline runs (it does not train): by default the projects
cnn-hyperband and cnn-bayesian (the names `--search quick` and `--search standard` give), with
the baselines under tuner_results/same-as-quick and tuner_results/same-as-standard (the
README's commands make all four). Wall time is the clock time from the first trial's start to
the end of the trial that reached the target (records carry Unix start and end times), so the
oracle's work between trials counts; for records written before those times existed, it is
the sum of the trials' wall times.
Usage: python benchmarks/bench_time_to_target.py [--pair PROJECT=BASELINE_RESULTS_DIR ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import common

DEFAULT = ["cnn-hyperband=tuner_results/same-as-quick",
           "cnn-bayesian=tuner_results/same-as-standard"]


def main() -> None:
    from fmnist_search import results

    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="tuner_results")
    parser.add_argument("--pair", action="append", default=None)
    args = parser.parse_args()
    out = {"searches": {}}
    for pair in args.pair or DEFAULT:
        project, base_dir = pair.split("=")
        rows = [r for r in results.trial_rows(Path(args.root), project)]
        rows.sort(key=lambda r: int(r["trial"]))
        rows = [r for r in rows if r["status"] == "COMPLETED"]  # interrupted ones have no record
        records = [json.loads((Path(r["path"]) / "record.json").read_text()) for r in rows]
        bases = results.latest_runs(Path(base_dir), results.BASELINES)
        target = max(b["val_accuracy"] for b in bases)
        clock = all("finished" in rec for rec in records)
        elapsed, hit = 0.0, None
        for row, rec in zip(rows, records, strict=True):
            if clock:
                elapsed = rec["finished"] - records[0]["started"]
            else:
                elapsed += rec.get("wall_seconds", 0.0)
            if hit is None and (row["val_accuracy"] or 0) >= target:
                hit = {"trial": row["trial"], "seconds": elapsed,
                       "val_accuracy": row["val_accuracy"]}
        out["searches"][project] = {
            "target_val_accuracy": target,
            "target_baseline": max(bases, key=lambda b: b["val_accuracy"])["model"],
            "baselines": {b["model"]: b["val_accuracy"] for b in bases},
            "trials": len(rows), "search_seconds": elapsed,
            "clock": "start-to-end wall clock" if clock else "sum of trial wall times",
            "best_val_accuracy": max((r["val_accuracy"] or 0) for r in rows),
            "reached": hit,
        }
        print(project, out["searches"][project], flush=True)
    common.write("time_to_target", out)


if __name__ == "__main__":
    main()
