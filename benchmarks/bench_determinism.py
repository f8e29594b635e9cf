"""What TensorFlow's op determinism costs per epoch here, and whether a CPU needs it.

Op determinism is process-wide and cannot be turned off again, so each contestant is its own
process, and the two alternate (off, on, off, on, ...) so that this machine's drift (up to 2x
between runs) falls on both. Each process reseeds as a trial does, trains the ``resnet`` space's
default point for ``--epochs`` epochs on ``--subset`` of the training split in the project's
precision, and reports its seconds per epoch (the first epoch's tracing left out) and a digest
of its weights: two processes of one contestant with equal digests are reproducible.

    python benchmarks/bench_determinism.py --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys

import common


def one(deterministic: bool, subset: float, epochs: int) -> dict:
    import numpy as np
    import tensorflow as tf

    if deterministic:
        tf.config.experimental.enable_op_determinism()
    from fmnist_search import builder, presets, space, training
    from fmnist_search.dataset import DataSettings, prepare
    from fmnist_search.reproducibility import seed_everything

    preset = presets.load("best")
    policy = training.choose_policy(preset.precision)  # applied by the builder
    data = prepare(DataSettings(subset=subset))
    values = builder.resolve({**space.load_named("resnet").default_values(), **preset.fixed})
    seed_everything(1234)
    model = builder.build_model(values, data.num_classes, policy=policy)
    result = training.fit(model, values, (data.x_train, data.y_train),
                          (data.x_val, data.y_val), epochs, patience=0)
    digest = hashlib.sha256(b"".join(np.asarray(w).tobytes()
                                     for w in model.get_weights())).hexdigest()[:16]
    return {"deterministic": deterministic, "seconds_per_epoch": result.seconds_per_epoch,
            "val_accuracy": result.history[-1]["val_accuracy"], "weights": digest,
            "policy": policy}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subset", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(one(args.child == "on", args.subset, args.epochs)))
        return 0
    runs = []
    for r in range(args.rounds):
        for mode in ("off", "on"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--subset",
                                  str(args.subset), "--epochs", str(args.epochs)],
                                 capture_output=True, text=True, check=True).stdout
            run = json.loads(next(line for line in out.splitlines()
                                  if line.startswith("RESULT "))[7:])
            print(f"round {r + 1} op determinism {mode}: {run}", flush=True)
            runs.append(run)
    summary = {}
    for flag in (False, True):
        mine = [r for r in runs if r["deterministic"] is flag]
        summary["on" if flag else "off"] = {
            "median_seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in mine),
            "reproducible": len({r["weights"] for r in mine}) == 1}
    summary["cost"] = (summary["on"]["median_seconds_per_epoch"]
                       / summary["off"]["median_seconds_per_epoch"] - 1)
    print(json.dumps(summary, indent=2))
    common.write("determinism", {"subset": args.subset, "epochs": args.epochs, "runs": runs,
                                 "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
