"""One hand-picked point of the new vocabulary, trained the way a finalize stage would: the
whole training split (48,000 images, 12,000 held out), then the official test set.

Not a search: it answers "can the vocabulary reach the issue's bar within this machine's time
at all?" before the budgeted search is run. The point is the `resnet` space's default
(ResNet-20-like, 3 stages x 3 pre-activation blocks, width 16, GAP head) with pad-and-crop and
flip augmentation, AdamW with cosine schedule and warm-up, label smoothing, and flip TTA.

    .venv/bin/python benchmarks/bench_candidate.py --epochs 30
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

from common import write
from rich.console import Console

OVERRIDES = {
    "aug_translate": 2, "aug_flip": True,
    "optimizer": "adamw", "learning_rate": 3e-3, "weight_decay": 0.05,
    "schedule": "cosine", "warmup_epochs": 2, "label_smoothing": 0.1,
    "l2": 0.0, "batch_size": 128, "tta": True,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--subset", type=float, default=1.0)
    args = parser.parse_args()

    from fmnist_search import builder, dataset, runs, space

    values = {**space.load_named("resnet").default_values(), **OVERRIDES,
              "epochs": args.epochs}
    ds = dataset.prepare(dataset.DataSettings(subset=args.subset))
    log = io.StringIO()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        spec = runs.RunSpec(kind="retrained", name="candidate", values=values,
                            epochs=args.epochs, precision="auto")
        _, metrics = runs.train_run(spec, ds, Path(tmp), Console(file=log, width=120))
    write("candidate", {
        "settings": {"epochs": args.epochs, "subset": args.subset, "values": values,
                     "n_train": len(ds.y_train), "n_val": len(ds.y_val),
                     "n_test": len(ds.y_test)},
        "architecture": builder.short_name(values, ds.num_classes),
        "params": metrics["params"],
        "precision": metrics["precision"],
        "seconds_per_epoch": metrics["seconds_per_epoch"],
        "wall_seconds": time.time() - started,
        "val_accuracy": metrics["val_accuracy"],
        "test_accuracy": metrics["test_accuracy"],
        "log": log.getvalue().splitlines()[-60:],
    })


if __name__ == "__main__":
    main()
