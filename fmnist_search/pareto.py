"""Pareto fronts: the orderings a search with several objectives ranks by, and the front as a
result (the leaderboard's rank, ``compare``'s front, finalize's spread, the API's table).

Points are rows of a matrix, one column per objective, every column *minimised* (an accuracy
negated, a cost on a log scale: ``Objective.minimised``); a row with a NaN (a trial without
that number) is dominated by every complete row and ranks after them. Plain numpy, tested on
hand-made points (``tests/test_pareto.py``):

- ``ranks``: non-dominated sorting (Deb, Pratap, Agarwal and Meyarivan, "A fast and elitist
  multiobjective genetic algorithm: NSGA-II", IEEE TEC 2002): rank 0 is the front, rank 1 the
  front of the rest, and so on.
- ``crowding``: NSGA-II's crowding distance within one front (the extremes infinite).
- ``promotion_order``: NSGA-II's crowded comparison, rank first, then the larger crowding
  distance: what Hyperband's rounds promote by in a search of several objectives, as MO-ASHA
  (Schmucker, Donini, Zafar, Salinas and Archambeau 2021) does.
- ``hypervolume``: the volume a set dominates up to a reference point (exact, by slicing).
- ``selection_order``: rank first, then within a front the greedy hypervolume-subset order:
  how MO-TPE (Ozaki, Tanigaki, Watanabe and Onishi, GECCO 2020) splits its observations into
  good and bad.
- ``spread``: ``k`` members of the front, its extremes first, then each time the member
  farthest from those chosen: the models finalize trains.

The rows of a project (``front_rows``, ``front_table``) read a project's records through
``results``; the rest of this module needs nothing but numpy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fmnist_search import objectives

# --------------------------------------------------------------------------- pure functions


def _complete(points: np.ndarray) -> np.ndarray:
    return ~np.isnan(points).any(axis=1)


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` is at least as good as ``b`` everywhere and better somewhere."""
    return bool(np.all(a <= b) and np.any(a < b))


def ranks(points: np.ndarray) -> np.ndarray:
    """Each row's non-dominated rank (0: the front); incomplete rows after every complete one,
    all of the same rank."""
    points = np.asarray(points, dtype=float).reshape(len(points), -1)
    n = len(points)
    out = np.full(n, -1, dtype=int)
    done = ~_complete(points)
    if not n:
        return out
    # dominated_by[i, j]: row j dominates row i (complete rows only)
    le = np.all(points[None, :, :] <= points[:, None, :], axis=2)
    lt = np.any(points[None, :, :] < points[:, None, :], axis=2)
    dominated_by = le & lt
    dominated_by[done, :] = False
    dominated_by[:, done] = False
    rank = 0
    while not done.all():
        left = ~done
        front = left & ~(dominated_by[:, left].any(axis=1))
        out[front] = rank
        done |= front
        rank += 1
    out[~_complete(points)] = rank
    return out


def crowding(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each row within ``points`` (one front): per objective,
    the gap between its neighbours over the objective's range, summed; the extremes of any
    objective infinite."""
    points = np.asarray(points, dtype=float).reshape(len(points), -1)
    n, d = points.shape
    out = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(d):
        order = np.argsort(points[:, j], kind="stable")
        column = points[order, j]
        span = column[-1] - column[0]
        out[order[0]] = out[order[-1]] = np.inf
        if span > 0:
            out[order[1:-1]] += (column[2:] - column[:-2]) / span
    return out


def promotion_order(points: np.ndarray) -> list[int]:
    """Row indices, best first by NSGA-II's crowded comparison: the lower rank, then the
    larger crowding distance within that rank (ties kept in row order)."""
    points = np.asarray(points, dtype=float).reshape(len(points), -1)
    rank = ranks(points)
    distance = np.zeros(len(points))
    for r in np.unique(rank):
        members = np.flatnonzero(rank == r)
        if _complete(points[members]).all():
            distance[members] = crowding(points[members])
    return sorted(range(len(points)), key=lambda i: (rank[i], -distance[i], i))


def hypervolume(points: np.ndarray, reference: Sequence[float]) -> float:
    """The volume dominated by ``points`` and bounded by ``reference`` (minimisation; rows not
    better than the reference everywhere, or incomplete, add nothing). Exact: slices along
    the last objective, down to a sweep in two dimensions."""
    ref = np.asarray(reference, dtype=float)
    points = np.asarray(points, dtype=float).reshape(-1, len(ref))
    points = points[_complete(points) & np.all(points < ref, axis=1)]
    if not len(points):
        return 0.0
    if len(ref) == 1:
        return float(ref[0] - points[:, 0].min())
    if len(ref) == 2:
        order = np.argsort(points[:, 0], kind="stable")
        x, y = points[order, 0], np.minimum.accumulate(points[order, 1])
        widths = np.diff(np.append(x, ref[0]))
        return float(np.sum(widths * (ref[1] - y)))
    order = np.argsort(points[:, -1], kind="stable")
    points = points[order]
    total = 0.0
    for i in range(len(points)):
        upper = points[i + 1, -1] if i + 1 < len(points) else ref[-1]
        if upper > points[i, -1]:
            total += (upper - points[i, -1]) * hypervolume(points[: i + 1, :-1], ref[:-1])
    return total


def default_reference(points: np.ndarray) -> np.ndarray:
    """A reference point just beyond the worst of ``points`` in each objective (10% of the
    range further, 1 where the range is 0), as hypervolume-based selection uses one."""
    points = np.asarray(points, dtype=float)
    points = points[_complete(points)]
    worst, best = points.max(axis=0), points.min(axis=0)
    span = worst - best
    return worst + np.where(span > 0, 0.1 * span, 1.0)


def greedy_hypervolume_order(points: np.ndarray, reference: Sequence[float]) -> list[int]:
    """Row indices in the order greedy hypervolume-subset selection takes them: each time the
    row that adds the most hypervolume to those taken (ties: row order)."""
    points = np.asarray(points, dtype=float)
    left, taken = list(range(len(points))), []
    base = 0.0
    while left:
        gains = [hypervolume(points[[*taken, i]], reference) - base for i in left]
        best = int(np.argmax(gains))
        base += gains[best]
        taken.append(left.pop(best))
    return taken


def selection_order(points: np.ndarray) -> list[int]:
    """Row indices, best first: the lower rank, then within a rank the greedy hypervolume
    order (MO-TPE's split of observations into good and bad); incomplete rows last."""
    points = np.asarray(points, dtype=float).reshape(len(points), -1)
    rank = ranks(points)
    complete = _complete(points)
    if not complete.any():
        return list(range(len(points)))
    reference = default_reference(points)
    out: list[int] = []
    for r in np.unique(rank):
        members = np.flatnonzero(rank == r)
        if complete[members].all():
            out += [int(members[i]) for i in greedy_hypervolume_order(points[members],
                                                                       reference)]
        else:
            out += [int(i) for i in members]
    return out


def spread(points: np.ndarray, k: int) -> list[int]:
    """``k`` row indices from the front (rank 0): the best row of each objective first (the
    extremes), then each time the row farthest (objectives scaled to the front's range) from
    those chosen. A front with fewer than ``k`` members is followed by the next ranks, in
    ``promotion_order``."""
    points = np.asarray(points, dtype=float).reshape(len(points), -1)
    rank = ranks(points)
    front = [int(i) for i in np.flatnonzero((rank == 0) & _complete(points))]
    if len(front) <= k:
        rest = [i for i in promotion_order(points) if i not in front]
        return (front + rest)[:k]
    sub = points[front]
    span = sub.max(axis=0) - sub.min(axis=0)
    scaled = (sub - sub.min(axis=0)) / np.where(span > 0, span, 1.0)
    chosen: list[int] = []
    for j in range(points.shape[1]):
        best = int(np.argmin(scaled[:, j]))
        if best not in chosen and len(chosen) < k:
            chosen.append(best)
    while len(chosen) < k:
        distance = np.min(np.linalg.norm(scaled[:, None, :] - scaled[None, chosen, :], axis=2),
                          axis=1)
        distance[chosen] = -1.0
        chosen.append(int(np.argmax(distance)))
    return [front[i] for i in chosen]


# --------------------------------------------------------------------------- a project's rows


def matrix(rows: Sequence[Mapping[str, Any]], goals: Sequence[objectives.Objective]
           ) -> np.ndarray:
    """The rows' objectives as a matrix to minimise (NaN where a row lacks one)."""
    return np.array([[g.minimised(r.get(g.name)) for g in goals] for r in rows],
                    dtype=float).reshape(len(rows), len(goals))


def project_objectives(run: Mapping[str, Any]) -> tuple[str, ...]:
    """A project's objectives, from its ``run.json``: its own when it searched several, else
    validation accuracy against parameters (the front ``compare`` draws for any project)."""
    named = tuple((run.get("preset") or {}).get("objectives") or objectives.DEFAULT)
    return named if objectives.several(named) else objectives.ACCURACY_AND_SIZE


def config_key(values: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in values.items() if not k.startswith("tuner/")},
                      sort_keys=True, default=str)


def with_ranks(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """The finished trials of ``rows`` (``results.trial_rows``), each with its
    ``pareto_rank`` over ``names`` among them (0: on the front). A configuration Hyperband
    trained several times (1, 3, 9 epochs) stands once, as its longest-trained trial."""
    goals = objectives.of(names)
    done = [dict(r) for r in rows if r.get("status") == "COMPLETED"]
    longest: dict[str, dict[str, Any]] = {}
    for row in done:
        key = config_key(row.get("values") or {})
        if key not in longest or (row.get("epochs") or 0) >= (longest[key].get("epochs") or 0):
            longest[key] = row
    kept = list(longest.values())
    rank = ranks(matrix(kept, goals)) if kept else np.array([], dtype=int)
    for row, r in zip(kept, rank, strict=True):
        row["pareto_rank"] = int(r)
    for row in done:
        key = config_key(row.get("values") or {})
        if row is not longest[key]:
            row["pareto_rank"] = None  # the same configuration, trained longer elsewhere
    return done


def several_objectives(run: Mapping[str, Any]) -> bool:
    """Whether a project (its ``run.json``) searched a front."""
    return objectives.several((run.get("preset") or {}).get("objectives") or ())


def mark(root: Path, rows: Sequence[dict[str, Any]], front_only: bool = False
         ) -> list[dict[str, Any]]:
    """Leaderboard rows (``results.collect``), each trial of a project that searched several
    objectives with its ``pareto_rank`` among the project's trials (every project's with
    ``front_only``: accuracy against parameters for a search of one objective). With
    ``front_only``, the trials of rank 0 alone."""
    from fmnist_search import store

    mine: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["kind"] == "trial":
            mine.setdefault(row["project"], []).append(row)
    rank: dict[tuple[str, str], int | None] = {}
    ranked = set()
    for project, trials in mine.items():
        run = store.read_project(root / project) or {}
        if front_only or several_objectives(run):
            ranked.add(project)
            for row in with_ranks(trials, project_objectives(run)):
                rank[(project, row["trial"])] = row["pareto_rank"]
    out = [{**row, "pareto_rank": rank.get((row["project"], row["trial"]))}
           if row["kind"] == "trial" and row["project"] in ranked else row for row in rows]
    return [r for r in out if r.get("pareto_rank") == 0] if front_only else out


def searched_fronts(root: Path, rows: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Project -> its objectives, for each project of ``rows`` that searched several."""
    from fmnist_search import store

    out = {}
    for project in sorted({r["project"] for r in rows if r["kind"] == "trial"}):
        run = store.read_project(root / project) or {}
        if several_objectives(run):
            out[project] = project_objectives(run)
    return out


def front_rows(root: Path, project: str, all_ranks: bool = False) -> list[dict[str, Any]]:
    """A project's front (its finished trials of rank 0, by its own objectives: see
    ``project_objectives``), best in the first objective first; ``all_ranks``: every ranked
    trial, rank by rank."""
    from fmnist_search import results

    run = results.load_project(root, project)  # a project that is not there: its error
    names = project_objectives(run)
    ranked = [r for r in with_ranks(results.trial_rows(root, project), names)
              if r["pareto_rank"] is not None and (all_ranks or r["pareto_rank"] == 0)]
    first = objectives.of(names)[0]
    ranked.sort(key=lambda r: (r["pareto_rank"], first.minimised(r.get(first.name))))
    return ranked


FRONT_COLUMNS = ("project", "trial", "pareto_rank", "val_accuracy", "val_loss", "params",
                 "seconds_per_epoch", "ms_per_image", "model_bytes", "epochs", "architecture")


def front_table(root: Path, project: str, all_ranks: bool = False):
    """``front_rows`` as a pandas DataFrame (``FRONT_COLUMNS``, then the trial's values);
    ``DataFrame.attrs["objectives"]`` names what the front is over."""
    import pandas as pd

    from fmnist_search import results

    rows = front_rows(root, project, all_ranks)
    table = pd.DataFrame([{**{c: r.get(c) for c in FRONT_COLUMNS}, **(r.get("values") or {})}
                          for r in rows], columns=None if rows else list(FRONT_COLUMNS))
    table.attrs["objectives"] = list(project_objectives(results.load_project(root, project)))
    return table


def budget(value: float) -> float:
    """``value`` rounded up to two significant figures: 257,162 -> 260,000."""
    if value <= 0 or not math.isfinite(value):
        return value
    step = 10.0 ** (math.floor(math.log10(value)) - 1)
    return float(f"{math.ceil(value / step - 1e-9) * step:.12g}")


def budget_label(value: float, unit: str) -> str:
    """``budget(value)`` as a "the best model under ..." line says it: ``260K params``,
    ``1M params``, ``0.043 ms``."""
    bound = budget(value)
    if unit == " params":
        for size, suffix in ((1e6, "M"), (1e3, "K")):
            if bound >= size:
                return f"{bound / size:g}{suffix} params"
    return f"{bound:g}{unit}"


# --------------------------------------------------------------------------- finalize's spread

MEMBER_KEYS = ("trial", "pareto_rank", "val_accuracy", "val_loss", "params",
               "seconds_per_epoch", "ms_per_image", "model_bytes", "epochs", "architecture")


def final_choice(root: Path, project: str, top: int
                 ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """What finalize trains of a search with several objectives: ``top`` of its trials spread
    along its front (``spread``: the extremes, then each time the farthest; the next ranks
    when the front is smaller), and the front as ``final.json`` keeps it (``front``: its
    objectives, its members with their screening numbers, the trials chosen)."""
    from fmnist_search import results

    names = project_objectives(results.load_project(root, project))
    ranked = front_rows(root, project, all_ranks=True)
    chosen = [ranked[i] for i in spread(matrix(ranked, objectives.of(names)), top)] \
        if ranked else []
    record = {"objectives": list(names),
              "members": [{k: r.get(k) for k in MEMBER_KEYS} for r in ranked
                          if r["pareto_rank"] == 0],
              "spread": [r["trial"] for r in chosen]}
    return chosen, record


def budget_lines(record: Mapping[str, Any]) -> list[str]:
    """``final.json`` of a search with several objectives -> "The best model under X params /
    Y ms: ..." for each finalized model of its spread that no other finalized one beats on
    test accuracy within its budget (its parameters and, where measured, its screening
    milliseconds an image, rounded up: ``budget_label``), with the largest report model of
    the table within the same parameter budget beside it."""
    front = record.get("front") or {}
    screened = {m["trial"]: m for m in front.get("members", [])}
    screened.update({t: {"trial": t} for t in front.get("spread", []) if t not in screened})
    rows = record.get("rows") or []
    finals = [r for r in rows if r.get("stage") == "final" and r.get("trial") in screened
              and r.get("test_accuracy") is not None and r.get("params")]
    bases = [r for r in rows if r.get("stage") == "baseline" and r.get("params")
             and r.get("test_accuracy") is not None]
    lines = []

    def ms(row: Mapping[str, Any]) -> float | None:
        return screened[row["trial"]].get("ms_per_image")

    for row in sorted(finals, key=lambda r: r["params"]):
        label, bound = budget_label(row["params"], " params"), budget(row["params"])
        speed = ms(row)
        fast = budget_label(speed, " ms") if speed else None
        fast_bound = budget(speed) if speed else math.inf
        within = [r for r in finals if r["params"] <= bound
                  and (ms(r) is None or speed is None or ms(r) <= fast_bound)]
        if max(within, key=lambda r: r["test_accuracy"]) is not row:
            continue  # a model within this budget tested better: its own line says so
        under = f"{label}{f' / {fast}' if fast else ''}"
        costs = f"{row['params']:,} params" + (f", {speed:.3f} ms an image" if speed else "")
        line = (f"The best model under {under}: {row['name']}, test accuracy "
                f"{row['test_accuracy']:.4f} ({costs})")
        report = [b for b in bases if b["params"] <= bound]
        if report:
            b = max(report, key=lambda r: r["params"])
            line += (f"; the report's {b['name']} ({b['params']:,} params) tested "
                     f"{b['test_accuracy']:.4f}")
        lines.append(line + ".")
    if finals and front.get("objectives"):
        lines.append(f"(Front of {', '.join(front['objectives'])}; milliseconds as the search "
                     "measured them, batch 512 of validation images.)")
    return lines
