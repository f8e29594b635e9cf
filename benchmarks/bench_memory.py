"""Memory: peak RSS of one search process after 5 and after 50 tiny trials.

Tiny trials (a one-stage model on 2,000 real images, one epoch) in one process, the search
resumed in place from 5 to 50 trials. Keras Tuner clears the Keras session between trials; a
leak would show as peak RSS growing with the trial count.
Usage: python benchmarks/bench_memory.py [--first 5] [--last 50]
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import common

TINY = common.REPO / "tests" / "tiny_space.toml"


def main() -> None:
    from rich.console import Console

    from fmnist_search import dataset, presets, space, tuning

    parser = argparse.ArgumentParser()
    parser.add_argument("--first", type=int, default=5)
    parser.add_argument("--last", type=int, default=50)
    args = parser.parse_args()
    sp = space.load_space(TINY)
    ds = dataset.prepare(dataset.DataSettings(subset=2500 / 60000))
    after = {}
    with tempfile.TemporaryDirectory() as tmp:
        for trials in (args.first, args.last):
            preset = presets.Preset(tuner="random", trials=trials, epochs=1, subset=1.0,
                                    patience=0, precision="fp32")
            req = tuning.SearchRequest(sp, preset, ds, Path(tmp), "memory", seed=0)
            tuning.search(req, Console(file=io.StringIO()))
            after[trials] = common.peak_rss_mib()
            print(f"peak RSS after {trials} trials: {after[trials]:.0f} MiB", flush=True)
    out = {"settings": vars(args), "peak_rss_mib": after,
           "ratio_last_over_first": after[args.last] / after[args.first]}
    common.write("memory", out)


if __name__ == "__main__":
    main()
