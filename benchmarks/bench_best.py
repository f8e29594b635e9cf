"""The whole budget-aware pipeline, as a user runs it, timed end to end.

Runs ``fmnist-search run --space resnet --search best --max-time T`` in a fresh results
directory (a subprocess: the command a user types, start-up included), then reads the project
and its ``final.json`` and writes the machine, the versions, the wall time of each stage
(screening, each finalized model, the whole command), the trials by status and the final table
to ``benchmarks/results/best.json``. It takes as long as ``--max-time`` (hours by default).
Usage (the README's command):

    python benchmarks/bench_best.py --max-time 3h

``--reuse-baselines DIR`` copies the finished report-model runs and controls (the space's
default point under the final protocol) of an earlier results directory into the fresh one
first, so finalize reuses those of the same protocol, data and seed (as it does for a user's
second search in one results directory) and the budget keeps no time for them: their training
time is recorded beside the command's (``reused_wall_seconds``) for an honest total.

Options after ``--`` go to ``fmnist-search run`` unchanged (a smoke check of the script:
``--max-time 30s --out /tmp/best.json -- --subset 0.02 --trials 2 --no-finalize``).

A run longer than one sitting (a 3-hour proof run on a machine lent for 3-hour sessions):
``--resume`` runs the same command again in the same ``--results-dir`` (the tool resumes the
project, and ``--max-time`` counts the earlier parts, ``budget_clock``), and ``--report-only``
writes the JSON from what the directory holds without running anything (at the end of a
session, with the run still unfinished). The JSON's ``parts`` say which parts ran when (the
project's ``clock.json``), and ``pipeline_seconds`` is their sum: the run's own time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import common

from fmnist_search import finalize, results, store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-time", default="3h", help="the run's --max-time (default 3h)")
    parser.add_argument("--results-dir", type=Path,
                        help="where the run writes (default: a fresh temporary directory)")
    parser.add_argument("--out", type=Path, help="JSON file (default benchmarks/results/best.json)")
    parser.add_argument("--reuse-baselines", type=Path, metavar="DIR",
                        help="copy DIR/baselines and DIR/controls (finished runs) in first")
    parser.add_argument("--resume", action="store_true",
                        help="go on with the run in --results-dir (the same command again)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the JSON from --results-dir without running anything")
    parser.add_argument("extra", nargs="*", help="after --: more options for `run`")
    args = parser.parse_args()
    root = args.results_dir or Path(tempfile.mkdtemp(prefix="bench-best-"))
    project = "best"
    going_on = args.resume or args.report_only
    if going_on and not (root / project / "run.json").is_file():
        parser.error(f"--results-dir {root} holds no run to go on with")
    if not going_on and root.exists() and any(root.iterdir()):
        parser.error(f"--results-dir {root} is not empty: the benchmark needs a fresh one "
                     "(or --resume)")
    for kind in (store.BASELINES, store.CONTROLS) if args.reuse_baselines and not going_on \
            else ():
        if (args.reuse_baselines / kind).is_dir():
            shutil.copytree(args.reuse_baselines / kind, root / kind)
    cmd = [sys.executable, "-m", "fmnist_search", "run", "--space", "resnet", "--search",
           "best", "--max-time", args.max_time, "--project", project, "--results-dir",
           str(root), *args.extra]
    print(" ".join(cmd), flush=True)
    start = time.time()
    returncode = None
    if not args.report_only:
        returncode = subprocess.run(cmd, cwd=common.REPO).returncode
    wall = time.time() - start

    rows = results.trial_rows(root, project) if (root / project).is_dir() else []
    final = store.read_final(root, project) or {}
    parts = _parts(root, project)
    payload = {
        "command": " ".join(cmd[2:]),
        "exit_status": returncode,  # of this invocation (None: --report-only)
        "max_time": args.max_time,
        "results_dir": str(root),
        "wall_seconds": wall,  # this invocation's
        "parts": parts,
        "pipeline_seconds": sum(p["seconds"] for p in parts),
        "stages": {
            "screening_seconds": finalize.screening_seconds(root, project)
            if (root / project).is_dir() else None,
            "finalize_seconds": final.get("stages", {}).get("finalize_seconds"),
            "models": final.get("stages", {}).get("models", []),
        },
        "reused_from": str(args.reuse_baselines) if args.reuse_baselines else None,
        "reused_wall_seconds": sum(m.get("seconds") or 0.0
                                   for m in final.get("stages", {}).get("models", [])
                                   if m.get("reused")),
        "trials": dict(Counter(r["status"] for r in rows)),
        "best_screening": max((r for r in rows if r["status"] == "COMPLETED"),
                              key=lambda r: r["val_accuracy"], default=None),
        "final_complete": final.get("complete", False),
        "final_epochs": final.get("epochs"),
        "final_table": [{k: r.get(k) for k in (
            "stage", "name", "test_accuracy", "val_accuracy", "params", "seconds_per_epoch",
            "epochs", "wall_seconds", "reused", "screening_val_accuracy", "architecture",
            "inference_ms_per_image", "members")}
            for r in final.get("rows", [])],
        "ensemble": final.get("ensemble"),
        "delivered": final.get("delivered"),
        "final_skipped": final.get("skipped", []),  # not started: past --max-time
        "control": final.get("control"),
        "seed": _run_json(root, project).get("data", {}).get("seed"),
        "fidelity": _fidelity(),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"benchmark": "best", "machine": common.machine(),
                                        **payload}, indent=2, default=str))
        print(f"wrote {args.out}")
    else:
        common.write("best", payload)
    return returncode or 0


def _parts(root: Path, project: str) -> list[dict]:
    """Which parts of the pipeline ran when (``clock.json``, written by the tool)."""
    from datetime import datetime, timezone

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")

    record = store.read_json(root / project / store.CLOCK_JSON) or {}
    return [{"started": iso(p["start"]), "last_seen": iso(p["last"]),
             "seconds": p["last"] - p["start"]}
            for p in record.get("parts", []) if isinstance(p, dict) and "last" in p]


def _run_json(root: Path, project: str) -> dict:
    path = root / project / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _fidelity() -> dict | None:
    """What the screening of this run was chosen on: the fidelity benchmark's correlations."""
    path = common.RESULTS / "fidelity.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return {k: data.get(k) for k in ("spearman_with_final", "seed_sd", "screening_subset",
                                     "final_epochs", "complete")} | {
        "configs_scored": sum(1 for r in data.get("rows", []) if (r.get("scores") or {}).get("final") is not None)}


if __name__ == "__main__":
    sys.exit(main())
