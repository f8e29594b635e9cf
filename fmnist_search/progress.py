"""Rich progress displays for training, fed by a Keras callback that reads the
:class:`~fmnist_search.training.EpochLog` (so what is shown is what is stored).

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

from fmnist_search.training import EpochLog, keras_callback_base

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


class EpochProgress(keras_callback_base()):
    """Drives an epochs bar and a batches bar on a shared rich Progress."""

    # A batch hook makes Keras read every step's logs synchronously unless the callback is
    # declared safe to run on its dispatch thread; rich's Progress is thread-safe.
    async_safe = True

    def __init__(self, progress: Progress, log: EpochLog, epochs: int, label: str = "epochs",
                 print_epochs: bool = True, keep: bool = True) -> None:
        super().__init__()
        self.keep = keep
        self.log = log
        self.progress = progress
        self.epochs = epochs
        self.print_epochs = print_epochs
        self.epoch_task = progress.add_task(label, total=epochs, status="")
        self.batch_task = progress.add_task("  batches", total=None, status="", visible=False)

    def on_train_begin(self, logs=None):
        steps = self.params.get("steps")
        self.progress.update(self.batch_task, total=steps, completed=0, visible=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.progress.update(self.batch_task, completed=0)

    def on_train_batch_end(self, batch, logs=None):
        # Reading the loss forces a sync with the training step, so only now and then.
        if batch % BATCH_EVERY == 0:
            loss = (logs or {}).get("loss")
            status = f"loss {float(loss):.4f}" if loss is not None else ""
            self.progress.update(self.batch_task, completed=batch + 1, status=status)

    def on_epoch_end(self, epoch, logs=None):
        row = self.log.rows[-1]
        status = f"val_acc {row.get('val_accuracy', float('nan')):.4f}"
        self.progress.update(self.epoch_task, completed=epoch + 1, status=status)
        if self.print_epochs:
            self.progress.console.print(epoch_line(row, self.epochs))

    def on_train_end(self, logs=None):
        self.progress.update(self.batch_task, visible=False)
        if not self.keep:  # a search shows one trial's bars at a time
            self.progress.remove_task(self.batch_task)
            self.progress.remove_task(self.epoch_task)
