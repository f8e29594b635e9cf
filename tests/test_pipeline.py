"""pipeline.py: the commands as library calls of typed requests. What a request is refused
for, and that it is refused before anything is loaded, trained or written; a planned search
(the data replaced by tiny random images) is what ``search`` would run. Searches, finalize and
training runs themselves are in test_tuning.py, test_finalize.py and test_runs.py."""

from __future__ import annotations

import fcntl

import pytest
from conftest import TINY_SPACE
from rich.console import Console
from synthetic import write_project

from fmnist_search import pipeline, store
from fmnist_search.errors import UserError
from fmnist_search.pipeline import (
    BaselineRequest,
    DataOptions,
    FinalizeRequest,
    RetrainRequest,
    SearchSpec,
)

QUIET = Console(quiet=True)


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if a command gets as far as loading data (training comes after)."""

    def refuse(*args, **kwargs):
        raise AssertionError("data loaded before the request was checked")

    monkeypatch.setattr(pipeline, "prepare_data", refuse)


@pytest.fixture
def tiny_data(monkeypatch, tiny_raw):
    """The data step prepares 200 random images (not the real files) with the settings it is
    asked for, and says which."""
    from fmnist_search import dataset

    asked = []

    def prepare(settings, console):
        asked.append(settings)
        return dataset.prepare(settings, tiny_raw)

    monkeypatch.setattr(pipeline, "prepare_data", prepare)
    return asked


# --------------------------------------------------------------------------- data options


def test_data_options_become_the_settings_of_the_data():
    settings = DataOptions(classes=[0, 2, 4], val_fraction=0.25, seed=7).settings(subset=0.5)
    assert (settings.classes, settings.val_fraction, settings.seed, settings.subset) == (
        (0, 2, 4), 0.25, 7, 0.5)
    assert DataOptions(classes="0,2,4").settings().classes == (0, 2, 4)
    assert DataOptions(subset=0.1).settings(subset=0.5).subset == 0.1  # given beats the preset
    assert DataOptions().settings().subset == 1.0 and DataOptions().settings().seed == 42


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "7"])
def test_a_seed_outside_numpys_range_is_refused(seed):
    with pytest.raises(UserError, match=f"seed {seed!r} must be a whole number from 0 to "
                                        f"{pipeline.MAX_SEED}"):
        DataOptions(seed=seed).settings()


# --------------------------------------------------------------------------- plan_search


@pytest.mark.parametrize("spec, message", [
    (SearchSpec(tuner="grid"), "tuner 'grid'; valid: random, bayesian, hyperband"),
    (SearchSpec(precision="fp8"), "precision 'fp8'; valid: auto, fp32, bf16, fp16"),
    (SearchSpec(batch_size=1 << 20), "batch_size 1048576 must be from"),
    (SearchSpec(project="../up"), "--project '../up' is not a valid name"),
    (SearchSpec(search="no-such-preset"), "no-such-preset"),
    (SearchSpec(max_time="soon"), "max_time: "),
    (SearchSpec(max_time=0), "max_time 0 must be a number of seconds above 0"),
    (SearchSpec(max_time=400 * 86_400), "at most 31,536,000 \\(a year\\)"),
    (SearchSpec(space="no-such-space"), "no-such-space"),
])
def test_a_bad_search_is_refused_before_data_and_leaves_nothing(spec, message, tmp_path,
                                                                 no_data):
    spec.root = tmp_path / "res"
    with pytest.raises(UserError, match=message):
        pipeline.plan_search(spec, QUIET)
    assert list(tmp_path.iterdir()) == []  # the results directory was probed, then removed


def test_a_project_being_searched_is_refused_before_data(tmp_path, no_data):
    lock = store.lock_file(tmp_path, "p")
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match="being searched by another"):
            pipeline.plan_search(SearchSpec(space=TINY_SPACE, project="p", root=tmp_path),
                                 QUIET)


def test_a_planned_search_is_what_the_spec_asked_on_the_data_it_prepared(tmp_path, tiny_data):
    spec = SearchSpec(space=TINY_SPACE, search="best", tuner="random", trials=2, epochs=1,
                      max_time="45m", root=tmp_path / "res", data=DataOptions(seed=3),
                      command="fmnist-search run ...")
    plan = pipeline.plan_search(spec, QUIET)
    assert plan.project == "tiny_space-random"  # <space>-<tuner> when none is named
    assert plan.project_dir == tmp_path / "res" / "tiny_space-random"
    assert (plan.preset.tuner, plan.preset.trials, plan.preset.epochs) == ("random", 2, 1)
    request = plan.request
    assert (request.max_time, request.seed, request.command) == (2700.0, 3,
                                                                 "fmnist-search run ...")
    assert tiny_data[0].seed == 3 and tiny_data[0].subset == plan.preset.subset
    assert plan.preset.finalize_top == 3 and plan.finalizes  # the best preset finalizes
    spec.finalize = False
    assert not pipeline.plan_search(spec, QUIET).finalizes
    assert not plan.project_dir.exists()  # planning writes no project
    assert plan.preflight.project == plan.project and plan.preflight.max_time == 2700.0


def test_preflight_is_a_library_step_whose_result_the_plan_carries(tmp_path, no_data,
                                                                  monkeypatch):
    """The checks before anything heavy loads return a typed result (the project, the preset,
    --max-time in seconds, the workers to start and why not as many as asked); the caller
    prints it. Nothing of the caller's is rewritten."""
    import socket

    from fmnist_search.tuning import supervisor

    monkeypatch.setattr(supervisor, "visible_gpus", lambda: [])
    monkeypatch.setattr(supervisor, "available_cpus", lambda: [0, 1, 2, 3])
    spec = SearchSpec(space=TINY_SPACE, search="quick", trials=2, max_time="1h30m",
                      root=tmp_path)
    parallel = pipeline.ParallelSpec(workers=3)
    checked = pipeline.preflight_search(spec, parallel)
    assert (checked.project, checked.preset.trials, checked.max_time) == (
        "tiny_space-hyperband", 2, 5400.0)
    assert checked.workers == 2 and parallel.workers == 3
    assert checked.warnings == ["--workers 3 is more than the 2 trial(s) of the search: "
                                "starting 2."]
    alone = pipeline.preflight_search(spec)
    assert (alone.workers, alone.warnings) == (1, [])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=str(port)):  # a chief's port, before the data
            pipeline.preflight_search(spec, pipeline.ParallelSpec(bind="127.0.0.1", port=port))


def test_several_objectives_are_parsed_once_and_a_bad_one_is_refused(tmp_path, tiny_data):
    spec = SearchSpec(space=TINY_SPACE, search="quick", tuner="motpe", root=tmp_path,
                      objectives="val_accuracy:max,params:min")
    plan = pipeline.plan_search(spec, QUIET)
    assert plan.preset.objectives == ("val_accuracy:max", "params:min")
    spec.objectives = "val_accuracy:sideways"
    with pytest.raises(UserError, match="sideways"):
        pipeline.plan_search(spec, QUIET)


# --------------------------------------------------------------------------- the others


@pytest.mark.parametrize("top", [0, 10_000, 1.5])
def test_finalize_refuses_a_bad_top_before_reading_the_project(top, tmp_path):
    with pytest.raises(UserError, match=f"finalize: top {top!r} must be a whole number from 1"):
        pipeline.finalize(FinalizeRequest(tmp_path, "nope", top=top), QUIET)


def test_finalize_and_retrain_refuse_a_project_that_is_not_there(tmp_path, no_data):
    write_project(tmp_path, "other", n=1)
    for call in (lambda: pipeline.finalize(FinalizeRequest(tmp_path, "nope"), QUIET),
                 lambda: pipeline.retrain(RetrainRequest("nope", root=tmp_path), QUIET)):
        with pytest.raises(UserError, match=r"No project 'nope' in .*Projects there: other\."):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_retrain_refuses_a_trial_that_did_not_finish_before_data(tmp_path, no_data):
    write_project(tmp_path, "p", n=3)
    with pytest.raises(UserError, match="has no finished trial '9'"):
        pipeline.retrain(RetrainRequest("p", trial="9", root=tmp_path), QUIET)
    assert not (tmp_path / store.RETRAINED).exists()


def test_baseline_refuses_an_unknown_model_or_weights_file_before_data(tmp_path, no_data):
    with pytest.raises(UserError, match="model9"):
        next(pipeline.baseline(BaselineRequest("model9", root=tmp_path), QUIET))
    missing = tmp_path / "w.h5"
    with pytest.raises(UserError, match=f"--weights {missing}: no such file"):
        next(pipeline.baseline(BaselineRequest("model5", root=tmp_path, weights=str(missing)),
                               QUIET))
    assert list(tmp_path.iterdir()) == []


def test_baseline_all_checks_every_models_folder_before_the_first_trains(tmp_path, no_data):
    """A file where the fourth model's folder should be stops ``all`` before any data."""
    (tmp_path / store.BASELINES).mkdir()
    (tmp_path / store.BASELINES / "model4").write_text("x")
    with pytest.raises(UserError, match=f"{tmp_path / store.BASELINES / 'model4'} is not "
                                        "writable"):
        next(pipeline.baseline(BaselineRequest("all", root=tmp_path, weights="none"), QUIET))
