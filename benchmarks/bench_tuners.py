"""BOHB against Hyperband (and random search): the same space, preset, budget and data, several
seeds, each run the command a user types.

For each seed, each tuner in turn (interleaved, so a drift of this machine's speed falls on all
of them alike) runs ``fmnist-search run --space S --search P --tuner T --seed N --max-time X``
in one results directory, project ``T-sN``. The seed sets the data split and the weights: the
tuners of one seed see the same data. From each project it records the best screening score
against wall time (from the first trial's start to each trial's end, the oracle's work between
trials included), the trials by status and by proposal (BOHB's "random" or "model"), and the
final-protocol test accuracy of the run's winner (``final.json``), into
``benchmarks/results/tuners.json``, written again after every run.

Resumable: a run that already has its entry (exit status 0) is skipped; an interrupted one is
run again with the same command, which resumes its project. Usage (hours: the lead runs it on a
quiet machine):

    python benchmarks/bench_tuners.py --max-time 1h30m --seeds 1 2

A smoke check (minutes): ``--results-dir /tmp/bt --out /tmp/tuners.json --search quick
--space cnn --max-time 40s -- --subset 0.02 --no-finalize``. Options after ``--`` go to every
``fmnist-search run`` unchanged.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import common

from fmnist_search import layout, results

TUNERS = ("bohb", "hyperband", "random")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="resnet")
    parser.add_argument("--search", default="best", help="the preset every tuner runs under")
    parser.add_argument("--tuners", nargs="+", default=list(TUNERS), choices=TUNERS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--max-time", default="1h30m", help="each run's --max-time")
    parser.add_argument("--results-dir", type=Path, default=Path("tuner_results/bench-tuners"),
                        help="where the runs write (kept: a rerun resumes)")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "tuners.json")
    parser.add_argument("extra", nargs="*", help="after --: more options for `run`")
    args = parser.parse_args()
    done = _load(args.out)
    settings = {k: getattr(args, k) for k in ("space", "search", "max_time", "extra")}
    if done.get("settings", settings) != settings:
        parser.error(f"{args.out} holds runs with other settings ({done['settings']}): "
                     "give another --out")
    runs: dict[str, Any] = done.get("runs", {})
    for seed in args.seeds:
        for tuner in args.tuners:
            project = f"{tuner}-s{seed}"
            if runs.get(project, {}).get("exit_status") == 0:
                continue
            runs[project] = _run(args, tuner, seed, project)
            _write(args.out, {"settings": settings, "runs": runs,
                              "summary": _summary(runs)})
    return 0


def _run(args, tuner: str, seed: int, project: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "fmnist_search", "run", "--space", args.space, "--search",
           args.search, "--tuner", tuner, "--seed", str(seed), "--max-time", args.max_time,
           "--project", project, "--results-dir", str(args.results_dir), *args.extra]
    print(" ".join(cmd[2:]), flush=True)
    start = time.time()
    proc = subprocess.run(cmd, cwd=common.RESULTS.parents[1])
    wall = time.time() - start
    root = args.results_dir
    rows = results.trial_rows(root, project) if (root / project).is_dir() else []
    final = layout.read_final(root, project) or {}
    winner = next((r for r in final.get("rows", []) if r.get("stage") == "final"), None)
    return {
        "tuner": tuner, "seed": seed, "command": " ".join(cmd[2:]),
        "exit_status": proc.returncode, "wall_seconds": wall,
        "trials": dict(Counter(r["status"] for r in rows)),
        "proposals": dict(Counter(r["proposal"] for r in rows if r.get("proposal"))),
        "best_curve": best_curve(root, project),
        "best_screening": max((r["val_accuracy"] for r in rows if r["status"] == "COMPLETED"),
                              default=None),
        "winner": {k: winner.get(k) for k in ("name", "test_accuracy", "val_accuracy",
                                               "screening_val_accuracy", "params",
                                               "architecture")} if winner else None,
        "final_complete": final.get("complete", False),
    }


def best_curve(root: Path, project: str) -> list[tuple[float, float]]:
    """(seconds since the first trial started, best screening accuracy so far) at each trial
    that raised it."""
    records = [layout.read_trial_record(d) for d in layout.trial_dirs(root / project)]
    records = [r for r in records if r and r.get("finished")]
    if not records:
        return []
    t0 = min(r["started"] for r in records)
    curve, best = [], float("-inf")
    for r in sorted(records, key=lambda r: r["finished"]):
        score = r.get("val_accuracy") if r.get("status") == "COMPLETED" else None
        if score is not None and score > best:
            best = score
            curve.append((round(r["finished"] - t0, 1), score))
    return curve


def _summary(runs: dict[str, Any]) -> dict[str, Any]:
    """Per tuner: the mean best screening score, winner test accuracy and seconds to reach
    the lowest of the runs' final best scores (a target every run reached)."""
    finished = [r for r in runs.values() if r["best_curve"]]
    if not finished:
        return {}
    target = min(r["best_curve"][-1][1] for r in finished)
    out: dict[str, Any] = {"target_screening": target}
    for tuner in TUNERS:
        mine = [r for r in finished if r["tuner"] == tuner]
        if not mine:
            continue
        tests = [r["winner"]["test_accuracy"] for r in mine
                 if r["winner"] and r["winner"].get("test_accuracy") is not None]
        out[tuner] = {
            "runs": len(mine),
            "best_screening": [r["best_screening"] for r in mine],
            "seconds_to_target": [next(t for t, s in r["best_curve"] if s >= target)
                                  for r in mine],
            "winner_test_accuracy": tests,
        }
    return out


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write(path: Path, payload: dict[str, Any]) -> None:
    if path.parent == common.RESULTS:
        common.write(path.stem, payload)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": "tuners", "machine": common.machine(), **payload},
                               indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
