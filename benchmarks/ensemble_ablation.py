"""What the search and the averaging each contributed to a finalized project's delivered model,
from its own saved predictions: nothing is trained.

For a project that ``finalize`` went through (``final.json`` with its ``ensemble`` stage), it
reads every candidate's validation and test probabilities (``predictions.npz``), runs the same
greedy selection (``ensemble.greedy_select``, the project's size and parameter limits) on
restricted pools and tests each result, paired against the control (``paired.compare``):

- the best single model on validation (what finalize delivered before the ensemble stage),
- the ensemble finalize chose (all candidates),
- the ensemble of the control and the report baselines only (no searched model: what averaging
  alone gives a user who never searches),
- the ensemble of the searched models only.

    python benchmarks/ensemble_ablation.py RESULTS_DIR [--project best] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import common
import numpy as np

from fmnist_search import ensemble, paired, results, store

SEARCHED = ("final",)
UNSEARCHED = ("control", "baseline")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("--project", default="best")
    parser.add_argument("--out", type=Path, help="JSON (default: print only)")
    args = parser.parse_args()
    payload = ablation(args.results_dir, args.project)
    for row in payload["rows"]:
        print(f"{row['variant']:<42} {row['test_accuracy']:.4f}  {row['params']:>9,} params  "
              f"{row.get('members_text', '')}  {row.get('against_control', '')}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"benchmark": "ensemble_ablation",
                                        "machine": common.machine(), **payload}, indent=2))
        print(f"wrote {args.out}")
    return 0


def ablation(root: Path, project: str) -> dict:
    final = store.read_final(root, project)
    if not final or "ensemble" not in final:
        raise SystemExit(f"{root}/{store.FINALIZED}/{project}/final.json has no ensemble stage: "
                         "run finalize first")
    run = results.load_project(root, project)
    from rich.console import Console

    from fmnist_search.dataset import DataSettings
    from fmnist_search.pipeline import prepare_data

    data = prepare_data(DataSettings.from_record(run["data"]), Console(stderr=True))
    stage = final["ensemble"]
    size, limit = int(stage.get("size") or ensemble.DEFAULT_SIZE), stage.get("max_params")
    members = [ensemble.load_member(c["name"], c["stage"], Path(c["path"]), data.x_val,
                                    data.x_test) for c in stage["candidates"]]
    control = next((m for m in members if m.stage == "control"), None)
    pools = {
        "best single model (validation)": None,
        "ensemble of every candidate (delivered)": members,
        "ensemble of the control and report models only": [m for m in members
                                                           if m.stage in UNSEARCHED],
        "ensemble of the searched models only": [m for m in members if m.stage in SEARCHED],
    }
    rows = []
    for variant, pool in pools.items():
        if pool is None:
            fits = [m for m in members if limit is None or m.params <= limit]
            best = max(fits, key=lambda m: float(np.mean(m.val.argmax(1) == data.y_val)))
            picked, counts = [best], [1]
        else:
            if not pool:
                continue
            chosen = ensemble.greedy_select([m.val for m in pool], data.y_val,
                                            [m.params for m in pool], size, limit)
            if chosen is None:
                continue
            keys = sorted(chosen.counts)
            picked, counts = [pool[i] for i in keys], [chosen.counts[i] for i in keys]
        test = sum(c * m.test for m, c in zip(picked, counts, strict=True)) / sum(counts)
        val = sum(c * m.val for m, c in zip(picked, counts, strict=True)) / sum(counts)
        row = {"variant": variant, "members": [{"name": m.name, "stage": m.stage, "weight": c}
                                               for m, c in zip(picked, counts, strict=True)],
               "members_text": ensemble.describe(picked, counts),
               "params": sum(m.params for m in picked),
               "val_accuracy": float(np.mean(val.argmax(1) == data.y_val)),
               "test_accuracy": float(np.mean(test.argmax(1) == data.y_test))}
        if control is not None:
            versus = paired.compare(variant, test, control.name, control.test, data.y_test)
            row["paired_with_control"] = versus.as_dict()
            row["against_control"] = (f"{versus.gain:+.4f} vs control, McNemar p = "
                                      f"{versus.p_value:.2g}")
        rows.append(row)
    return {"results_dir": str(root), "project": project, "size": size, "max_params": limit,
            "candidates": [{"name": m.name, "stage": m.stage, "params": m.params,
                            "test_accuracy": float(np.mean(m.test.argmax(1) == data.y_test)),
                            "val_accuracy": float(np.mean(m.val.argmax(1) == data.y_val))}
                           for m in members],
            "rows": rows}


if __name__ == "__main__":
    sys.exit(main())
