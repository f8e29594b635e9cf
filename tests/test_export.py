"""Models that leave the tool: every run folder's ``inference.keras`` and every ``export``
format opens without fmnist_search and predicts what the tool predicted."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import search_args

from fmnist_search import api, baselines, export, runs, training
from fmnist_search.cli import main
from fmnist_search.dataset import DataSettings, prepare

# The best preset's final protocol on model1's layers: shifts, flips, erasing, label
# smoothing and test-time mirror averaging: everything that made model.keras need the tool.
AUGMENTED = {"aug_translate": 2, "aug_flip": True, "aug_erase": 0.5, "label_smoothing": 0.1,
             "tta": True}

# Opens a model with Keras alone: importing fmnist_search fails in this process.
PLAIN = """
import sys
sys.modules["fmnist_search"] = None  # any import of the tool raises ImportError
import numpy as np, keras
data = np.load(sys.argv[2])
model = keras.models.load_model(sys.argv[1])
np.save(sys.argv[3], model.predict(data["x"], verbose=0))
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A model1 run trained with the augmented protocol (one epoch on 160 images given as
    arrays, so that the export's check finds its 50 test images again)."""
    from rich.console import Console

    from fmnist_search import arrays

    tmp = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    y = np.arange(250) % 10
    x = rng.integers(0, 256, (250, 28, 28), dtype=np.uint8)
    stored = arrays.store(tmp, x[:200], y[:200], test=(x[200:], y[200:]))
    ds = prepare(DataSettings(seed=1, arrays=str(stored)))
    values = {**baselines.load("model1").values, **AUGMENTED}
    spec = runs.RunSpec(kind="baseline", name="model1", values=values, epochs=1, seed=1,
                        precision="fp32")
    with open(os.devnull, "w") as quiet:
        path, metrics = runs.train_run(spec, ds, tmp / "baselines" / "model1",
                                       Console(file=quiet))
    return {"path": path, "metrics": metrics, "data": ds, "tmp": tmp}


def _plain_predict(model_path: Path, x: np.ndarray, tmp: Path) -> np.ndarray:
    np.savez(tmp / "x.npz", x=x)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["KERAS_BACKEND"] = "tensorflow"
    proc = subprocess.run([sys.executable, "-c", PLAIN, str(model_path), str(tmp / "x.npz"),
                           str(tmp / "p.npy")], capture_output=True, text=True, env=env,
                          cwd=tmp, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(tmp / "p.npy")


def test_a_run_folder_keeps_a_model_plain_keras_opens(run):
    folder, ds = run["path"], run["data"]
    assert (folder / export.INFERENCE_FILE).is_file()
    # the tool's own predictions: model.keras with its custom layers, mirror averaged
    from fmnist_search import portable

    trained = portable.load_trained(folder / "model.keras")
    tool, _ = training.predict(trained, ds.x_test, tta=True)
    plain = _plain_predict(folder / export.INFERENCE_FILE, ds.x_test, run["tmp"])
    np.testing.assert_allclose(plain, tool, atol=1e-6)
    assert (plain.argmax(1) == tool.argmax(1)).all()
    accuracy = float((plain.argmax(1) == ds.y_test).mean())
    assert accuracy == pytest.approx(run["metrics"]["test_accuracy"])


FORMATS = [("keras", None), ("saved_model", None), ("onnx", "tf2onnx"), ("litert", None)]


@pytest.mark.parametrize("fmt, needs", FORMATS, ids=[f for f, _ in FORMATS])
def test_every_format_reloads_and_predicts_the_same(fmt, needs, run, tmp_path):
    if needs and importlib.util.find_spec(needs) is None:
        pytest.skip(f"{needs} is not installed (pip install 'fmnist-search[export]')")
    if fmt == "onnx" and importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed (pip install 'fmnist-search[export]')")
    root = run["tmp"]
    done = export.export_model(root, str(run["path"]), fmt, tmp_path / export.default_path(
        "model1", fmt), images=1000)
    assert done.path.exists() and done.checked_on == "test images"
    assert done.check.images == 50 and done.check.agrees
    assert done.check.max_abs_difference < 1e-5


def test_a_missing_converter_says_what_to_install(monkeypatch, run, tmp_path):
    monkeypatch.setattr(export, "missing", lambda fmt: ["tf2onnx"])
    with pytest.raises(Exception, match=r"pip install 'fmnist-search\[export\]'"):
        export.export_model(run["tmp"], str(run["path"]), "onnx", tmp_path / "m.onnx")


def test_a_wrong_suffix_is_refused(run, tmp_path):
    with pytest.raises(Exception, match="must end in .tflite"):
        export.export_model(run["tmp"], str(run["path"]), "litert", tmp_path / "m.lite")


@pytest.mark.slow
def test_export_command_on_a_search_trial(csv_data, tmp_path, capsys):
    """A trial's model (the search's checkpoint, as api.model builds it) exported by the
    command and opened by plain Keras predicts what api.model predicts."""
    assert main(search_args(csv_data, tmp_path, "p", 2)) == 0
    res = tmp_path / "res"
    capsys.readouterr()
    out = tmp_path / "trial.keras"
    assert main(["export", "p", "--out", str(out), "--results-dir", str(res)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "as keras to" in said and "checked on 50 test images" in said
    x = api.dataset("p", results_dir=res).x_test
    expected = api.model("p", results_dir=res).predict(x, verbose=0)
    np.testing.assert_allclose(_plain_predict(out, x, tmp_path), expected, atol=1e-6)
    if importlib.util.find_spec("tf2onnx") and importlib.util.find_spec("onnxruntime"):
        assert main(["export", "p", "--format", "onnx", "--out", str(tmp_path / "t.onnx"),
                     "--results-dir", str(res)]) == 0
        assert "the same class for 50" in " ".join(capsys.readouterr().out.split())


def test_a_resnet_with_the_best_presets_protocol_opens_in_plain_keras(tmp_path):
    """The resnet space's default point (ResNet-20-like, batch norm, residual adds) with the
    best preset's augmentation and TTA: built, saved as the run folder saves it, reopened."""
    from fmnist_search import builder, space

    values = {**space.load_named("resnet").default_values(), **AUGMENTED}
    model = builder.build_model(values, 10)
    export.inference_model(model, tta=True).save(tmp_path / "resnet.keras")
    x = np.random.default_rng(2).random((40, 28, 28, 1), dtype=np.float32)
    tool, _ = training.predict(model, x, tta=True)
    plain = _plain_predict(tmp_path / "resnet.keras", x, tmp_path)
    np.testing.assert_allclose(plain, tool, atol=1e-5)
    assert (plain.argmax(1) == tool.argmax(1)).all()
