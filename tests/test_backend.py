"""The backend seam: what the tool asks TensorFlow (the tested backend) directly."""

from __future__ import annotations

import numpy as np

from fmnist_search import backend, builder


def test_the_tested_backend_and_its_version():
    import tensorflow as tf

    assert backend.name() == "tensorflow"
    assert backend.version() == tf.__version__
    assert backend.has_gpu() == bool(tf.config.list_physical_devices("GPU"))


def test_run_records_name_the_backend_and_its_version():
    from fmnist_search import runs

    assert runs.versions()["tensorflow"] == backend.version()


def test_unsharing_the_weights_keeps_their_values(monkeypatch):
    """The JAX work-around copies each weight into a buffer of its own; whatever the backend,
    the model must come out of it with exactly the weights it had."""
    model = builder.build_model({"stages": 1, "filters_1": 4, "ema": 0.9}, 10)
    before = [w.copy() for w in model.get_weights()]
    monkeypatch.setattr(backend, "name", lambda: "jax")
    backend.unshare_averaged_weights(model)
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_only_the_custom_gradients_a_fit_added_are_released():
    registry = backend.gradient_registry()
    assert registry is not None, "this TensorFlow has no gradient registry to clean"
    registry["CustomGradient-before-test"] = object()
    try:
        with backend.custom_gradients_released():
            registry["CustomGradient-during-test"] = object()
            registry["NotCustom-during-test"] = object()
        assert "CustomGradient-during-test" not in registry
        assert {"CustomGradient-before-test", "NotCustom-during-test"} <= set(registry)
    finally:
        for key in ("CustomGradient-before-test", "NotCustom-during-test"):
            registry.pop(key, None)
