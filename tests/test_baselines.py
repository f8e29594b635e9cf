from __future__ import annotations

import pytest

from fmnist_search import baselines, builder, catalog, space
from fmnist_search.errors import UserError

NAMES = catalog.list_baselines()


def test_six_baselines():
    assert [f"model{i}" for i in range(1, 7)] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_baseline_values_lie_inside_their_space(name):
    """Keras Tuner accepts a Fixed value outside a declared range silently; we check it."""
    base = baselines.load(name)
    sp = space.load_named(base.space)
    assert space.values_outside(sp, base.values, base.outside) == []
    for key in base.outside:  # declared outside really is outside (or undeclared)
        entry = sp.entry(key)
        assert entry is None or not entry.contains(base.values[key])


@pytest.mark.parametrize("name", NAMES)
def test_baseline_pins_the_training_protocol(name):
    values = baselines.load(name).values
    for key in builder.PROTOCOL:
        assert key in values, f"{name} leaves {key} to defaults"


def test_report_protocol_for_cnn_models():
    for name in ("model1", "model2", "model3", "model4"):
        v = baselines.load(name).values
        assert (v["optimizer"], v["learning_rate"], v["lr_decay"], v["batch_size"],
                v["epochs"]) == ("adam", 0.001, 0.9, 128, 40)


def test_fixed_hyperparameters_drive_the_same_builder():
    base = baselines.load("model3")
    hp = base.hyperparameters()
    sp = space.load_named("cnn")
    values = sp.register(hp)  # the space's own registration returns the pinned values
    assert builder.short_name(values, 5) == builder.short_name(base.values, 5)


def test_unknown_baseline_lists_valid_names(capsys):
    from fmnist_search.cli import main

    assert main(["baseline", "nosuchmodel"]) == 2
    err = capsys.readouterr().err
    assert "nosuchmodel" in err and "model1" in err and "model6" in err


def test_broken_baseline_file(tmp_path):
    path = tmp_path / "modelx.toml"
    path.write_text('space = "cnn"\n[values]\nfilters_1 = "many"\n')
    with pytest.raises(UserError, match=r"\[values\] filters_1: 'many' must be a number"):
        baselines.load_file(path)


def test_describe_model4_total(capsys):
    from fmnist_search.cli import main

    assert main(["describe", "model4", "--num-classes", "5"]) == 0
    out = capsys.readouterr().out
    assert "886,533" in out and "256" in out
