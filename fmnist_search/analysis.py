"""What a search found, as tables: which hyperparameters mattered (importance), how the search
progressed (history) and how the objective varies with each hyperparameter (slices).

Read-only, like ``results``: no lock is taken and nothing under the results directory is
written, so a project can be analysed while it is being searched (a ``trial.json`` caught
half-written reads as None and the trial is skipped until the next look).

Importance is functional-ANOVA style, as Optuna's ``FanovaImportanceEvaluator``: a random forest
is fitted to the finished trials (objective against hyperparameter values), and the importance
of a hyperparameter is the variance of the forest's main effect of it (its partial dependence,
averaged over the other hyperparameters' observed values), as a share of the sum over all
hyperparameters. It is computed on several bootstrap resamples of the trials, each with its own
forest seed; the spread across them is the uncertainty, and the number of trials is shown with
it, so that ten trials do not look authoritative.

Design matrix, one group of columns per hyperparameter: numbers as they are (log10 of those
Keras Tuner sampled on a log scale), booleans as 0/1, choices of strings one-hot. A conditional
hyperparameter (absent from the trials where its parent disables it) gets an explicit
``absent`` indicator column and a neutral fill, so no trial is dropped for it. The group's
columns move together when its main effect is computed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fmnist_search import layout, results

OBJECTIVE = "val_accuracy"
FEW_TRIALS = 20
MARGINAL_ROWS = 200  # partial dependence averages over at most this many trials (n x 200 rows)
EPOCHS = "(epochs trained)"  # a covariate, not a hyperparameter: Hyperband trains for 1-N epochs


def _warning(n: int) -> str:
    if n < FEW_TRIALS:
        return (f"only {n} finished trials: read the ranking as a hint, not a measurement "
                f"(the spread is wide below ~{FEW_TRIALS}).")
    return ""


@dataclass
class Importance:
    """Importance per hyperparameter (mean and standard deviation over the resamples)."""

    project: str
    table: pd.DataFrame  # hyperparameter, importance, std, kind, present (trials), rank
    n_trials: int
    resamples: int
    fixed: list[str] = field(default_factory=list)  # the same value in every trial

    @property
    def warning(self) -> str:
        return _warning(self.n_trials)


# --------------------------------------------------------------------------- trials


def trial_frame(root: Path, project: str) -> pd.DataFrame:
    """One row per trial of the project (finished or not): trial, number (1-based, trial
    order), status, objective, params, seconds per epoch, epochs, started/finished (Unix
    times), architecture and ``values`` (a dict of the hyperparameters the trial had)."""
    results.load_project(root, project)
    entries = layout.read_trials(root / project)
    rows = []
    rows_of = results.trial_rows(root, project, entries)
    for number, (entry, row) in enumerate(zip(entries, rows_of, strict=True), start=1):
        record = entry.record
        rows.append({
            "trial": row["trial"], "number": number, "status": row["status"],
            OBJECTIVE: row["val_accuracy"], "val_loss": row["val_loss"],
            "params": row["params"], "seconds_per_epoch": row["seconds_per_epoch"],
            "epochs": row["epochs"], "started": record.get("started"),
            "finished": record.get("finished"), "architecture": row["architecture"],
            "values": row["values"], "path": row["path"],
        })
    columns = ["trial", "number", "status", OBJECTIVE, "val_loss", "params",
               "seconds_per_epoch", "epochs", "started", "finished", "architecture", "values",
               "path"]
    return pd.DataFrame(rows, columns=columns)


def _finished(trials: pd.DataFrame) -> pd.DataFrame:
    ok = (trials["status"] == "COMPLETED") & trials[OBJECTIVE].notna()
    return trials[ok].reset_index(drop=True)


def log_sampled(root: Path, project: str) -> set[str]:
    """Hyperparameters Keras Tuner samples on a log scale, from its own trial files."""
    names: set[str] = set()
    for trial_dir in layout.trial_dirs(root / project):
        trial = layout.read_keras_trial(trial_dir) or {}
        for hp in trial.get("hyperparameters", {}).get("space", []):
            config = hp.get("config", {})
            if config.get("sampling") in ("log", "reverse_log"):
                names.add(config.get("name"))
        if names:
            break
    return names


# --------------------------------------------------------------------------- importance


def design_matrix(values: list[dict[str, Any]], log: set[str] = frozenset()
                  ) -> tuple[np.ndarray, dict[str, list[int]], dict[str, str], list[str]]:
    """Trials' values -> (matrix, column indices of each hyperparameter, kind of each,
    hyperparameters left out because they never vary)."""
    names = sorted({k for v in values for k in v})
    columns: list[np.ndarray] = []
    groups: dict[str, list[int]] = {}
    kinds: dict[str, str] = {}
    fixed = []
    for name in names:
        raw = [v.get(name) for v in values]
        absent = np.array([x is None for x in raw])
        present = [x for x in raw if x is not None]
        if len({json.dumps(x) for x in present}) <= 1 and not absent.any():
            fixed.append(name)
            continue
        numeric = all(isinstance(x, (int, float)) for x in present)
        cols = []
        if numeric:
            num = np.array([float(x) if x is not None else np.nan for x in raw])
            is_log = name in log and np.nanmin(num) > 0 if present else False
            if is_log:
                num = np.log10(num)
            fill = float(np.nanmedian(num)) if present else 0.0
            cols.append(np.where(absent, fill, num))
            kinds[name] = "log" if is_log else ("bool" if all(isinstance(x, bool)
                                                               for x in present) else "number")
        else:
            levels = sorted({json.dumps(x) for x in present})
            for level in levels:
                cols.append(np.array([x is not None and json.dumps(x) == level for x in raw],
                                     dtype=float))
            kinds[name] = "choice"
        if absent.any():
            cols.append(absent.astype(float))
            kinds[name] += ", conditional"
        groups[name] = list(range(len(columns), len(columns) + len(cols)))
        columns += cols
    matrix = np.column_stack(columns) if columns else np.zeros((len(values), 0))
    return matrix, groups, kinds, fixed


def main_effects(forest, x: np.ndarray, groups: dict[str, list[int]]) -> dict[str, float]:
    """Variance of each group's partial dependence over the trials' own values of it."""
    background = x[:MARGINAL_ROWS]  # the other hyperparameters' values averaged over
    n, m = len(x), len(background)
    effects = {}
    for name, cols in groups.items():
        grid = np.repeat(background[np.newaxis], n, axis=0)  # grid[i]: each row, i's value
        grid[:, :, cols] = x[:, np.newaxis, cols]
        pd_values = forest.predict(grid.reshape(n * m, -1)).reshape(n, m).mean(axis=1)
        effects[name] = float(np.var(pd_values))
    return effects


def importance_from_values(project: str, values: list[dict[str, Any]], objective: list[float],
                           log: set[str] = frozenset(), resamples: int = 8, trees: int = 64,
                           seed: int = 0) -> Importance:
    """The importance table of trials given as their values and objective (see the module
    docstring); ``resamples`` bootstrap resamples, each with its own forest."""
    from sklearn.ensemble import RandomForestRegressor

    x, groups, kinds, fixed = design_matrix(values, log)
    y = np.asarray(objective, dtype=float)
    n = len(y)
    present = {name: sum(v.get(name) is not None for v in values) for name in groups}
    if n < 3 or not groups or np.ptp(y) == 0:
        table = pd.DataFrame({"hyperparameter": list(groups), "importance": np.nan,
                              "std": np.nan, "kind": [kinds[g] for g in groups],
                              "present": [present[g] for g in groups]})
        table["rank"] = range(1, len(table) + 1)
        return Importance(project, table, n, 0, fixed)
    rng = np.random.default_rng(seed)
    shares = []
    for r in range(resamples):
        rows = rng.integers(0, n, n) if resamples > 1 else np.arange(n)
        forest = RandomForestRegressor(n_estimators=trees, min_samples_leaf=2, max_features=1.0,
                                       bootstrap=False, random_state=seed + r, n_jobs=1)
        forest.fit(x[rows], y[rows])
        effects = main_effects(forest, x[rows], groups)
        total = sum(effects.values())
        shares.append({k: (v / total if total > 0 else 0.0) for k, v in effects.items()})
    frame = pd.DataFrame(shares)
    table = pd.DataFrame({
        "hyperparameter": list(groups),
        "importance": [frame[g].mean() for g in groups],
        "std": [frame[g].std(ddof=1) if len(frame) > 1 else 0.0 for g in groups],
        "kind": [kinds[g] for g in groups],
        "present": [present[g] for g in groups],
    }).sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    table["rank"] = range(1, len(table) + 1)
    return Importance(project, table, n, resamples, fixed)


def importance(root: Path, project: str, resamples: int = 8, trees: int = 64,
               seed: int = 0, trials: pd.DataFrame | None = None) -> Importance:
    """Importance of each hyperparameter for the validation accuracy of a project's finished
    trials. When Hyperband trained trials for different numbers of epochs, the epochs trained
    are a covariate of their own (``(epochs trained)``), so the budget's effect is not credited
    to whichever hyperparameter the longer trials happened to have."""
    done = _finished(trial_frame(root, project) if trials is None else trials)
    values = [dict(v) for v in done["values"]]
    if done["epochs"].nunique() > 1:
        for v, epochs in zip(values, done["epochs"], strict=True):
            v[EPOCHS] = int(epochs)
    return importance_from_values(project, values, done[OBJECTIVE].tolist(),
                                  log_sampled(root, project), resamples, trees, seed)


# --------------------------------------------------------------------------- history, slices


def history(trials: pd.DataFrame) -> pd.DataFrame:
    """The search's progress, in trial order: each finished trial's objective, the best so far
    by trial number, and by wall time (``elapsed_s`` since the first trial started;
    ``best_by_time``: the best among the trials finished by then)."""
    done = _finished(trials).sort_values("number", kind="stable").reset_index(drop=True)
    frame = done[["trial", "number", OBJECTIVE, "started", "finished", "architecture"]].copy()
    frame["best_so_far"] = frame[OBJECTIVE].cummax()
    starts = pd.to_numeric(trials["started"], errors="coerce")
    t0 = starts.min() if starts.notna().any() else np.nan
    frame["elapsed_s"] = pd.to_numeric(frame["finished"], errors="coerce") - t0
    by_time = frame.sort_values("elapsed_s", kind="stable", na_position="last")
    frame["best_by_time"] = by_time[OBJECTIVE].cummax().reindex(frame.index)
    return frame


def baselines(root: Path, project: str) -> pd.DataFrame:
    """The baseline runs trained on the project's own data settings (their newest run each):
    the lines a search should beat. Baselines trained on other data are left out."""
    run = results.load_project(root, project)
    key = results.data_key(run.get("data", {}))
    rows = [r for r in results.latest_runs(root, results.BASELINES, key)
            if results.data_key(r.get("data", {})) == key]
    return pd.DataFrame([{"model": r["model"], OBJECTIVE: r["val_accuracy"],
                          "epochs": r["epochs"], "params": r["params"],
                          "seconds_per_epoch": r["seconds_per_epoch"]} for r in rows],
                        columns=["model", OBJECTIVE, "epochs", "params", "seconds_per_epoch"])


def slices(trials: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Long table of (hyperparameter, value, objective) for the named hyperparameters; a
    conditional one absent from a trial has the value ``absent``."""
    done = _finished(trials)
    rows = []
    for name in names:
        for _, trial in done.iterrows():
            if name == EPOCHS:
                value: Any = trial["epochs"]
            else:
                value = trial["values"].get(name, "absent")
            rows.append({"hyperparameter": name, "trial": trial["trial"], "value": value,
                         OBJECTIVE: trial[OBJECTIVE]})
    return pd.DataFrame(rows, columns=["hyperparameter", "trial", "value", OBJECTIVE])


# --------------------------------------------------------------------------- all of it


@dataclass
class Analysis:
    """Everything ``analyze`` shows for one project, as DataFrames (figures: ``figures``)."""

    project: str
    trials: pd.DataFrame
    importance: Importance
    history: pd.DataFrame
    baselines: pd.DataFrame
    slices: pd.DataFrame
    log: set[str]

    @property
    def n_trials(self) -> int:
        return self.importance.n_trials

    def summary(self) -> dict[str, Any]:
        """The tables as plain data (``analyze --json``)."""
        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return json.loads(frame.to_json(orient="records"))

        return {
            "project": self.project, "objective": OBJECTIVE,
            "trials": len(self.trials), "finished": self.n_trials,
            "warning": self.importance.warning, "resamples": self.importance.resamples,
            "importance": records(self.importance.table), "fixed": self.importance.fixed,
            "history": records(self.history.drop(columns=["architecture"])),
            "baselines": records(self.baselines),
        }


def analyze(root: Path, project: str, top: int = 4, resamples: int = 8, seed: int = 0
            ) -> Analysis:
    trials = trial_frame(root, project)
    imp = importance(root, project, resamples=resamples, seed=seed, trials=trials)
    names = imp.table["hyperparameter"].tolist()[:top] if imp.resamples else []
    return Analysis(project, trials, imp, history(trials), baselines(root, project),
                    slices(trials, names), log_sampled(root, project))


def figures(analysis: Analysis) -> dict[str, Any]:
    """Matplotlib figures by file stem: ``importance``, ``history``, ``slices``."""
    from fmnist_search import plots

    figs = {
        "importance": plots.importance_figure(analysis.importance.table, analysis.n_trials,
                                              analysis.importance.resamples, analysis.project),
        "history": plots.history_figure(analysis.history, analysis.baselines, analysis.project),
    }
    if not analysis.slices.empty:
        figs["slices"] = plots.slices_figure(analysis.slices, analysis.log, analysis.project,
                                             analysis.baselines)
    return figs
