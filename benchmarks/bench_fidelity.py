"""How well does screening predict the final result? (issue: the search must beat its start.)

Takes configurations of the ``resnet`` space (the default point, the last proof run's winner
and random draws under the ``best`` preset's parameter limit) and trains each under several
screening protocols and under the final protocol, on the same data split, then reports for
each screening score the Spearman rank correlation with the final validation accuracy across
configurations, and the seed-to-seed standard deviation of a screening score.

Screening protocols (every one on the ``best`` preset's half of the training split):
- ``hyperband_now@1``, ``@3``: the screening of the ``best`` preset before 2026-11-28 (the
  name is from then), the configuration's own optimizer and exponential decay, no
  augmentation, judged after 1 and 3 epochs of one training (a Hyperband rung continues the
  previous one).
- ``complete@1``, ``@3``: each rung a complete short training: a cosine to zero over its own 1
  or 3 epochs, with the final protocol's shift+flip augmentation and label smoothing 0.1.
- ``...#seed2``: the 1-epoch protocols again under a second seed (the noise of one score).
The preset's screening now is ``complete`` (its ``[fixed]``). The final protocol: the ``best``
preset's ``[final]`` values (cosine to zero with one warm-up epoch, shift+flip, label smoothing,
flip TTA; its random erasing left out, so rows measured before it was added stay comparable), ``--final-epochs`` epochs; its score is the
validation accuracy with TTA. A full-length final training (40 epochs on the whole split) is
~80 times a screening epoch, too long for ten configurations on two cores: the final epochs
here are a proxy, named in the JSON.

Resumable: the JSON is rewritten after every configuration and a rerun skips those done.

    python benchmarks/bench_fidelity.py --configs 10 --final-epochs 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import common

from fmnist_search import builder, presets, space, training
from fmnist_search.callbacks import EpochCostGuard, OverLimit
from fmnist_search.dataset import DataSettings, prepare
from fmnist_search.reproducibility import seed_everything

SCREENING_SUBSET = 0.5
SEEDS = (11, 12)
# The screening before 2026-11-28 (what ``hyperband_now`` measures, whatever the preset says now):
# the configuration's own exponential decay, no augmentation, no label smoothing.
OLD_SCREENING = {"schedule": "exponential", "aug_flip": False, "aug_translate": 0,
                 "label_smoothing": 0.0}
# The preset's values that every protocol here shares (the rest are the protocols' own).
SHARED_FIXED = ("bn_momentum", "batch_size")
COMPLETE = {"schedule": "cosine", "warmup_epochs": 0, "aug_flip": True, "aug_translate": 2,
            "label_smoothing": 0.1}


def sample_configs(n: int, seed: int, max_params: int, fixed: dict[str, Any]
                   ) -> list[tuple[str, dict[str, Any]]]:
    """The default point, the last proof run's winner, then random draws of the space (each
    active hyperparameter from Keras Tuner's own ``random_sample``) under ``max_params``."""
    import keras_tuner as kt

    sp = space.load_named("resnet")
    out = [("default", {**sp.default_values(), **fixed})]
    winner = json.loads((common.RESULTS / "best.json").read_text())["best_screening"]
    out.append(("winner-best-0016", {**winner["values"], **fixed}))
    draw = seed
    while len(out) < n:
        hp = kt.HyperParameters()
        sp.register(hp)
        for obj in hp.space:
            if hp.is_active(obj):
                draw += 1
                hp.values[obj.name] = obj.random_sample(draw)
        values = {**{k: v for k, v in hp.values.items() if hp.is_active(k)}, **fixed}
        try:
            model = builder.build_model(values, 10, compile=False)
        except Exception as exc:  # a draw the builder refuses (e.g. too many poolings)
            print(f"  skipped a draw: {exc}")
            continue
        if sum(training.count_params(model)) <= max_params:
            out.append((f"random-{len(out) - 1}", values))
    return out


def train(values: dict[str, Any], data, epochs: int, seed: int, tta: bool = False,
          guard: list | None = None) -> tuple[list[float], float, float]:
    """Validation accuracy after each epoch, the last one with TTA when asked, and seconds."""
    seed_everything(seed)
    model = builder.build_model({**values, "epochs": epochs}, data.num_classes)
    start = time.perf_counter()
    result = training.fit(model, {**values, "epochs": epochs}, (data.x_train, data.y_train),
                          (data.x_val, data.y_val), epochs, patience=0,
                          extra_callbacks=guard or [])
    curve = [float(r["val_accuracy"]) for r in result.history]
    last = (training.evaluate(model, data.x_val, data.y_val, data.class_names, tta=True)
            ["accuracy"] if tta else curve[-1])
    return curve, last, time.perf_counter() - start


def measure(values: dict[str, Any], data, final: dict[str, Any], final_epochs: int,
            max_seconds: float) -> dict[str, Any]:
    """Every score of one configuration; ``{"rejected": why}`` for one the ``best`` preset's
    cost limit would reject (the search never screens it, so it has no place here)."""
    out: dict[str, Any] = {"scores": {}, "seconds": {}}
    s = out["scores"]
    now = {**values, **OLD_SCREENING}
    try:
        curve, _, out["seconds"]["hyperband_now"] = train(now, data, 3, SEEDS[0],
                                                          guard=[EpochCostGuard(max_seconds)])
    except OverLimit as exc:
        return {"rejected": str(exc)}
    s["hyperband_now@1"], s["hyperband_now@3"] = curve[0], curve[2]
    s["hyperband_now@1#seed2"] = train(now, data, 1, SEEDS[1])[0][0]
    for r in (1, 3):
        s[f"complete@{r}"] = train({**values, **COMPLETE}, data, r, SEEDS[0])[1]
    s["complete@1#seed2"] = train({**values, **COMPLETE}, data, 1, SEEDS[1])[1]
    curve, s["final"], out["seconds"]["final"] = train({**values, **final}, data, final_epochs,
                                                      SEEDS[0], tta=bool(final.get("tta")))
    out["final_curve"] = curve
    return out


def spearman(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    from scipy.stats import spearmanr

    finals = [r["scores"]["final"] for r in rows]
    keys = [k for k in rows[0]["scores"] if k != "final" and "#" not in k] if rows else []
    if len(rows) < 3:
        return {k: None for k in keys}
    return {k: float(spearmanr([r["scores"][k] for r in rows], finals).statistic) for k in keys}


def seed_sd(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """The standard deviation of one score between two seeds: sd(a - b) / sqrt(2)."""
    out: dict[str, float | None] = {}
    for key in ("hyperband_now@1", "complete@1"):
        diffs = [r["scores"][key] - r["scores"][f"{key}#seed2"] for r in rows]
        out[key] = (statistics.pstdev(diffs + [-d for d in diffs]) / 2 ** 0.5
                    if diffs else None)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", type=int, default=10)
    parser.add_argument("--final-epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=2026, help="the random draws' seed")
    parser.add_argument("--subset", type=float, default=SCREENING_SUBSET,
                        help="share of the training split (a smoke check: 0.02)")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "fidelity.json")
    args = parser.parse_args()
    preset = presets.load("best")
    import keras  # this script's whole process trains in the preset's precision

    keras.mixed_precision.set_global_policy(training.choose_policy(preset.precision))
    data = prepare(DataSettings(subset=args.subset))
    # Spare draws stand in for those the cost limit rejects (scaled to this subset's size).
    fixed = {k: preset.fixed[k] for k in SHARED_FIXED}
    configs = sample_configs(2 * args.configs + 6, args.seed, preset.max_params, fixed)
    # The final protocol without random erasing: the rows measured before the preset gained it
    # stay comparable (erasing changes no screening; see docs/results.md for what it did).
    final = {k: v for k, v in preset.final.items() if not k.startswith("aug_erase")}
    max_seconds = preset.max_seconds_per_epoch * args.subset / preset.subset
    done = {}
    if args.out.is_file():
        old = json.loads(args.out.read_text())
        if old.get("final_epochs") == args.final_epochs:
            done = {r["name"]: r for r in old.get("rows", [])}
    rows: list[dict[str, Any]] = []
    start = time.time()
    for i, (name, values) in enumerate(configs, 1):
        if sum("scores" in r for r in rows) >= args.configs:
            break
        if name in done and done[name]["values"] == json.loads(json.dumps(values)):
            rows.append(done[name])
            continue
        arch = builder.short_name(values)
        print(f"[{i}/{len(configs)}] {name}: {arch} ({time.time() - start:.0f} s so far)",
              flush=True)
        model = builder.build_model(values, 10, compile=False)
        row = {"name": name, "values": values, "architecture": arch,
               "params": sum(training.count_params(model)),
               **measure(values, data, final, args.final_epochs, max_seconds)}
        print(f"    {json.dumps(row.get('scores', row.get('rejected')))}", flush=True)
        rows.append(row)
        scored = [r for r in rows if "scores" in r]
        payload = {"benchmark": "fidelity", "machine": common.machine(),
                   "screening_subset": args.subset, "final_epochs": args.final_epochs,
                   "final_protocol": final, "seeds": SEEDS, "max_seconds_per_epoch": max_seconds,
                   "rows": rows, "spearman_with_final": spearman(scored),
                   "seed_sd": seed_sd(scored), "complete": len(scored) >= args.configs}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=str))
        tmp.replace(args.out)
    scored = [r for r in rows if "scores" in r]
    print(json.dumps({"spearman_with_final": spearman(scored), "seed_sd": seed_sd(scored)},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
