"""A cost limit relative to the machine: model1's epoch measured here, times max_epoch_cost."""

from __future__ import annotations

import numpy as np
import pytest

from fmnist_search import calibration, presets, store
from fmnist_search.errors import UserError


def test_the_tighter_limit_wins_and_zero_is_none():
    assert calibration.seconds_limit(0, 0, 2.0) == 0.0
    assert calibration.seconds_limit(0, 3, 5.0) == 15.0
    assert calibration.seconds_limit(5, 3, 5.0) == 5.0
    assert calibration.seconds_limit(20, 3, 5.0) == 15.0
    assert calibration.seconds_limit(20, 3, None) == 20.0
    assert calibration.seconds_limit(0, 3, 0.5) == calibration.FLOOR_SECONDS  # tiny data


def test_the_reference_is_measured_once_and_scales_with_the_images(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.random((256, 28, 28, 1), dtype=np.float32)
    y = np.arange(256) % 10
    first = calibration.reference_seconds(x, y, 10, "float32")
    assert first > 0 and calibration.reference_seconds(x, y, 10, "float32") == first  # cached
    # Four times the images: four times the steps. Timed by a clock where every step takes
    # 10 ms, since a real one on a shared CPU measured 52x once (a test run beside a proof run).
    ticks = iter(range(10**6))
    monkeypatch.setattr(calibration.time, "perf_counter", lambda: next(ticks) * 0.01)
    monkeypatch.setattr(calibration, "_CACHE", {})
    one = calibration.reference_seconds(x, y, 10, "float32")
    more = calibration.reference_seconds(np.concatenate([x] * 4), np.concatenate([y] * 4), 10,
                                         "float32")
    assert one == pytest.approx(0.02) and more == pytest.approx(0.08)  # 2 and 8 steps of 128


@pytest.mark.slow
def test_a_configuration_costlier_than_the_limit_is_rejected_with_the_reason(tmp_path, csv_data,
                                                                          capsys, monkeypatch):
    from conftest import search_args

    from fmnist_search.cli import main

    preset = tmp_path / "tight.toml"
    preset.write_text('tuner = "random"\ntrials = 2\nepochs = 1\nprecision = "fp32"\n'
                      "max_epoch_cost = 0.0001\n")
    monkeypatch.setattr(calibration, "FLOOR_SECONDS", 0.0)  # tiny data: the floor is the limit
    assert main(search_args(csv_data, tmp_path, "t", 2, "--search", str(preset))) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "cost limit: max_epoch_cost 0.0001: at most 0.0001 x the report's model1" in out
    records = [store.read_trial_record(p) for p in sorted((tmp_path / "res" / "t").glob("trial_*"))]
    assert records and all(r["status"] == "REJECTED" for r in records)
    assert all("max_epoch_cost 0.0001 x model1 here" in r["reason"] for r in records)


@pytest.mark.parametrize("value", [-1, 0.0 - 5, 20_000, "3"])
def test_a_bad_max_epoch_cost_names_the_key(tmp_path, value):
    path = tmp_path / "p.toml"
    path.write_text(f"max_epoch_cost = {value!r}\n".replace("'", '"'))
    with pytest.raises(UserError, match="max_epoch_cost"):
        presets.load(str(path))


def test_the_quick_preset_bounds_what_a_first_search_trains():
    quick = presets.load("quick")
    assert quick.max_params == 1_000_000 and quick.max_epoch_cost == 3
