"""Finalize's last stage: an ensemble of the models it trained, chosen on validation.

Finalize trains the search's top configurations, the control and the report's models for
many epochs each; before this stage it then reported one of them and threw the rest away.
Averaging independently trained networks is the best-documented gain left at this size (on
Fashion-MNIST, five 100-epoch nets: 94.86% against a 94.22% single-model mean), and
auto-sklearn's ensemble selection (Caruana et al. 2004, "Ensemble selection from libraries of
models") is how AutoML tools turn the models a search trained into one better model:

- greedy forward selection *with replacement*: start empty; at each of ``size`` rounds add the
  model (possibly one already in) whose addition gives the best validation accuracy of the
  averaged probabilities (ties: the lower log loss); keep the best round's ensemble. Weights are
  how often a model was picked. A model picked again adds no parameters.
- candidates (the "pool"): every model of this finalize's table, and every other finished run
  of the same data (earlier finalizes of the project, the space's controls, the report
  baselines); scored on their saved validation probabilities (TTA included where the protocol
  has it, ``store.PREDICTIONS``), so no model is run twice for this.
- limits: at most ``size`` rounds, and the parameters of the distinct members together at most
  the preset's ``max_params``: a limit on the model, not on each part of it.

The ensemble is delivered only when it beats the best single candidate on validation (it does
whenever a second member is added: a round only counts when it improves); otherwise the stage
says so and the best single model stands. Chosen on the validation images and so measured
there optimistically; its test accuracy is measured once, on the saved model itself.

Saved as one Keras model (``portable``: each member's inference graph, training-only layers
replaced by identities, the flip TTA in the graph, a ``keras.layers.Average`` over the members
with a member picked k times fed k times), so ``keras.models.load_model`` opens it in a process
that never imports this package, and ``predict`` of the tool uses it like any run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmnist_search import store
from fmnist_search.results import data_key
from fmnist_search.versions import versions

DEFAULT_SIZE = 5  # greedy rounds: at most this many members, a repeated one counted each time
SUFFIX = "ensemble"  # finalized/<project>/<project>-ensemble/


@dataclass
class Member:
    """One candidate: a finished run directory and what the selection needs of it."""

    name: str
    stage: str  # "final", "control", "baseline" (this table), or "pool" (another run)
    path: Path
    params: int
    tta: bool
    val: np.ndarray | None = None  # class probabilities on the validation images
    test: np.ndarray | None = None  # ... and on the test images (None without a test set)


@dataclass
class Selection:
    """The greedy selection's result: indices into the candidates and how often each was
    picked, the best round's validation scores, and every round's for the record."""

    counts: dict[int, int]
    val_accuracy: float
    val_loss: float
    rounds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(self.counts.values())


# --------------------------------------------------------------------------- selection


def _scores(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    accuracy = float(np.mean(probs.argmax(axis=1) == y))
    picked = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    return accuracy, float(-np.mean(np.log(picked)))


def greedy_select(val_probs: Sequence[np.ndarray], y_val: np.ndarray, params: Sequence[int],
                  size: int = DEFAULT_SIZE, max_params: int | None = None) -> Selection | None:
    """Caruana's forward selection with replacement (see the module docstring); None when no
    candidate fits ``max_params`` alone."""
    y = np.asarray(y_val).astype(int)
    total = np.zeros_like(np.asarray(val_probs[0], dtype=np.float64))
    counts: dict[int, int] = {}
    best: Selection | None = None
    rounds: list[dict[str, Any]] = []
    for step in range(1, max(size, 0) + 1):
        choice = None
        for i, probs in enumerate(val_probs):
            used = sum(params[j] for j in counts) + (0 if i in counts else params[i])
            if max_params is not None and used > max_params:
                continue
            accuracy, loss = _scores((total + probs) / step, y)
            if choice is None or (accuracy, -loss) > (choice[1], -choice[2]):
                choice = (i, accuracy, loss)
        if choice is None:
            break
        i, accuracy, loss = choice
        counts[i] = counts.get(i, 0) + 1
        total += val_probs[i]
        rounds.append({"added": i, "val_accuracy": accuracy, "val_loss": loss})
        if best is None or (accuracy, -loss) > (best.val_accuracy, -best.val_loss):
            best = Selection(dict(counts), accuracy, loss)
    if best is not None:
        best.rounds = rounds
    return best


# --------------------------------------------------------------------------- the pool


def pool_runs(root: Path, project: str, table: Sequence[dict[str, Any]],
              data: dict[str, Any]) -> list[tuple[str, str, Path]]:
    """(name, stage, run folder) of every candidate: this table's models first, then the
    newest run of each other model folder on the same data (earlier finalizes of the project,
    the controls, the report baselines). Ensembles are never members. A search's pick that is
    the control (one run, two rows) is the control: the search added nothing by it."""
    seen: dict[Path, int] = {}
    out: list[tuple[str, str, Path]] = []

    def add(name: str, stage: str, path: Path) -> None:
        resolved = path.resolve()
        if resolved in seen:
            if stage == "control":
                out[seen[resolved]] = (name, stage, path)
        elif (path / store.MODEL_FILE).is_file():
            seen[resolved] = len(out)
            out.append((name, stage, path))

    for row in table:
        if row.get("stage") != "ensemble" and row.get("path"):
            add(row["name"], row["stage"], Path(row["path"]))
    key = data_key(data)
    for base in (store.final_dir(root, project), root / store.CONTROLS,
                 root / store.BASELINES):
        if not base.is_dir():
            continue
        for model_dir in sorted(p for p in base.iterdir()
                                if p.is_dir() and not p.name.startswith(".")
                                and not p.name.endswith(f"-{SUFFIX}")):
            for run in reversed(store.run_dirs(base, "", model_dir.name)):
                metrics = store.read_metrics(run) or {}
                if data_key(metrics.get("data", {})) == key:
                    add(metrics.get("model", model_dir.name), "pool", run)
                    break
    return out


def load_member(name: str, stage: str, path: Path, x_val: np.ndarray,
                x_test: np.ndarray | None) -> Member:
    """A candidate with its probabilities: the saved ones, else predicted now (a run from
    before runs kept them) and saved beside it for the next time."""
    metrics = store.read_metrics(path) or {}
    tta = bool((metrics.get("values") or {}).get("tta"))
    member = Member(name, stage, path, int(metrics.get("params") or 0), tta)
    saved = store.read_predictions(path) or {}
    if "val" in saved and len(saved["val"]) == len(x_val) and (
            x_test is None or len(saved.get("test", ())) == len(x_test)):
        member.val, member.test = saved["val"], saved.get("test")
        return member
    from fmnist_search import portable, training

    model = portable.load_trained(path / store.MODEL_FILE)
    member.val = training.predict(model, x_val, tta=tta)[0].astype(np.float32)
    if x_test is not None:
        member.test = training.predict(model, x_test, tta=tta)[0].astype(np.float32)
    store.write_predictions(path, {"val": member.val,
                                    **({"test": member.test} if member.test is not None
                                       else {})})
    return member


# --------------------------------------------------------------------------- the model


def build_model(members: Sequence[Member], counts: Sequence[int]):
    """One Keras model of Keras' own layers: the members' inference graphs (each with its own
    flip TTA where its protocol has it), averaged with a member picked k times fed k times."""
    import keras

    from fmnist_search import portable
    from fmnist_search.builder import INPUT_SHAPE

    image = keras.Input(INPUT_SHAPE, name="image")
    outputs = []
    for i, (member, count) in enumerate(zip(members, counts, strict=True)):
        trained = portable.load_trained(member.path / store.MODEL_FILE)
        copy = portable.inference_copy(trained)
        net = keras.Model(copy.input, copy.output, name=f"member_{i}")
        probs = portable.with_tta(net, member.tta, f"member_{i}")(image)
        outputs += [probs] * count
    out = outputs[0] if len(outputs) == 1 else keras.layers.Average(name="ensemble")(outputs)
    return keras.Model(image, out, name="ensemble")


def describe(members: Sequence[Member], counts: Sequence[int]) -> str:
    return " + ".join(f"{m.name}{f' x{c}' if c > 1 else ''}"
                      for m, c in zip(members, counts, strict=True))


def members_key(members: Sequence[Member], counts: Sequence[int]) -> list[dict[str, Any]]:
    return [{"name": m.name, "path": str(m.path), "weight": c} for m, c in
            zip(members, counts, strict=True)]


def finished(parent: Path, key: list[dict[str, Any]], data: dict[str, Any]
             ) -> tuple[Path, dict[str, Any]] | None:
    """An ensemble of these members and weights on these data saved already (a rerun)."""
    want = json.dumps(key, sort_keys=True)
    for run in reversed(store.run_dirs(parent.parent, "", parent.name)):
        metrics = store.read_metrics(run) or {}
        got = [{k: m.get(k) for k in ("name", "path", "weight")}
               for m in metrics.get("members", [])]
        if (json.dumps(got, sort_keys=True) == want
                and data_key(metrics.get("data", {})) == data_key(data)):
            return run, metrics
    return None


def save(parent: Path, members: Sequence[Member], counts: Sequence[int], dataset,
         selection: Selection, name: str) -> tuple[Path, dict[str, Any]]:
    """Build, evaluate (validation and test, on the saved graph itself) and write the
    ensemble's run folder (``runs.write_run``: renamed into place only when complete)."""
    from fmnist_search import runs, training

    started, clock = runs.now(), time.perf_counter()
    model = build_model(members, counts)
    val = training.evaluate(model, dataset.x_val, dataset.y_val, dataset.class_names)
    test = (training.evaluate(model, dataset.x_test, dataset.y_test, dataset.class_names)
            if dataset.y_test is not None else None)
    n_test = len(dataset.x_test) if dataset.x_test is not None else 0
    shown = test or val
    first = store.read_metrics(members[0].path) or {}
    metrics = {
        "kind": SUFFIX, "model": name,
        "architecture": f"ensemble: {describe(members, counts)}",
        "values": {"tta": False},  # each member's TTA is inside the graph
        "source": {"project": parent.parent.name, "trial": SUFFIX},
        "members": [{**k, "stage": m.stage, "params": m.params, "tta": m.tta}
                    for k, m in zip(members_key(members, counts), members, strict=True)],
        "selection": {"rounds": selection.rounds, "size": selection.size,
                      "val_accuracy": selection.val_accuracy, "val_loss": selection.val_loss},
        "params": sum(m.params for m in members),
        "epochs": None, "seconds_per_epoch": None,
        "predict_seconds": shown["predict_seconds"],
        "inference_ms_per_image": 1000 * shown["predict_seconds"] / max(
            len(dataset.x_test) if test else len(dataset.x_val), 1),
        "val_accuracy": val["accuracy"], "val_loss": val["loss"],
        "test_accuracy": test["accuracy"] if test else None,
        "test_loss": test["loss"] if test else None,
        "test_note": None if test else dataset.test_note or "no test set",
        "per_class": shown["per_class"], "per_class_split": "test" if test else "validation",
        "confusion_matrix": shown["confusion_matrix"],
        "val_confusion_matrix": val["confusion_matrix"], "classes": dataset.class_names,
        "n_train": first.get("n_train"), "n_val": len(dataset.y_val), "n_test": n_test,
        "data": dataset.fingerprint(), "seed": first.get("seed"),
        "versions": versions(), "started": started, "finished": runs.now(),
        "wall_seconds": time.perf_counter() - clock,
    }
    probabilities = {"val": val["probs"], **({"test": test["probs"]} if test else {})}
    return runs.write_run(parent, metrics, [], model, probabilities), metrics


# --------------------------------------------------------------------------- the stage


@dataclass
class Outcome:
    """What the stage did: its record for ``final.json``, the ensemble's row (None when the
    single model stands), and every candidate with its probabilities (the paired tests)."""

    record: dict[str, Any]
    row: dict[str, Any] | None
    members: list[Member]


def run_stage(root: Path, project: str, table: Sequence[dict[str, Any]], dataset,
              size: int, max_params: int | None, say: Callable[[str], None]) -> Outcome:
    """Select, save (or reuse) and describe the ensemble of ``table`` and its pool."""
    data = dataset.fingerprint()
    candidates = [load_member(name, stage, path, dataset.x_val,
                              dataset.x_test if dataset.y_test is not None else None)
                  for name, stage, path in pool_runs(root, project, table, data)]
    record: dict[str, Any] = {"size": size, "max_params": max_params,
                              "candidates": [{"name": m.name, "stage": m.stage,
                                              "params": m.params, "path": str(m.path)}
                                             for m in candidates]}
    selection = (greedy_select([m.val for m in candidates], dataset.y_val,
                               [m.params for m in candidates], size, max_params)
                 if len(candidates) > 1 and size > 1 else None)
    if selection is None or len(selection.counts) < 2:
        best = selection and candidates[next(iter(selection.counts))]
        why = ("one model only" if len(candidates) < 2 else "ensemble_size is 1" if size <= 1
               else "no candidate fits max_params" if selection is None
               else f"no second model improved on {best.name}'s validation accuracy "
                    f"{selection.val_accuracy:.4f}")
        record.update({"chosen": False, "reason": why, "best_single": best and best.name})
        say(f"No ensemble: {why}; the single model stands.")
        return Outcome(record, None, candidates)
    picked = sorted(selection.counts)
    members = [candidates[i] for i in picked]
    counts = [selection.counts[i] for i in picked]
    parent = store.final_dir(root, project) / f"{project}-{SUFFIX}"
    done = finished(parent, members_key(members, counts), data)
    if done is not None:
        path, metrics = done
        say(f"[bold]{parent.name}[/]: already saved with these members ({path}); not rebuilt")
    else:
        say(f"[bold]{parent.name}[/]: {describe(members, counts)} "
            f"({sum(m.params for m in members):,} params), validation "
            f"{selection.val_accuracy:.4f}; building and testing it")
        path, metrics = save(parent, members, counts, dataset, selection, parent.name)
    singles = [m for m in candidates
               if max_params is None or m.params <= max_params]
    best_single = max(singles, key=lambda m: _scores(m.val, dataset.y_val))
    record.update({"chosen": True, "members": metrics["members"],
                   "params": metrics["params"], "best_single": best_single.name,
                   "best_single_val_accuracy": _scores(best_single.val, dataset.y_val)[0],
                   "val_accuracy": metrics["val_accuracy"],
                   "test_accuracy": metrics["test_accuracy"],
                   "inference_ms_per_image": metrics["inference_ms_per_image"],
                   "path": str(path)})
    ensemble = Member(parent.name, SUFFIX, path, metrics["params"], False)
    saved = store.read_predictions(path) or {}
    ensemble.val, ensemble.test = saved.get("val"), saved.get("test")
    return Outcome(record, {"path": str(path), "metrics": metrics, "reused": done is not None},
                   [*candidates, ensemble])
