"""ImageNet weights for the pretrained-backbone family (the report's model5).

Keras downloads them on first use; offline that fails deep inside Keras with a network error.
We turn it into a clear choice instead, and never fall back to random weights on our own: a
"pretrained" model that silently trained from scratch would be a wrong result with a right name.
"""

from __future__ import annotations

import os
from pathlib import Path

from fmnist_search.errors import UserError

WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + WEIGHTS_FILE


def keras_models_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def resolve_weights(weights: str, weights_path: str | None = None) -> str | None:
    """What to pass as ``weights=`` to keras.applications.ResNet50."""
    if weights_path:
        if not Path(weights_path).is_file():
            raise UserError(f"--weights {weights_path}: no such file.")
        return str(weights_path)
    if weights == "none":
        return None
    cached = keras_models_dir() / WEIGHTS_FILE
    if cached.is_file():
        return str(cached)
    try:
        import keras

        return keras.utils.get_file(WEIGHTS_FILE, WEIGHTS_URL, cache_subdir="models")
    except Exception as exc:  # noqa: BLE001 - any failure to fetch means the same remedy
        raise UserError(
            f"The ImageNet weights for ResNet50 could not be had ({type(exc).__name__}: {exc}). "
            f"Either train from scratch with `--weights none`, or put the file {WEIGHTS_FILE} "
            f"(from {WEIGHTS_URL}) into {keras_models_dir()} or pass its path with "
            "`--weights PATH`."
        ) from exc
