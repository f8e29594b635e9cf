"""Gather what ``benchmarks/gpu_h200.sh`` brought back from the device into one JSON,
``benchmarks/results/gpu_h200.json`` (docs/gpu.md is written from it).

Each call's raw outputs are kept under ``benchmarks/results/gpu/callN/``: the script's JSON
(finished trainings: test accuracy with flip TTA) and the workers' logs. A worker the call's
time limit killed after its last epoch but before its test evaluation left only its log, so
for every worker the last epoch's validation accuracy (raw weights, no TTA) and its epoch times
are read from the log: that is the one figure all of them have.

    python benchmarks/gpu_collect.py
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

import common

RAW = common.RESULTS / "gpu"
EPOCH = re.compile(r"^epoch\s+(\d+)/(\d+)\s.*?val_acc ([0-9.]+)", re.S)
SECONDS = re.compile(r"([0-9.]+)s$")
LOG = re.compile(r"log_(?P<arm>.+)_(?P<seed>\d+)\.txt$")


def epochs(log: Path) -> list[tuple[int, int, float, float]]:
    """(epoch, planned, val_acc, seconds) per epoch line; rich wraps a line in two."""
    text = log.read_text()
    out = []
    for block in re.split(r"\n(?=epoch\s)", text):
        block = block.split("\n")[0] + " " + (block.split("\n")[1] if "\n" in block else "")
        m = EPOCH.search(block)
        s = SECONDS.search(block.strip())
        if m and s:
            out.append((int(m[1]), int(m[2]), float(m[3]), float(s[1])))
    return out


def worker(log: Path) -> dict:
    m = LOG.search(log.name)
    rows = epochs(log)
    last = rows[-1] if rows else (0, 0, float("nan"), float("nan"))
    times = [r[3] for r in rows[1:]]  # the first epoch holds the XLA compilation
    return {"arm": m["arm"], "seed": int(m["seed"]), "epochs_done": last[0],
            "epochs_planned": last[1], "last_val_accuracy_raw": last[2] if rows else None,
            "median_seconds_per_epoch": statistics.median(times) if times else None,
            "first_epoch_seconds": rows[0][3] if rows else None}


def call(directory: Path) -> dict:
    finished = directory / "final_protocol_gpu.json"
    tests = {}
    if finished.is_file():
        for r in json.loads(finished.read_text())["rows"]:
            tests[(r["arm"], r["seed"])] = {"test_accuracy": r["test_accuracy"],
                                            "val_accuracy_tta": r["val_accuracy"]}
    workers = [worker(p) for p in sorted(directory.glob("log_*.txt"))]
    for w in workers:
        w.update(tests.get((w["arm"], w["seed"]), {"test_accuracy": None}))
    single = json.loads((directory / "single.json").read_text())["rows"][0]
    speeds = [w["median_seconds_per_epoch"] for w in workers if w["median_seconds_per_epoch"]]
    return {"env": (directory / "env.txt").read_text().splitlines(),
            "single_worker_seconds_per_epoch": single["seconds_per_epoch"],
            "workers_per_gpu": len(workers),
            "median_seconds_per_epoch_each": statistics.median(speeds) if speeds else None,
            "epochs_per_second_all": sum(1 / s for s in speeds) if speeds else None,
            "workers": workers}


def main() -> int:
    calls = {d.name: call(d) for d in sorted(RAW.iterdir()) if d.is_dir()}
    machine = json.loads((RAW / "call1" / "final_protocol_gpu.json").read_text())["machine"]
    out = common.RESULTS / "gpu_h200.json"
    out.write_text(json.dumps({"benchmark": "gpu_h200", "backend": "jax", "machine": machine,
                               "calls": calls}, indent=2))
    for name, c in calls.items():
        print(f"{name}: {c['workers_per_gpu']} workers, alone "
              f"{c['single_worker_seconds_per_epoch']:.2f} s/epoch, each "
              f"{c['median_seconds_per_epoch_each']:.2f} s/epoch, all together "
              f"{c['epochs_per_second_all']:.2f} epochs/s")
        for w in sorted(c["workers"], key=lambda w: (w["arm"], w["seed"])):
            test = f"{w['test_accuracy']:.4f}" if w["test_accuracy"] else "  -   "
            print(f"  {w['arm']:<22} s{w['seed']} {w['epochs_done']}/{w['epochs_planned']} "
                  f"val(raw) {w['last_val_accuracy_raw']:.4f} test {test} "
                  f"{w['median_seconds_per_epoch']:.2f} s/epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
