"""Models that leave the tool: a trained run's or a search trial's model as plain Keras (no
fmnist_search needed to open it), a TensorFlow SavedModel, ONNX or LiteRT.

Every format holds the inference graph of ``portable.inference_copy``: the augmentation layers
(identities at inference) replaced by ``keras.layers.Identity``, no optimizer and no loss, and
for a model evaluated with test-time augmentation (``tta``) the mirror average in the graph
(``portable.with_tta``). Its input is images scaled to 0-1, shape (n, 28, 28, 1) float32; its
output the class probabilities, in the order of the run's ``classes``. The conversions are
Keras' own (``model.export``: SavedModel and LiteRT through TensorFlow, ONNX through tf2onnx,
the ``export`` extra); ``check`` runs the exported file in its own runtime and compares.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmnist_search import store
from fmnist_search.errors import UserError

if TYPE_CHECKING:
    import numpy as np

INFERENCE_FILE = store.INFERENCE_FILE  # beside model.keras in every run folder
# format -> (what Keras' model.export calls it (None: model.save), file suffix)
FORMATS = {"keras": (None, ".keras"), "saved_model": ("tf_saved_model", ""),
           "onnx": ("onnx", ".onnx"), "litert": ("litert", ".tflite")}
NEEDS = {"onnx": ("tf2onnx", "onnx")}  # modules a conversion imports (the `export` extra)
RUNTIMES = {"onnx": "onnxruntime"}  # what ``check`` runs the file in, where not TensorFlow


def inference_model(model, tta: bool = False, name: str | None = None):
    """The trained ``model``'s inference graph of Keras' own layers, the same weights; the
    flip average of ``training.predict(..., tta=True)`` inside when ``tta``."""
    import keras

    from fmnist_search import portable
    from fmnist_search.builder import INPUT_SHAPE

    copy = portable.inference_copy(model, name)
    # A new graph over the copy's layers: clone_model keeps the compile config (the custom
    # loss), which plain Keras could not deserialize.
    copy = keras.Model(copy.input, copy.output, name=copy.name)
    if not tta:
        return copy
    inputs = keras.Input(INPUT_SHAPE, name="images")
    outputs = portable.with_tta(copy, True, copy.name)(inputs)
    return keras.Model(inputs, outputs, name=f"{copy.name}_tta")


def inference_for_run(model, metrics: dict[str, Any]):
    """What a run folder keeps as ``inference.keras``: an ensemble is already plain Keras
    with its TTA inside; any other run's model is made so, with the ``tta`` it was
    evaluated with."""
    if metrics.get("kind") == "ensemble":
        return model
    from fmnist_search import builder

    tta = bool(builder.resolve(metrics.get("values") or {}).get("tta"))
    return inference_model(model, tta)


def missing(fmt: str) -> list[str]:
    """The packages a conversion to ``fmt`` needs that are not installed."""
    return [m for m in NEEDS.get(fmt, ()) if importlib.util.find_spec(m) is None]


def default_path(name: str, fmt: str) -> Path:
    suffix = FORMATS[fmt][1]
    return Path(f"{name}{suffix}" if suffix else f"{name}_{fmt}")


def require(fmt: str) -> None:
    """A known format whose converter is installed, else one error saying what to install."""
    if fmt not in FORMATS:
        raise UserError(f"format {fmt!r}; valid: {', '.join(FORMATS)}.")
    lacking = missing(fmt)
    if lacking:
        raise UserError(f"Exporting to {fmt} needs {', '.join(lacking)}, which is not "
                        "installed: `pip install 'fmnist-search[export]'` (or "
                        f"`pip install {' '.join(lacking)}`).")


def write(model, path: str | os.PathLike, fmt: str) -> Path:
    """``model`` (an inference model) written as ``fmt`` to ``path`` (a folder for
    SavedModel)."""
    import numpy as np

    require(fmt)
    path = Path(path)
    suffix = FORMATS[fmt][1]
    if suffix and path.suffix != suffix:
        raise UserError(f"--out {path}: a {fmt} file's name must end in {suffix} (what its "
                        "runtimes expect), e.g. " + str(default_path("model1", fmt)) + ".")
    from fmnist_search import preflight

    keras_format = FORMATS[fmt][0]
    with preflight.writing(path, "--out"):
        path.parent.mkdir(parents=True, exist_ok=True)
        if keras_format is None:
            model.save(path)
        else:
            from fmnist_search.builder import INPUT_SHAPE

            model(np.zeros((1, *INPUT_SHAPE), np.float32))  # ONNX exports a model once called
            with warnings.catch_warnings():  # tf2onnx's numpy and TF Lite's deprecation notes
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                model.export(str(path), format=keras_format, verbose=False)
    return path


@dataclass
class Check:
    """An exported file run in its own runtime against the Keras model, on the same images."""

    images: int
    same_class: int
    max_abs_difference: float

    @property
    def agrees(self) -> bool:
        return self.same_class == self.images


def run_exported(path: str | os.PathLike, fmt: str, x: np.ndarray) -> np.ndarray:
    """Class probabilities of the exported file, computed by its own runtime: Keras for
    ``keras``, TensorFlow for SavedModel, onnxruntime for ONNX, the LiteRT interpreter."""
    import numpy as np

    x = np.asarray(x, dtype=np.float32)
    if fmt == "keras":
        import keras

        return np.asarray(keras.models.load_model(path, compile=False).predict(x, verbose=0))
    if fmt == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))  # kept: its variables live as long as it
        return np.concatenate([np.asarray(loaded.serve(tf.constant(x[i:i + 256])))
                               for i in range(0, len(x), 256)])
    if fmt == "onnx":
        if importlib.util.find_spec("onnxruntime") is None:
            raise UserError("Checking an ONNX file needs onnxruntime: `pip install "
                            "'fmnist-search[export]'`.")
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return np.concatenate([session.run(None, {name: x[i:i + 256]})[0]
                               for i in range(0, len(x), 256)])
    if fmt == "litert":
        return _run_litert(path, x)
    raise UserError(f"format {fmt!r}; valid: {', '.join(FORMATS)}.")


def _run_litert(path, x: np.ndarray) -> np.ndarray:
    import numpy as np

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": it still runs
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], [1, *x.shape[1:]])
    interpreter.allocate_tensors()
    probs = []
    for image in x:  # one at a time: the converted signature has a batch of 1 or None
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        probs.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(probs)


def check(path: str | os.PathLike, fmt: str, x: np.ndarray, expected: np.ndarray) -> Check:
    got = run_exported(path, fmt, x)
    return Check(len(x), int((got.argmax(1) == expected.argmax(1)).sum()),
                 float(abs(got - expected).max()))


@dataclass
class Source:
    """What is exported: a model, its name, whether it averages in the mirror, and images to
    check it on (the run's own test or validation images, when at hand)."""

    model: Any
    name: str
    tta: bool
    where: str


def from_run(run_dir: Path) -> Source:
    """A finished run (baseline, retrained trial, finalized model, ensemble): its inference
    model, opened from ``inference.keras`` where the run has one, else built from
    ``model.keras``."""
    import keras

    from fmnist_search import builder, portable, results, store

    metrics = results.load_run(run_dir)
    name = str(metrics.get("model") or run_dir.parent.name)
    if (run_dir / INFERENCE_FILE).is_file():
        model = keras.models.load_model(run_dir / INFERENCE_FILE, compile=False)
        return Source(model, name, False, str(run_dir))
    trained = portable.load_trained(run_dir / store.MODEL_FILE)
    if metrics.get("kind") == "ensemble":  # already plain Keras, TTA inside
        return Source(trained, name, False, str(run_dir))
    tta = bool(builder.resolve(metrics.get("values") or {}).get("tta"))
    return Source(inference_model(trained, tta, name), name, tta, str(run_dir))


def trial_model(root: Path, project: str, trial: str = "best") -> tuple[Any, dict[str, Any]]:
    """A search trial's Keras model (uncompiled) with the weights it was scored with: built
    from its values, loaded from Keras Tuner's checkpoint in the trial folder; and its row."""
    from fmnist_search import builder, results
    from fmnist_search.tuning import kt_compat

    run = results.load_project(root, project)
    row = results.find_trial(root, project, trial)
    checkpoint = kt_compat.trial_weights(row["path"])
    if checkpoint is None:
        raise UserError(f"Trial {row['trial']} of '{project}' has no weights checkpoint in "
                        f"{row['path']} (Keras Tuner keeps one per finished trial): run "
                        f"`fmnist-search retrain {project} --trial {row['trial']}` and use "
                        f"run_model('{project}-{row['trial']}').")
    net = builder.build_model(row["values"], len(run["data"]["classes"]), compile=False)
    net.load_weights(checkpoint)
    return net, row


def from_trial(root: Path, project: str, trial: str = "best") -> Source:
    """A search trial, as ``api.model`` builds it (its values, Keras Tuner's checkpoint of
    the weights it was scored with), as an inference model."""
    from fmnist_search import builder

    model, row = trial_model(root, project, trial)
    tta = bool(builder.resolve(row["values"]).get("tta"))
    name = f"{project}-{row['trial']}"
    return Source(inference_model(model, tta, name), name, tta, str(row["path"]))


def source(root: Path, name: str, trial: str | None = None) -> Source:
    """``name``: a project (its ``trial``, default the best, from the search's checkpoint),
    else what ``predict`` takes: a run directory, a baseline's name, ``PROJECT-TRIAL``
    (retrained) or ``PROJECT-ensemble``."""
    from fmnist_search import results, store

    if trial is not None or store.is_project(root / name):
        return from_trial(root, name, trial or "best")
    return from_run(results.find_run(root, name))


def check_images(root: Path, src: Source, count: int) -> tuple[np.ndarray | None, str]:
    """Up to ``count`` of the images the source was trained for (its test images, else its
    validation images), and what they are; (None, why) where its data is not at hand."""
    from fmnist_search import dataset, results, store

    where = Path(src.where)
    record = (store.read_project(where.parent) if (where.parent / store.RUN_JSON).is_file()
              else results.load_run(where))
    try:
        ds = dataset.prepare(dataset.DataSettings.from_record(record["data"]))
    except (UserError, KeyError) as exc:
        return None, f"its data could not be read ({exc})"
    x, what = (ds.x_test, "test") if len(ds.x_test) else (ds.x_val, "validation")
    return x[:count], f"{what} images"


@dataclass
class Exported:
    path: Path
    fmt: str
    name: str
    check: Check | None
    checked_on: str  # "test images", or why there was no check


def export_model(root: Path, name: str, fmt: str = "keras", out: str | os.PathLike | None = None,
                 trial: str | None = None, images: int = 1000) -> Exported:
    """Write ``name``'s inference model (``source``) as ``fmt`` to ``out`` (default
    ``default_path``), then run the file in its own runtime on ``images`` of its test images
    against the Keras model (0: no check)."""
    import numpy as np

    require(fmt)  # before anything loads
    src = source(root, name, trial)
    path = Path(out) if out is not None else default_path(src.name, fmt)
    write(src.model, path, fmt)
    if not images:
        return Exported(path, fmt, src.name, None, "not checked (no images asked for)")
    if fmt in RUNTIMES and importlib.util.find_spec(RUNTIMES[fmt]) is None:
        return Exported(path, fmt, src.name, None,
                        f"not checked: {RUNTIMES[fmt]} is not installed")
    x, what = check_images(root, src, images)
    if x is None:
        return Exported(path, fmt, src.name, None, f"not checked: {what}")
    expected = np.asarray(src.model.predict(x, batch_size=256, verbose=0))
    return Exported(path, fmt, src.name, check(path, fmt, x, expected), what)
