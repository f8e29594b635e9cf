"""Images given as numpy arrays (a notebook's data) as a data source like the IDX files or a CSV.

The arrays are checked, then stored once in the results directory as ``arrays/<digest>.npz``,
named by a SHA-256 of their content: the project records that path as its data (as it records a
training CSV), so a resume, ``retrain``, ``finalize``, a distributed worker and a reused run
all read the very same images, and the same arrays given again name the same file. The images
are kept as uint8 0-255, as the IDX files hold them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fmnist_search.errors import UserError
from fmnist_search.images import CLASS_NAMES, IMAGE_SHAPE

FOLDER = "arrays"  # under the results directory
PARTS = ("train", "val", "test")


def _images(x: Any, what: str) -> np.ndarray:
    """(n, 28, 28), (n, 28, 28, 1) or (n, 784); uint8 0-255, integers 0-255, or floats in
    [0, 1] (scaled as ``api.dataset`` gives them) or in [0, 255]."""
    x = np.asarray(x)
    n = x.shape[0] if x.ndim else 0
    if x.ndim == 2 and x.shape[1:] == (784,) or x.ndim == 4 and x.shape[1:] == (*IMAGE_SHAPE, 1):
        x = x.reshape(n, *IMAGE_SHAPE)
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE or n == 0:
        raise UserError(f"{what} has shape {x.shape}: give images of shape (n, 28, 28), "
                        "(n, 28, 28, 1) or (n, 784), n at least 1.")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise UserError(f"{what} has dtype {x.dtype}: give numbers (uint8 0-255, or floats).")
    if not np.isfinite(x).all():
        raise UserError(f"{what} holds NaN or infinite values.")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 255:
        raise UserError(f"{what} ranges from {low:g} to {high:g}: pixels must lie in 0-255 "
                        "(or 0-1 as floats).")
    if np.issubdtype(x.dtype, np.floating) and high <= 1.0:
        x = x * 255.0  # scaled images, as api.dataset() returns them
    return np.rint(x).astype(np.uint8)


def _labels(y: Any, n: int, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise UserError(f"{what} has shape {y.shape}: give one label per image ({n}).")
    whole = np.issubdtype(y.dtype, np.floating) and bool(np.all(np.mod(y, 1) == 0))
    if not (np.issubdtype(y.dtype, np.integer) or whole):
        raise UserError(f"{what} holds {y.dtype} values: give whole class ids 0-9.")
    bad = (y < 0) | (y >= len(CLASS_NAMES))
    if bad.any():
        raise UserError(f"{what}[{int(np.argmax(bad))}] is {y[np.argmax(bad)]}: class ids are "
                        f"0 to {len(CLASS_NAMES) - 1}.")
    return y.astype(np.uint8)


def _pair(pair: Any, what: str, labels_optional: bool = False) -> tuple[np.ndarray, Any]:
    if isinstance(pair, (tuple, list)) and len(pair) == 2:
        x, y = pair
    elif labels_optional and not isinstance(pair, (tuple, list)):
        x, y = pair, None
    else:
        raise UserError(f"{what}: give a pair (x, y)" + (" or the images alone" if
                                                         labels_optional else "") + ".")
    images = _images(x, f"{what} images")
    return images, None if y is None else _labels(y, len(images), f"{what} labels")


def checked(x_train: Any, y_train: Any, validation: Sequence | None = None,
            test: Any = None) -> dict[str, np.ndarray]:
    """The arrays as they are stored: ``x_train``/``y_train``, and ``x_val``/``y_val``,
    ``x_test``/``y_test`` when given (a test set may come without labels)."""
    arrays = {"x_train": _images(x_train, "x_train")}
    arrays["y_train"] = _labels(y_train, len(arrays["x_train"]), "y_train")
    if validation is not None:
        arrays["x_val"], arrays["y_val"] = _pair(validation, "validation")
    if test is not None:
        arrays["x_test"], y_test = _pair(test, "test", labels_optional=True)
        if y_test is not None:
            arrays["y_test"] = y_test
    return arrays


def digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of every array's name, shape and bytes: equal arrays, equal digest."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:20]


def store(root: Path, x_train: Any, y_train: Any, validation: Sequence | None = None,
          test: Any = None) -> Path:
    """Check the arrays and write them once to ``root/arrays/<digest>.npz`` (atomically; an
    existing file of the same digest is kept). Returns its absolute path."""
    arrays = checked(x_train, y_train, validation, test)
    folder = Path(root).resolve() / FOLDER
    path = folder / f"{digest(arrays)}.npz"
    if path.is_file():
        return path
    from fmnist_search import store

    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{path.name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise store.disk_error(path, exc) from exc
    return path


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a stored file, checked to be the ones its name says."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"The project's image arrays {path} cannot be read ({exc}): they are "
                        "stored when a search or baseline is given arrays; give them again "
                        "(the same arrays name the same file).") from exc
    if Path(path).stem != digest(arrays):
        raise UserError(f"The image arrays {path} do not match their digest (the file was "
                        "changed or damaged): give the arrays again.")
    return arrays
