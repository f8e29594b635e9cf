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
        builder.plan_layers(values)


def test_unknown_hyperparameter_is_rejected():
    with pytest.raises(ArchitectureError, match="Unknown hyperparameter.*filterz_1"):
        builder.plan_layers({"filterz_1": 32})


def test_residual_projection_and_batchnorm_build():
    values = {"stages": 1, "filters_1": 32, "pool_1": False, "res_blocks": 2, "res_convs": 2,
              "res_shortcut": "projection", "res_batchnorm": True, "final_pool": True,
              "head": "gap", "dense_layers": 0}
    model = builder.build_model(values, 10, compile=False)
    names = [type(layer).__name__ for layer in model.layers]
    assert names.count("Add") == 2 and names.count("BatchNormalization") == 4
    assert model.output.shape[-1] == 10


def test_dropout_after_conv_placement():
    steps = builder.plan_layers({"stages": 1, "convs_1": 2, "dropout_1": 0.3, "dropout_place": "conv"})
    ops = [s.op for s in steps]
    assert ops[:5] == ["conv", "drop", "conv", "drop", "pool"]


# --------------------------------------------------------------------------- the new vocabulary

RESNET20 = {"stages": 1, "filters_1": 16, "pool_1": False, "res_stages": 3, "res_width": 16,
            "res_depth": 3, "head": "gap", "dense_layers": 0}
NEW_KNOBS = {"aug_translate": 0, "aug_flip": False, "aug_erase": 0.0, "aug_erase_size": 10,
             "res_stages": 0, "res_width": 16, "res_depth": 3, "weight_decay": 0.0,
             "momentum": 0.9, "nesterov": False, "schedule": "exponential", "warmup_epochs": 0,
             "label_smoothing": 0.0, "tta": False}


def test_new_knobs_default_to_the_report():
    assert {k: builder.DOMAINS[k].default for k in NEW_KNOBS} == NEW_KNOBS


@pytest.mark.parametrize("name", ["model1", "model4", "model6"])
def test_new_knobs_at_defaults_change_nothing(name):
    """Spelling the defaults out gives the same plan, name, loss and optimizer as leaving them."""
    values = baselines.load(name).values
    spelled = {**values, **NEW_KNOBS}
    assert builder.plan_layers(spelled, 5) == builder.plan_layers(values, 5)
    assert builder.short_name(spelled, 5) == builder.short_name(values, 5)
    model = builder.build_model(spelled, 5)
    assert model.loss == "sparse_categorical_crossentropy"
    assert type(model.optimizer).__name__ == "Adam"
    assert not any("Random" in type(layer).__name__ for layer in model.layers)


def test_resnet20_like_point():
    model = builder.build_model(RESNET20, 10, compile=False)
    total = sum(training.count_params(model))
    assert 200_000 <= total <= 1_000_000 and total == 273_386  # ResNet-20 has ~0.27M
    names = [type(layer).__name__ for layer in model.layers]
    assert names.count("Add") == 9 and names.count("GlobalAveragePooling2D") == 1
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.strides for c in convs].count((2, 2)) == 4  # two stages: 3x3 and 1x1 projection
    assert [c.kernel_size for c in convs].count((1, 1)) == 2  # projections only where needed
    shapes = {tuple(layer.output.shape[1:]) for layer in model.layers if type(layer).__name__ == "Add"}
    assert shapes == {(28, 28, 16), (14, 14, 32), (7, 7, 64)}
    assert builder.short_name(RESNET20) == (
        "C16 | B16x3-B32x3/2-B64x3/2-BN-relu | GAP | adam 1e-3 x.9 b128")


def test_res_depth_and_width_change_the_model():
    base = sum(training.count_params(builder.build_model(RESNET20, 10, compile=False)))
    deeper = builder.build_model({**RESNET20, "res_depth": 4}, 10, compile=False)
    wider = builder.build_model({**RESNET20, "res_width": 32}, 10, compile=False)
    assert base < sum(training.count_params(deeper)) < sum(training.count_params(wider))


def test_strided_stages_count_in_the_spatial_check():
    """Four stride-2 halvings and stem pools: 28 -> 14 -> 7 -> 4 -> 2, then two pools fail."""
    values = {**RESNET20, "res_stages": 4, "stages": 1, "pool_1": True, "final_pool": True}
    builder.plan_layers(values)  # 28 -pool-> 14 -> 14 -> 7 -> 4 -> 2 -pool-> 1
    with pytest.raises(ArchitectureError, match="at most 4 pools fit"):
        builder.plan_layers({**values, "stages": 2, "pool_2": True})


def test_augmentation_layers_sit_at_the_input_and_add_no_parameters():
    values = {"stages": 1, "filters_1": 8, "aug_translate": 2, "aug_flip": True, "aug_erase": 0.5}
    model = builder.build_model(values, 10, compile=False)
    names = [type(layer).__name__ for layer in model.layers]
    assert names[:5] == ["InputLayer", "RandomShift", "RandomFlip", "RandomErase", "Conv2D"]
    plain = builder.build_model({"stages": 1, "filters_1": 8}, 10, compile=False)
    assert training.count_params(model) == training.count_params(plain)


def test_augmentation_changes_training_inputs_only():
    """No dropout or batch norm: training=True differs from inference only by augmentation."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1), "float32")
    plain = {"stages": 1, "filters_1": 8, "dense_layers": 0}
    for extra in ({"aug_translate": 2}, {"aug_flip": True}, {"aug_erase": 1.0}):
        model = builder.build_model({**plain, **extra}, 10, compile=False)
        infer = np.asarray(model(x, training=False))
        assert np.array_equal(infer, np.asarray(model(x, training=False)))
        assert not np.allclose(infer, np.asarray(model(x, training=True))), extra
    model = builder.build_model(plain, 10, compile=False)
    assert np.array_equal(np.asarray(model(x, training=True)), np.asarray(model(x)))


def test_optimizers_and_their_knobs():
    import keras

    def opt(**values):
        return builder.make_optimizer(builder.resolve(values))

    adamw = opt(optimizer="adamw", weight_decay=5e-4, learning_rate=3e-3)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 5e-4
    sgd = opt(optimizer="sgd", momentum=0.95, nesterov=True, weight_decay=1e-4)
    assert isinstance(sgd, keras.optimizers.SGD)
    assert (sgd.momentum, sgd.nesterov, sgd.weight_decay) == (0.95, True, 1e-4)
    plain_sgd = opt(optimizer="sgd")  # today's SGD: momentum 0.9, no Nesterov, no decay
    assert (plain_sgd.momentum, plain_sgd.nesterov, plain_sgd.weight_decay) == (0.9, False, None)
    assert type(opt()).__name__ == "Adam" and opt().weight_decay is None


def test_ema_replaces_the_weights_with_their_average_when_training_ends():
    """A very slow average (momentum 0.99999) stays next to the initial weights: with it the
    trained model ends where it started; without it the same steps move it away."""
    import keras
    import numpy as np

    x = np.random.default_rng(0).normal(size=(256, 28, 28, 1)).astype("float32")
    y = np.arange(256) % 10
    moved = {}
    for ema in (0.0, 0.99999):
        keras.utils.set_random_seed(1)
        values = builder.resolve({"stages": 1, "filters_1": 4, "learning_rate": 0.05,
                                  "ema": ema})
        model = builder.build_model(values, 10)
        assert bool(getattr(model.optimizer, "use_ema", False)) == bool(ema)
        before = [w.copy() for w in model.get_weights()]
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        after = model.get_weights()
        moved[ema] = max(float(np.abs(a - b).max()) for a, b in zip(after, before, strict=True))
    assert moved[0.0] > 0.05 and moved[0.99999] < 0.2 * moved[0.0], moved


def test_label_smoothing_changes_the_loss():
    from fmnist_search.losses import SparseSmoothedCrossentropy

    model = builder.build_model({"stages": 1, "filters_1": 4, "label_smoothing": 0.1}, 10)
    assert isinstance(model.loss, SparseSmoothedCrossentropy)
    assert model.loss.label_smoothing == 0.1


@pytest.mark.parametrize("extra, token", [
    ({"aug_translate": 2, "aug_flip": True, "aug_erase": 0.5}, "aug:t2+f+e.5 | C32-P"),
    ({"aug_flip": True}, "aug:f | C32-P"),
    ({"aug_erase": 0.25, "aug_erase_size": 8}, "aug:e.25s8 | C32-P"),
    ({"optimizer": "adamw", "weight_decay": 5e-4, "learning_rate": 3e-3, "schedule": "cosine",
      "warmup_epochs": 2}, "| adamw 3e-3 wd5e-4 cos w2 b128"),
    ({"optimizer": "sgd", "nesterov": True, "momentum": 0.95, "learning_rate": 0.1,
      "schedule": "onecycle"}, "| sgd m.95 nesterov .1 1cycle b128"),
    ({"optimizer": "adam", "weight_decay": 5e-4, "schedule": "cosine"}, "| adam 1e-3 cos b128"),
    ({"label_smoothing": 0.1, "tta": True}, "x.9 b128 ls.1 tta"),
    ({"ema": 0.999}, "x.9 b128 ema.999"),
])
def test_short_name_shows_knobs_that_differ(extra, token):
    name = builder.short_name({"stages": 2, **extra})
    assert token in name, name


def test_the_policy_is_the_models_and_is_not_left_behind():
    """The builder applies a dtype policy to its model only: Keras' global policy is what it
    was before (a caller's own models keep their precision)."""
    import keras

    before = keras.mixed_precision.global_policy().name
    values = dict(baselines.load("model1").values)
    model = builder.build_model(values, 10, policy="mixed_bfloat16")
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert model.layers[1].compute_dtype == "bfloat16"
    assert keras.mixed_precision.global_policy().name == before
    assert builder.build_model(values, 10).dtype_policy.name == before


def test_same_model_ignores_spelled_out_defaults_but_not_a_changed_value():
    from fmnist_search.builder import DOMAINS, resolve, same_model

    values = {"filters_1": 32, "aug_flip": True}
    assert same_model(values, resolve(values))  # the same model, written out in full
    assert same_model({**values, "tuner/epochs": 3}, values)  # Keras Tuner's bookkeeping
    assert not same_model(values, {**values, "filters_1": 64})
    assert not same_model(values, {**values, "aug_erase": 0.5})
    # A name the builder does not know (a record from another version) is a different model,
    # never an exception inside finalize's reuse check.
    assert not same_model(values, {**values, "not_a_hyperparameter": 1})
    assert "aug_erase" in DOMAINS
