"""BOHB against Hyperband (and random search): the same space, preset, budget and data, several
seeds, each run the command a user types.

For each seed, each tuner in turn runs ``fmnist-search run --space S --search P --tuner T
--seed N`` in one results directory, project ``T-sN``. The seed sets the data split and the
weights: the tuners of one seed see the same data. The default preset,
``benchmarks/tuners_cnn.toml``, gives every tuner the same Hyperband brackets and the same number
of trials, so every run spends the same screening epochs (less what median stopping prunes and
the limits reject: each run's count is recorded) and the runs differ only in how new
configurations are proposed; a load on the machine changes wall times, not the contest
(``--max-time`` makes the budget wall time instead). From each project it records the best
screening score against the screening epochs spent and against wall time (from the first
trial's start to each trial's end, the oracle's work between trials included), the trials by
status and by proposal (BOHB's "random" or "model"), and the final-protocol test accuracy of the
run's winner and of the control (``final.json``), into ``benchmarks/results/tuners.json``, written
again after every run.

Resumable: a run that already has its entry (exit status 0) is skipped; an interrupted one is
run again with the same command, which resumes its project, and the pause is left out of its
screening seconds (``best_curves``). Usage (about 3.5 hours here for
two tuners and two seeds, 2026-11-29: 22-75 min a run with its final; on a quiet machine):

    python benchmarks/bench_tuners.py --tuners bohb hyperband --seeds 1 2

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

from fmnist_search import results, store

TUNERS = ("bohb", "hyperband", "random")
STOPPED = (130, 143, -2, -15)  # a run stopped by Ctrl-C or SIGTERM: stop here, not go on to the next


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="cnn")
    parser.add_argument("--search", default="benchmarks/tuners_cnn.toml",
                        help="the preset every tuner runs under (a path from the repository root)")
    parser.add_argument("--tuners", nargs="+", default=list(TUNERS), choices=TUNERS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--max-time", default=None,
                        help="each run's --max-time (default: none, the preset's trials)")
    parser.add_argument("--results-dir", type=Path, default=Path("tuner_results/bench-tuners"),
                        help="where the runs write (kept: a rerun resumes)")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "tuners.json")
    parser.add_argument("extra", nargs="*", help="after --: more options for `run`")
    args = parser.parse_args()
    done = _load(args.out)
    settings = {k: getattr(args, k) for k in ("space", "search", "max_time", "extra")}
    if _comparable(done.get("settings", settings)) != _comparable(settings):
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
            plot(runs, args.out.with_suffix(".png"))
            if runs[project]["exit_status"] in STOPPED:
                print(f"{project} was stopped: the same command resumes it")
                return runs[project]["exit_status"]
    return 0


def _run(args, tuner: str, seed: int, project: str) -> dict[str, Any]:
    max_time = ["--max-time", args.max_time] if args.max_time else []
    cmd = [sys.executable, "-m", "fmnist_search", "run", "--space", args.space, "--search",
           args.search, "--tuner", tuner, "--seed", str(seed), *max_time, "--project", project,
           "--results-dir", str(args.results_dir), *args.extra]
    print(" ".join(cmd[2:]), flush=True)
    root = common.REPO / args.results_dir  # as the command, run from the repository, sees it
    resumed = (root / project).is_dir()  # its wall time is this part's only
    start = time.time()
    proc = subprocess.run(cmd, cwd=common.REPO)
    wall = time.time() - start
    rows = results.trial_rows(root, project) if (root / project).is_dir() else []
    final = store.read_final(root, project) or {}
    winner = next((r for r in final.get("rows", []) if r.get("stage") == "final"), None)
    control = next((r for r in final.get("rows", []) if r.get("stage") == "control"), None)
    curves = best_curves(root, project)
    return {
        "tuner": tuner, "seed": seed, "command": " ".join(cmd[2:]),
        "exit_status": proc.returncode, "wall_seconds": wall, "resumed": resumed,
        "trials": dict(Counter(r["status"] for r in rows)),
        "proposals": dict(Counter(r["proposal"] for r in rows if r.get("proposal"))),
        "screening_epochs": curves["screening_epochs"],
        "screening_seconds": curves["screening_seconds"],
        "paused_seconds": curves["paused_seconds"],
        "best_curve": curves["seconds"],
        "best_curve_epochs": curves["epochs"],
        "best_screening": max((r["val_accuracy"] for r in rows if r["status"] == "COMPLETED"),
                              default=None),
        "winner": {k: winner.get(k) for k in ("name", "test_accuracy", "val_accuracy",
                                               "screening_val_accuracy", "params",
                                               "architecture")} if winner else None,
        "control_test_accuracy": control.get("test_accuracy") if control else None,
        "final_complete": final.get("complete", False),
    }


DOWNTIME = 300.0  # seconds between one trial's end and the next's start that were not the search's


def best_curves(root: Path, project: str) -> dict[str, Any]:
    """The best screening accuracy so far at each trial that raised it, against the screening
    seconds and the screening epochs spent until then (every finished trial's epochs, pruned
    ones included), and the epochs and seconds spent in all.

    Seconds run from the first trial's start, the oracle's work between trials included, less
    any pause of more than ``DOWNTIME`` between two trials: a run stopped at the end of one
    session and resumed in the next is timed as if it had not stopped (the trial a stop
    interrupted is lost with its time: its rerun is timed in full)."""
    records = [store.read_trial_record(d) for d in store.trial_dirs(root / project)]
    records = sorted((r for r in records if r and r.get("finished")), key=lambda r: r["finished"])
    if not records:
        return {"seconds": [], "epochs": [], "screening_epochs": 0, "screening_seconds": 0.0}
    t0 = min(r["started"] for r in records)
    seconds, epochs, best, spent, paused, last_end = [], [], float("-inf"), 0, 0.0, t0
    for r in records:
        if r["started"] - last_end > DOWNTIME:
            paused += r["started"] - last_end
        last_end = max(last_end, r["finished"])
        spent += int(r.get("epochs") or 0)
        score = r.get("val_accuracy") if r.get("status") == "COMPLETED" else None
        if score is not None and score > best:
            best = score
            seconds.append((round(r["finished"] - t0 - paused, 1), score))
            epochs.append((spent, score))
    return {"seconds": seconds, "epochs": epochs, "screening_epochs": spent,
            "screening_seconds": round(last_end - t0 - paused, 1), "paused_seconds": round(paused)}


def plot(runs: dict[str, Any], path: Path) -> None:
    """Best screening accuracy so far against screening epochs spent (left) and wall time
    (right): one step line a run, a colour a tuner, a line style a seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(TUNERS, ("tab:red", "tab:blue", "tab:grey"), strict=True))
    styles = ("-", "--", ":", "-.")
    seeds = sorted({r["seed"] for r in runs.values()})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for r in runs.values():
        style = styles[seeds.index(r["seed"]) % len(styles)]
        label = f"{r['tuner']} seed {r['seed']}"
        for ax, key, end in ((axes[0], "best_curve_epochs", r.get("screening_epochs")),
                             (axes[1], "best_curve", r.get("screening_seconds"))):
            points = r.get(key) or []
            if not points:
                continue
            xs = [x for x, _ in points]
            ys = [y for _, y in points]
            if key == "best_curve":
                xs = [x / 60 for x in xs]
                end = end / 60 if end else None
            if end and end > xs[-1]:
                xs, ys = [*xs, end], [*ys, ys[-1]]
            ax.step(xs, ys, where="post", color=colours[r["tuner"]], ls=style, label=label)
    axes[0].set_xlabel("screening epochs spent")
    axes[1].set_xlabel("screening minutes (since the first trial started)")
    axes[0].set_ylabel("best screening val accuracy so far")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def _summary(runs: dict[str, Any]) -> dict[str, Any]:
    """Per tuner: the best screening scores, winner and control test accuracies, and the
    seconds and screening epochs to reach the lowest of the runs' final best scores (a target
    every run reached)."""
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
            "epochs_to_target": [next(e for e, s in r.get("best_curve_epochs", []) if s >= target)
                                 for r in mine if r.get("best_curve_epochs")],
            "winner_test_accuracy": tests,
            "control_test_accuracy": [r.get("control_test_accuracy") for r in mine],
        }
    return out


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings with a preset path inside the repository made relative to it, so that a run
    resumes from another checkout or with the path written either way."""
    search = Path(settings["search"])
    if search.is_absolute() and search.resolve().is_relative_to(common.REPO):
        search = search.resolve().relative_to(common.REPO)
    return {**settings, "search": str(search)}


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
