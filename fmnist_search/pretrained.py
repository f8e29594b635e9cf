"""ImageNet weights for the pretrained-backbone family (the report's model5).

Keras downloads them on first use; offline that fails deep inside Keras with a network error.
We turn it into a clear choice instead, and never fall back to random weights on our own: a
"pretrained" model that silently trained from scratch would be a wrong result with a right name.
"""

from __future__ import annotations

import os
import zipfile
from contextlib import suppress
from pathlib import Path

from fmnist_search.errors import UserError

WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + WEIGHTS_FILE
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def keras_models_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def resolve_weights(weights: str, weights_path: str | None = None) -> str | None:
    """What to pass as ``weights=`` to keras.applications.ResNet50."""
    if weights_path:
        return check_weights_file(weights_path)
    if weights == "none":
        return None
    models = keras_models_dir()
    cached = models / WEIGHTS_FILE
    if cached.is_file():
        return str(cached)
    created = [p for p in (models, models.parent) if not p.exists()]  # deepest first
    try:
        import keras

        return keras.utils.get_file(WEIGHTS_FILE, WEIGHTS_URL, cache_dir=str(models.parent),
                                    cache_subdir="models")
    except BaseException as exc:
        _remove_created(cached, created)
        if not isinstance(exc, Exception):  # Ctrl-C: cleaned up, and still a stop
            raise
        raise UserError(
            f"The ImageNet weights for ResNet50 could not be had ({type(exc).__name__}: {exc}). "
            f"Either train from scratch with `--weights none`, or put the file {WEIGHTS_FILE} "
            f"(from {WEIGHTS_URL}) into {keras_models_dir()} or pass its path with "
            "`--weights PATH`."
        ) from exc


def _remove_created(partial: Path, folders: list[Path]) -> None:
    """After a failed download: the partial file and the folders it made (``~/.keras/models``)
    go, empty folders only; a ``keras.json`` that importing Keras wrote stays, and with it its
    folder."""
    with suppress(OSError):
        partial.unlink(missing_ok=True)
    for folder in folders:
        with suppress(OSError):
            folder.rmdir()


def check_weights_file(weights_path: str) -> str:
    """A ``--weights`` path Keras can load, checked before any data is read or model trained.

    Keras picks the loader by the file name (.h5 / .hdf5, or .keras) and fails deep inside
    ResNet50 otherwise; the content is checked by its signature, not by loading it.
    """
    from fmnist_search.preflight import check_path

    check_path(weights_path, "--weights")
    path = Path(weights_path)
    if path.is_dir():
        raise UserError(f"--weights {path} is a directory; give the weights file itself "
                        f"({WEIGHTS_FILE}).")
    if not path.is_file():
        raise UserError(f"--weights {path}: no such file. Give the path of {WEIGHTS_FILE}, "
                        "or imagenet (download) or none (train from scratch).")
    name = path.name.lower()
    if name.endswith(".keras"):
        valid = zipfile.is_zipfile(path)
    elif name.endswith((".h5", ".hdf5")):
        valid = _is_hdf5(path)
    else:
        valid = False
    if not valid:
        raise UserError(f"--weights {path} is not a Keras weights file (an HDF5 .h5 file: "
                        f"{WEIGHTS_FILE}); or use --weights imagenet or none.")
    return str(path)


def _is_hdf5(path: Path) -> bool:
    """HDF5's signature sits at byte 0, or after a user block of 512, 1024, 2048... bytes."""
    with path.open("rb") as fh:
        for offset in (0, 512, 1024, 2048, 4096, 8192):
            fh.seek(offset)
            if fh.read(8) == HDF5_SIGNATURE:
                return True
    return False
