"""A search as a TensorBoard HParams experiment: the dashboard's table, parallel coordinates
and scatter plots, where Keras users look at a search (Keras Tuner itself logs there).

Written with TensorBoard's own HParams API (``tensorboard.plugins.hparams.api``), so the
dashboard reads it as it reads Keras Tuner's: the experiment (every hyperparameter's domain and
the metrics) at the top of the folder, one session per trial in ``trial_<id>/`` with its
values, status, epochs, parameters, seconds per epoch and metrics. ``tensorboard`` is an
optional dependency (``pip install tensorboard``); without it, exporting says so.

Read-only on the project, like ``analysis``; the folder is written anew each time (earlier
event files this export wrote there are removed, so a session is never shown twice).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from fmnist_search.errors import UserError

METRICS = {"val_accuracy": "validation accuracy", "val_loss": "validation loss",
           "params": "parameters", "seconds_per_epoch": "seconds per epoch",
           "epochs": "epochs trained"}
STATUS = "status"  # a hyperparameter column of its own, so the table can filter on it
EVENTS = "events.out.tfevents.*"
DISCRETE = 16  # whole-number hyperparameters with at most this many values are a discrete set


def require() -> None:
    """Refuse early (before any work) when tensorboard is not installed."""
    _api()


def _api():
    try:
        from tensorboard.plugins.hparams import api
    except ImportError as exc:
        raise UserError("--tensorboard needs the tensorboard package, which is not installed: "
                        "`pip install tensorboard` (or `pip install 'fmnist-search[tensorboard]'"
                        "`), then run the command again.") from exc
    return api


def _plain(value: Any) -> bool | int | float | str:
    """A value the HParams summary takes (bool, number or string); anything else as JSON."""
    return value if isinstance(value, (bool, int, float, str)) else json.dumps(value)


def domains(values: list[dict[str, Any]]) -> dict[str, tuple[str, list[Any]]]:
    """Each hyperparameter's kind and the values the trials had: ``bool``, ``int`` (whole
    numbers, a discrete set up to ``DISCRETE`` of them), ``float`` (an interval) or ``str``
    (a discrete set; anything else is shown as its JSON)."""
    found: dict[str, list[Any]] = {}
    for v in values:
        for name, value in v.items():
            found.setdefault(name, []).append(_plain(value))
    out = {}
    for name, seen in sorted(found.items()):
        if all(isinstance(x, bool) for x in seen):
            kind = "bool"
        elif all(isinstance(x, int) and not isinstance(x, bool) for x in seen):
            kind = "int" if len(set(seen)) <= DISCRETE else "float"
        elif all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in seen):
            kind = "float"
        else:
            kind = "str"
        out[name] = (kind, sorted({_cast(x, kind) for x in seen}))
    return out


def _cast(value: Any, kind: str) -> bool | int | float | str:
    return {"bool": bool, "int": int, "float": float, "str": str}[kind](_plain(value))


def _hparam(name: str, kind: str, seen: list[Any]):
    hp = _api()
    if kind == "float":
        return hp.HParam(name, hp.RealInterval(float(seen[0]), float(seen[-1])))
    return hp.HParam(name, hp.Discrete(seen))


def _clear(directory: Path) -> None:
    """Remove event files an earlier export wrote (top level and ``trial_*/``)."""
    for path in [*directory.glob(EVENTS), *directory.glob(f"trial_*/{EVENTS}")]:
        path.unlink()


def export(trials: pd.DataFrame, directory: Path) -> int:
    """Write the trials (``analysis.trial_frame``: every trial, finished or not) as an HParams
    experiment under ``directory``; return how many sessions were written."""
    hp = _api()
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)
    _clear(directory)
    values = [dict(v) for v in trials["values"]]
    kinds = domains(values)
    hparams = [_hparam(name, kind, seen) for name, (kind, seen) in kinds.items()]
    statuses = sorted(set(trials["status"].astype(str))) or ["COMPLETED"]
    hparams.append(hp.HParam(STATUS, hp.Discrete(statuses)))
    with tf.summary.create_file_writer(str(directory)).as_default():
        hp.hparams_config(hparams=hparams,
                          metrics=[hp.Metric(k, display_name=v) for k, v in METRICS.items()])
    for row in trials.itertuples(index=False):
        writer = tf.summary.create_file_writer(str(directory / f"trial_{row.trial}"))
        with writer.as_default():
            session = {name: _cast(value, kinds[name][0]) for name, value in row.values.items()}
            hp.hparams({**session, STATUS: str(row.status)},
                       trial_id=str(row.trial),
                       start_time_secs=int(row.started) if pd.notna(row.started) else None)
            step = int(row.epochs) if pd.notna(row.epochs) else 0
            for metric in METRICS:
                value = getattr(row, metric)
                if value is not None and pd.notna(value):
                    tf.summary.scalar(metric, float(value), step=step)
        writer.close()
    return len(trials)
