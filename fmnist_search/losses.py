"""Cross-entropy with label smoothing for integer labels.

Keras' ``SparseCategoricalCrossentropy`` has no ``label_smoothing``; this one takes the same
integer labels (so data, metrics and every caller stay as they are) and smooths their one-hot
form. The builder uses it only when ``label_smoothing`` > 0: the report's loss is unchanged.
Importing this module registers the loss with Keras, which ``keras.models.load_model`` needs.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fmnist_search")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """Targets ``(1 - s) * one_hot + s / classes``, against a softmax output."""

    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_crossentropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        target = ops.one_hot(labels, y_pred.shape[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(target, y_pred,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
