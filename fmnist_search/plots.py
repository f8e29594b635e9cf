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
