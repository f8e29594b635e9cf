"""One JSON from the per-(arm, seed) JSONs of ``bench_final_protocol.py`` run as concurrent
processes (``benchmarks/gpu_weight_averaging.sh``): every row, and a summary.

The summary, per arm: mean and standard deviation across seeds of test accuracy (flip TTA,
10,000 images) and of validation accuracy; and the paired differences against the control arm
(``final``), seed by seed (arms of one seed share the split and the initial weights, so the
difference of a seed is the measurement), with their mean, standard deviation, t and two-sided
p (Student's t, n - 1 degrees of freedom). A pair that the time limit killed has no row: it is
listed as missing, with the last epoch its log shows (``gpu_collect.epochs``: raw weights, no
TTA, the one figure a killed run leaves).

    python benchmarks/arms_summary.py /tmp/gpu-wa/fp_*.json --logs /tmp/gpu-wa \\
        --arms final final-with-swa final-with-ema --seeds 1 2 --out summary.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from gpu_collect import epochs

METRICS = ("test_accuracy", "val_accuracy")


def spread(values: list[float]) -> dict[str, Any]:
    n = len(values)
    mean = statistics.fmean(values) if values else None
    sd = statistics.stdev(values) if n > 1 else None
    return {"n": n, "mean": mean, "sd": sd, "values": values}


def paired(differences: dict[int, float]) -> dict[str, Any]:
    """Per-seed differences (arm minus control) and their t-test against zero."""
    out: dict[str, Any] = {"by_seed": differences, **spread(list(differences.values()))}
    out.pop("values")
    if out["sd"] is not None:
        out["t"] = out["mean"] / (out["sd"] / math.sqrt(out["n"])) if out["sd"] else None
        if out["t"] is not None:
            from scipy import stats

            out["p_two_sided"] = float(2 * stats.t.sf(abs(out["t"]), out["n"] - 1))
    return out


def summarize(rows: list[dict[str, Any]], arms: list[str], seeds: list[int],
              control: str = "final") -> dict[str, Any]:
    by = {(r["arm"], int(r["seed"])): r for r in rows}
    summary: dict[str, Any] = {}
    for arm in arms:
        mine = {s: by[(arm, s)] for s in seeds if (arm, s) in by}
        entry: dict[str, Any] = {m: spread([float(r[m]) for r in mine.values()
                                            if r.get(m) is not None]) for m in METRICS}
        entry["seconds_per_epoch"] = spread([float(r["seconds_per_epoch"])
                                             for r in mine.values()])
        if arm != control:
            for m in METRICS:
                entry[f"{m}_minus_{control}"] = paired({
                    s: float(r[m]) - float(by[(control, s)][m]) for s, r in mine.items()
                    if (control, s) in by and r.get(m) is not None
                    and by[(control, s)].get(m) is not None})
        summary[arm] = entry
    return summary


def missing(rows: list[dict[str, Any]], arms: list[str], seeds: list[int],
            logs: Path | None) -> list[dict[str, Any]]:
    have = {(r["arm"], int(r["seed"])) for r in rows}
    out = []
    for arm in arms:
        for seed in seeds:
            if (arm, seed) in have:
                continue
            entry: dict[str, Any] = {"arm": arm, "seed": seed}
            log = logs / f"log_{arm}_{seed}.txt" if logs else None
            if log and log.is_file():
                seen = epochs(log)
                if seen:
                    epoch, planned, val, _ = seen[-1]
                    entry.update(last_epoch=epoch, planned_epochs=planned,
                                 last_val_accuracy_raw=val)
            out.append(entry)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="bench_final_protocol JSONs")
    parser.add_argument("--arms", nargs="+", required=True, help="the control first")
    parser.add_argument("--seeds", nargs="+", type=int, required=True)
    parser.add_argument("--logs", type=Path, help="folder of log_<arm>_<seed>.txt")
    parser.add_argument("--extra", type=json.loads, default={},
                        help="a JSON object of more top-level fields (workers, timings)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    machine = settings = None
    for f in args.files:
        if not f.is_file():
            continue
        d = json.loads(f.read_text())
        rows += d["rows"]
        machine, settings = machine or d.get("machine"), settings or d.get("settings")
    payload = {"benchmark": "weight_averaging", "machine": machine, "settings": settings,
               **args.extra, "arms": args.arms, "seeds": args.seeds, "control": args.arms[0],
               "rows": rows, "missing": missing(rows, args.arms, args.seeds, args.logs),
               "summary": summarize(rows, args.arms, args.seeds, args.arms[0])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, default=str))
    for arm, entry in payload["summary"].items():
        test = entry["test_accuracy"]
        line = f"{arm:<16} n {test['n']}  test mean {_f(test['mean'])} sd {_f(test['sd'])}"
        diff = entry.get(f"test_accuracy_minus_{args.arms[0]}")
        if diff:
            line += (f"  minus {args.arms[0]}: mean {_f(diff['mean'], '+.4f')} "
                     f"sd {_f(diff['sd'])} by seed "
                     + " ".join(f"{s}:{d:+.4f}" for s, d in diff["by_seed"].items()))
        print(line)
    for m in payload["missing"]:
        print("missing", m)
    print(f"wrote {args.out}")
    return 0


def _f(x: float | None, spec: str = ".4f") -> str:
    return "-" if x is None else format(x, spec)


if __name__ == "__main__":
    sys.exit(main())
