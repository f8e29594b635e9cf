from __future__ import annotations

import keras_tuner as kt
import pytest

from fmnist_search import builder, catalog, space
from fmnist_search.errors import ArchitectureError, UserError

SHIPPED = catalog.list_spaces()


def test_shipped_spaces_exist():
    assert {"cnn", "resnet"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_default_point_builds(name):
    sp = space.load_named(name)
    model = builder.build_model(sp.default_values(), 10, compile=False)
    assert model.output.shape[-1] == 10


@pytest.mark.parametrize("name", SHIPPED)
def test_random_draws_all_build(name):
    """Keras Tuner's own sampling over the space: every drawn point is a buildable model."""
    sp = space.load_named(name)
    hp = kt.HyperParameters()
    sp.register(hp)
    oracle = kt.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=200,
                                           hyperparameters=hp, seed=0)
    drawn = []
    for i in range(60):
        response = oracle.populate_space(str(i))
        if response["status"] != "RUNNING":
            break
        drawn.append(response["values"])
    assert len(drawn) >= 50
    for values in drawn:
        builder.plan_layers(values)  # raises ArchitectureError if impossible
    assert len({builder.short_name(v) for v in drawn}) > 40  # the draws really vary
    for values in drawn[:6]:
        builder.build_model(values, 10, compile=False)


def test_stage_entries_are_conditional_on_stages():
    sp = space.load_named("cnn")
    entry = sp.entry("filters_3")
    assert entry.when == (("stages", (3, 4)),)
    assert sp.entry("filters_1").when == ()
    assert sp.entry("pool_1").type == "fixed"  # [hp.pool_1] overrides [stage.pool]


def test_register_returns_only_active_values():
    sp = space.load_named("cnn")
    hp = kt.HyperParameters()
    hp.Fixed("stages", 2)
    values = sp.register(hp)
    assert "filters_2" in values and "filters_3" not in values


GOOD = """
[hp.stages]
type = "int"
min = 1
max = 2

[hp.dense_layers]
type = "int"
min = 1
max = 2

[hp.dense_units_2]
type = "int"
min = 32
max = 64
when = { dense_layers = [2] }
"""


def _write(tmp_path, text):
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


def test_user_space_file_loads(tmp_path):
    sp = space.load_space(_write(tmp_path, GOOD))
    assert [e.name for e in sp.entries] == ["stages", "dense_layers", "dense_units_2"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("colour = 1\n" + GOOD, r"unknown top-level key\(s\) colour"),
        (GOOD + '[hp.filterz_1]\ntype = "int"\nmin = 1\nmax = 2\n',
         r"\[hp.filterz_1\] names an unknown hyperparameter"),
        (GOOD + '[hp.l2]\ntype = "float"\nmin = 0.1\nmax = 0.01\n',
         r"\[hp.l2\] has an inverted range"),
        (GOOD + '[hp.l2]\ntype = "float"\nmin = 0.1\nmax = 0.1\n', r"\[hp.l2\] has an empty range"),
        (GOOD + '[hp.l2]\ntype = "float"\nmin = "a"\nmax = 0.1\n', r"\[hp.l2\] min = 'a' must be"),
        (GOOD + '[hp.head]\ntype = "choice"\nvalues = ["flatten", "pyramid"]\n',
         r"\[hp.head\]: 'pyramid' is not a valid choice"),
        (GOOD + '[hp.head]\ntype = "choice"\nvalues = []\n', r"\[hp.head\] values must be a non"),
        (GOOD + '[hp.l2]\ntype = "real"\n', r"\[hp.l2\] type = 'real'"),
        (GOOD + '[hp.l2]\ntype = "float"\nmin = 0.0\nmax = 0.1\nstepp = 2\n',
         r"\[hp.l2\] has unknown key\(s\) stepp"),
        (GOOD + '[hp.l2]\ntype = "fixed"\nvalue = 0.1\nwhen = { res_blocks = [1] }\n',
         r"\[hp.l2\] when refers to 'res_blocks'"),
        (GOOD + '[hp.dense_units_1]\ntype = "int"\nmin = 8\nmax = 16\n'
         'when = { dense_layers = [3] }\n', r"when dense_layers = \[3\]"),
        (GOOD + '[hp.dropout_1]\ntype = "float"\nmin = 0.0\nmax = 1.5\n',
         r"\[hp.dropout_1\]: 1.5 is outside what the builder supports"),
        (GOOD.replace("max = 2\n\n[hp.dense_layers]", "max = 4\n\n[hp.dense_layers]")
         + '[hp.final_pool]\ntype = "boolean"\n', r"can draw 5 2x2 poolings"),
        ("[hp.stages\n", "is not valid TOML"),
        (GOOD + '[hp.schedule]\ntype = "choice"\nvalues = ["cosine", "linear"]\n',
         r"\[hp.schedule\]: 'linear' is not a valid choice"),
        (GOOD + '[hp.optimizer]\ntype = "choice"\nvalues = ["adamw", "lion"]\n',
         r"\[hp.optimizer\]: 'lion' is not a valid choice"),
        (GOOD + '[hp.aug_translate]\ntype = "int"\nmin = 0\nmax = 9\n',
         r"\[hp.aug_translate\]: 9 is outside what the builder supports"),
        (GOOD + '[hp.aug_erase]\ntype = "float"\nmin = 0.0\nmax = 1.5\n',
         r"\[hp.aug_erase\]: 1.5 is outside"),
        (GOOD + '[hp.aug_erase_size]\ntype = "fixed"\nvalue = 30\n',
         r"\[hp.aug_erase_size\]: 30 is outside"),
        (GOOD + '[hp.label_smoothing]\ntype = "float"\nmin = 0.0\nmax = 0.9\n',
         r"\[hp.label_smoothing\]: 0.9 is outside"),
        (GOOD + '[hp.aug_flip]\ntype = "choice"\nvalues = ["yes"]\n',
         r"\[hp.aug_flip\]: 'yes' must be true or false"),
        (GOOD + '[hp.warmup_epochs]\ntype = "float"\nmin = 0.5\nmax = 2.0\n',
         r"\[hp.warmup_epochs\]: 0.5 must be an integer"),
        (GOOD + '[hp.res_stages]\ntype = "int"\nmin = 0\nmax = 5\n',
         r"\[hp.res_stages\]: 5 is outside"),
        (GOOD + '[hp.weight_decay]\ntype = "float"\nmin = 0.0\nmax = 1e9\n',
         r"\[hp.weight_decay\]: 1000000000.0 is outside"),
        (GOOD + '[hp.momentum]\ntype = "fixed"\nvalue = 1.0\n', r"\[hp.momentum\]: 1.0 is outside"),
    ],
)
def test_broken_space_names_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(UserError, match=message) as info:
        space.load_space(path)
    assert str(path) in str(info.value)


def test_cli_describe_broken_space_exits_2(tmp_path, capsys):
    from fmnist_search.cli import main

    path = _write(tmp_path, GOOD + '[hp.head]\ntype = "choice"\nvalues = ["pyramid"]\n')
    assert main(["describe", str(path)]) == 2
    err = capsys.readouterr().err
    assert "space.toml" in err and "[hp.head]" in err and "Traceback" not in err


@pytest.mark.parametrize("name", SHIPPED)
def test_cli_describe_space_default_point(name, capsys):
    from fmnist_search.cli import main

    assert main(["describe", name]) == 0
    assert "Total params" in capsys.readouterr().out


def test_drawn_impossible_point_is_rejected_clearly():
    with pytest.raises(ArchitectureError, match="at most 4 pools"):
        builder.plan_layers({"stages": 4, "pool_1": True, "pool_2": True, "pool_3": True,
                      "pool_4": True, "final_pool": True})


def test_range_membership_is_arithmetic_not_a_list():
    """A billion-wide range answers membership at once (it is never listed)."""
    entry = space.Entry("filters_1", "int", {"min": 8, "max": 10**9, "step": 8})
    assert entry.possible() is None
    assert entry.contains(16) and entry.contains(16.0) and entry.contains(999_999_992)
    assert not entry.contains(12) and not entry.contains(10**9 + 8) and not entry.contains(True)
    assert entry.last() == 10**9
    stages = space.Entry("stages", "int", {"min": 1, "max": 4})
    assert stages.small_int_values() == [1, 2, 3, 4]
    log_stages = space.Entry("stages", "int", {"min": 1, "max": 4, "sampling": "log"})
    assert log_stages.small_int_values() == [1, 2, 3, 4]


def test_int_stages_with_log_sampling_loads(tmp_path):
    """It used to find no stage counts at all (min() of an empty list)."""
    path = _write(tmp_path, '[hp.stages]\ntype = "int"\nmin = 1\nmax = 3\nsampling = "log"\n'
                  '[stage.filters]\ntype = "int"\nmin = 8\nmax = 32\nstep = 8\n')
    sp = space.load_space(path)
    assert sp.entry("filters_3").when == (("stages", (3,)),)


NEW_VOCABULARY = GOOD + """
[hp.aug_translate]
type = "int"
min = 0
max = 3
[hp.aug_flip]
type = "boolean"
[hp.aug_erase]
type = "float"
min = 0.0
max = 0.5
step = 0.25
[hp.aug_erase_size]
type = "choice"
values = [8, 12]
[hp.optimizer]
type = "choice"
values = ["adam", "adamw", "sgd"]
[hp.weight_decay]
type = "float"
min = 1e-5
max = 1e-3
sampling = "log"
when = { optimizer = ["adamw", "sgd"] }
[hp.nesterov]
type = "boolean"
when = { optimizer = ["sgd"] }
[hp.schedule]
type = "choice"
values = ["exponential", "cosine", "onecycle"]
[hp.warmup_epochs]
type = "int"
min = 0
max = 3
when = { schedule = ["cosine"] }
[hp.label_smoothing]
type = "choice"
values = [0.0, 0.1]
[hp.tta]
type = "boolean"
"""


def test_space_can_search_the_new_vocabulary(tmp_path):
    sp = space.load_space(_write(tmp_path, NEW_VOCABULARY))
    hp = kt.HyperParameters()
    sp.register(hp)
    oracle = kt.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=40,
                                           hyperparameters=hp, seed=0)
    names = set()
    for i in range(30):
        values = oracle.populate_space(str(i))["values"]
        names.add(builder.short_name(values))
    assert any("aug:" in n for n in names) and any("cos" in n for n in names)
    assert any("1cycle" in n for n in names) and any("adamw" in n for n in names)


def test_resnet_space_expresses_resnet20():
    """The ResNet-20-like point lies inside the resnet space, and is its default point."""
    sp = space.load_named("resnet")
    point = {"stages": 1, "filters_1": 16, "kernel_1": 3, "convs_1": 1, "pool_1": False,
             "dropout_1": 0.0, "res_stages": 3, "res_width": 16, "res_depth": 3, "head": "gap",
             "dense_layers": 0, "head_dropout": 0.0}
    assert space.values_outside(sp, point) == []
    default = sp.default_values()
    assert {k: default[k] for k in point} == point
    assert "B16x3-B32x3/2-B64x3/2" in builder.short_name(default)


def test_cli_describe_bad_new_knob_exits_2(tmp_path, capsys):
    from fmnist_search.cli import main

    path = _write(tmp_path, GOOD + '[hp.schedule]\ntype = "fixed"\nvalue = "step"\n')
    assert main(["describe", str(path)]) == 2
    err = capsys.readouterr().err
    assert "[hp.schedule]" in err and "'step' is not a valid choice" in err
