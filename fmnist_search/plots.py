"""Matplotlib figures: training curves, confusion matrices, accuracy-vs-cost comparisons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fmnist_search.report import value_order  # noqa: E402


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


def _budget(point: dict) -> str:
    epochs = point.get("epochs")
    return f"{epochs} epoch{'s' if epochs != 1 else ''}" if epochs else "epochs unknown"


def compare(points: Sequence[dict], path, title: str = "", format: str | None = None,
            fronts: Mapping[str, Sequence[str]] | None = None) -> None:
    """``compare_figure`` saved to ``path`` (a file name, or a binary stream with a
    ``format``)."""
    compare_figure(points, title, fronts).savefig(path, dpi=110, format=format)


PANELS = {"params": ("parameters", True), "seconds_per_epoch": ("seconds per epoch", False),
          "ms_per_image": ("inference ms per image (batch 512)", True),
          "model_bytes": ("saved model bytes", True)}
FRONT_COLOURS = ("darkorange", "teal", "purple", "olive")


def compare_figure(points: Sequence[dict], title: str = "",
                   fronts: Mapping[str, Sequence[str]] | None = None):
    """Validation accuracy vs parameters and vs seconds per epoch, with a Pareto front per
    budget (epochs trained: a 1-epoch trial and a 6-epoch one are not on the same scale).

    Finalized models (kind ``final``: trained with the final protocol on the whole split) are
    drawn apart, as diamonds, and left out of the screening trials' Pareto fronts. Baselines
    are named beside their star, moved apart (with a leader line) where names would collide.

    ``fronts``: project -> the objectives it searched (several): its front (the trials whose
    ``pareto_rank`` is 0, ``pareto.mark``) drawn in colour on every panel, as a line where the
    panel's two axes are its two objectives, as rings elsewhere (a front of three objectives
    seen from one side); a cost it searched that is neither parameters nor seconds (inference
    milliseconds, saved bytes) gets a panel of its own."""
    from matplotlib.figure import Figure

    fronts = dict(fronts or {})
    keys = ["params", "seconds_per_epoch"]
    keys += [k for k in ("ms_per_image", "model_bytes")
             if any(o.startswith(f"{k}:") for objs in fronts.values() for o in objs)]
    fig = Figure(figsize=(6.5 * len(keys), 5.4), layout="constrained")
    axes = fig.subplots(1, len(keys))
    budgets = sorted({_budget(p) for p in points if p["kind"] != "final"},
                     key=lambda b: (len(b), b))
    for ax, key in zip(axes, keys, strict=True):
        label, log = PANELS[key]
        drawn = [p for p in points if p.get(key) and p.get("val_accuracy") is not None]
        finals = [p for p in drawn if p["kind"] == "final"]
        pts = [p for p in drawn if p["kind"] != "final"]
        trials = [p for p in pts if p["kind"] != "baseline"]
        bases = [p for p in pts if p["kind"] == "baseline"]
        for project in sorted({p["project"] for p in trials}):
            mine = [p for p in trials if p["project"] == project]
            ax.scatter([p[key] for p in mine], [p["val_accuracy"] for p in mine], s=22,
                       alpha=0.75, label=f"trials: {project}")
        if bases:
            ax.scatter([p[key] for p in bases], [p["val_accuracy"] for p in bases], marker="*",
                       s=160, c="crimson", edgecolors="black", label="report baselines",
                       zorder=3)
        if finals:
            ax.scatter([p[key] for p in finals], [p["val_accuracy"] for p in finals],
                       marker="D", s=70, c="gold", edgecolors="black", zorder=4,
                       label="finalized (final protocol, whole split)")
        for i, budget in enumerate(budgets):
            same = [p for p in pts if _budget(p) == budget]
            front = pareto_front([p[key] for p in same], [p["val_accuracy"] for p in same])
            ax.step([same[j][key] for j in front], [same[j]["val_accuracy"] for j in front],
                    where="post", color="grey", linestyle=FRONT_STYLES[i % len(FRONT_STYLES)],
                    marker="o", markersize=9, markerfacecolor="none",  # a 1-point front shows
                    label=f"Pareto front ({budget})")
        for i, (project, objs) in enumerate(sorted(fronts.items())):
            _draw_front(ax, key, project, objs, trials, FRONT_COLOURS[i % len(FRONT_COLOURS)])
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
    _legend_below(fig, axes[0])
    fig.suptitle(title or "accuracy vs cost")
    for ax, key in zip(axes, keys, strict=True):
        bases = [p for p in points if p["kind"] == "baseline" and p.get(key)
                 and p.get("val_accuracy") is not None]
        place_labels(ax, [(p[key], p["val_accuracy"], str(p["trial"])) for p in bases])
    return fig


def _draw_front(ax, key: str, project: str, objs: Sequence[str], trials: Sequence[dict],
                colour: str) -> None:
    """One project's searched front on one panel (``compare_figure``)."""
    members = sorted((p for p in trials if p["project"] == project
                      and p.get("pareto_rank") == 0 and p.get(key)), key=lambda p: p[key])
    if not members:
        return
    names = [o.split(":")[0] for o in objs]
    x, y = [p[key] for p in members], [p["val_accuracy"] for p in members]
    label = f"Pareto front: {project} ({', '.join(objs)})"
    if sorted(names) == sorted(["val_accuracy", key]):
        ax.step(x, y, where="post", color=colour, lw=2, marker="o", markersize=10,
                markerfacecolor="none", markeredgewidth=2, zorder=5, label=label)
    else:
        ax.scatter(x, y, s=110, facecolors="none", edgecolors=colour, linewidths=2, zorder=5,
                   label=label)


FRONT_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1)))


def _legend_below(fig, ax) -> None:
    """One legend for the figure, below the axes: it never hides a point, and it lists only
    what was drawn (an empty figure gets none)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4),
                   fontsize=8, frameon=False)


# --------------------------------------------------------------------------- labels


def place_labels(ax, points: Sequence[tuple[float, float, str]], fontsize: float = 9) -> None:
    """Name points so that no two names overlap: each name goes to the first free spot on a
    ring of growing offsets around its point, joined to it by a leader line when it is not
    next to it. Call it last, on a laid-out figure: positions are measured in pixels, so the
    layout engine is switched off afterwards (a later re-layout would move the points)."""
    fig = ax.figure
    renderer = _draw(fig)
    fig.set_layout_engine("none")
    taken = [box for _, box in _text_boxes(fig, renderer)] + _marker_boxes(ax)
    inside = fig.bbox
    for x, y, text in sorted(points, key=lambda p: -p[1]):
        for dx, dy in _offsets():
            near = abs(dx) <= 9 and dy == 0  # beside its point; anywhere else a line
            note = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy),
                               fontsize=fontsize, ha="left" if dx >= 0 else "right",
                               va="center", annotation_clip=False,
                               arrowprops=None if near else dict(arrowstyle="-",
                                                                 color="dimgrey", lw=0.8,
                                                                 shrinkA=1, shrinkB=5))
            box = _text_box(note, renderer)
            if (all(not box.overlaps(other) for other in taken)
                    and inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)):
                taken.append(box)
                break
            note.remove()
        else:  # nowhere free (hundreds of names): the last try stays, overlapping
            note = ax.annotate(text, (x, y), textcoords="offset points", xytext=(9, 0),
                               fontsize=fontsize, va="center")
            taken.append(_text_box(note, renderer))


def _offsets() -> list[tuple[int, int]]:
    """Candidate offsets in points: beside the point (right, left), then rings far enough out
    that the leader line back to the point is plainly visible."""
    spots = [(9, 0), (-9, 0)]
    for ring in range(10):
        r = 24 + 14 * ring
        spots += [(10, r), (10, -r), (-10, r), (-10, -r), (r, 0), (-r, 0),
                  (r, r), (r, -r), (-r, r), (-r, -r)]
    return spots


def _marker_boxes(ax) -> list:
    """A box around every point scattered on ``ax``, so that no name covers a point."""
    from matplotlib.transforms import Bbox

    boxes = []
    scale = ax.figure.dpi / 72
    for collection in ax.collections:
        offsets = collection.get_offsets()
        if not len(offsets):
            continue
        centres = collection.get_offset_transform().transform(offsets)
        sizes = collection.get_sizes()
        for i, (x, y) in enumerate(centres):
            r = np.sqrt(sizes[i % len(sizes)] if len(sizes) else 36) / 2 * scale
            boxes.append(Bbox([[x - r, y - r], [x + r, y + r]]))
    return boxes


def _draw(fig):
    """Draw the figure (running its layout) and return the renderer that measures texts; a
    ``Figure`` made without pyplot gets an Agg canvas first."""
    if not hasattr(fig.canvas, "get_renderer"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _text_boxes(fig, renderer) -> list[tuple[str, Any]]:
    """(text, window extent) of every text drawn: titles, axis labels, legend entries, notes,
    and the tick labels inside their axis's span (Matplotlib keeps spare tick objects
    outside it that are not drawn)."""
    from matplotlib.text import Text

    ticks, boxes = set(), []
    for ax in fig.axes:
        for axis, low, high in ((ax.xaxis, ax.bbox.x0, ax.bbox.x1),
                                (ax.yaxis, ax.bbox.y0, ax.bbox.y1)):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                for label in (tick.label1, tick.label2):
                    ticks.add(id(label))
                    if not (ax.get_visible() and label.get_visible() and label.get_text()):
                        continue
                    box = label.get_window_extent(renderer)
                    middle = (box.x0 + box.x1) / 2 if axis is ax.xaxis else (box.y0 + box.y1) / 2
                    if low - 1 <= middle <= high + 1:
                        boxes.append((label.get_text(), box))
    for text in fig.findobj(Text):
        if id(text) in ticks or not text.get_visible() or not text.get_text().strip():
            continue
        if text.axes is not None and not text.axes.get_visible():
            continue
        boxes.append((text.get_text(), _text_box(text, renderer)))
    return boxes


def _text_box(text, renderer):
    """A text's own box; an annotation's without its leader line (which may cross others)."""
    from matplotlib.text import Annotation, Text

    if isinstance(text, Annotation):
        text.update_positions(renderer)
    return Text.get_window_extent(text, renderer)


def overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of texts in a figure whose boxes overlap once drawn (none in a readable one)."""
    boxes = _text_boxes(fig, _draw(fig))
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:]
            if box_a.overlaps(box_b)]


# --------------------------------------------------------------------------- search analysis
# These return the figure (``matplotlib.figure.Figure``, no pyplot state) so a notebook shows
# it; the CLI saves it.

SHOWN = 0.01  # importance rows below this share are summed into one "others" row


def importance_figure(table, n_trials: int, resamples: int, project: str = ""):
    """Horizontal bars of importance (mean share of the objective's variance) with the spread
    across resamples; the hyperparameters below ``SHOWN`` are one "others" row."""
    from matplotlib.figure import Figure

    ranked = table.dropna(subset=["importance"])
    shown = ranked[ranked["importance"] >= SHOWN]
    rest = ranked[ranked["importance"] < SHOWN]
    names = [f"{r.hyperparameter} ({r.present})" for r in shown.itertuples()]
    means, spreads = list(shown["importance"]), list(shown["std"].fillna(0))
    if len(rest):
        names.append(f"{len(rest)} others (each < {SHOWN})")
        means.append(max(float(rest["importance"].clip(lower=0).sum()), 0.0))
        spreads.append(0.0)
    fig = Figure(figsize=(8, 1.9 + 0.34 * max(len(names), 1)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(names))[::-1]
    ax.barh(y, means, xerr=spreads, color=["steelblue"] * len(shown) + ["lightgrey"] *
            (len(names) - len(shown)), ecolor="grey", capsize=3)
    ax.set_yticks(y, names)
    ax.set_xlabel(f"share of val accuracy's variance (mean ± sd over {resamples} bootstrap "
                  "resamples,\nminus a shuffled copy's); (n): the trials it was set in")
    ax.set_xlim(left=min(0.0, *(m - s for m, s in zip(means, spreads, strict=True))))
    ax.axvline(0, color="black", linewidth=0.8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{project}: hyperparameter importance\n({n_trials} finished configurations)",
                 fontsize=11)
    return fig


BASELINE_COLOURS = ("crimson", "darkorange", "purple", "saddlebrown", "olive", "teal")


def _baseline_lines(ax, baselines) -> None:
    """Dotted horizontal lines, one colour per baseline, named in the legend."""
    for i, (_, base) in enumerate(baselines.iterrows()):
        ax.axhline(base["val_accuracy"], color=BASELINE_COLOURS[i % len(BASELINE_COLOURS)],
                   linestyle=":", linewidth=1.5,
                   label=f"baseline {base['model']} ({base['epochs']} ep)")


def history_figure(history, baselines, project: str = ""):
    """Each configuration's objective (coloured by the epochs it was trained for) and the best
    so far, against trial number and wall time, with the baselines trained on the same data as
    horizontal lines; the legend sits below the panels."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(12, 5), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    x_time = history["elapsed_s"] / 60
    budgets = sorted(history["epochs"].dropna().unique())
    for ax, x, best, label in ((axes[0], history["number"], history["best_so_far"],
                                "trial number"),
                               (axes[1], x_time, history["best_by_time"],
                                "minutes since the first trial started")):
        for budget in budgets or [None]:
            mine = (history["epochs"] == budget) if budget is not None else history["number"] > 0
            ax.scatter(x[mine], history.loc[mine, "val_accuracy"], s=20, alpha=0.7,
                       label="configuration" if budget is None else
                       f"configuration, {int(budget)} epoch{'s' if budget != 1 else ''}")
        order = np.argsort(np.asarray(x, dtype=float), kind="stable")
        ax.step(np.asarray(x, dtype=float)[order], np.asarray(best, dtype=float)[order],
                where="post", color="black", label="best so far")
        _baseline_lines(ax, baselines)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("validation accuracy")
    _legend_below(fig, axes[0])
    fig.suptitle(f"{project}: search history ({len(history)} finished configurations)")
    return fig


def slices_figure(slices, log: set[str], project: str = "", baselines=None):
    """The objective against each of the named hyperparameters (two panels a row); choices and
    a conditional one's ``absent`` are categories along the axis, jittered; whole numbers
    (epochs, filters) get whole-number ticks."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, NullFormatter


    names = list(dict.fromkeys(slices["hyperparameter"]))
    cols = min(len(names), 2)
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(5.2 * cols + 0.5, 3.4 * rows + 1.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    rng = np.random.default_rng(0)
    for ax, name in zip(axes, names, strict=False):
        part = slices[slices["hyperparameter"] == name]
        values = part["value"].tolist()
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric:
            ax.scatter(values, part["val_accuracy"], s=18, alpha=0.7)
            distinct = sorted(set(values))
            if name in log:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # crowded 2x10^-3, 3x10^-3, ...
            elif len(distinct) <= 8 and all(float(v).is_integer() for v in distinct):
                ax.set_xticks(distinct, [f"{int(v)}" for v in distinct])  # 16, 32, 64, 128
            elif all(float(v).is_integer() for v in values):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            levels = [str(v) for v in sorted(set(values), key=value_order)]
            where = {level: i for i, level in enumerate(levels)}
            x = [where[str(v)] + rng.uniform(-0.15, 0.15) for v in values]
            ax.scatter(x, part["val_accuracy"], s=18, alpha=0.7)
            ax.set_xticks(range(len(levels)), levels, rotation=30 if len(levels) > 3 else 0,
                          ha="right" if len(levels) > 3 else "center")
        if baselines is not None:
            _baseline_lines(ax, baselines)
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel("validation accuracy")
    _legend_below(fig, axes[0])
    fig.suptitle(f"{project}: validation accuracy against each hyperparameter")
    return fig
