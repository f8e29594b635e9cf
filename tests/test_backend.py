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
    from fmnist_search.versions import versions

    assert versions()["tensorflow"] == backend.version()


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


# --------------------------------------------------------------------------- the GPU path
# No GPU here or in CI: the backend's answers are faked, the choices made from them are real.


def test_auto_precision_on_a_gpu_is_bfloat16_from_ampere_on(monkeypatch):
    from fmnist_search import training

    monkeypatch.setattr(backend, "has_gpu", lambda: True)
    for capability, policy in (((9, 0), "mixed_bfloat16"), ((8, 0), "mixed_bfloat16"),
                               ((7, 5), "mixed_float16"), (None, "mixed_float16")):
        monkeypatch.setattr(backend, "gpu_compute_capability", lambda c=capability: c)
        assert training.choose_policy("auto") == policy, capability
    assert training.choose_policy("fp32") == "float32"  # asked for: kept


def test_gpu_memory_is_taken_as_needed_and_shared_by_workers(monkeypatch):
    from fmnist_search.tuning import supervisor

    alone: dict[str, str] = {}
    backend.share_gpu_memory(alone)
    assert alone == {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}  # JAX alone keeps preallocating
    mine = {"TF_FORCE_GPU_ALLOW_GROWTH": "false"}
    backend.share_gpu_memory(mine, shared=True)
    assert mine == {"TF_FORCE_GPU_ALLOW_GROWTH": "false",  # the user's own value wins
                    "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    four = supervisor.plan_devices(4, 4, ["0"], [0, 1])
    assert all(w.env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" for w in four)
    assert all(w.env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for w in four)
    one_each = supervisor.plan_devices(2, 1, ["0", "1"], [0, 1])
    assert [w.env["CUDA_VISIBLE_DEVICES"] for w in one_each] == ["0", "1"]
    assert all("XLA_PYTHON_CLIENT_PREALLOCATE" not in w.env for w in one_each)


def test_a_compute_capability_is_read_from_the_jax_string(monkeypatch):
    import sys
    import types

    device = types.SimpleNamespace(platform="gpu", compute_capability="9.0")
    monkeypatch.setitem(sys.modules, "jax", types.SimpleNamespace(devices=lambda: [device]))
    monkeypatch.setattr(backend, "name", lambda: "jax")
    assert backend.gpu_compute_capability() == (9, 0)
    device.platform = "cpu"
    assert backend.gpu_compute_capability() is None


def test_deterministic_kernels_only_when_the_preset_asks(tmp_path, csv_data, monkeypatch):
    """A GPU (faked) no longer turns deterministic kernels on by itself: they cost speed and
    turn XLA off. `deterministic = true` does, and each trial records which it had."""
    from conftest import search_args

    from fmnist_search import reproducibility, store
    from fmnist_search.cli import main

    calls = []
    monkeypatch.setattr(backend, "has_gpu", lambda: True)
    monkeypatch.setattr(backend, "enable_op_determinism", lambda: calls.append(1) or True)
    monkeypatch.setitem(reproducibility._DETERMINISTIC, "on", False)
    for name, text in (("plain", ""), ("det", "deterministic = true\n")):
        preset = tmp_path / f"{name}.toml"
        preset.write_text('tuner = "random"\ntrials = 1\nepochs = 1\nprecision = "fp32"\n' + text)
        assert main(search_args(csv_data, tmp_path, name, 1, "--search", str(preset))) == 0
        record = store.read_trial_record(next((tmp_path / "res" / name).glob("trial_*")))
        assert record["deterministic"] is (name == "det")
        assert len(calls) == (name == "det")
