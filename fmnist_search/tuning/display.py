"""The live display of a search: one rich Progress for the trials (with ETA), then the current
trial's epoch and batch bars; one line per finished trial."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape


class SearchDisplay:
    def __init__(self, console: Console, total: int, done: int, best: float | None = None):
        from fmnist_search.progress import make_progress

        self.console = console
        self.total = total
        self.progress = make_progress(console)
        self.best = best  # carried over from the trials of earlier runs of this project
        self.task = self.progress.add_task("trials", total=total, completed=done,
                                           status=self._status())

    def _status(self) -> str:
        return f"best {self.best:.4f}" if self.best is not None else ""

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]repaired[/]: {escape(text)}")

    def trial_begin(self, trial_id: str, number: int, name: str) -> None:
        self.console.print(f"[bold]trial {trial_id}[/] ({number}/{self.total}) {escape(name)}")

    def trial_end(self, record: dict[str, Any]) -> None:
        if record["status"] == "PRUNED":
            line = f"  [yellow]pruned[/]: {escape(record['reason'])}"
        elif record["status"] == "REJECTED":
            line = f"  [yellow]rejected[/]: {escape(record['reason'].removeprefix('rejected: '))}"
        elif record["status"] == "COMPLETED":
            acc = record["val_accuracy"]
            self.best = acc if self.best is None else max(self.best, acc)
            line = (f"  done: val_acc {acc:.4f}  val_loss {record['val_loss']:.4f}  "
                    f"{record['epochs']} epochs  {record['seconds_per_epoch']:.1f} s/epoch  "
                    f"{record['params']:,} params   best so far {self.best:.4f}")
        else:
            line = f"  [red]failed[/]: {escape(record['reason'])}"
        self.console.print(line)
        self.progress.advance(self.task)
        self.progress.update(self.task, status=self._status())
