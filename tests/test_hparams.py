"""The TensorBoard HParams export, read back with TensorBoard's own event reader: one session
per trial with its values, status and metrics, and the experiment's domains at the top."""

from __future__ import annotations

import pytest
from synthetic import write_project

from fmnist_search import analysis
from fmnist_search.cli import main

tensorboard = pytest.importorskip(
    "tensorboard", reason="tensorboard is not installed (pip install tensorboard; the dev "
    "extra and CI install it)")


def _read(folder):
    """(hyperparameters, {metric: (step, value)}) of one exported session."""
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.plugins.hparams import metadata

    acc = ea.EventAccumulator(str(folder), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    info = metadata.parse_session_start_info_plugin_data(content)
    values = {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}
    metrics = {tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
               for tag in acc.Tags()["tensors"] if not tag.startswith("_hparams_")}
    return values, metrics


def _experiment(folder):
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.plugins.hparams import metadata

    acc = ea.EventAccumulator(str(folder))
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.EXPERIMENT_TAG]
    return metadata.parse_experiment_plugin_data(content)


def test_export_reads_back_with_tensorboards_reader(tmp_path, capsys):
    write_project(tmp_path / "res", "synth", n=6)
    tb = tmp_path / "tb"
    assert main(["analyze", "synth", "--results-dir", str(tmp_path / "res"), "--no-figures",
                 "--tensorboard", str(tb)]) == 0
    assert "HParams experiment of 6 trials" in capsys.readouterr().out
    folder = tb / "synth"
    sessions = sorted(p for p in folder.iterdir() if p.is_dir())
    assert [p.name for p in sessions] == [f"trial_{i:02d}" for i in range(6)]
    trials = analysis.trial_frame(tmp_path / "res", "synth").set_index("trial")
    for path in sessions:
        values, metrics = _read(path)
        trial = trials.loc[path.name.removeprefix("trial_")]
        assert values["status"] == "COMPLETED"
        assert values["learning_rate"] == pytest.approx(trial["values"]["learning_rate"])
        assert values["dropout_place"] == trial["values"]["dropout_place"]
        assert values["batchnorm"] is trial["values"]["batchnorm"]
        assert ("dense_units_2" in values) == ("dense_units_2" in trial["values"])
        assert metrics["val_accuracy"] == [(3, pytest.approx(trial["val_accuracy"], rel=1e-6))]
        assert metrics["params"] == [(3, trial["params"])]
        assert metrics["seconds_per_epoch"] == [(3, 10.0)] and metrics["epochs"] == [(3, 3)]
    experiment = _experiment(folder)
    assert {m.name.tag for m in experiment.metric_infos} == {
        "val_accuracy", "val_loss", "params", "seconds_per_epoch", "epochs"}
    infos = {h.name: h for h in experiment.hparam_infos}
    assert "status" in infos and infos["learning_rate"].HasField("domain_interval")
    assert {v.number_value for v in infos["filters_1"].domain_discrete.values} <= {
        16, 32, 64, 128}
    # Again: the folder is written anew, so no session is shown twice.
    assert main(["analyze", "synth", "--results-dir", str(tmp_path / "res"), "--no-figures",
                 "--tensorboard", str(tb)]) == 0
    assert all(len(list(p.glob("events.out.tfevents.*"))) == 1 for p in [folder, *sessions])


def test_unwritable_tensorboard_folder_exits_2(tmp_path, capsys):
    write_project(tmp_path / "res", "synth", n=2)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["analyze", "synth", "--results-dir", str(tmp_path / "res"), "--no-figures",
                 "--tensorboard", str(blocker / "tb")]) == 2
    err = " ".join(capsys.readouterr().err.split())  # wrapped where the tmp path ends
    assert "--tensorboard" in err and "not writable" in err and "Traceback" not in err
