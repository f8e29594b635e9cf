"""Matplotlib figures: training curves, confusion matrices, accuracy-vs-cost comparisons."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def curves(history: Sequence[dict], path: Path, title: str = "") -> None:
    """Loss and accuracy, train vs validation, as in the report's figures."""
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, [r.get(metric) for r in history], marker="o", ms=3, label="train")
        ax.plot(epochs, [r.get(f"val_{metric}") for r in history], marker="o", ms=3,
                label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"model {metric}")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: Path,
              title: str = "") -> None:
    """Row-normalised confusion matrix (recall on the diagonal), with the counts written in."""
    counts = np.asarray(matrix, dtype=float)
    norm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 1.0 + 0.6 * len(class_names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(title or "confusion matrix (rows normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def check_format(path: Path, option: str) -> None:
    """The file name's suffix picks the image format; refuse one Matplotlib cannot write."""
    from fmnist_search.errors import UserError

    formats = sorted(plt.figure().canvas.get_supported_filetypes())
    plt.close("all")
    if path.suffix.lstrip(".").lower() not in formats:
        raise UserError(f"{option} {path}: the suffix must name an image format Matplotlib "
                        f"writes ({', '.join(formats)}), e.g. compare.png.")


def pareto_front(cost: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of points no other point beats on both (lower cost, higher accuracy)."""
    order = sorted(range(len(cost)), key=lambda i: (cost[i], -accuracy[i]))
    front, best = [], float("-inf")
    for i in order:
        if accuracy[i] > best:
            front.append(i)
            best = accuracy[i]
    return front


def compare(points: Sequence[dict], path: Path, title: str = "") -> None:
    """Validation accuracy vs parameters and vs seconds per epoch, Pareto fronts drawn.

    Finalized models (kind ``final``: trained with the final protocol on the whole split) are
    drawn apart, as diamonds, and left out of the screening trials' Pareto front."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, (key, label, log) in zip(axes, (("params", "parameters", True),
                                            ("seconds_per_epoch", "seconds per epoch", False)),
                                     strict=True):
        drawn = [p for p in points if p.get(key) and p.get("val_accuracy") is not None]
        finals = [p for p in drawn if p["kind"] == "final"]
        pts = [p for p in drawn if p["kind"] != "final"]
        trials = [p for p in pts if p["kind"] != "baseline"]
        bases = [p for p in pts if p["kind"] == "baseline"]
        for project in sorted({p["project"] for p in trials}):
            mine = [p for p in trials if p["project"] == project]
            ax.scatter([p[key] for p in mine], [p["val_accuracy"] for p in mine], s=22,
                       alpha=0.75, label=f"trials: {project}")
        ax.scatter([p[key] for p in bases], [p["val_accuracy"] for p in bases], marker="*",
                   s=160, c="crimson", edgecolors="black", label="report baselines", zorder=3)
        if finals:
            ax.scatter([p[key] for p in finals], [p["val_accuracy"] for p in finals],
                       marker="D", s=70, c="gold", edgecolors="black", zorder=4,
                       label="finalized (final protocol, whole split)")
        for p in bases:
            ax.annotate(p["trial"], (p[key], p["val_accuracy"]), textcoords="offset points",
                        xytext=(6, -10), fontsize=9)
        front = pareto_front([p[key] for p in pts], [p["val_accuracy"] for p in pts])
        ax.step([pts[i][key] for i in front], [pts[i]["val_accuracy"] for i in front],
                where="post", color="grey", linestyle="--", label="Pareto front")
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title or "accuracy vs cost")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- search analysis
# These return the figure (``matplotlib.figure.Figure``, no pyplot state) so a notebook shows
# it; the CLI saves it.


def importance_figure(table, n_trials: int, resamples: int, project: str = ""):
    """Horizontal bars of importance (mean share) with the spread across resamples."""
    from matplotlib.figure import Figure

    rows = table.iloc[::-1]
    fig = Figure(figsize=(8, 1.2 + 0.32 * max(len(rows), 1)))
    ax = fig.subplots()
    low = np.minimum(rows["importance"], rows["std"])  # a share is never below 0
    ax.barh(rows["hyperparameter"], rows["importance"], xerr=[low, rows["std"]],
            color="steelblue", ecolor="grey", capsize=3)
    ax.set_xlabel(f"importance (share of main-effect variance; mean ± sd over {resamples} "
                  "bootstrap forests)")
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    few = " - few: read as a hint" if n_trials < 20 else ""
    ax.set_title(f"{project}: hyperparameter importance for val accuracy ({n_trials} "
                 f"trials{few})")
    fig.tight_layout()
    return fig


BASELINE_COLOURS = ("crimson", "darkorange", "purple", "saddlebrown", "olive", "teal")


def _baseline_lines(ax, baselines) -> None:
    """Dotted horizontal lines, one colour per baseline, named in the legend."""
    for i, (_, base) in enumerate(baselines.iterrows()):
        ax.axhline(base["val_accuracy"], color=BASELINE_COLOURS[i % len(BASELINE_COLOURS)],
                   linestyle=":", linewidth=1.5,
                   label=f"baseline {base['model']} ({base['epochs']} ep)")


def history_figure(history, baselines, project: str = ""):
    """Each trial's objective and the best so far, against trial number and wall time, with
    the baselines trained on the same data as horizontal lines."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(13, 4.5))
    axes = fig.subplots(1, 2, sharey=True)
    x_time = history["elapsed_s"] / 60
    for ax, x, best, label in ((axes[0], history["number"], history["best_so_far"],
                                "trial number"),
                               (axes[1], x_time, history["best_by_time"],
                                "wall time since the first trial started (minutes)")):
        ax.scatter(x, history["val_accuracy"], s=18, alpha=0.6, label="trial")
        order = np.argsort(np.asarray(x, dtype=float), kind="stable")
        ax.step(np.asarray(x, dtype=float)[order], np.asarray(best, dtype=float)[order],
                where="post", color="black", label="best so far")
        _baseline_lines(ax, baselines)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("validation accuracy")
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(f"{project}: search history" + (" (dotted: baselines on the same data)"
                                                 if len(baselines) else ""))
    fig.tight_layout()
    return fig


def slices_figure(slices, log: set[str], project: str = "", baselines=None):
    """The objective against each of the named hyperparameters (one panel each); choices and
    a conditional one's ``absent`` are categories along the axis, jittered."""
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(slices["hyperparameter"]))
    cols = min(len(names), 4)
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(3.6 * cols + 0.6, 3.2 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    rng = np.random.default_rng(0)
    for ax, name in zip(axes, names, strict=False):
        part = slices[slices["hyperparameter"] == name]
        values = part["value"].tolist()
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric:
            ax.scatter(values, part["val_accuracy"], s=18, alpha=0.7)
            if name in log:
                ax.set_xscale("log")
        else:
            def order(v):  # numbers in order, then the choices, then "absent"
                number = isinstance(v, (int, float)) and not isinstance(v, bool)
                return (0, float(v), "") if number else (1 + (v == "absent"), 0.0, str(v))

            levels = [str(v) for v in sorted(set(values), key=order)]
            where = {level: i for i, level in enumerate(levels)}
            x = [where[str(v)] + rng.uniform(-0.15, 0.15) for v in values]
            ax.scatter(x, part["val_accuracy"], s=18, alpha=0.7)
            ax.set_xticks(range(len(levels)), levels, rotation=30, ha="right")
        if baselines is not None:
            _baseline_lines(ax, baselines)
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].set_ylabel("validation accuracy")
    if baselines is not None and len(baselines):
        axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{project}: validation accuracy against the most important hyperparameters")
    fig.tight_layout()
    return fig
