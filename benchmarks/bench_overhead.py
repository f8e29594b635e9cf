"""Per-trial overhead of a search: wall time of a trial minus the time spent inside ``fit``.

A search of N trials of the report's model1 architecture (only the learning rate varies, so
every trial costs the same), E epochs each on the full training split. Two measures:
per trial (our record.json: run_trial wall time vs fit time) and for the whole search
(search wall time vs the sum of fit times, which also counts the oracle's own work between
trials). Usage: python benchmarks/bench_overhead.py [--trials 3] [--epochs 3]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import common


def space_file(directory: Path) -> Path:
    """model1 pinned, learning rate free: the same cost every trial."""
    from fmnist_search import baselines

    lines = []
    for key, value in baselines.load("model1").values.items():
        if key in ("learning_rate", "epochs"):
            continue
        lit = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
        lines.append(f'[hp.{key}]\ntype = "fixed"\nvalue = {lit}\n')
    lines.append('[hp.learning_rate]\ntype = "float"\nmin = 5e-4\nmax = 2e-3\nsampling = "log"\n')
    path = directory / "model1_lr.toml"
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    from rich.console import Console

    from fmnist_search import dataset, presets, space, tuning

    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sp = space.load_space(space_file(Path(tmp)))
        preset = presets.Preset(tuner="random", trials=args.trials, epochs=args.epochs,
                                subset=1.0, patience=0, precision=args.precision)
        ds = dataset.prepare(dataset.DataSettings())
        req = tuning.SearchRequest(sp, preset, ds, Path(tmp) / "res", "overhead", seed=0)
        start = time.perf_counter()
        tuning.search(req, Console(file=io.StringIO()))
        search_wall = time.perf_counter() - start
        records = [json.loads(p.read_text())
                   for p in sorted((Path(tmp) / "res" / "overhead").glob("trial_*/record.json"))]
    per_trial = [{"wall": r["wall_seconds"], "fit": r["fit_seconds"],
                  "overhead": r["wall_seconds"] - r["fit_seconds"],
                  "overhead_fraction": (r["wall_seconds"] - r["fit_seconds"]) / r["wall_seconds"]}
                 for r in records]
    fit_total = sum(r["fit_seconds"] for r in records)
    out = {
        "settings": {**vars(args), "n_train": len(ds.y_train), "model": "model1, lr varies"},
        "per_trial": per_trial,
        "max_overhead_fraction_per_trial": max(p["overhead_fraction"] for p in per_trial),
        "search_wall_seconds": search_wall,
        "sum_fit_seconds": fit_total,
        "search_overhead_fraction": (search_wall - fit_total) / search_wall,
        "note": "search wall includes loading Keras Tuner state, the oracle and the display",
    }
    print(json.dumps({k: v for k, v in out.items() if k != "per_trial"}, indent=1))
    common.write("trial_overhead", out)


if __name__ == "__main__":
    main()
