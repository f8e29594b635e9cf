from __future__ import annotations

from pathlib import Path

import pytest

from fmnist_search import catalog, presets
from fmnist_search.errors import UserError


@pytest.mark.parametrize("name", catalog.list_presets())
def test_shipped_presets_load(name):
    preset = presets.load(name)
    assert preset.tuner in presets.TUNERS and preset.trials >= 1


def test_bohb_settings_default_to_the_papers_and_are_read_from_the_file(tmp_path):
    assert presets.Preset().bohb == presets.BohbSettings(1 / 3, 0, 15.0, 64, 3.0, 1e-3)
    path = tmp_path / "b.toml"
    path.write_text('tuner = "bohb"\nepochs = 9\n[bohb]\nrandom_fraction = 0.5\n'
                    "min_points_in_model = 4\n")
    preset = presets.load(str(path))
    assert preset.tuner == "bohb"
    assert (preset.bohb.random_fraction, preset.bohb.min_points_in_model) == (0.5, 4)
    assert preset.bohb.num_samples == 64  # the rest stay the paper's
    assert presets.from_dict(preset.as_dict()) == preset  # as run.json keeps it


def test_report_preset_pins_the_report_protocol():
    fixed = presets.load("report").fixed
    assert fixed == {"optimizer": "adam", "learning_rate": 0.001, "beta_1": 0.9,
                     "beta_2": 0.999, "lr_decay": 0.9, "batch_size": 128}
    assert presets.load("report").epochs == 40


def test_command_line_overrides_win():
    preset = presets.load("quick").with_overrides(tuner="random", epochs=None, trials=4,
                                                   fixed={"batch_size": 64})
    assert (preset.tuner, preset.epochs, preset.trials) == ("random", 3, 4)
    assert preset.fixed == {"bn_momentum": 0.9, "batch_size": 64, "learning_rate": 0.001,
                            "lr_decay": 0.9, "head": "flatten"}  # merged, not replaced


@pytest.mark.parametrize(
    "text, message",
    [
        ('tuner = "grid"\n', "tuner = 'grid'"),
        ("trials = 0\n", "must be at least 1"),
        ('epochs = "ten"\n', "epochs = 'ten' must be a number"),
        ("speed = 3\n", r"unknown key\(s\) speed"),
        ("[fixed]\nlearning_rate = 5.0\n", r"\[fixed\] learning_rate: 5.0 is outside"),
        ("[fixed]\nwarp = 1\n", r"\[fixed\] warp: 'warp' is not a hyperparameter"),
        ("subset = 1.5\n", "subset 1.5 must be a fraction"),
        ('[bohb]\nrandom_fraction = "a third"\n',
         r"\[bohb\] random_fraction = 'a third' is not valid: .* a fraction in \[0, 1\]"),
        ("[bohb]\nnum_samples = 0\n", r"\[bohb\] num_samples = 0 .* from 1 to 4096"),
        ("[bohb]\nnum_samples = 10000000\n", r"num_samples = 10000000 .* from 1 to 4096"),
        ("[bohb]\nbandwidth_factor = 1e308\n", r"bandwidth_factor = 1e\+308 .* at most 1000"),
        ("max_params = 100000000000\n", r"max_params 100000000000 must be at most"),
        ("patience = 1001\n", r"patience 1001 must be at most 1,000"),
        ("[bohb]\nmin_points_in_model = 2.5\n", r"min_points_in_model = 2.5 .* whole number"),
        ("[bohb]\ntop_n_percent = 100\n", r"top_n_percent = 100 .* \(0, 100\)"),
        ("[bohb]\nbandwidth = 3\n", r"\[bohb\] bandwidth is not a BOHB setting; .* "
                                     "bandwidth_factor"),
        ("bohb = 3\n", r"must be a \[bohb\] table"),
    ],
)
def test_bad_preset_names_file_and_key(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        presets.load(str(path))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--space", "vgg"], "Valid names: cnn, resnet"),
        (["run", "--search", "fast"], "Valid names: best, pareto, quick, report, standard"),
        (["run", "--trials", "0"], "--trials 0 must be a positive"),
        (["run", "--max-time", "soon"], "--max-time 'soon'"),
        (["run", "--classes", "3"], "--classes '3'"),
        (["leaderboard", "--sort", "colour", "--results-dir", "/nonexistent"],
         "--sort: invalid choice: 'colour'"),
    ],
)
def test_cli_bad_input_exits_2_with_one_paragraph(argv, message, capsys):
    from fmnist_search.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err


def test_best_preset_is_budget_aware():
    best = presets.load("best")
    assert best.tuner == "hyperband" and best.subset >= 0.5 and best.prune_after >= 1
    assert best.max_params == 1_000_000 and best.finalize_top >= 1
    assert best.final_baselines == ("model3", "model2") and best.final["schedule"] == "cosine"
    assert best.ensemble_size == 5 and best.finalize_top == 3
    assert best.start_from_default and best.iterations * 20 >= best.trials  # brackets last


def test_a_preset_survives_run_json():
    from dataclasses import asdict

    best = presets.load("best")
    assert asdict(presets.from_dict(best.as_dict())) == asdict(best)


@pytest.mark.parametrize("text, named", [
    ("finalize_topp = 3", "finalize_topp"),
    ("max_params = 'many'", "max_params"),
    ("prune_after = -1", "prune_after"),
    ("final_baselines = ['model99']", "model99"),
    ("final_baselines_epochs = 1", "final_baselines_epochs"),
    ("start_from_default = 'yes'", "start_from_default"),
    ("min_search_share = 1.0", "min_search_share"),
    ("min_search_share = 'half'", "min_search_share"),
    ("[final]\nschedule = 'linear'", "schedule"),
    ("[final]\nwidth = 3", "width"),
    ("[final]\nema = 1.0", r"\[final\] ema: 1.0 is outside"),  # a momentum of 1 never moves
    ("[final]\nema = 'yes'", "ema"),
])
def test_bad_budget_keys_are_refused_naming_them(tmp_path, text, named):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(UserError, match=named):
        presets.load(str(path))


def test_bad_preset_key_is_exit_2_naming_the_key(tmp_path, capsys):
    from fmnist_search.cli import main

    path = tmp_path / "bad.toml"
    path.write_text("max_paramz = 10\n")
    assert main(["run", "--search", str(path), "--results-dir", str(tmp_path / "r")]) == 2
    assert "max_paramz" in capsys.readouterr().err


@pytest.mark.parametrize("value", [-1, 51, 2.5, True])
def test_ensemble_size_out_of_range_is_refused_with_the_key(tmp_path, value):
    path = tmp_path / "p.toml"
    path.write_text(f"ensemble_size = {str(value).lower()}\n")
    with pytest.raises(UserError, match="ensemble_size"):
        presets.load(str(path))


# --------------------------------------------------------------------------- objectives


def test_objectives_default_to_validation_accuracy_and_are_read_from_the_file(tmp_path):
    assert presets.Preset().objectives == ("val_accuracy:max",)
    assert all(presets.load(name).objectives == ("val_accuracy:max",)
               for name in catalog.list_presets() if name != "pareto")
    path = tmp_path / "mo.toml"
    path.write_text('tuner = "motpe"\nobjectives = ["val_accuracy:max", "ms_per_image:min", '
                    '"params:min"]\n')
    preset = presets.load(str(path))
    assert preset.objectives == ("val_accuracy:max", "ms_per_image:min", "params:min")
    assert presets.from_dict(preset.as_dict()) == preset  # as run.json keeps it
    assert presets.from_dict({"tuner": "hyperband"}).objectives == ("val_accuracy:max",)
    over = presets.load("quick").with_overrides(tuner="random",
                                                objectives=("val_accuracy:max", "params:min"))
    presets.validate(over, "options")  # random search may search a front
    assert over.objectives == ("val_accuracy:max", "params:min")


@pytest.mark.parametrize("text, message", [
    ('tuner = "motpe"\nobjectives = "params"\n', r"'params' needs its direction: params:min"),
    ('tuner = "motpe"\nobjectives = 3\n', r"objectives = 3 must be a list"),
    ('tuner = "motpe"\nobjectives = ["val_loss:max", "params:min"]\n',
     r"val_loss can only be minimised, val_loss:min"),
    ('tuner = "bayesian"\nobjectives = ["val_accuracy:max", "params:min"]\n',
     r"need tuner = \"motpe\" \(or \"random\"\)"),
])
def test_bad_objectives_name_the_key_and_what_is_valid(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as caught:
        presets.load(str(path))
    assert "bad.toml" in str(caught.value) and "objectives" in str(caught.value)


def _identity(preset):
    from types import SimpleNamespace

    from fmnist_search.tuning.search_loop import SearchRequest

    request = SearchRequest(SimpleNamespace(text="space"), preset,
                            SimpleNamespace(fingerprint=lambda: {"seed": 1}), Path("unused"),
                            "p", seed=1)
    return request.identity()


def test_a_project_of_one_objective_keeps_its_identity():
    """run.json's identity of every shipped preset is what it was before objectives existed
    (a resumed project would otherwise be refused); a front's names its objectives."""
    before = {"space", "data", "tuner", "factor", "iterations", "fixed", "patience", "epochs",
              "seed"}
    for name in catalog.list_presets():
        preset = presets.load(name)
        if name == "pareto":
            continue
        assert set(_identity(preset)) == before | ({"bohb"} if preset.tuner == "bohb"
                                                   else set())
    front = presets.load("quick").with_overrides(
        tuner="motpe", objectives=("val_accuracy:max", "params:min"))
    identity = _identity(front)
    assert identity["objectives"] == ["val_accuracy:max", "params:min"]
    assert identity["bohb"] == front.bohb.as_dict()
