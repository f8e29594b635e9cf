"""The epoch checkpoint's cost (``checkpoints.EpochCheckpoint``) against an epoch of the `resnet`
space's default point (ResNet-20-like), as a share of a full 48,000-image epoch.

Two copies of the model (same seed), one trained with the checkpoint callback and one without,
one epoch each in turn in rotating order (this machine's speed drifts over minutes: see
``bench_epoch.bench_model``), on a small subset of the real data. The write itself is timed
inside the callback; it does not depend on the number of images, so its share of a full epoch
is its median seconds over the full epoch's (the subset epoch scaled by 48,000 / its training
images). Round 1 pays for tracing and is left out.

    .venv/bin/python benchmarks/bench_checkpoint.py [--subset 0.05] [--rounds 4]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import common

FULL_TRAIN = 48_000  # the whole training split (the default 20% held out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=4, help="epochs each (the first: warm-up)")
    args = parser.parse_args()

    import keras
    from rich.console import Console

    from fmnist_search import builder, checkpoints, dataset, space, store, training
    from fmnist_search.callbacks import EpochLog, EpochProgress
    from fmnist_search.progress import make_progress

    values = builder.resolve(space.load_named("resnet").default_values())
    ds = dataset.prepare(dataset.DataSettings(subset=args.subset))
    models = {}
    for who in ("plain", "checkpointed"):
        keras.utils.set_random_seed(0)
        models[who] = builder.build_model(values, ds.num_classes, policy="float32")
    times: dict[str, list[float]] = {who: [] for who in models}
    writes: list[float] = []
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / f"{store.CHECKPOINT_PREFIX}bench"
        for epoch in range(args.rounds):
            order = list(models) if epoch % 2 == 0 else list(models)[::-1]
            for who in order:
                log = EpochLog()
                extra: list = []
                saver = None
                if who == "checkpointed":
                    saver = checkpoints.EpochCheckpoint(folder, "bench", log, "", time.perf_counter())
                    extra.append(saver)
                with make_progress(Console(file=io.StringIO())) as progress:
                    extra.insert(0, EpochProgress(progress, log, epoch + 1))
                    start = time.perf_counter()
                    training.fit(models[who], values, (ds.x_train, ds.y_train),
                                 (ds.x_val, ds.y_val), epoch + 1, initial_epoch=epoch, log=log,
                                 extra_callbacks=extra)
                    times[who].append(time.perf_counter() - start)
                if saver is not None:
                    writes.append(saver.seconds)
                    sizes = {"weights" if p.name.endswith(store.CHECKPOINT_WEIGHTS)
                             else p.name: p.stat().st_size for p in folder.iterdir()}
            print(f"round {epoch + 1}/{args.rounds}: "
                  + ", ".join(f"{who} {t[-1]:.2f} s" for who, t in times.items())
                  + f", write {writes[-1] * 1000:.1f} ms", flush=True)
    epoch_seconds = statistics.median(times["plain"][1:])
    full_epoch = epoch_seconds * FULL_TRAIN / len(ds.y_train)
    write_seconds = statistics.median(writes[1:])
    result = {
        "settings": {**vars(args), "n_train": len(ds.y_train), "n_val": len(ds.y_val),
                     "architecture": builder.short_name(values, ds.num_classes),
                     "params": models["plain"].count_params(), "policy": "float32",
                     "batch_size": int(values["batch_size"]),
                     "design": "two copies of the model, one epoch each in alternating order "
                               "per round; medians over rounds 2..N; the full epoch is the "
                               "plain subset epoch scaled by 48,000 / n_train"},
        "checkpoint_bytes": sizes,
        "write_seconds": write_seconds,
        "write_seconds_all": writes,
        "subset_epoch_seconds": {who: statistics.median(t[1:]) for who, t in times.items()},
        "epoch_times": times,
        "full_epoch_seconds_estimate": full_epoch,
        "write_share_of_full_epoch": write_seconds / full_epoch,
    }
    print({k: v for k, v in result.items() if k not in ("settings", "epoch_times",
                                                        "write_seconds_all")}, flush=True)
    common.write("checkpoint", result)


if __name__ == "__main__":
    main()
