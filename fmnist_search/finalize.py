"""The last stage of a search: its top k configurations, trained with the final protocol.

A screening trial is judged on a subset after a few epochs; a final model is trained for
``final_epochs`` on the whole training split and evaluated on the test set, so the two are
different numbers and are kept apart (``finalized/<project>/``, stage ``final``). Beside the
top k, the report's models named by the preset (``final_baselines``) are trained with their
own protocol (and ``final_epochs`` when ``final_baselines_epochs``), unless a finished run of
the same data and epochs exists already.

And the control: the space's default point (every hyperparameter at its ``default``, the
preset's fixed values) trained with the same final protocol. Without it nobody can tell from
the table whether the search added anything: a hand-trained default point once beat the
searched winner. Its runs live in ``controls/<space>/`` so that every project of the same
space, protocol and data reuses them. ``final.json``'s ``control`` says what the search's pick
gained over it, with the standard error of that difference.

Then the ensemble stage (``ensemble``): greedy selection over every model of the table and the
other runs of the same data, saved as one plain-Keras model when it beats the best single one
on validation. What finalize *delivers* is that ensemble, else the best single model on
validation; ``final.json``'s ``delivered`` names it and compares it with the control by a
paired test on the test images (``paired``), as ``control`` does for the search's pick.

Resumable: every model is one ``runs.train_run`` directory, renamed into place only when it is
complete, and ``final.json`` is rewritten after each; a rerun reuses every model already
trained with the same values, epochs and data (and an ensemble of the same members), and
trains only the rest.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from fmnist_search import baselines, budget, budget_clock, builder, ensemble, paired, results, store
from fmnist_search.dataset import Dataset, DataSettings
from fmnist_search.errors import UserError

DEFAULT_TOP = 3


@dataclass
class FinalizeRequest:
    root: Path
    project: str
    top: int | None = None  # default: the preset's finalize_top, else 3
    epochs: int | None = None  # default: the preset's final_epochs, else its epochs
    precision: str | None = None  # default: the search's
    data_dir: str | None = None
    test_csv: str | None = None  # default: the project's own
    # Unix time --max-time ends (a `run` pipeline): a runner-up configuration that would not
    # finish by then is not started; the best one and the report models always train.
    deadline: float | None = None
    ensemble_size: int | None = None  # default: the preset's ensemble_size, else 5; 0/1: off


@dataclass
class Candidate:
    """One model of the final table: what to train, and where its runs live."""

    name: str
    stage: str  # "final", "control" or "baseline"
    values: dict[str, Any]
    epochs: int
    parent: Path
    source: dict[str, Any]
    screening: dict[str, Any]  # the trial's screening numbers (a final model only)


def _distinct_top(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The finished trials with distinct values, best first (Hyperband trains one
    configuration as several trials of growing epochs: the best of them stands for it)."""
    seen, out = set(), []
    for row in results.sort_rows([r for r in rows if r["status"] == "COMPLETED"]):
        key = json.dumps(row["values"], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def simplest_first(rows: list[dict[str, Any]], n_val: int | None) -> list[dict[str, Any]]:
    """The configurations (best first) with those within one standard error of the best
    screening accuracy moved to the front, fewest parameters first: the one-standard-error
    rule (Hastie, Tibshirani and Friedman, ESL 7.10), which chooses the top k. A screening
    score on a few thousand validation images cannot tell them apart; parameters rather than
    measured seconds because this machine's speed drifts up to 2x between runs, and a choice
    should not. Measured: 0.9057 (400,266 parameters) and 0.9053 (388,954) on 6,000 images
    (one error is 0.0038); the smaller one tested 0.9394 against 0.9286, in half the time."""
    if not rows or not n_val or rows[0].get("val_accuracy") is None:
        return rows
    best = float(rows[0]["val_accuracy"])
    error = math.sqrt(best * (1 - best) / n_val)
    close = [r for r in rows if (r.get("val_accuracy") or 0.0) >= best - error]
    close.sort(key=lambda r: r.get("params") or math.inf)
    return close + [r for r in rows if r not in close]


def plan_final_table(req: FinalizeRequest) -> tuple[dict[str, Any], list[Candidate], dict[str, Any]]:
    """The project's record, the models of the final table, and the settings they share."""
    run = results.load_project(req.root, req.project)
    preset = run.get("preset", {})
    top = req.top or preset.get("finalize_top") or DEFAULT_TOP
    epochs = req.epochs or preset.get("final_epochs") or int(preset["epochs"])
    final_values = dict(preset.get("final") or {})
    spread = front_spread(req.root, req.project, run, top)  # several objectives: their front
    chosen = spread[0] if spread else simplest_first(
        _distinct_top(results.trial_rows(req.root, req.project)),
        run.get("data", {}).get("n_val"))[:top]
    if not chosen:
        raise UserError(f"Project '{req.project}' has no finished trial to finalize yet.")
    directory = store.final_dir(req.root, req.project)
    candidates = []
    for row in chosen:
        name = f"{req.project}-{row['trial']}"
        values = {**row["values"], **final_values, "epochs": epochs}
        candidates.append(Candidate(
            name, "final", values, epochs, directory / name,
            {"project": req.project, "trial": row["trial"]},
            {k: row.get(k) for k in ("val_accuracy", "epochs", "seconds_per_epoch", "n_train")}))
    # The best configuration, the report models, then the other configurations: the order
    # only matters when --max-time runs out, and then the comparison with the report's models
    # (what the table is for) comes before a runner-up.
    control = control_candidate(req.root, run, epochs, final_values)
    candidates = [_in_control_folder(c, control) for c in candidates]
    candidates[1:1] = [control,
                       *(baseline_candidate(req.root, name, epochs,
                                            bool(preset.get("final_baselines_epochs")))
                         for name in preset.get("final_baselines") or [])]
    size = req.ensemble_size if req.ensemble_size is not None else preset.get(
        "ensemble_size", ensemble.DEFAULT_SIZE)
    settings = {"top": top, "epochs": epochs, "final_values": final_values,
                "precision": req.precision or preset.get("precision", "auto"),
                "ensemble_size": int(size),
                "max_params": preset.get("max_params") or None,  # a preset's 0: no limit
                "data": DataSettings.from_record(run["data"], req.data_dir,
                                                 req.test_csv),
                **({"front": spread[1]} if spread else {})}
    return run, candidates, settings


def _in_control_folder(candidate: Candidate, control: Candidate) -> Candidate:
    """A configuration that is the control itself (the search's pick is often its start, the
    default point) trains in the control's folder: the control row then reuses that run, as
    later projects of the space do, instead of spending an hour here on the same numbers
    (one seed, one protocol, one split: trials are reproducible)."""
    if builder.same_model(candidate.values, control.values):
        return replace(candidate, parent=control.parent)
    return candidate


def control_candidate(root: Path, run: dict[str, Any], epochs: int,
                      final_values: dict[str, Any]) -> Candidate:
    """The space's default point with the preset's fixed values, under the final protocol."""
    from fmnist_search import space

    path = Path(run.get("space_path", ""))
    try:
        sp = space.load_space(path, run.get("space_name"))
    except (UserError, OSError) as exc:
        raise UserError(f"The control of project '{run.get('project')}' is its space's default "
                        f"point, and its space file {path} cannot be read now ({exc}). Put "
                        "the file back where the search read it.") from exc
    values = sp.control_values(run.get("preset", {}).get("fixed") or {}, final_values, epochs)
    parent = store.control_dir(root, sp.name)
    return Candidate(parent.name, "control", values, epochs, parent,
                     {"control": sp.name, "trial": "default", "file": str(path)}, {})


def control_gain(rows: list[dict[str, Any]], probs: dict[str, Any], truth: Any,
                 name: str | None = None) -> dict[str, Any] | None:
    """A model of the table (``name``; default the search's pick, the first configuration
    finalize trained) against the control on the test set: a paired test on the same images
    (``paired``: McNemar exact, and the paired standard error), from their saved test
    probabilities ``probs`` (name -> array) and the test labels ``truth``."""
    pick = next((r for r in rows if (r["name"] == name if name else r["stage"] == "final")),
                None)
    control = next((r for r in rows if r["stage"] == "control"), None)
    if (pick is None or control is None or truth is None
            or probs.get(pick["name"]) is None or probs.get(control["name"]) is None):
        return None
    who = "The search's pick" if pick["stage"] == "final" else "The delivered model"
    if pick.get("path") and pick.get("path") == control.get("path"):
        return {"pick": pick["name"], "control": control["name"], "gain": 0.0,
                "standard_error": 0.0, "p_value": 1.0, "verdict": "is",
                "line": f"{who} {pick['name']} is its control, the space's default "
                        "point (one run): the search found nothing it ranked above its start."}
    result = paired.compare(pick["name"], probs[pick["name"]], control["name"],
                            probs[control["name"]], truth)
    return {"pick": pick["name"], "control": control["name"], **result.as_dict(),
            "line": f"{who} " + result.line().replace(
                f" {control['name']}:", f" its control {control['name']} (the space's default "
                "point, same protocol):", 1)}


def delivered(rows: list[dict[str, Any]], stage: dict[str, Any]) -> dict[str, Any] | None:
    """What finalize delivers: the ensemble when the stage chose one, else the best single
    model of the table on validation accuracy (the test set chooses nothing)."""
    if stage.get("chosen"):
        row = next((r for r in rows if r["stage"] == "ensemble"), None)
    else:
        scored = [r for r in rows if r.get("val_accuracy") is not None]
        row = max(scored, key=lambda r: r["val_accuracy"]) if scored else None
    if row is None:
        return None
    return {"name": row["name"], "stage": row["stage"], "path": row["path"],
            "params": row.get("params"), "test_accuracy": row.get("test_accuracy"),
            "val_accuracy": row.get("val_accuracy")}


def baseline_candidate(root: Path, name: str, final_epochs: int,
                       use_final_epochs: bool) -> Candidate:
    """A report model of the final table: its own protocol, and ``final_epochs`` epochs when
    the preset says so (else its own)."""
    base = baselines.load(name)
    epochs = base.final_epochs(final_epochs, use_final_epochs)
    return Candidate(base.name, "baseline", {**base.values, "epochs": epochs}, epochs,
                     root / store.BASELINES / base.name,
                     {"baseline": base.name, "file": str(base.path)}, {})


def finished_run(candidate: Candidate, data: dict[str, Any],
                 note: Callable[[str], None] | None = None) -> tuple[Path, dict] | None:
    """The newest finished run of this model with the same values (a configuration or the
    control), epochs and data: finalize does not train it again. A run whose model or
    predictions are damaged is not reused; ``note`` gets one line naming each."""
    from rich.markup import escape

    damaged: list[tuple[Path, str]] = []
    found = results.finished_run(candidate.parent, candidate.epochs, data,
                                 None if candidate.stage == "baseline" else candidate.values,
                                 damaged)
    for path, problem in damaged if note is not None else ():
        note(f"[bold]{escape(candidate.name)}[/]: {escape(str(path))} is damaged "
             f"({escape(problem)}), so it is not reused")
    return found


def _seconds(metrics: dict[str, Any]) -> float | None:
    if metrics.get("wall_seconds") is not None:
        return float(metrics["wall_seconds"])
    try:  # a run written before wall_seconds was recorded: its whole-second timestamps
        return (datetime.fromisoformat(metrics["finished"])
                - datetime.fromisoformat(metrics["started"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def screening_seconds(root: Path, project: str) -> float | None:
    """Wall time of the screening stage: first trial started to last trial finished, less the
    time between the pipeline's parts when it was resumed (a 97-minute part, a 2-hour pause and
    a second part once counted the pause as screening)."""
    records = [e.record for e in store.read_trials(root / project) if "finished" in e.record]
    if not records:
        return None
    start = min(r["started"] for r in records)
    end = max(r["finished"] for r in records)
    return end - start - budget_clock.seconds_off(root / project, start, end)


def estimated_seconds(candidates: list[Candidate], scale: float) -> dict[str, float | None]:
    """Each model's expected training time: a configuration's from its screening seconds
    per epoch (``scale``: whole split / screening subset), a report model's at the mean of
    theirs, as the search's reserve assumes (``budget.finalize_reserve``)."""
    per_epoch = {c.name: c.screening.get("seconds_per_epoch") for c in candidates
                 if c.stage == "final"}
    known = [float(s) for s in per_epoch.values() if s]
    mean = sum(known) / len(known) if known else None
    out: dict[str, float | None] = {}
    for c in candidates:
        spe = per_epoch.get(c.name) if c.stage == "final" else mean
        out[c.name] = budget.model_seconds(float(spe), c.epochs, scale) if spe else None
    return out


def _past_deadline(deadline: float | None, cost: float | None, candidate: Candidate,
                   rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """The estimate and the time left when a runner-up would end past the deadline, else
    None. The best configuration and the report models always train: without them the
    final table compares nothing."""
    if (deadline is None or cost is None or candidate.stage != "final"
            or not any(r["stage"] == "final" for r in rows)):
        return None
    left = deadline - time.time()
    return {"estimated_seconds": cost, "left_seconds": max(left, 0.0)} if cost > left else None


def _epochs(n: Any) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


def next_step(root: Path, project: str) -> str:
    """What a search that ends on screening scores says last: what those scores are, and what
    finalize would train next, with its estimated time (from the trials' measured seconds per
    epoch, as the budget estimates it; models already trained count nothing)."""
    try:
        run, candidates, settings = plan_final_table(FinalizeRequest(root, project))
    except UserError as exc:
        return str(exc)
    preset = run.get("preset", {})
    subset = float(preset.get("subset", 1.0))
    data = settings["data"].fingerprint()
    costs = estimated_seconds(candidates, 1.0 / subset)
    todo = [c for c in candidates if finished_run(c, data) is None]
    known = [costs[c.name] for c in todo if costs[c.name] is not None]
    minutes = f"about {math.ceil(sum(known) / 60)} min here" if known else "time unknown"
    names = ", ".join(c.name for c in todo) or "nothing: every model is trained already"
    return (f"These are screening scores: validation accuracy after at most "
            f"{_epochs(preset.get('epochs'))} on {subset:.0%} of the training split, for ranking "
            "configurations, not final accuracies (a final protocol trains longer on the whole "
            "split, and the test set is not used until then). Next: `fmnist-search finalize "
            f"{project}` trains the top {settings['top']} with the final protocol "
            f"({_epochs(settings['epochs'])} on the whole training split) beside the control "
            f"(the space's default point) and tests them; to train: {names} ({minutes}, "
            "estimated from the trials' measured seconds per epoch).")


def final_row(candidate: Candidate, path: Path, metrics: dict[str, Any],
              seconds: float | None, reused: bool) -> dict[str, Any]:
    return {
        "stage": candidate.stage, "name": candidate.name,
        "trial": candidate.source.get("trial", candidate.name),
        "test_accuracy": metrics.get("test_accuracy"), "test_note": metrics.get("test_note"),
        "val_accuracy": metrics.get("val_accuracy"), "params": metrics.get("params"),
        "seconds_per_epoch": metrics.get("seconds_per_epoch"), "epochs": metrics.get("epochs"),
        "wall_seconds": seconds, "reused": reused, "n_train": metrics.get("n_train"),
        "n_test": metrics.get("n_test"), "seed": metrics.get("seed"),
        "architecture": metrics.get("architecture", ""),
        "screening_val_accuracy": candidate.screening.get("val_accuracy"),
        "inference_ms_per_image": _inference_ms(metrics),
        "path": str(path),
    }


def _inference_ms(metrics: dict[str, Any]) -> float | None:
    """Milliseconds an image when the run predicted its test set (batch 512, TTA included)."""
    n = metrics.get("n_test") if metrics.get("test_accuracy") is not None else metrics.get("n_val")
    seconds = metrics.get("predict_seconds")
    return 1000 * float(seconds) / int(n) if seconds is not None and n else None


def ensemble_row(path: Path, metrics: dict[str, Any], reused: bool) -> dict[str, Any]:
    """The ensemble's row of the final table, with the same keys as a trained model's."""
    return {
        "stage": "ensemble", "name": metrics["model"], "trial": ensemble.SUFFIX,
        "test_accuracy": metrics.get("test_accuracy"), "test_note": metrics.get("test_note"),
        "val_accuracy": metrics.get("val_accuracy"), "params": metrics.get("params"),
        "seconds_per_epoch": None, "epochs": None,
        "wall_seconds": _seconds(metrics), "reused": reused,
        "n_train": metrics.get("n_train"), "n_test": metrics.get("n_test"),
        "seed": metrics.get("seed"), "architecture": metrics.get("architecture", ""),
        "screening_val_accuracy": None,
        "inference_ms_per_image": metrics.get("inference_ms_per_image"),
        "members": metrics.get("members"), "path": str(path),
    }


def _ensemble_stage(req: FinalizeRequest, record: dict[str, Any], settings: dict[str, Any],
                    dataset: Dataset, console: Console) -> None:
    """The ensemble, what is delivered, and the paired comparisons with the control."""
    clock = time.perf_counter()
    outcome = ensemble.run_stage(req.root, req.project, record["rows"], dataset,
                                 settings["ensemble_size"], settings["max_params"], console.print)
    record["ensemble"] = outcome.record
    if outcome.row is not None:
        path, metrics = Path(outcome.row["path"]), outcome.row["metrics"]
        reused = bool(outcome.row["reused"])
        row = ensemble_row(path, metrics, reused)
        record["rows"].append(row)
        record["stages"]["models"].append({"name": row["name"], "stage": "ensemble",
                                           "seconds": time.perf_counter() - clock,
                                           "reused": reused})
    # by run folder: a pick that is the control is one candidate under the control's name
    by_path = {str(m.path): m.test for m in outcome.members}
    probs = {r["name"]: by_path.get(str(r["path"])) for r in record["rows"]}
    record["control"] = control_gain(record["rows"], probs, dataset.y_test)
    record["delivered"] = delivered(record["rows"], outcome.record)
    if record["delivered"]:
        record["delivered"]["control"] = control_gain(record["rows"], probs, dataset.y_test,
                                                      record["delivered"]["name"])
    if record.get("front"):  # several objectives: "the best model under X params / Y ms"
        from fmnist_search import pareto

        record["front_lines"] = pareto.budget_lines(record)
    store.write_final(req.root, req.project, record)


def finalize(req: FinalizeRequest, console: Console,
             load_data: Callable[[DataSettings], Dataset]) -> dict[str, Any]:
    """Train (or reuse) every model of the final table; returns ``final.json``'s record."""
    from fmnist_search import runs

    run, candidates, settings = plan_final_table(req)
    data_settings: DataSettings = settings.pop("data")
    fingerprint = data_settings.fingerprint()
    record: dict[str, Any] = {
        "project": req.project, **settings, "data": fingerprint,
        "stages": {"screening_seconds": screening_seconds(req.root, req.project),
                   "models": []},
        "rows": [], "skipped": [], "complete": False,
    }
    costs = estimated_seconds(candidates, 1.0 / float(run.get("preset", {}).get("subset", 1.0)))
    dataset: Dataset | None = None
    for candidate in candidates:
        done = finished_run(candidate, fingerprint, console.print)
        if done is None and (late := _past_deadline(req.deadline, costs[candidate.name],
                                                    candidate, record["rows"])):
            console.print(f"[bold]{candidate.name}[/]: not trained: it needs about "
                          f"{late['estimated_seconds'] / 60:.0f} min and "
                          f"{late['left_seconds'] / 60:.0f} min are left of --max-time; "
                          f"`fmnist-search finalize {req.project}` trains it later")
            record["skipped"].append({"name": candidate.name, "stage": candidate.stage, **late})
            continue
        if done is not None:
            path, metrics = done
            console.print(f"[bold]{candidate.name}[/]: already trained with these settings "
                          f"({path}); not retrained")
            row = final_row(candidate, path, metrics, _seconds(metrics), True)
        else:
            if dataset is None:
                dataset = load_data(data_settings)
            spec = runs.RunSpec(kind=candidate.stage, name=candidate.name,
                                values=candidate.values, epochs=candidate.epochs,
                                seed=data_settings.seed, precision=settings["precision"],
                                patience=None, source=candidate.source)
            path, metrics = runs.train_run(spec, dataset, candidate.parent, console)
            row = final_row(candidate, path, metrics, _seconds(metrics), False)
        record["rows"].append(row)
        record["stages"]["models"].append({"name": candidate.name, "stage": candidate.stage,
                                           "seconds": row["wall_seconds"],
                                           "reused": row["reused"]})
        record["updated"] = runs.now()
        store.write_final(req.root, req.project, record)  # after each: kill-safe progress
    if dataset is None:  # the labels, and any reused model's probabilities from before
        dataset = load_data(data_settings)
    _ensemble_stage(req, record, settings, dataset, console)
    record["complete"] = True
    # This finalize's own time: a reused model's seconds were spent by the run that trained it
    # (a proof run that reused its 90-minute control reported "finalize 3h58m" for 1 hour).
    record["stages"]["finalize_seconds"] = sum(m["seconds"] or 0.0
                                               for m in record["stages"]["models"]
                                               if not m["reused"])
    store.write_final(req.root, req.project, record)
    return record


def front_spread(root: Path, project: str, run: dict[str, Any], top: int
                 ) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """A search of several objectives is finalized along its front: ``top`` of its trials,
    the front's extremes first, then each time the one farthest from those chosen
    (``pareto.final_choice``), and the front itself, which ``final.json`` keeps (``front``).
    None for a search of one objective: the one-standard-error rule chooses its top."""
    from fmnist_search import pareto

    if not pareto.several_objectives(run):
        return None
    return pareto.final_choice(root, project, top)
