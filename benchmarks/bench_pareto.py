"""The front of accuracy against size: MO-TPE against a single-objective search and uniform
draws, at the same trial budget, on the cnn space, with the report's models as the reference.

Arms, each the command a user types (``fmnist-search run --space cnn --search P ...``), in
one results directory, project ``ARM-sN``; the seed sets the data split and the weights, so
the arms of one seed see the same images:

- ``motpe``: the preset as it is (``benchmarks/pareto_cnn.toml``: MO-TPE on Hyperband's
  brackets, objectives val_accuracy:max and params:min);
- ``bohb``: ``--tuner bohb --objectives val_accuracy:max``, the single-objective search of the
  same space with the same density model and brackets (what the tool did before);
- ``random``: the same brackets and promotions with every new configuration drawn uniformly
  (a copy of the preset with ``[bohb] random_fraction = 1``): random search under the same
  screening, so that all three spend the same screening epochs.

The reference: the report's CNN-family models (model1-4 and model6; model5 is Keras' ResNet50,
23.6M parameters, outside the space and far beyond the reference point) trained on the same
split with their own protocol for the preset's largest screening budget (9 epochs):
``fmnist-search baseline NAME --subset S --seed N --epochs E``.

Hypervolume: of the points (1 - val_accuracy, log10 params) of every completed screening trial
(Hyperband's shorter trainings of a configuration included: they never dominate its longer
one), minimised, up to the reference point val_accuracy 0.80, 1,000,000 parameters (the
preset's max_params). Reported raw and in units of the box from that point to (1.00, 10,000
parameters) (``NORMAL``); a run's curve is its hypervolume after each finished trial. Into
``benchmarks/results/pareto.json`` and ``pareto.png`` (left: hypervolume against trials
finished, a colour an arm, a line style a seed; right: each run's front of the first seed, the
report's models as named stars), written again after every run.

Resumable: a run or baseline that already has its entry (exit status 0) is skipped; an
interrupted one runs again with the same command, which resumes its project. Usage (estimated
3-3.5 hours on this 2-core machine for two seeds, from benchmarks/results/tuners.json's 18-38
min for 23 trials of the same brackets; a quiet machine):

    python benchmarks/bench_pareto.py --seeds 1 2

A smoke check (a few minutes): ``--results-dir /tmp/bp --out /tmp/pareto.json --subset 0.02
--trials 3 --baselines model1 --baseline-epochs 1``.

In parts (as ``benchmarks/gpu_pareto.sh`` runs it, one process per (arm, seed) at once): each
part its own ``--out`` (``--arms`` or ``--baselines`` given empty runs only the other kind),
then ``--aggregate PART.json ... --out pareto.json`` runs nothing and writes the same JSON and
figure as one whole run would, from the parts' runs and references (all of one settings).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import common
import numpy as np

from fmnist_search import objectives, pareto, results, store

ARMS = ("motpe", "bohb", "random")
BASELINES = ("model1", "model2", "model3", "model4", "model6")
REFERENCE = {"val_accuracy": 0.80, "params": 1_000_000}
LOWEST = {"val_accuracy": 1.00, "params": 10_000}  # the far corner of NORMAL's box
STOPPED = (130, 143, -2, -15)  # stopped by Ctrl-C or SIGTERM: stop here, not go on


def point(row: dict[str, Any]) -> tuple[float, float]:
    """(1 - accuracy, log10 params): the minimised plane the hypervolume is measured in."""
    return 1.0 - float(row["val_accuracy"]), float(np.log10(row["params"]))


REF = point(REFERENCE)
NORMAL = (REF[0] - point(LOWEST)[0]) * (REF[1] - point(LOWEST)[1])


def hypervolume(rows: list[dict[str, Any]]) -> float:
    scored = [r for r in rows if r.get("val_accuracy") is not None and r.get("params")]
    return pareto.hypervolume(np.array([point(r) for r in scored]).reshape(-1, 2), REF)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="cnn")
    parser.add_argument("--search", default="benchmarks/pareto_cnn.toml",
                        help="the preset every arm runs under (a path from the repository root)")
    parser.add_argument("--arms", nargs="*", default=list(ARMS), choices=ARMS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--trials", type=int, help="every arm's --trials (default the preset's)")
    parser.add_argument("--subset", type=float,
                        help="the share of the training split (default the preset's); the "
                        "baselines train on the same")
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES),
                        help="the report models of the reference front")
    parser.add_argument("--baseline-epochs", type=int,
                        help="their epochs (default the preset's epochs: its longest trial)")
    parser.add_argument("--results-dir", type=Path, default=Path("tuner_results/bench-pareto"),
                        help="where the runs write (kept: a rerun resumes)")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "pareto.json")
    parser.add_argument("--aggregate", nargs="+", type=Path, metavar="JSON",
                        help="run nothing: gather these outputs of this script (parts of one "
                        "benchmark, the same settings) into --out, its summary and figure")
    parser.add_argument("extra", nargs="*", help="after --: more options for `run`")
    args = parser.parse_args()
    if args.aggregate:
        return _aggregate(parser, args.aggregate, args.out)
    from fmnist_search import presets

    preset = presets.load(str(common.REPO / args.search))
    subset = args.subset or preset.subset
    epochs = args.baseline_epochs or preset.epochs
    settings = {"space": args.space, "search": args.search, "trials": args.trials,
                "subset": subset, "baseline_epochs": epochs, "extra": args.extra,
                "reference_point": REFERENCE, "normal_box_corner": LOWEST}
    done = _load(args.out)
    if done.get("settings", settings) != settings:
        parser.error(f"{args.out} holds runs with other settings ({done['settings']}): "
                     "give another --out")
    runs: dict[str, Any] = done.get("runs", {})
    references: dict[str, Any] = done.get("references", {})
    root = common.REPO / args.results_dir  # as the commands, run from the repository, see it
    for seed in args.seeds:
        ref = references.setdefault(str(seed), {})
        for name in args.baselines:
            if ref.get(name, {}).get("exit_status") == 0:
                continue
            ref[name] = _baseline(args, root, name, seed, subset, epochs)
            _save(args.out, settings, runs, references)
            if ref[name]["exit_status"] in STOPPED:
                return ref[name]["exit_status"]
        for arm in args.arms:
            project = f"{arm}-s{seed}"
            if runs.get(project, {}).get("exit_status") == 0:
                continue
            runs[project] = _run(args, root, arm, seed, subset)
            _save(args.out, settings, runs, references)
            if runs[project]["exit_status"] in STOPPED:
                print(f"{project} was stopped: the same command resumes it")
                return runs[project]["exit_status"]
    return 0


def _aggregate(parser: argparse.ArgumentParser, parts: list[Path], out: Path) -> int:
    """The parts' runs and references in one output, as if one process had run them all; the
    settings are the parts' own (they must agree with each other and with ``out``'s)."""
    loaded = [(path, _load(path)) for path in parts]
    missing = [str(path) for path, part in loaded if not part]
    if missing:
        parser.error(f"no output of this script at {', '.join(missing)}")
    settings = loaded[0][1]["settings"]
    done = _load(out)
    for path, part in [*loaded, *([(out, done)] if done else [])]:
        if part["settings"] != settings:
            parser.error(f"{path} holds runs with other settings ({part['settings']}) than "
                         f"{loaded[0][0]} ({settings})")
    runs: dict[str, Any] = done.get("runs", {})
    references: dict[str, Any] = done.get("references", {})
    for _, part in loaded:
        runs.update(part.get("runs", {}))
        for seed, ref in part.get("references", {}).items():
            references.setdefault(seed, {}).update(ref)
    _save(out, settings, runs, references)
    return 0


def _command(args, arm: str, seed: int, subset: float, project: str) -> list[str]:
    search = args.search
    if arm == "random":
        search = str(_uniform_preset(args.results_dir, args.search))
    arm_options = {"bohb": ["--tuner", "bohb", "--objectives", "val_accuracy:max"]}.get(arm, [])
    trials = ["--trials", str(args.trials)] if args.trials else []
    return [sys.executable, "-m", "fmnist_search", "run", "--space", args.space, "--search",
            search, *arm_options, *trials, "--subset", str(subset), "--seed", str(seed),
            "--project", project, "--results-dir", str(args.results_dir), "--no-finalize",
            *args.extra]


def _uniform_preset(results_dir: Path, search: str) -> Path:
    """The preset with every new configuration drawn uniformly: its [bohb] random_fraction 1
    (kept beside the runs, so that a resume reads the same file)."""
    text = (common.REPO / search).read_text()
    if "\n[bohb]\n" in text:
        text = text.replace("\n[bohb]\n", "\n[bohb]\nrandom_fraction = 1.0\n", 1)
    else:
        text += "\n[bohb]\nrandom_fraction = 1.0\n"
    path = common.REPO / results_dir / "uniform.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def _run(args, root: Path, arm: str, seed: int, subset: float) -> dict[str, Any]:
    project = f"{arm}-s{seed}"
    cmd = _command(args, arm, seed, subset, project)
    print(" ".join(cmd[2:]), flush=True)
    resumed = (root / project).is_dir()
    start = time.time()
    proc = subprocess.run(cmd, cwd=common.REPO)
    wall = time.time() - start
    rows = results.trial_rows(root, project) if (root / project).is_dir() else []
    done = sorted((r for r in rows if r["status"] == "COMPLETED"), key=_finished)
    curve = [round(hypervolume(done[: k + 1]), 5) for k in range(len(done))]
    front = pareto.with_ranks(done, objectives.ACCURACY_AND_SIZE)
    return {
        "arm": arm, "seed": seed, "command": " ".join(cmd[2:]), "exit_status": proc.returncode,
        "wall_seconds": wall, "resumed": resumed,
        "trials": dict(Counter(r["status"] for r in rows)),
        "screening_epochs": sum(int(r.get("epochs") or 0) for r in rows),
        "hypervolume": curve[-1] if curve else 0.0,
        "hypervolume_normalised": round(curve[-1] / NORMAL, 5) if curve else 0.0,
        "hypervolume_curve": curve,
        "front": [{k: r.get(k) for k in ("trial", "val_accuracy", "params", "epochs",
                                         "architecture")}
                  for r in front if r.get("pareto_rank") == 0],
        "best_val_accuracy": max((r["val_accuracy"] for r in done), default=None),
    }


def _finished(row: dict[str, Any]) -> float:
    record = store.read_trial_record(Path(row["path"])) or {}
    return float(record.get("finished") or 0.0)


def _baseline(args, root: Path, name: str, seed: int, subset: float, epochs: int
              ) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "fmnist_search", "baseline", name, "--subset", str(subset),
           "--seed", str(seed), "--epochs", str(epochs), "--results-dir", str(args.results_dir)]
    print(" ".join(cmd[2:]), flush=True)
    start = time.time()
    proc = subprocess.run(cmd, cwd=common.REPO)
    wall = time.time() - start
    runs = store.run_dirs(root, store.BASELINES, name)
    metrics = store.read_metrics(runs[-1]) if runs and proc.returncode == 0 else None
    return {"exit_status": proc.returncode, "wall_seconds": wall, "command": " ".join(cmd[2:]),
            **({k: metrics.get(k) for k in ("val_accuracy", "params", "epochs",
                                            "seconds_per_epoch")} if metrics else {})}


def _summary(runs: dict[str, Any], references: dict[str, Any]) -> dict[str, Any]:
    """Per seed: the reference's hypervolume and each arm's; per arm: its hypervolumes, and
    whether MO-TPE's was at or above the single-objective search's at the same budget."""
    out: dict[str, Any] = {"reference_point": REFERENCE, "normal": NORMAL, "seeds": {}}
    for seed, ref in sorted(references.items()):
        models = [dict(m, name=n) for n, m in ref.items() if m.get("val_accuracy") is not None]
        arms = {r["arm"]: r["hypervolume"] for r in runs.values() if str(r["seed"]) == seed
                and r["exit_status"] == 0}
        entry = {"report_models": round(hypervolume(models), 5), "arms": arms}
        if "motpe" in arms and "bohb" in arms:
            entry["motpe_at_or_above_bohb"] = arms["motpe"] >= arms["bohb"]
        out["seeds"][seed] = entry
    for arm in ARMS:
        mine = [r for r in runs.values() if r["arm"] == arm and r["exit_status"] == 0]
        if mine:
            out[arm] = {"hypervolume": [r["hypervolume"] for r in mine],
                        "hypervolume_normalised": [r["hypervolume_normalised"] for r in mine],
                        "front_size": [len(r["front"]) for r in mine],
                        "screening_epochs": [r["screening_epochs"] for r in mine],
                        "wall_minutes": [round(r["wall_seconds"] / 60, 1) for r in mine]}
    return out


def plot(runs: dict[str, Any], references: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(ARMS, ("tab:orange", "tab:blue", "tab:grey"), strict=True))
    styles = ("-", "--", ":", "-.")
    seeds = sorted({r["seed"] for r in runs.values()})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for r in runs.values():
        curve = r.get("hypervolume_curve") or []
        style = styles[seeds.index(r["seed"]) % len(styles)]
        axes[0].plot(range(1, len(curve) + 1), [c / NORMAL for c in curve],
                     color=colours[r["arm"]], ls=style, label=f"{r['arm']} seed {r['seed']}")
    for seed, ref in sorted(references.items()):
        models = [m for m in ref.values() if m.get("val_accuracy") is not None]
        if models:
            axes[0].axhline(hypervolume(models) / NORMAL, color="crimson",
                            ls=styles[seeds.index(int(seed)) % len(styles)] if int(seed)
                            in seeds else "-", lw=1, label=f"report models, seed {seed}")
    axes[0].set_xlabel("completed screening trials")
    axes[0].set_ylabel("hypervolume (share of the box to 1.00, 10K params)")
    first = seeds[0] if seeds else None
    for r in runs.values():
        if r["seed"] != first or not r["front"]:
            continue
        front = sorted(r["front"], key=lambda p: p["params"])
        axes[1].step([p["params"] for p in front], [p["val_accuracy"] for p in front],
                     where="post", marker="o", color=colours[r["arm"]], label=r["arm"])
    ref = references.get(str(first), {})
    named = [(n, m) for n, m in ref.items() if m.get("val_accuracy") is not None]
    if named:
        axes[1].scatter([m["params"] for _, m in named], [m["val_accuracy"] for _, m in named],
                        marker="*", s=160, c="crimson", edgecolors="black", zorder=3,
                        label="report models")
        for name, m in named:
            axes[1].annotate(name, (m["params"], m["val_accuracy"]), xytext=(6, -10),
                             textcoords="offset points", fontsize=8)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("parameters")
    axes[1].set_ylabel("screening validation accuracy")
    axes[1].set_title(f"fronts, seed {first}", fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _save(path: Path, settings: dict[str, Any], runs: dict[str, Any],
          references: dict[str, Any]) -> None:
    payload = {"settings": settings, "runs": runs, "references": references,
               "summary": _summary(runs, references)}
    if path.parent == common.RESULTS:
        common.write(path.stem, payload)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".tmp")  # replaced whole: a kill leaves the old one
        part.write_text(json.dumps({"benchmark": "pareto", "machine": common.machine(),
                                    **payload}, indent=2, default=str))
        part.replace(path)
        print(f"wrote {path}")
    plot(runs, references, path.with_suffix(".png"))


if __name__ == "__main__":
    sys.exit(main())
