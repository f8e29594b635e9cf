"""Rich progress displays for training (fed by ``callbacks.EpochProgress``, which reads the
``EpochLog``, so what is shown is what is stored).

Keras' own progress bar prints a line per epoch with no ETA over the whole run and fights with
any other live display; this shows one bar for the epochs (with ETA), one for the batches of
the current epoch, and a line per finished epoch with the numbers people watch.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

BATCH_EVERY = 25


def make_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=False,
    )


def epoch_line(row: dict, total: int) -> str:
    parts = [f"epoch {row['epoch']:>3}/{total}"]
    for key, label in (("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss"),
                       ("val_accuracy", "val_acc")):
        if key in row:
            parts.append(f"{label} {row[key]:.4f}")
    parts.append(f"lr {row['lr']:.2e}")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)
