"""Where the importance ranking becomes stable: the minimum of finished trials that
``analyze`` asks for (``analysis.MIN_TRIALS``).

On each synthetic set with a known answer (tests/importance_sets.py), for each number of
trials and several seeds: does the hyperparameter that matters rank first and stand out (its
importance more than twice its spread)? And on noise only, does anything stand out by chance?
A conditional hyperparameter is measured apart (``child_only``, judged from 3 trials where it
is set instead of ``analysis.MIN_ACTIVE``): does it rank first, against the trials it is set in?
Usage: python benchmarks/bench_importance.py [--seeds 10] [--sizes 12 16 20 24 30 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import common

sys.path.insert(0, str(common.REPO / "tests"))


def outcome(name: str, n: int, seed: int) -> dict:
    from importance_sets import LOG, MATTERS, trial_set

    from fmnist_search import analysis

    values, scores = trial_set(name, n, seed=seed)
    analysis.MIN_ACTIVE = 3  # measured here, not assumed
    imp = analysis.importance_from_values(name, values, scores, LOG, seed=seed, minimum=0)
    table = imp.table.dropna(subset=["importance"])
    stands = table[table["importance"] > 2 * table["std"]]["hyperparameter"].tolist()
    matters = MATTERS[name]
    ranked = table["hyperparameter"].tolist()
    return {"first_right": bool(matters) and ranked[0] == matters[0],
            "order_right": bool(matters) and ranked[:len(matters)] == matters,
            "all_stand_out": bool(matters) and set(matters) <= set(stands),
            "false_alarm": bool(set(stands) - set(matters)),
            "child_set_in": sum("filters_3" in v for v in values)}


def main() -> None:
    from importance_sets import SETS

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[12, 16, 20, 24, 30, 40])
    args = parser.parse_args()
    start = time.perf_counter()
    rows = []
    for name in SETS:
        for n in args.sizes:
            runs = [outcome(name, n, seed) for seed in range(args.seeds)]
            row = {"set": name, "trials": n,
                   **{k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"machine": common.machine(), "seeds": args.seeds, "rows": rows,
              "seconds": round(time.perf_counter() - start, 1)}
    path = common.RESULTS / "importance_stability.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
