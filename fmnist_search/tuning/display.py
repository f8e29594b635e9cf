"""The live display of a search: one rich Progress for the trials (with ETA), then the current
trial's epoch and batch bars (or, for a distributed chief, one row per worker); one line per
trial that starts and per trial that ends."""

from __future__ import annotations

from pathlib import Path
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

    def note(self, text: str, label: str = "repaired") -> None:
        self.console.print(f"[yellow]{label}[/]: {escape(text)}")

    def trial_begin(self, trial_id: str, number: int, name: str, where: str = "") -> None:
        on = f" on {where}" if where else ""
        self.console.print(f"[bold]trial {trial_id}[/] ({number}/{self.total}){on} "
                           f"{escape(name)}")

    def trial_end(self, record: dict[str, Any], label: str = "") -> None:
        """One line; ``label`` names the trial where trials run side by side."""
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
        self.console.print(f"  {escape(label)}{line.lstrip()}" if label else line)
        self.progress.advance(self.task)
        self.progress.update(self.task, status=self._status())


class RecordWatcher:
    """The chief's view of trials that run in other processes: it reads their ``record.json``
    files and the workers' heartbeats, and drives a ``SearchDisplay`` with them."""

    def __init__(self, display: SearchDisplay, project_dir: Path) -> None:
        from fmnist_search import store

        self.display = display
        self.project_dir = project_dir
        self.begun: set[str] = set()
        self.ended: set[str] = set()
        for d in store.trial_dirs(project_dir):
            record = store.read_trial_record(d)
            if record and record.get("status") != "RUNNING":
                self.ended.add(store.trial_id_of(d))
        self.rows: dict[str, Any] = {}  # worker id -> its progress task

    def tick(self) -> None:
        from fmnist_search import store

        beats = self._beats()
        where = {b.get("trial"): w for w, b in beats.items() if b.get("trial")}
        for d in store.trial_dirs(self.project_dir):
            trial_id = store.trial_id_of(d)
            if trial_id in self.ended:
                continue
            record = store.read_trial_record(d)
            if record is None:
                continue
            if record.get("status") == "RUNNING" and trial_id not in self.begun:
                self.begun.add(trial_id)
                name = record.get("architecture") or beats.get(where.get(trial_id), {}).get(
                    "architecture", "")
                self.display.trial_begin(trial_id, len(self.ended) + len(self.begun),
                                         name, where.get(trial_id, ""))
            elif record.get("status") != "RUNNING":
                self.ended.add(trial_id)
                self.begun.discard(trial_id)
                self.display.trial_end(record, f"trial {trial_id} ")
        self._show_workers(beats)

    def _beats(self) -> dict[str, dict[str, Any]]:
        from fmnist_search import store

        folder = self.project_dir / store.WORKERS
        beats = {}
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if path.name != store.CHIEF_JSON and (state := store.read_json(path)):
                beats[path.stem] = state
        return beats

    def _show_workers(self, beats: dict[str, dict[str, Any]]) -> None:
        progress = self.display.progress
        for worker in [w for w in self.rows if w not in beats]:  # refused: its file is gone
            progress.remove_task(self.rows.pop(worker))
        for worker, beat in beats.items():
            if worker not in self.rows:
                self.rows[worker] = progress.add_task(f"  {worker}", total=None, status="")
            trial = beat.get("trial")
            status = (f"trial {trial}: epoch {beat.get('epoch', 0)}/{beat.get('epochs', '?')}"
                      if trial else beat.get("status", ""))
            progress.update(self.rows[worker], total=beat.get("epochs") if trial else None,
                            completed=beat.get("epoch", 0) if trial else 0, status=status)
