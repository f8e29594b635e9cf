"""The search's hypermodel (``tuning/hypermodel.py``): what each trial is built and trained with."""

from __future__ import annotations

import pytest
from conftest import search_args

from fmnist_search import store
from fmnist_search.cli import main

# A screening protocol in [fixed] whose names the tiny space does not declare.
PRESET = """
tuner = "random"
trials = 1
epochs = 2
subset = 0.5
patience = 0
precision = "fp32"

[fixed]
schedule = "cosine"
label_smoothing = 0.1
aug_flip = true
"""


@pytest.mark.slow
def test_a_presets_fixed_protocol_outside_the_space_is_what_the_trial_trains_with(
        tmp_path, csv_data, capsys):
    """Fixed values the space does not declare used to be recorded on the trial and silently
    not used (the trial trained with the exponential schedule, no smoothing, no flips)."""
    preset = tmp_path / "p.toml"
    preset.write_text(PRESET)
    args = search_args(csv_data, tmp_path, "p", 1, "--search", str(preset), "--epochs", "2")
    assert main(args) == 0
    capsys.readouterr()
    record = store.read_trial_record(next((tmp_path / "res" / "p").glob("trial_*")))
    assert record["values"]["schedule"] == "cosine"
    name = record["architecture"]
    assert name.startswith("aug:f |") and " cos " in name and "ls.1" in name
    rates = [row["lr"] for row in record["history"]]
    lr0 = record["values"]["learning_rate"]
    # A cosine to zero over the trial's 2 epochs (of a few steps each here): the second
    # epoch's last step is a small fraction of the start, where the report's exponential decay
    # (x0.9 per epoch) would still be at 0.9 of it.
    assert rates[1] < rates[0] < lr0 and rates[1] < 0.3 * lr0


def test_an_unknown_fixed_name_in_a_preset_is_refused(tmp_path, capsys):
    preset = tmp_path / "p.toml"
    preset.write_text(PRESET + 'not_a_setting = 3\n')
    assert main(["run", "--space", "cnn", "--search", str(preset), "--results-dir",
                 str(tmp_path / "res")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "not_a_setting" in err and str(preset.name) in err and "Traceback" not in err
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())


@pytest.mark.slow
def test_the_default_point_is_never_rejected_for_its_cost(tmp_path, csv_data, capsys):
    """A time limit no configuration meets: the search's starting point (the space's default)
    still trains, every other configuration is rejected."""
    preset = tmp_path / "p.toml"
    limits = "start_from_default = true\nmax_seconds_per_epoch = 0.001\n\n[fixed]"
    preset.write_text(PRESET.replace("trials = 1", "trials = 3").replace("[fixed]", limits))
    assert main(search_args(csv_data, tmp_path, "p", 3, "--search", str(preset))) == 0
    capsys.readouterr()
    trials = (tmp_path / "res" / "p").glob("trial_*")
    records = sorted((store.read_trial_record(t) for t in trials), key=lambda r: r["trial_id"])
    assert [r["status"] for r in records] == ["COMPLETED", "REJECTED", "REJECTED"]
    assert "--max-seconds-per-epoch" in records[1]["reason"]
