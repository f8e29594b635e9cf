"""What a search found, as tables: which hyperparameters mattered (importance), how the search
progressed (history) and how the objective varies with each hyperparameter (slices).

Read-only, like ``results``: no lock is taken and nothing under the results directory is
written, so a project can be analysed while it is being searched (a ``trial.json`` caught
half-written reads as None and the trial is skipped until the next look).

A configuration that Hyperband trained, stopped and continued is one point, at the highest
budget (epochs) it reached: its earlier, shorter trials are not counted again.

Importance is functional-ANOVA style, as Optuna's ``FanovaImportanceEvaluator``: a random forest
is fitted to the finished configurations (objective against hyperparameter values), and a
hyperparameter's importance is the variance of the forest's main effect of it (its partial
dependence, averaged over the other hyperparameters' observed values), as a share of the
objective's variance. Three corrections make the number mean what it says:

- Conditional hyperparameters. The trials are grouped by which hyperparameters are set. A
  child (``filters_3``, set only when ``stages >= 3``) is judged by a forest fitted only on the
  trials where it is set, and its share is weighted by the fraction of trials those are; its
  parent is judged on all the trials by a forest without the children as columns, so switching
  the children on and off is the parent's effect. (A child given a fill value in the trials
  where it is absent would copy its parent's condition and take its credit.)
- The forest's bias. A forest splits continuous columns on noise, so a continuous
  hyperparameter with no effect gets a main effect of its own. Each hyperparameter therefore
  has a shuffled copy (a "shadow", as in Boruta) in the same forest, and the reported
  importance is its main effect minus its shadow's: about 0 for a hyperparameter with no
  effect, whatever its type.
- Uncertainty. The whole computation is repeated on bootstrap resamples of the trials; the
  table gives the mean and the standard deviation over them, and how many trials each value
  comes from. Below ``MIN_TRIALS`` finished configurations nothing is ranked (see there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fmnist_search import results, store
from fmnist_search.report import MIN_TRIALS, value_order

OBJECTIVE = "val_accuracy"
# A child that matters ranks first in 10/10 seeds when set in ~14 trials, 4-5/10 in 8-11.
MIN_ACTIVE = 12  # a conditional hyperparameter set in fewer trials than this is not judged
EVAL_POINTS = 48  # partial dependence evaluated at <= this many of a column's values ...
BACKGROUND_ROWS = 96  # ... each averaged over <= this many trials' other values
EPOCHS = "(epochs trained)"  # a covariate, not a hyperparameter: Hyperband trains for 1-N epochs
IMPORTANCE_COLUMNS = ["hyperparameter", "importance", "std", "raw", "shadow", "kind", "present",
                      "note", "rank"]


@dataclass
class Importance:
    """Importance per hyperparameter: ``table`` has the mean (``importance``, shadow-corrected)
    and standard deviation over the resamples, the uncorrected main effect (``raw``) and the
    shadow's (``shadow``), the kind, the trials it was set in (``present``) and the rank.
    ``resamples`` is 0 when nothing was ranked (``needed`` says why)."""

    project: str
    table: pd.DataFrame
    n_trials: int
    resamples: int
    fixed: list[str] = field(default_factory=list)  # the same value in every trial it is set in
    minimum: int = MIN_TRIALS

    @property
    def needed(self) -> int:
        """How many more finished configurations the importance needs (0: enough)."""
        return max(self.minimum - self.n_trials, 0)

    @property
    def message(self) -> str:
        """Why there is no ranking, or ''."""
        if self.needed:
            return (f"importance needs {self.needed} more finished configuration"
                    f"{'s' if self.needed > 1 else ''} (it ranks from {self.minimum}; "
                    f"{self.n_trials} so far)")
        if not self.resamples:
            return "importance: every finished configuration has the same score"
        return ""


# --------------------------------------------------------------------------- trials


def trial_frame(root: Path, project: str) -> pd.DataFrame:
    """One row per trial of the project (finished or not): trial, number (1-based, trial
    order), status, objective, params, seconds per epoch, epochs, started/finished (Unix
    times), architecture and ``values`` (a dict of the hyperparameters the trial had)."""
    results.load_project(root, project)
    entries = store.read_trials(root / project)
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
            "values": row["values"], "path": row["path"], "reason": row["reason"],
        })
    columns = ["trial", "number", "status", OBJECTIVE, "val_loss", "params",
               "seconds_per_epoch", "epochs", "started", "finished", "architecture", "values",
               "path", "reason"]
    return pd.DataFrame(rows, columns=columns)


def _finished(trials: pd.DataFrame) -> pd.DataFrame:
    """The finished trials, one per configuration: a Hyperband continuation (the same values
    trained on from a shorter trial) replaces the trials it continued, so a configuration is
    one point at the highest budget it reached, in trial order."""
    ok = (trials["status"] == "COMPLETED") & trials[OBJECTIVE].notna()
    done = trials[ok]
    if done.empty:
        return done.reset_index(drop=True)
    key = done["values"].map(lambda v: json.dumps(v, sort_keys=True, default=str))
    budget = pd.to_numeric(done["epochs"], errors="coerce").fillna(0)
    order = pd.DataFrame({"key": key, "budget": budget, "number": done["number"]})
    last = order.sort_values(["budget", "number"], kind="stable").groupby("key").tail(1).index
    return done.loc[sorted(last)].reset_index(drop=True)


def log_sampled(root: Path, project: str) -> set[str]:
    """Hyperparameters Keras Tuner samples on a log scale, from its own trial files."""
    from fmnist_search.tuning import kt_compat

    return kt_compat.log_sampled(store.trial_dirs(root / project))


# --------------------------------------------------------------------------- importance


def _encode(raw: list[Any], name: str, log: set[str]) -> tuple[np.ndarray, str]:
    """One hyperparameter's values (all set) -> its columns and kind: numbers as they are
    (log10 where Keras Tuner samples on a log scale), booleans 0/1, other choices one-hot."""
    if all(isinstance(x, (int, float)) for x in raw):
        num = np.array(raw, dtype=float)
        if all(isinstance(x, bool) for x in raw):
            return num[:, np.newaxis], "bool"
        if name in log and num.min() > 0:
            return np.log10(num)[:, np.newaxis], "log"
        return num[:, np.newaxis], "number"
    keys = [json.dumps(x) for x in raw]
    levels = sorted(set(keys))
    return np.array([[k == level for level in levels] for k in keys], dtype=float), "choice"


@dataclass
class Subspace:
    """Trials in which some hyperparameters are all set (their parent enables them): the
    forest for them is fitted on these trials only, with ``inputs`` as its columns."""

    rows: np.ndarray  # indices of the trials
    judged: list[str]  # set in exactly these trials: their importance comes from this forest
    inputs: list[str]  # set in every one of these trials and varying among them


def subspaces(values: list[dict[str, Any]]) -> tuple[list[Subspace], list[str]]:
    """Group the hyperparameters by the trials they are set in (all trials for the
    unconditional ones); return the groups and the hyperparameters that never vary where set.

    A parent (``stages``) is judged with the unconditional hyperparameters, on every trial,
    without its children as columns, so its effect includes switching them on and off; a
    child (``filters_3``) is judged only among the trials where it exists, beside the
    hyperparameters set in all of those."""
    names = sorted({k for v in values for k in v})
    where = {name: frozenset(i for i, v in enumerate(values) if name in v) for name in names}
    fixed = [name for name in names
             if len({json.dumps(values[i][name]) for i in where[name]}) <= 1]
    varying = [name for name in names if name not in fixed]
    spaces = []
    for rows in sorted({where[name] for name in varying}, key=lambda r: (-len(r), sorted(r))):
        inputs = [name for name in varying if where[name] >= rows
                  and len({json.dumps(values[i][name]) for i in rows}) > 1]
        judged = [name for name in inputs if where[name] == rows]
        spaces.append(Subspace(np.array(sorted(rows)), judged, inputs))
    return spaces, fixed


def _partial_grid(x: np.ndarray, cols: list[int], rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rows at which to evaluate the forest for the partial dependence on ``cols`` (each of
    the column's values, the other columns taken from a sample of the trials), and the weight
    of each value. Distinct values are evaluated once and weighted by their counts; beyond
    ``EVAL_POINTS`` of them, a sample of the trials' values is used."""
    background = x[rng.choice(len(x), min(len(x), BACKGROUND_ROWS), replace=False)]
    points, counts = np.unique(x[:, cols], axis=0, return_counts=True)
    if len(points) > EVAL_POINTS:
        points = x[rng.choice(len(x), EVAL_POINTS, replace=False)][:, cols]
        counts = np.ones(len(points))
    grid = np.repeat(background[np.newaxis], len(points), axis=0)
    grid[:, :, cols] = points[:, np.newaxis, :]
    return grid.reshape(-1, x.shape[1]), counts


def _main_effects(forest, x: np.ndarray, groups: dict[str, list[int]],
                  rng: np.random.Generator) -> dict[str, float]:
    """Variance, over the trials, of the forest's partial dependence on each group of columns
    (the main effect), all groups evaluated in one ``predict`` call."""
    grids = {name: _partial_grid(x, cols, rng) for name, cols in groups.items()}
    predicted = forest.predict(np.concatenate([grid for grid, _ in grids.values()]))
    effects, start = {}, 0
    for name, (grid, counts) in grids.items():
        part = predicted[start:start + len(grid)].reshape(len(counts), -1).mean(axis=1)
        start += len(grid)
        mean = np.average(part, weights=counts)
        effects[name] = float(np.average((part - mean) ** 2, weights=counts))
    return effects


def _judge(x: np.ndarray, y: np.ndarray, local: np.ndarray, groups: dict[str, list[int]],
           judged: list[str], trees: int, seed: int, rng: np.random.Generator
           ) -> dict[str, tuple[float, float]]:
    """(main effect, main effect of a shuffled copy) of each judged hyperparameter, from one
    forest fitted on the resampled rows ``local`` of the trials ``x``, ``y``, with the
    shuffled copies as extra columns (their "shadows", as in Boruta): a shadow has the
    column's values and no relation to the score, so what the forest credits it is what it
    credits any column like it by chance (continuous ones most). The trials are shuffled
    before resampling, so a trial drawn twice has the same shadow value twice, as it has the
    same real one (a forest isolates such repeats on a continuous column)."""
    from sklearn.ensemble import RandomForestRegressor

    shadows, shadow_groups, width = [], {}, x.shape[1]
    for name in judged:
        shadows.append(x[rng.permutation(len(x))][:, groups[name]])
        shadow_groups[name] = list(range(width, width + len(groups[name])))
        width += len(groups[name])
    full = np.column_stack([x, *shadows])[local]
    y = y[local]
    forest = RandomForestRegressor(n_estimators=trees, min_samples_leaf=2, max_features=1.0,
                                   random_state=seed, n_jobs=1).fit(full, y)
    real = _main_effects(forest, full, {name: groups[name] for name in judged}, rng)
    null = _main_effects(forest, full, shadow_groups, rng)
    return {name: (real[name], null[name]) for name in judged}


def _design(values: list[dict[str, Any]], space: Subspace, log: set[str]
            ) -> tuple[np.ndarray, dict[str, list[int]], dict[str, str]]:
    """The subspace's trials as a matrix: one group of columns per input hyperparameter."""
    columns, groups, kinds, width = [], {}, {}, 0
    for name in space.inputs:
        cols, kinds[name] = _encode([values[i][name] for i in space.rows], name, log)
        groups[name] = list(range(width, width + cols.shape[1]))
        width += cols.shape[1]
        columns.append(cols)
    return np.column_stack(columns), groups, kinds


def importance_from_values(project: str, values: list[dict[str, Any]], objective: list[float],
                           log: set[str] = frozenset(), resamples: int = 8, trees: int = 32,
                           seed: int = 0, minimum: int | None = None) -> Importance:
    """The importance table of trials given as their values and objective (see the module
    docstring); ``resamples`` bootstrap resamples of the trials, each with its own forests.
    Below ``minimum`` finished trials (default ``MIN_TRIALS``) nothing is ranked."""
    minimum = MIN_TRIALS if minimum is None else minimum
    y = np.asarray(objective, dtype=float)
    n = len(y)
    spaces, fixed = subspaces(values)
    present = {name: len(s.rows) for s in spaces for name in s.judged}
    kinds: dict[str, str] = {}
    designs = []
    for space in spaces:
        x, groups, space_kinds = _design(values, space, log)
        designs.append((space, x, groups))
        for name in space.judged:
            kinds[name] = space_kinds[name] + (", conditional" if len(space.rows) < n else "")
    names = sorted(present)
    runs = resamples if n >= minimum and names and np.ptp(y) > 0 else 0
    rng = np.random.default_rng(seed)
    draws: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(runs):
        boot = rng.integers(0, n, n)
        total = float(np.var(y[boot]))
        for space, x, groups in designs:
            local = np.searchsorted(space.rows, boot[np.isin(boot, space.rows)])
            if (len(space.rows) < MIN_ACTIVE or len(np.unique(local)) < 3 or total == 0
                    or np.ptp(y[space.rows]) == 0):
                continue
            share = len(local) / n / total  # the subspace's part of the whole objective's variance
            judged = _judge(x, y[space.rows], local, groups, space.judged, trees, seed + r, rng)
            for name, (effect, shadow) in judged.items():
                draws[name].append((effect * share, shadow * share))
    rows = []
    for name in names:
        raw = np.array(draws[name]).reshape(-1, 2)
        judged = runs > 0 and len(raw) >= max(runs // 2, 1)  # a rare child can miss a few
        corrected = raw[:, 0] - raw[:, 1]
        rows.append({
            "hyperparameter": name,
            "importance": corrected.mean() if judged else np.nan,
            "std": corrected.std(ddof=1) if judged and len(raw) > 1 else np.nan,
            "raw": raw[:, 0].mean() if judged else np.nan,
            "shadow": raw[:, 1].mean() if judged else np.nan,
            "kind": kinds[name], "present": present[name],
            "note": "" if judged or not runs else
            f"set in only {present[name]} trials: too few to judge",
        })
    table = pd.DataFrame(rows, columns=IMPORTANCE_COLUMNS[:-1])
    table = table.sort_values("importance", ascending=False, kind="stable", na_position="last")
    table = table.reset_index(drop=True)
    table["rank"] = range(1, len(table) + 1)
    return Importance(project, table, n, runs, fixed, minimum)


def importance(root: Path, project: str, resamples: int = 8, trees: int = 32,
               seed: int = 0, trials: pd.DataFrame | None = None) -> Importance:
    """Importance of each hyperparameter for the validation accuracy of a project's finished
    configurations. When Hyperband trained them for different numbers of epochs, the epochs
    trained are a covariate of their own (``(epochs trained)``), so the budget's effect is not
    credited to whichever hyperparameter the longer trials happened to have."""
    done = _finished(trial_frame(root, project) if trials is None else trials)
    values = [dict(v) for v in done["values"]]
    if done["epochs"].nunique() > 1:
        for v, epochs in zip(values, done["epochs"], strict=True):
            v[EPOCHS] = int(epochs)
    return importance_from_values(project, values, done[OBJECTIVE].tolist(),
                                  log_sampled(root, project), resamples, trees, seed)


# --------------------------------------------------------------------------- history, slices


def history(trials: pd.DataFrame) -> pd.DataFrame:
    """The search's progress, in trial order: each finished configuration's objective and
    epochs (its highest budget), the best so far
    by trial number, and by wall time (``elapsed_s`` since the first trial started;
    ``best_by_time``: the best among the trials finished by then)."""
    done = _finished(trials).sort_values("number", kind="stable").reset_index(drop=True)
    frame = done[["trial", "number", OBJECTIVE, "epochs", "started", "finished",
                  "architecture"]].copy()
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


def slice_summary(slices: pd.DataFrame, bins: int = 4) -> pd.DataFrame:
    """The slices in a few rows per hyperparameter (for the terminal): each value in order, or
    for a number with more than ``bins`` + 2 values its quantile ranges (the lowest and highest
    value in each), with the number of trials, the mean and the best objective."""
    rows = []
    for name, part in slices.groupby("hyperparameter", sort=False):
        values = part["value"]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric and values.nunique() > bins + 2:
            codes = pd.qcut(values.astype(float), bins, labels=False, duplicates="drop")
            groups = [part[codes == code] for code in sorted(codes.unique())]
            labels = [f"{g['value'].min():.3g} - {g['value'].max():.3g}" for g in groups]
        else:
            levels = sorted(set(values), key=value_order)
            groups = [part[values.map(lambda v, lv=level: v == lv and type(v) is type(lv))]
                      for level in levels]
            labels = [str(level) for level in levels]
        for label, group in zip(labels, groups, strict=True):
            rows.append({"hyperparameter": name, "value": label, "trials": len(group),
                         "mean": group[OBJECTIVE].mean(), "best": group[OBJECTIVE].max()})
    return pd.DataFrame(rows, columns=["hyperparameter", "value", "trials", "mean", "best"])


# --------------------------------------------------------------------------- all of it


def varying_among_finished(trials: pd.DataFrame) -> list[str]:
    """Hyperparameters whose value (or presence) differs between the finished
    configurations, by name (``results.varying``, the leaderboard's columns, compares every
    trial row, whatever its status)."""
    done = _finished(trials)
    names = sorted({k for v in done["values"] for k in v})
    return [name for name in names
            if len({json.dumps(v.get(name), default=str) for v in done["values"]}) > 1]


def fixed_values(trials: pd.DataFrame, names: list[str]) -> dict[str, Any]:
    """The one value each named hyperparameter has in every finished trial it is set in."""
    done = _finished(trials)
    found: dict[str, Any] = {}
    for v in done["values"]:
        for name in names:
            if name in v and name not in found:
                found[name] = v[name]
    return found


@dataclass
class Analysis:
    """Everything ``analyze`` shows for one project, as DataFrames (figures: ``figures``).
    ``slices`` holds the most important hyperparameters, or, while there is no ranking, the
    first that vary by name (``slices_by`` says which)."""

    project: str
    trials: pd.DataFrame
    importance: Importance
    history: pd.DataFrame
    baselines: pd.DataFrame
    slices: pd.DataFrame
    log: set[str]
    slices_by: str = "importance"

    @property
    def n_trials(self) -> int:
        """Finished configurations (a continued Hyperband configuration counts once)."""
        return self.importance.n_trials

    def summary(self) -> dict[str, Any]:
        """Everything the figures show, as plain data (``analyze --json``)."""
        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return json.loads(frame.to_json(orient="records", default_handler=str))

        imp = self.importance
        return {
            "project": self.project, "objective": OBJECTIVE,
            "trials": len(self.trials),
            "finished_trials": int((self.trials["status"] == "COMPLETED").sum()),
            "finished": self.n_trials,
            "minimum": imp.minimum, "needed": imp.needed, "message": imp.message,
            "resamples": imp.resamples,
            "importance": records(imp.table) if imp.resamples else [],
            "fixed": fixed_values(self.trials, imp.fixed),
            "history": records(self.history.drop(columns=["architecture"])),
            "slices_by": self.slices_by, "log_scale": sorted(self.log),
            "slices": records(self.slices),
            "baselines": records(self.baselines),
            "damaged": self.damaged(),
        }

    def damaged(self) -> list[dict[str, str]]:
        """The trials whose record.json is missing or damaged, each with its remedy: left out
        of every table above, so named here."""
        lost = self.trials[self.trials["status"] == "DAMAGED"]
        return [{"trial": t, "reason": r} for t, r in zip(lost["trial"], lost["reason"],
                                                             strict=True)]


def analyze(root: Path, project: str, top: int = 4, resamples: int = 8, seed: int = 0
            ) -> Analysis:
    """Importance, history and slices of a project's finished configurations."""
    trials = trial_frame(root, project)
    imp = importance(root, project, resamples=resamples, seed=seed, trials=trials)
    if imp.resamples:
        names, by = imp.table["hyperparameter"].tolist()[:top], "importance"
    else:
        names = [n for n in varying_among_finished(trials) if n not in imp.fixed][:top]  # values that differ
        by = "name"
    return Analysis(project, trials, imp, history(trials), baselines(root, project),
                    slices(trials, names), log_sampled(root, project), by)


def figures(analysis: Analysis) -> dict[str, Any]:
    """Matplotlib figures by file stem: ``importance`` (when there is a ranking), ``history``
    and ``slices`` (when a configuration finished). No figure is drawn empty."""
    from fmnist_search import plots

    figs = {}
    if analysis.importance.resamples:
        figs["importance"] = plots.importance_figure(analysis.importance.table,
                                                     analysis.n_trials,
                                                     analysis.importance.resamples,
                                                     analysis.project)
    if len(analysis.history):
        figs["history"] = plots.history_figure(analysis.history, analysis.baselines,
                                               analysis.project)
    if not analysis.slices.empty:
        figs["slices"] = plots.slices_figure(analysis.slices, analysis.log, analysis.project,
                                             analysis.baselines)
    return figs
