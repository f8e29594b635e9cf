"""Models that open with plain Keras: a trained model's inference graph, built of Keras' own
layers only.

A model as trained carries what only training needs: this package's augmentation layers
(``RandomShift``, ``RandomErase``) and its smoothed loss, which ``keras.models.load_model``
cannot deserialize in a process that does not import fmnist_search. At inference those layers
are the identity (they act only when ``training=True``), so the inference copy replaces each
with ``keras.layers.Identity`` and keeps every other layer and weight as it is: its predictions
are the trained model's, bit for bit.

Test-time augmentation (the mean of the softmax of an image and of its mirror image,
``augment.flip_average``) goes into the graph too, as a fixed float32 ``Dense`` over the width
axis whose kernel is the anti-identity: each output pixel is one input pixel times 1.0 plus
zeros, so the mirror is exact; no ``Lambda`` (which plain Keras refuses to load in safe mode).
"""

from __future__ import annotations

import numpy as np

from fmnist_search.builder import INPUT_SHAPE


def _training_only(layer) -> bool:
    import keras

    from fmnist_search import augment

    return isinstance(layer, augment.RandomShift | augment.RandomErase | keras.layers.RandomFlip)


def inference_copy(model, name: str | None = None):
    """``model`` with its training-only layers replaced by identities, same weights, no
    optimizer or loss (uncompiled)."""
    import keras

    def clone(layer):
        if _training_only(layer):
            return keras.layers.Identity(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, copy.layers, strict=True):
        if not _training_only(old):
            new.set_weights(old.get_weights())
    if name:
        copy.name = name
    return copy


def mirror_layer(name: str = "mirror"):
    """A layer that flips (n, H, W, 1) images left-right, exactly, from Keras' own layers."""
    import keras

    height, width, channels = INPUT_SHAPE  # one channel: (H, W, 1) reshapes to (H, W)
    kernel = np.eye(width, dtype=np.float32)[::-1]
    dense = keras.layers.Dense(width, use_bias=False, trainable=False, dtype="float32",
                               name=f"{name}_columns")
    layers = [keras.layers.Reshape((height, width), name=f"{name}_rows"), dense,
              keras.layers.Reshape((height, width, channels), name=f"{name}_image")]

    def apply(x):
        for layer in layers:
            x = layer(x)
        return x

    dense.build((None, height, width))
    dense.set_weights([kernel])
    return apply


def with_tta(net, tta: bool, name: str):
    """The model's probabilities for an input tensor ``x``, mirror-averaged when ``tta``."""
    import keras

    def apply(x):
        probs = net(x)
        if not tta:
            return probs
        mirrored = net(mirror_layer(f"{name}_mirror")(x))
        return keras.layers.Average(name=f"{name}_tta")([probs, mirrored])

    return apply


def load_trained(path) -> object:
    """A ``model.keras`` this package saved (its custom layers registered), uncompiled."""
    import keras

    from fmnist_search import augment, losses  # noqa: F401  (registers them for load_model)

    return keras.models.load_model(path, compile=False)
