"""The dataset a command trains on: loading, class selection, subsets and splits.

The raw arrays come from the IDX files ``sources`` found and verified, from a Kaggle-style
CSV (``csvdata``), or from a notebook's numpy arrays (``arrays``); this module turns them into the stratified, seeded training, validation and
test parts, scaled to [0, 1], that every training command and search uses.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fmnist_search import sources
from fmnist_search.errors import UserError
from fmnist_search.images import CLASS_NAMES, IMAGE_SHAPE

if TYPE_CHECKING:
    from rich.console import Console


DEFAULT_SEED = 42  # the seed of splits and weights when none is given


@dataclass
class RawData:
    """The arrays as read, before classes are chosen and the data is split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray | None
    source: str
    test_ids: np.ndarray | None = None
    fashion_labels: bool = True  # the labels are Fashion-MNIST's ids (always so for IDX)
    test_note: str | None = None  # why y_test is None
    x_val: np.ndarray | None = None  # a validation set of its own (arrays): not split off
    y_val: np.ndarray | None = None


def load_idx_dir(source: sources.Source, verify: bool = True) -> RawData:
    """The four IDX files of a folder, each checked as it is read (``verify``)."""
    arrays = {
        key: sources.read_idx(source.directory / spec.name, spec if verify else None)
        for key, spec in sources.FILES.items()
    }
    return RawData(
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
        source=f"{source.label}: {source.directory}",
    )


def ensure_local_copy(settings: DataSettings, console: Console | None = None) -> None:
    """What training commands do first: when no copy is found anywhere and none was named,
    download the official files into the project cache (as ``keras.datasets`` does), so that
    a first run needs no set-up. Offline, the one message saying what else to do."""
    if settings.train_csv or settings.arrays:
        return  # a training CSV or arrays bring their own classes and test set (load_raw)
    try:
        sources.locate(settings.data_dir)
    except sources.DataNotFound as missing:
        if console is not None:
            console.print(f"Fashion-MNIST was not found on this machine: downloading the "
                          f"official files (30 MB) into {sources.project_cache()}/")
        try:
            sources.fetch(console=console)
        except sources.DownloadError as exc:
            raise UserError(sources.not_found_message(missing.places, exc.reason)) from exc


@dataclass(frozen=True)
class DataSettings:
    """Every training command's data options; also the project's data fingerprint."""

    classes: tuple[int, ...] | None = None
    val_fraction: float = 0.2
    subset: float = 1.0
    seed: int = DEFAULT_SEED
    data_dir: str | None = None
    train_csv: str | None = None
    test_csv: str | None = None
    fashion_labels: bool = False  # a training CSV's labels are Fashion-MNIST's class ids
    arrays: str | None = None  # a stored .npz of numpy arrays (``arrays.store``)

    @classmethod
    def from_options(cls, classes: str | None = None, val_fraction: float = 0.2,
                     subset: float | None = None, seed: int | None = None,
                     data_dir: str | None = None, train_csv: str | None = None,
                     test_csv: str | None = None, fashion_labels: bool = False,
                     arrays: str | None = None) -> DataSettings:
        """From what a user typed (None: not given), so that defaults live here only."""
        if arrays and train_csv:
            raise UserError("Give the training images once: as arrays or as train_csv, not "
                            "both.")
        return cls(parse_classes(classes), val_fraction, subset or 1.0,
                   DEFAULT_SEED if seed is None else seed, data_dir, train_csv, test_csv,
                   fashion_labels, arrays)

    @classmethod
    def from_record(cls, data: dict, data_dir: str | None = None,
                    test_csv: str | None = None, subset: float = 1.0) -> DataSettings:
        """A project's recorded data settings, on the whole training split by default (as
        ``retrain`` trains; a distributed worker passes the search's subset): the same classes,
        split and seed; a test CSV given now replaces its own."""
        return cls(tuple(data["classes"]), data["val_fraction"], subset, data["seed"], data_dir,
                   data.get("train_csv"), test_csv or data.get("test_csv"),
                   bool(data.get("fashion_labels")), data.get("arrays"))

    def fingerprint(self) -> dict:
        out = {
            "classes": list(self.classes) if self.classes else list(range(len(CLASS_NAMES))),
            "val_fraction": self.val_fraction,
            "subset": self.subset,
            "seed": self.seed,
            "train_csv": self.train_csv,
            "test_csv": self.test_csv,
        }
        if self.arrays:  # the file's name is the arrays' digest
            out["arrays"] = self.arrays
        if self.train_csv or self.arrays:  # only here: IDX projects keep their fingerprint
            out["fashion_labels"] = self.fashion_labels
        return out


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray | None
    class_names: list[str]
    source: str
    settings: DataSettings
    test_ids: np.ndarray | None = None
    classes: tuple[int, ...] = tuple(range(len(CLASS_NAMES)))  # label of each model output
    test_note: str | None = None  # why there is no test accuracy, when there is none

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def fingerprint(self) -> dict:
        return {
            **self.settings.fingerprint(),
            "classes": list(self.classes),
            "n_train": len(self.y_train),
            "n_val": len(self.y_val),
            "n_test": len(self.x_test),
        }

    def digest(self) -> str:
        """A digest of the images and labels themselves (every 50th training image): two
        machines with the same settings but other files must not join one search."""
        h = hashlib.sha256()
        for array in (self.y_train, self.y_val, self.x_train[::50], self.x_val[::50]):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()[:16]


def parse_classes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as exc:
        raise UserError(
            f"--classes {text!r} is not a comma-separated list of class ids such as 0,2,4 "
            f"(valid ids 0-{len(CLASS_NAMES) - 1})."
        ) from exc
    bad = [v for v in values if not 0 <= v < len(CLASS_NAMES)]
    if bad or len(set(values)) != len(values) or len(values) < 2:
        raise UserError(
            f"--classes {text!r}: give at least two distinct ids from 0 to "
            f"{len(CLASS_NAMES) - 1} ({', '.join(f'{i}={n}' for i, n in enumerate(CLASS_NAMES))})."
        )
    return values


NO_TEST_SET = "no test set"
NO_TEST_LABELS = "no labels"


def load_raw(settings: DataSettings) -> RawData:
    """A training CSV brings its own classes and test set: the official test set is used only
    with the official training images, since a CSV's labels need not be Fashion-MNIST's."""
    from fmnist_search import csvdata

    if settings.arrays:
        raw = _load_arrays(settings)
    elif settings.train_csv:
        raw = _load_train_csv(settings)
    else:
        raw = load_idx_dir(sources.locate(settings.data_dir))
    if settings.test_csv:
        test = csvdata.read_csv(settings.test_csv, require_labels=False, option="--test-csv")
        raw.x_test, raw.y_test, raw.test_ids = test.x, test.y, test.ids
        raw.test_note = None if test.y is not None else NO_TEST_LABELS
        raw.source += f"; test CSV {settings.test_csv}"
    return raw


def _load_train_csv(settings: DataSettings) -> RawData:
    from fmnist_search import csvdata

    train = csvdata.read_csv(settings.train_csv, option="--train-csv")
    held = np.unique(train.y)
    fashion = settings.fashion_labels or len(held) == len(CLASS_NAMES)
    empty = np.zeros((0, *IMAGE_SHAPE), dtype=np.uint8)
    return RawData(train.x, train.y, empty, None, f"CSV {settings.train_csv}",
                   fashion_labels=fashion, test_note=NO_TEST_SET)


def _load_arrays(settings: DataSettings) -> RawData:
    from fmnist_search import arrays

    a = arrays.load(settings.arrays)
    held = np.unique(a["y_train"])
    fashion = settings.fashion_labels or len(held) == len(CLASS_NAMES)
    x_test = a.get("x_test", np.zeros((0, *IMAGE_SHAPE), dtype=np.uint8))
    y_test = a.get("y_test")
    note = None if y_test is not None else NO_TEST_LABELS if len(x_test) else NO_TEST_SET
    return RawData(a["x_train"], a["y_train"], x_test, y_test, "numpy arrays",
                   fashion_labels=fashion, test_note=note, x_val=a.get("x_val"),
                   y_val=a.get("y_val"))


def class_names(classes: Sequence[int], fashion: bool) -> list[str]:
    """Fashion-MNIST's names only where the labels are its ids; else the labels as written."""
    return [CLASS_NAMES[c] if fashion else f"class {c}" for c in classes]


def prepare(settings: DataSettings, raw: RawData | None = None) -> Dataset:
    """Select classes, take the stratified subset, split off validation, scale to [0, 1]."""
    _check_fractions(settings)
    raw = raw or load_raw(settings)
    classes = resolve_classes(settings, raw)
    x, y = select_classes(raw.x_train, raw.y_train, classes)
    _check_class_sizes(y, classes, raw)
    if raw.x_val is None:
        x_train, x_val, y_train, y_val = _split(x, y, settings, raw)
    else:  # a validation set of its own: the subset is taken of the training images only
        x_train, y_train = _subset(x, y, settings, raw)
        x_val, y_val = select_classes(raw.x_val, raw.y_val, classes)
        if not len(y_val):
            raise UserError(f"The validation images hold none of the classes "
                            f"{', '.join(map(str, classes))}.")
    x_test, y_test, test_ids = _test_part(raw, classes, settings)
    return Dataset(
        scale(x_train), y_train, scale(x_val), y_val, scale(x_test), y_test,
        class_names=class_names(classes, raw.fashion_labels),
        source=raw.source,
        settings=settings,
        test_ids=test_ids,
        classes=classes,
        test_note=raw.test_note,
    )


def resolve_classes(settings: DataSettings, raw: RawData) -> tuple[int, ...]:
    """The model's classes: --classes, else every label the training data holds."""
    held = tuple(int(c) for c in np.unique(raw.y_train))
    if settings.classes:
        missing = [c for c in settings.classes if c not in held]
        if missing:
            raise UserError(
                f"The classes asked for ({','.join(map(str, settings.classes))}, from --classes "
                f"or the project's record) include {', '.join(map(str, missing))}, but "
                f"{raw.source} holds no image so labelled; its labels are "
                f"{', '.join(map(str, held))}."
            )
        return tuple(settings.classes)
    if len(held) < 2:
        raise UserError(f"{raw.source}: every image is labelled {held[0] if held else '-'}; a "
                        "classifier needs at least two classes.")
    return held


def _check_class_sizes(y: np.ndarray, classes: Sequence[int], raw: RawData) -> None:
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 2:
        label = classes[int(counts.argmin())]
        raise UserError(f"{raw.source}: class {label} has {int(counts.min())} image(s); a "
                        "stratified validation split needs at least 2 of every class.")


def min_split_images(k: int, val_fraction: float) -> int:
    """The fewest images a stratified train/validation split of k classes can take."""
    return max(2 * k, math.ceil(k / val_fraction), math.ceil((k + 1) / (1 - val_fraction)))


def _split(x: np.ndarray, y: np.ndarray, settings: DataSettings, raw: RawData) -> tuple:
    """The stratified subset, then the stratified validation split; too few images is a
    message naming the option to change, not scikit-learn's ValueError."""
    from sklearn.model_selection import train_test_split

    k, n = int(y.max()) + 1, len(y)
    need = min_split_images(k, settings.val_fraction)
    if math.floor(settings.subset * n) < need:
        raise UserError(_split_problem(settings, raw, n, need, k))
    try:
        if settings.subset < 1.0:
            x, _, y, _ = train_test_split(x, y, train_size=settings.subset, stratify=y,
                                          random_state=settings.seed)
        return train_test_split(x, y, test_size=settings.val_fraction, stratify=y,
                                random_state=settings.seed)
    except ValueError as exc:
        raise UserError(_split_problem(settings, raw, n, need, k) + f" ({exc})") from exc


def _subset(x: np.ndarray, y: np.ndarray, settings: DataSettings, raw: RawData) -> tuple:
    """The stratified subset alone (a validation set was given)."""
    from sklearn.model_selection import train_test_split

    k = int(y.max()) + 1
    if settings.subset >= 1.0:
        return x, y
    if math.floor(settings.subset * len(y)) < k:
        raise UserError(f"--subset {settings.subset:g} keeps fewer than one image of each of "
                        f"the {k} classes of {raw.source}'s {len(y):,} training images.")
    x, _, y, _ = train_test_split(x, y, train_size=settings.subset, stratify=y,
                                  random_state=settings.seed)
    return x, y


def _split_problem(settings: DataSettings, raw: RawData, n: int, need: int, k: int) -> str:
    split = (f"a stratified split of {k} classes into training and validation "
             f"(--val-fraction {settings.val_fraction:g}) needs at least {need:,} images")
    if need > n:
        return f"{raw.source} has {n:,} training images of the chosen classes; {split}."
    kept = math.floor(settings.subset * n)
    return (f"--subset {settings.subset:g} keeps {kept:,} of the {n:,} training images of "
            f"{raw.source}; {split}: use --subset {math.ceil(need / n * 1000) / 1000:g} or "
            "more.")


def _test_part(raw: RawData, classes: tuple[int, ...], settings: DataSettings) -> tuple:
    """The test images of the model's classes (all of them when the test set has no labels)."""
    if raw.y_test is None:
        return raw.x_test, None, raw.test_ids
    stray = ~np.isin(raw.y_test, classes)
    if stray.any() and settings.test_csv and not settings.classes:
        raise UserError(
            f"--test-csv {settings.test_csv}: row {int(np.argmax(stray)) + 1} is labelled "
            f"{int(raw.y_test[np.argmax(stray)])}, a class the training data does not hold "
            f"(its classes: {', '.join(map(str, classes))})."
        )
    keep = ~stray
    ids = raw.test_ids[keep] if raw.test_ids is not None else None
    x, y = select_classes(raw.x_test, raw.y_test, classes)
    return x, y, ids


def _check_fractions(settings: DataSettings) -> None:
    if not 0.0 < settings.subset <= 1.0:
        raise UserError(f"--subset {settings.subset:g} must be a fraction in (0, 1], e.g. 0.1.")
    if not 0.0 < settings.val_fraction < 1.0:
        raise UserError(f"--val-fraction {settings.val_fraction:g} must be in (0, 1), e.g. 0.2.")


def select_classes(x: np.ndarray, y: np.ndarray, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Keep the chosen classes and renumber them 0..k-1 in the order given."""
    mapping = np.full(len(CLASS_NAMES), -1, dtype=np.int64)
    mapping[list(classes)] = np.arange(len(classes))
    keep = mapping[y] >= 0
    return x[keep], mapping[y[keep]].astype(np.uint8)


def scale(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) / 255.0)[..., np.newaxis]


def class_counts(raw: RawData, ds: Dataset) -> dict[str, list[int]]:
    """Images per class in each part: the training set before the split, then each split."""
    k = ds.num_classes
    counts = {
        "train (before split)": np.bincount(select_classes(raw.x_train, raw.y_train,
                                                           ds.classes)[1], minlength=k).tolist(),
        "train": np.bincount(ds.y_train, minlength=k).tolist(),
        "validation": np.bincount(ds.y_val, minlength=k).tolist(),
    }
    if ds.y_test is not None:
        counts["test"] = np.bincount(ds.y_test, minlength=k).tolist()
    return counts
