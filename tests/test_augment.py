"""augment.py and losses.py: what the augmentation layers do, and that they save and load."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def images(rng) -> np.ndarray:
    return rng.random((64, 28, 28, 1), "float32")


def test_shift_is_a_per_image_pad_and_crop(images):
    from fmnist_search.augment import RandomShift

    out = np.asarray(RandomShift(2, seed=1)(images, training=True))
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    offsets = []
    for i in range(len(images)):
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if np.array_equal(padded[i, dy:dy + 28, dx:dx + 28], out[i])]
        assert len(hits) == 1  # exactly one crop of the padded image, pixel for pixel
        offsets += hits
    assert len(set(offsets)) > 10  # drawn per image, not once per batch


def test_erase_blanks_one_square_per_chosen_image():
    from fmnist_search.augment import RandomErase

    ones = np.ones((200, 28, 28, 1), "float32")
    out = np.asarray(RandomErase(0.5, 10, seed=1)(ones, training=True))[..., 0]
    erased = (out == 0).reshape(200, -1).sum(1)
    assert 60 < np.count_nonzero(erased) < 140  # about half the images
    for i in np.flatnonzero(erased):
        rows, cols = np.nonzero(out[i] == 0)
        height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert height * width == erased[i] and height <= 10 and width <= 10  # one rectangle
    assert np.array_equal(np.asarray(RandomErase(0.0, 10)(ones, training=True)), ones)
    every = np.asarray(RandomErase(1.0, 10)(ones, training=True))
    assert (every.reshape(200, -1).min(1) == 0).all()


@pytest.mark.parametrize("layer", ["shift", "erase"])
def test_inference_is_the_identity(images, layer):
    from fmnist_search.augment import RandomErase, RandomShift

    aug = RandomShift(3) if layer == "shift" else RandomErase(1.0, 12)
    assert np.array_equal(np.asarray(aug(images, training=False)), images)
    assert np.array_equal(np.asarray(aug(images)), images)


def test_layers_keep_bfloat16():
    import keras

    from fmnist_search import builder

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = builder.build_model({"stages": 1, "filters_1": 4, "aug_translate": 2,
                                     "aug_flip": True, "aug_erase": 0.5}, 10)
        for layer in model.layers[1:4]:
            assert layer.compute_dtype == "bfloat16"
        x = np.random.default_rng(0).random((32, 28, 28, 1), "float32")
        model.fit(x, np.arange(32) % 10, epochs=1, batch_size=16, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_saved_model_with_augmentation_and_smoothing_loads(tmp_path, images):
    import keras

    from fmnist_search import builder

    values = {"stages": 1, "filters_1": 4, "aug_translate": 2, "aug_flip": True,
              "aug_erase": 0.5, "label_smoothing": 0.1}
    model = builder.build_model(values, 10)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert [type(la).__name__ for la in loaded.layers][1:4] == [
        "RandomShift", "RandomFlip", "RandomErase"]
    assert loaded.loss.label_smoothing == 0.1
    np.testing.assert_array_equal(loaded.predict(images, verbose=0),
                                  model.predict(images, verbose=0))


def test_smoothed_loss_matches_the_formula():
    import keras

    from fmnist_search.losses import SparseSmoothedCrossentropy

    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "float32")
    labels = np.array([0, 2])
    plain = keras.losses.SparseCategoricalCrossentropy()(labels, probs)
    assert float(SparseSmoothedCrossentropy(0.0)(labels, probs)) == pytest.approx(float(plain))
    target = np.full((2, 3), 0.1 / 3) + 0.9 * np.eye(3)[labels]
    expected = np.mean(-(target * np.log(probs)).sum(1))
    assert float(SparseSmoothedCrossentropy(0.1)(labels, probs)) == pytest.approx(expected,
                                                                                   rel=1e-5)
