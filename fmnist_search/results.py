"""Run and trial directories -> flat rows (and pandas tables). Read-only: no lock taken,
nothing written, so it works on a project while it is being searched.

A trial is its ``record.json`` (``store.read_trials``, the one trial store); Keras Tuner's
``trial.json`` is its resume state and is not read here. Files are read through ``store``,
which owns their names and record types.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fmnist_search import builder, store
from fmnist_search.store import BASELINES, RETRAINED, list_projects  # noqa: F401 (re-exported)


def results_root(option: str | None = None) -> Path:
    """Where runs live: --results-dir, else FMNIST_RESULTS, else tuner_results/. A file there
    is refused at once (every command would otherwise find "no project" in it)."""
    from fmnist_search.preflight import check_path

    root = Path(option or os.environ.get("FMNIST_RESULTS", "tuner_results"))
    given = ("--results-dir" if option else "FMNIST_RESULTS"
             if os.environ.get("FMNIST_RESULTS") else "The results directory")
    check_path(root, given)
    if root.exists() and not root.is_dir():
        from fmnist_search.errors import UserError

        raise UserError(f"{given} {root} is a file, not a folder: results are kept in a folder "
                        "of projects and runs. Give --results-dir (or FMNIST_RESULTS) a folder "
                        "path, new or existing.")
    return root


def trial_rows(root: Path, project: str,
               entries: list[store.TrialEntry] | None = None) -> list[dict[str, Any]]:
    """One row per trial, from the trial store (``store.read_trials``; pass ``entries`` when
    they were read already)."""
    project_dir = root / project
    run = store.read_project(project_dir) or {}
    rows = []
    for entry in store.read_trials(project_dir) if entries is None else entries:
        record, status = entry.record, entry.status
        values = record.get("values", {})
        row = store.row(
            kind="trial", stage="screening", project=project, trial=entry.trial_id,
            status=status, architecture=record.get("architecture", ""),
            values={k: v for k, v in values.items() if not k.startswith("tuner/")},
            reason=entry.reason,
            proposal=record.get("proposal", values.get("tuner/proposal")),  # bohb only
            n_train=run.get("data", {}).get("n_train"), path=str(entry.path),
            space=run.get("space_name"))
        if status in ("COMPLETED", "PRUNED"):
            for key in ("val_accuracy", "val_loss", "params", "seconds_per_epoch", "epochs",
                        "ms_per_image", "model_bytes"):
                row[key] = record.get(key)
        elif status == "REJECTED":
            row["params"] = record.get("params")
        rows.append(row)
    return rows


DATA_KEYS = ("classes", "val_fraction", "subset", "seed", "train_csv", "test_csv", "arrays")


def data_key(data: dict[str, Any]) -> tuple:
    """What makes two runs' numbers comparable: the same images in the same splits."""
    return tuple(json.dumps(data.get(k)) for k in DATA_KEYS)


def finished_run(parent: Path, epochs: int, data: dict[str, Any],
                 values: dict[str, Any] | None = None,
                 damaged: list[tuple[Path, str]] | None = None) -> tuple[Path, dict] | None:
    """The newest finished run under ``parent`` (one model's run directories) of ``epochs``
    epochs on ``data``, and with ``values`` when given: a model ``finalize`` would reuse.

    A run whose ``model.keras`` or ``predictions.npz`` is damaged (``store.run_damage``) is
    never the answer: reused, it would be a broken model in the final table. It is added,
    with what is wrong, to ``damaged`` when a list is given."""
    key = data_key(data)
    for path in reversed(store.run_dirs(parent.parent, "", parent.name)):
        metrics = store.read_metrics(path)
        if metrics is None or data_key(metrics.get("data", {})) != key:
            continue
        if metrics.get("epochs") != epochs:
            continue
        if values is not None and not builder.same_model(metrics.get("values") or {}, values):
            continue
        problem = store.run_damage(path)
        if problem:
            if damaged is not None:
                damaged.append((path, problem))
            continue
        return path, metrics
    return None


def latest_runs(root: Path, kind: str, prefer_data: tuple | None = None) -> list[dict[str, Any]]:
    """The newest finished run of each model under ``root/kind`` (hidden partial dirs skipped);
    with ``prefer_data``, the newest run on those data settings where a model has one."""
    base = root / kind
    rows = []
    if not base.is_dir():
        return rows
    for model_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        runs = store.run_dirs(root, kind, model_dir.name)
        loaded = [(p, m) for p in runs if (m := store.read_metrics(p))]
        if not loaded:
            continue
        same = [(p, m) for p, m in loaded if data_key(m.get("data", {})) == prefer_data]
        path, metrics = (same or loaded)[-1]
        rows.append(run_row(metrics, path))
    return rows


def run_row(metrics: dict[str, Any], path: Path) -> dict[str, Any]:
    source = metrics.get("source", {})
    kind = metrics.get("kind", "baseline")
    return store.row(
        kind=kind, stage={"baseline": "baseline", "final": "final"}.get(kind, "retrained"),
        project=source.get("project", "(baseline)" if metrics.get("kind") == "baseline"
                           else "(retrained)"),
        trial=source.get("trial", metrics["model"]),
        **{k: metrics.get(k) for k in ("val_accuracy", "val_loss", "test_accuracy",
                                       "test_note", "params", "seconds_per_epoch", "epochs",
                                       "n_train")},
        architecture=metrics.get("architecture", ""), values=metrics.get("values", {}),
        path=str(path), model=metrics["model"], data=metrics.get("data", {}))


def final_records(root: Path, projects: list[str] | None = None
                  ) -> list[tuple[str, dict[str, Any]]]:
    """``final.json`` of each named project (all when none) that has been finalized."""
    base = root / store.FINALIZED
    names = projects or (sorted(p.name for p in base.iterdir() if p.is_dir())
                         if base.is_dir() else [])
    out = []
    for name in names:
        record = store.read_final(root, name)
        if record is not None and record.get("rows"):
            out.append((name, record))
    return out


def final_rows(root: Path, projects: list[str] | None = None) -> list[dict[str, Any]]:
    """The final tables as leaderboard rows (stage ``final`` or ``baseline``), best test
    accuracy first within each project."""
    rows = []
    for project, record in final_records(root, projects):
        table = []
        for r in record["rows"]:
            table.append(store.row(
                kind=r["stage"] if r["stage"] in ("final", "ensemble") else "baseline",
                stage=r["stage"], project=project, trial=r["trial"],
                **{k: r.get(k) for k in ("val_accuracy", "test_accuracy", "test_note",
                                         "params", "seconds_per_epoch", "epochs",
                                         "n_train", "path", "wall_seconds")},
                architecture=r.get("architecture", "")))
        rows += sort_rows(table, "test_accuracy")
    return rows


def load_run(path: Path) -> dict[str, Any]:
    metrics = store.read_metrics(path)
    if metrics is None:
        from fmnist_search.errors import UserError

        raise UserError(f"{path} is not a finished run directory (no readable "
                        f"{store.METRICS_JSON}).")
    return metrics


SORTABLE = ("val_accuracy", "val_loss", "test_accuracy", "params", "seconds_per_epoch", "epochs",
            "ms_per_image", "model_bytes")


def collect(root: Path, projects: list[str] | None = None, baselines: bool = True,
            include_failed: bool = False) -> list[dict[str, Any]]:
    """Trials of the named projects (all when none) with the baseline runs beside them."""
    from fmnist_search.errors import UserError

    known = list_projects(root)
    if projects:
        for project in projects:
            store.check_inside(root, project)
        missing = [p for p in projects if p not in known]
        if missing:
            raise UserError(f"No project {', '.join(missing)} in {root}. Projects there: "
                            f"{', '.join(known) or '(none yet: run `fmnist-search run`)'}.")
    rows = []
    keys = set()
    for project in projects or known:
        rows += trial_rows(root, project)
        keys.add(data_key((store.read_project(root / project) or {}).get("data", {})))
    prefer = keys.pop() if len(keys) == 1 else None  # baselines on the search's own data
    retrained = {(r["project"], r["trial"]): r for r in latest_runs(root, RETRAINED)}
    for row in rows:
        match = retrained.get((row["project"], row["trial"]))
        if match:
            row["test_accuracy"] = match["test_accuracy"]
            row["test_note"] = match["test_note"]
    if baselines:
        rows += latest_runs(root, BASELINES, prefer)
    if not include_failed:  # a damaged trial is shown, with its remedy: it is not "done"
        rows = [r for r in rows if r["status"] in ("COMPLETED", "DAMAGED")]
    return rows


def sort_rows(rows: list[dict[str, Any]], column: str = "val_accuracy") -> list[dict[str, Any]]:
    """Best first (accuracies descending, the rest ascending); rows without a value last."""
    import pandas as pd

    from fmnist_search.errors import UserError

    if column not in SORTABLE:
        raise UserError(f"--sort {column!r}; valid columns: {', '.join(SORTABLE)}.")
    if not rows:
        return []
    keys = pd.to_numeric(pd.Series([r.get(column) for r in rows]), errors="coerce")
    order = keys.sort_values(ascending=column not in ("val_accuracy", "test_accuracy"),
                             na_position="last", kind="stable").index
    return [rows[i] for i in order]


def varying(rows: list[dict[str, Any]]) -> list[str]:
    """Hyperparameters whose value differs between the trials of a project."""
    import pandas as pd

    values = pd.DataFrame([{k: json.dumps(v) for k, v in r["values"].items()}
                           for r in rows if r["kind"] == "trial" and r["values"]])
    if values.empty:
        return []
    return sorted(values.columns[values.nunique(dropna=False) > 1])


def compare_table(rows: list[dict[str, Any]]):
    """The points of ``compare`` as a DataFrame, with whether each is on the Pareto front of
    accuracy against parameters and against seconds per epoch."""
    import pandas as pd

    from fmnist_search.plots import pareto_front

    extra = [k for k in ("pareto_rank", "ms_per_image", "model_bytes")  # several objectives
             if any(r.get(k) is not None for r in rows)]
    table = pd.DataFrame([{k: r.get(k) for k in (
        "kind", "stage", "project", "trial", "val_accuracy", "test_accuracy", "params",
        "seconds_per_epoch", "architecture", *extra)} for r in rows])
    for key in ("params", "seconds_per_epoch"):
        # The front is the screening trials' and baselines'; a final model is another protocol.
        ok = table[key].notna() & (table["stage"] != "final")
        front = pareto_front(table.loc[ok, key].tolist(), table.loc[ok, "val_accuracy"].tolist())
        table[f"pareto_{key}"] = False
        table.loc[table.index[ok][front], f"pareto_{key}"] = True
    return table


def load_project(root: Path, project: str) -> dict[str, Any]:
    from fmnist_search.errors import UserError
    from fmnist_search.store import check_name

    check_name(project, "project")
    run = store.read_project(store.check_inside(root, project))
    if run is None:
        raise UserError(f"No project '{project}' in {root}. Projects there: "
                        f"{', '.join(list_projects(root)) or '(none)'}.")
    return run


def find_trial(root: Path, project: str, trial: str = "best") -> dict[str, Any]:
    """One finished trial's row (with its values), by id or the best by validation accuracy."""
    from fmnist_search.errors import UserError

    load_project(root, project)
    every = trial_rows(root, project)
    # A pruned trial trained (and can be shown or retrained by its id), but is never the best.
    rows = [r for r in every if r["status"] in ("COMPLETED", "PRUNED")]
    completed = [r for r in rows if r["status"] == "COMPLETED"]
    if trial != "best":
        for row in every:
            if same_trial(row["trial"], trial) and row["status"] == "DAMAGED":
                raise UserError(f"Trial {row['trial']} of '{project}' cannot be used: "
                                f"{row['reason']}.")
            if same_trial(row["trial"], trial) and row in rows:
                return row
    if not completed:
        raise UserError(f"Project '{project}' has no finished trial yet.")
    if trial == "best":
        return sort_rows(completed)[0]
    raise UserError(f"Project '{project}' has no finished trial '{trial}'. Finished trials: "
                    f"{', '.join(r['trial'] for r in rows)} (or use 'best').")


def same_trial(trial_id: str, typed: str) -> bool:
    """Keras Tuner pads ids to a width that depends on the tuner ("7", "07", "0007"): any
    padding names the same trial."""
    return trial_id == typed or trial_id.lstrip("0") == typed.lstrip("0")


def require_record(row: dict[str, Any], project: str) -> None:
    """A trial's record.json may be lost after the rows were read (a trial is its record)."""
    from fmnist_search.errors import UserError

    path = Path(row["path"]) / store.RECORD_JSON
    if store.read_trial_record(path.parent) is None:
        raise UserError(
            f"{path} is missing or unreadable, so trial {row['trial']} of '{project}' has no "
            "metrics or history to show. Run the search again (the same `fmnist-search run` "
            "command): it rebuilds the record from Keras Tuner's state."
        )


def trial_history(row: dict[str, Any]) -> list[dict[str, Any]]:
    record = store.read_trial_record(Path(row["path"])) or {}
    return record.get("history", [])


def find_run(root: Path, name: str) -> Path:
    """A run directory from a path, a baseline name, or a retrained PROJECT-TRIAL name."""
    from fmnist_search.errors import UserError
    from fmnist_search.preflight import check_path
    from fmnist_search.store import check_name

    check_path(name, "model")
    path = Path(name)
    if store.is_run(path):
        return path
    check_name(name, "model")  # not a run directory: a name, which must not reach elsewhere
    for kind in (BASELINES, RETRAINED):
        runs = _finished_runs(root / kind / name)
        if runs:
            return runs[-1]
    project = name.rpartition("-")[0]  # PROJECT-ensemble, PROJECT-TRIAL: finalize's models
    runs = _finished_runs(store.final_dir(root, project) / name) if project else []
    if runs:
        return runs[-1]
    trial = _project_trial(root, name)
    if trial is not None:
        return _retrained_trial(root, *trial)
    known = [f"{kind}/{p.name}" for kind in (BASELINES, RETRAINED)
             for p in sorted((root / kind).glob("*")) if p.is_dir()]
    raise UserError(f"'{name}' is neither a run directory (holding {store.MODEL_FILE}) nor a "
                    f"trained model in {root}. Trained: {', '.join(known) or '(none yet)'}.")


def _finished_runs(base: Path) -> list[Path]:
    return [p for p in store.finished_runs(base) if store.is_run(p)]


def _project_trial(root: Path, name: str) -> tuple[str, str] | None:
    """``PROJECT``, ``PROJECT-best`` or ``PROJECT-TRIAL`` naming a project's trial, else None."""
    if store.is_project(root / name):
        return name, "best"
    project, _, trial = name.rpartition("-")
    if project and trial and store.is_project(root / project):
        return project, trial
    return None


def _retrained_trial(root: Path, project: str, trial: str) -> Path:
    """The newest retrained run of a project's trial, or what to run to get one."""
    from fmnist_search.errors import UserError

    row = find_trial(root, project, trial)
    runs = _finished_runs(root / RETRAINED / f"{project}-{row['trial']}")
    if runs:
        return runs[-1]
    where = f" --results-dir {root}" if str(root) != os.environ.get(
        "FMNIST_RESULTS", "tuner_results") else ""
    raise UserError(f"Trial {row['trial']} of '{project}' is not trained on its full data yet: "
                    f"run `fmnist-search retrain {project} --trial {row['trial']}{where}` first.")
