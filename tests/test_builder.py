"""Golden tests: the pinned baselines reproduce the report's layer tables and totals."""

from __future__ import annotations

import pytest

from fmnist_search import baselines, builder, catalog, training
from fmnist_search.errors import ArchitectureError

# Transcribed from the report's model summaries (5 classes): (type, output shape, params).
# Activation rows are left out: the report's model 6 writes its ReLUs as separate layers where
# our convolutions fuse them; they hold no parameters and do not change shapes.
REPORT_TABLES = {
    "model1": [("Conv2D", (28, 28, 32), 320), ("MaxPooling2D", (14, 14, 32), 0),
               ("Conv2D", (14, 14, 64), 18496), ("MaxPooling2D", (7, 7, 64), 0),
               ("Conv2D", (7, 7, 64), 36928), ("Flatten", (3136,), 0),
               ("Dense", (64,), 200768), ("Dense", (5,), 325)],
    "model2": [("Conv2D", (28, 28, 32), 320), ("MaxPooling2D", (14, 14, 32), 0),
               ("Conv2D", (14, 14, 64), 18496), ("MaxPooling2D", (7, 7, 64), 0),
               ("Dropout", (7, 7, 64), 0), ("Conv2D", (7, 7, 64), 36928),
               ("Dropout", (7, 7, 64), 0), ("Flatten", (3136,), 0),
               ("Dense", (64,), 200768), ("Dense", (5,), 325)],
    "model3": [("Conv2D", (28, 28, 64), 640), ("MaxPooling2D", (14, 14, 64), 0),
               ("Dropout", (14, 14, 64), 0), ("Conv2D", (14, 14, 128), 73856),
               ("MaxPooling2D", (7, 7, 128), 0), ("Dropout", (7, 7, 128), 0),
               ("Flatten", (6272,), 0), ("Dense", (128,), 802944), ("Dense", (64,), 8256),
               ("Dense", (5,), 325)],
    "model4": [("Conv2D", (28, 28, 64), 640), ("MaxPooling2D", (14, 14, 64), 0),
               ("Dropout", (14, 14, 64), 0), ("Conv2D", (14, 14, 128), 73856),
               ("BatchNormalization", (14, 14, 128), 512), ("MaxPooling2D", (7, 7, 128), 0),
               ("Dropout", (7, 7, 128), 0), ("Flatten", (6272,), 0),
               ("Dense", (128,), 802944), ("Dense", (64,), 8256), ("Dense", (5,), 325)],
    "model5": [("Functional", (2048,), 23587712), ("Dense", (5,), 10245)],
    "model6": [("Conv2D", (28, 28, 64), 640), ("Conv2D", (28, 28, 64), 36928),
               ("Add", (28, 28, 64), 0), ("MaxPooling2D", (14, 14, 64), 0),
               ("Flatten", (12544,), 0), ("Dropout", (12544,), 0), ("Dense", (5,), 62725)],
}
REPORT_TOTALS = {  # total, non-trainable
    "model1": (256837, 0), "model2": (256837, 0), "model3": (886021, 0),
    "model4": (886533, 256), "model5": (23597957, 53120), "model6": (100293, 0),
}
SKIP = ("InputLayer", "Activation", "Concatenate")  # Concatenate: our grey -> RGB stacking


def _build(name: str, num_classes: int):
    values = dict(baselines.load(name).values)
    values["weights"] = "none"  # same shapes and counts as ImageNet weights, no download
    return builder.build_model(values, num_classes, compile=False)


@pytest.mark.parametrize("name", catalog.list_baselines())
def test_baseline_matches_report_table(name):
    """Over the catalog itself: a new baseline is tested the moment it is added."""
    assert name in REPORT_TABLES, f"transcribe {name}'s layer table from the report here"
    model = _build(name, 5)
    rows = [(type(layer).__name__, tuple(layer.output.shape[1:]), layer.count_params())
            for layer in model.layers if type(layer).__name__ not in SKIP]
    assert rows == REPORT_TABLES[name]
    trainable, frozen = training.count_params(model)
    assert (trainable + frozen, frozen) == REPORT_TOTALS[name]
    report = baselines.load(name).report  # what the baseline file itself claims
    assert (report["params"], report.get("non_trainable_params", 0)) == REPORT_TOTALS[name]


def test_model1_with_ten_classes():
    assert sum(training.count_params(_build("model1", 10))) == 257162


def test_short_name_of_model4():
    assert builder.short_name(baselines.load("model4").values, 5) == (
        "C64-P-D.25 | C128-BN-P-D.25 | F | D128-D64 | adam 1e-3 x.9 b128")


def test_too_many_pools_is_rejected_with_advice():
    values = {"stages": 4, "final_pool": True}
    with pytest.raises(ArchitectureError, match="at most 4 pools fit"):
        builder.plan(values)


def test_unknown_hyperparameter_is_rejected():
    with pytest.raises(ArchitectureError, match="Unknown hyperparameter.*filterz_1"):
        builder.plan({"filterz_1": 32})


def test_residual_projection_and_batchnorm_build():
    values = {"stages": 1, "filters_1": 32, "pool_1": False, "res_blocks": 2, "res_convs": 2,
              "res_shortcut": "projection", "res_batchnorm": True, "final_pool": True,
              "head": "gap", "dense_layers": 0}
    model = builder.build_model(values, 10, compile=False)
    names = [type(layer).__name__ for layer in model.layers]
    assert names.count("Add") == 2 and names.count("BatchNormalization") == 4
    assert model.output.shape[-1] == 10


def test_dropout_after_conv_placement():
    steps = builder.plan({"stages": 1, "convs_1": 2, "dropout_1": 0.3, "dropout_place": "conv"})
    ops = [s.op for s in steps]
    assert ops[:5] == ["conv", "drop", "conv", "drop", "pool"]
