"""The one seam onto Keras Tuner's internals (``tuning/kt_compat.py``): nothing else touches
them, an untested Keras Tuner is refused at start, and every patch is taken off again."""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import keras_tuner as kt
import pytest
from conftest import search_args

from fmnist_search.errors import UserError
from fmnist_search.tuning import kt_compat

PACKAGE = Path(__file__).resolve().parents[1] / "fmnist_search"
COMPAT = PACKAGE / "tuning" / "kt_compat.py"
KT_SOURCE = Path(kt.__file__).parent / "src"


def _private_names(paths, own_only: bool = False) -> set[str]:
    """Single-underscore names that code defines: ``def _x`` and ``self._x = ...``; with
    ``own_only``, only ``self._x = ...`` (an object's own state, not a patch of another's)."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and not own_only:
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                    and (not own_only or getattr(node.value, "id", None) == "self"):
                names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _ours() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p != COMPAT]


def test_only_the_compat_module_imports_keras_tuner_src():
    offenders = []
    for path in _ours():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = []
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            offenders += [f"{path.relative_to(PACKAGE)}:{node.lineno} {m}"
                          for m in modules if m.startswith("keras_tuner.src")]
    assert len(_ours()) > 40  # the scan sees the package
    assert offenders == []


def test_only_the_compat_module_touches_keras_tuners_private_attributes():
    """A private name Keras Tuner defines (``_retry_queue``, ``_random_values``, ...), read,
    written or overridden outside the compat module; names our objects keep as their own
    state (``self._stop``) are ours."""
    theirs = _private_names(KT_SOURCE.rglob("*.py")) - _private_names(_ours(), own_only=True)
    assert {"_retry_queue", "_random_values", "_configure_tensorboard_dir"} <= theirs
    offenders = []
    for path in _ours():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        methods = [n for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
                   for n in c.body if isinstance(n, ast.FunctionDef)]  # an override
        accesses = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
        offenders += [f"{path.relative_to(PACKAGE)}:{n.lineno} {name}"
                      for n, name in [*((m, m.name) for m in methods),
                                      *((a, a.attr) for a in accesses)]
                      if name in theirs]
    assert offenders == []


# --------------------------------------------------------------------------- touches by name
# Keras Tuner can be reached without an import of keras_tuner.src or an underscore: by a class
# name in a string, by probing an attribute only its objects carry, by its file formats, and by
# the keys and attributes of its oracle's bookkeeping. Each vocabulary is read from the
# installed Keras Tuner's source, so an upgrade that adds a class or a state key extends it.

KERAS_SOURCE = Path(keras.__file__).parent / "src"

# Words that are both Keras Tuner state keys (``Trial.get_state``, ``Oracle.get_state``,
# ``Oracle.__init__``) and the vocabulary of our own records, presets and options: they name
# our fields as often as theirs, so a string or attribute spelled so is not counted.
SHARED_WORDS = frozenset({
    "status", "seed", "score", "metrics", "message", "trial_id", "best_step", "hyperparameters",
    "factor", "max_epochs", "min_epochs", "display", "alpha", "beta", "trials", "objective",
    "max_trials", "directory", "project_name"})
# Keras Tuner names a tuner's state file f"{tuner_id}.json" (base_tuner.py:469, tuner.py
# get_tuner_id): "tuner0.json" for the one tuner of a search, never a literal in its source.
TUNER_FILE = "tuner0.json"
KINDS = ("class name", "duck-typed attribute", "file format", "state key")


@dataclass(frozen=True)
class Vocabulary:
    """What names Keras Tuner: ``classes`` defined under ``keras_tuner.src`` (``private``: the
    ones its public modules do not export); ``attributes`` its objects carry and Keras' do
    not; ``files`` it writes; ``state`` its oracle's saved keys and bookkeeping attributes;
    ``aliases``, our own names for its files (constants holding them, functions reading them);
    ``exempt``, the state words left out as ``SHARED_WORDS``."""

    classes: frozenset[str]
    private: frozenset[str]
    attributes: frozenset[str]
    files: frozenset[str]
    state: frozenset[str]
    exempt: frozenset[str]
    aliases: frozenset[str] = frozenset()


def _trees(paths):
    for path in paths:
        if not path.name.endswith("_test.py"):
            yield ast.parse(path.read_text(encoding="utf-8"))


def _public_classes() -> set[str]:
    import types

    seen, todo, names = set(), [kt], set()
    while todo:
        module = todo.pop()
        seen.add(module)
        for value in vars(module).values():
            if isinstance(value, type):
                names.add(value.__name__)
            elif isinstance(value, types.ModuleType) and value not in seen and \
                    value.__name__.startswith("keras_tuner") and ".src" not in value.__name__:
                todo.append(value)
    return names


def _keras_tuner_vocabulary() -> Vocabulary:
    classes, own, files, state = set(), set(), {TUNER_FILE}, set()
    file_name = re.compile(r"[\w.]+\.(json|h5)")  # (its "checkpoint": TensorFlow's format,
    # written only when Keras is not multi-backend, never with Keras 3)
    for tree in _trees(KT_SOURCE.rglob("*.py")):
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes.add(node.name)
                if node.name == "Oracle":  # its bookkeeping: ongoing_trials, tuner_ids, ...
                    state |= {n.attr for f in node.body if isinstance(f, ast.FunctionDef)
                              and f.name == "__init__" for n in ast.walk(f)
                              if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                              and getattr(n.value, "id", None) == "self"}
            elif isinstance(node, ast.FunctionDef) and node.name == "get_state":
                state |= {k.value for d in ast.walk(node) if isinstance(d, ast.Dict)
                          for k in d.keys if isinstance(k, ast.Constant)}
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and \
                    getattr(node.value, "id", None) == "self":
                own.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    file_name.fullmatch(node.value):
                files.add(node.value)
    keras_names = set()
    for tree in _trees(KERAS_SOURCE.rglob("*.py")):
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                keras_names.add(node.name)  # methods and properties (Model.layers)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                keras_names.add(node.attr)
    return Vocabulary(frozenset(classes), frozenset(classes - _public_classes()),
                      frozenset(a for a in own - keras_names if not a.startswith("_")),
                      frozenset(files), frozenset(s for s in state - SHARED_WORDS
                                                  if not s.startswith("_")),
                      frozenset(state & SHARED_WORDS))


def _is_kt_glob(text: str, files) -> bool:
    """A glob that matches one of Keras Tuner's files and no file of any name (``*.json``)."""
    return any(c in text for c in "*?[") and any(fnmatch.fnmatch(f, text) for f in files) \
        and not any(fnmatch.fnmatch(f"any-name{ext}", text) for ext in (".json", ".h5", ""))


def _names_a_file(node, vocab: Vocabulary, local: frozenset[str] = frozenset()) -> str | None:
    """What in ``node`` names one of Keras Tuner's files: the name itself, a glob of it, or one
    of our ``aliases`` (``store.TRIAL_JSON``; bare where ``local``: defined or imported)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
            node.value in vocab.files or _is_kt_glob(node.value, vocab.files)):
        return repr(node.value)
    if isinstance(getattr(node, "ctx", None), ast.Load):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                f"{node.value.id}.{node.attr}" in vocab.aliases:
            return f"{node.value.id}.{node.attr}"
        if isinstance(node, ast.Name) and node.id in local:
            return node.id
    return None


def _local_aliases(tree, vocab: Vocabulary, module: str) -> frozenset[str]:
    """The aliases ``module``'s code may name bare: its own, and those it imports."""
    names = {a.split(".")[1] for a in vocab.aliases if a.split(".")[0] == module}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {n.name for n in node.names
                      if f"{node.module.split('.')[-1]}.{n.name}" in vocab.aliases}
    return frozenset(names)


def kt_touches(source: str, vocab: Vocabulary, module: str = "") -> list[tuple[int, str, str]]:
    """Each touch of Keras Tuner by name in ``source`` (of the module named ``module``, as in
    ``store``): (line, kind, what), kind one of ``KINDS``."""
    found = set()
    tree = ast.parse(source)
    local = _local_aliases(tree, vocab, module)
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(  # type(c).__name__ == "SaveBestEpoch"
                isinstance(n, ast.Attribute) and n.attr in ("__name__", "__qualname__")
                for side in (node.left, *node.comparators) for n in ast.walk(side)):
            found |= {(c.lineno, KINDS[0], repr(c.value)) for c in ast.walk(node)
                      if isinstance(c, ast.Constant) and c.value in vocab.classes}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                node.value in vocab.private:  # a class only keras_tuner.src has, in a string
            found.add((node.lineno, KINDS[0], repr(node.value)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                node.func.id == "hasattr" and len(node.args) == 2
                or node.func.id == "getattr" and len(node.args) == 3) and \
                isinstance(node.args[1], ast.Constant) and node.args[1].value in vocab.attributes:
            found.add((node.lineno, KINDS[1], f"{node.func.id}(..., {node.args[1].value!r})"))
        if (what := _names_a_file(node, vocab, local)) is not None:
            found.add((node.lineno, KINDS[2], what))
        if isinstance(node, ast.Constant) and node.value in vocab.state and \
                isinstance(node.value, str):
            found.add((node.lineno, KINDS[3], repr(node.value)))
        elif isinstance(node, ast.Attribute) and node.attr in vocab.state and \
                getattr(node.value, "id", None) not in ("self", "kt_compat"):
            # our objects' own state is ours; the seam's functions are the way to theirs
            found.add((node.lineno, KINDS[3], f".{node.attr}"))
    return sorted(found)


def aliases(sources: dict[str, str], vocab: Vocabulary) -> frozenset[str]:
    """Our names for Keras Tuner's files in ``sources`` (module name: its code), as
    ``module.name``: a module constant holding one (``store.TRIAL_JSON``), and a module
    function that returns something made of such a constant (``store.read_keras_trial``: the
    file's content)."""
    modules = {name: ast.parse(source) for name, source in sources.items()}
    constants = {f"{name}.{t.id}" for name, tree in modules.items() for node in tree.body
                 if isinstance(node, ast.Assign) and _names_a_file(node.value, vocab)
                 for t in node.targets if isinstance(t, ast.Name)}
    held = replace(vocab, aliases=frozenset(constants))
    readers = set()
    for name, tree in modules.items():
        local = _local_aliases(tree, held, name)
        readers |= {f"{name}.{node.name}" for node in tree.body
                    if isinstance(node, ast.FunctionDef)
                    and any(isinstance(r, ast.Return) and r.value is not None
                            and any(_names_a_file(n, held, local) for n in ast.walk(r.value))
                            for r in ast.walk(node))}
    return frozenset(constants | readers)


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    vocab = _keras_tuner_vocabulary()
    found = aliases({p.stem: p.read_text(encoding="utf-8") for p in _ours()}, vocab)
    return replace(vocab, aliases=found)


def test_the_vocabulary_is_keras_tuners_own(vocabulary):
    """Read from its source: the names the patterns rely on are there, and the words left out
    as shared with our own records are Keras Tuner state words indeed (no stale exemption)."""
    assert {"SaveBestEpoch", "TunerCallback"} <= vocabulary.private
    assert {"Hyperband", "HyperParameters", "Float"} <= vocabulary.classes - vocabulary.private
    assert {"trial", "tuner_id", "ongoing_trials"} <= vocabulary.attributes
    assert not {"layers", "filepath", "model", "name"} & vocabulary.attributes  # Keras' too
    assert {"trial.json", "oracle.json", "checkpoint.weights.h5", TUNER_FILE} <= vocabulary.files
    assert {"ongoing_trials", "tuner_ids", "end_order", "start_order", "retry_queue",
            "tried_so_far", "id_to_hash", "run_times", "seed_state"} <= vocabulary.state
    assert vocabulary.exempt == SHARED_WORDS  # each one is a state word of Keras Tuner's
    assert not SHARED_WORDS & vocabulary.state


PLANTED = [
    pytest.param('if type(c).__name__ == "SaveBestEpoch":\n    pass',
                 (1, "class name", "'SaveBestEpoch'"), id="class-name-compared"),
    pytest.param('ok = c.__class__.__name__ in ("Hyperband", "Other")',
                 (1, "class name", "'Hyperband'"), id="public-class-name-compared"),
    pytest.param('KIND = "TunerCallback"', (1, "class name", "'TunerCallback'"),
                 id="private-class-name-anywhere"),
    pytest.param('ids = [c.trial.trial_id for c in cbs if hasattr(c, "trial")]',
                 (1, "duck-typed attribute", "hasattr(..., 'trial')"), id="hasattr"),
    pytest.param('tid = getattr(tuner, "tuner_id", None)',
                 (1, "duck-typed attribute", "getattr(..., 'tuner_id')"), id="getattr-probe"),
    pytest.param('found = sorted(folder.glob("*.weights.h5"))',
                 (1, "file format", "'*.weights.h5'"), id="glob-checkpoint"),
    pytest.param('state = json.loads((folder / "trial.json").read_text())',
                 (1, "file format", "'trial.json'"), id="trial-json"),
    pytest.param('oracle.ongoing_trials.pop(tuner_id)', (1, "state key", ".ongoing_trials"),
                 id="state-attribute"),
    pytest.param('oracle.tuner_ids.discard(tuner_id)', (1, "state key", ".tuner_ids"),
                 id="state-attribute-tuner-ids"),
    pytest.param('state["end_order"] = []', (1, "state key", "'end_order'"),
                 id="state-key"),
]


@pytest.mark.parametrize("source, touch", PLANTED)
def test_each_pattern_catches_a_planted_touch(source, touch, vocabulary):
    assert touch in kt_touches(source, vocabulary)


def test_a_file_named_through_our_constant_or_reader_is_caught(vocabulary):
    """A constant holding Keras Tuner's file name, and a function returning what is read
    through it, become aliases; naming them elsewhere (by module, or imported) is a touch."""
    store = ('TRIAL = "trial.json"\nRECORD = "record.json"\n'
             'def read(d):\n    return load(d / TRIAL)\n'
             'def ours(d):\n    return load(d / RECORD)\n'
             'def repair(d):\n    fix(d / TRIAL)\n')  # returns nothing of it: not an alias
    user = ('import store\nfrom store import TRIAL\n'
            'a = store.read(d)\nb = d / TRIAL\nc = store.ours(d)\nstore.repair(d)\n')
    planted = replace(vocabulary, aliases=aliases({"store": store, "user": user}, vocabulary))
    assert planted.aliases == {"store.TRIAL", "store.read"}
    assert kt_touches(user, planted, "user") == [(3, "file format", "store.read"),
                                                 (4, "file format", "TRIAL")]
    assert (4, "file format", "TRIAL") in kt_touches(store, planted, "store")  # in read()


@pytest.mark.parametrize("source", [
    'if type(c).__name__ == "EpochLog":\n    pass',  # our class
    'x = store.RECORD_JSON; y = folder.glob("*.json"); z = "model.weights.h5"',
    'folder.glob(f".*{PARTIAL}.weights.h5"); name = "checkpoint"',  # Keras' own weights
    'ok = hasattr(layer, "layers") or getattr(cb, "filepath", None)',  # Keras' objects
    'row["status"]; preset.trials; record["seed"]; self.end_order = []',  # our own
    '"""Keras Tuner saves trial.json and oracle.json (a docstring names them)."""',
    'queued = kt_compat.retry_queue(oracle)',  # through the seam
])
def test_our_own_names_are_not_touches(source, vocabulary):
    assert kt_touches(source, vocabulary) == []


# The one owner of the results layout (STYLE.md: one module the owner of the results layout)
# defines Keras Tuner's file names beside ours, and this cannot move: that module is in layer 0
# and the seam in tuning/ (layer 3, tests/test_layers.py), which reads the files through it. So
# the file-format pattern leaves that module alone; the names it defines are aliases
# (``store.TRIAL_JSON``), and naming them anywhere else is a touch. The other patterns hold
# there too.
LAYOUT_OWNERS = ("store",)


def _counted(path: Path, kind: str) -> bool:
    return not (kind == KINDS[2] and path.parent == PACKAGE and path.stem in LAYOUT_OWNERS)


def _touches_outside_the_seam(vocabulary) -> list[str]:
    return [f"{path.relative_to(PACKAGE)}:{line} {kind} {what}"
            for path in sorted(_ours())
            for line, kind, what in kt_touches(path.read_text(encoding="utf-8"), vocabulary,
                                               path.stem)
            if _counted(path, kind)]


def test_only_the_layout_owner_may_name_keras_tuners_files():
    assert not _counted(PACKAGE / "store.py", "file format")
    assert not _counted(PACKAGE / "store.py", "file format")
    assert _counted(PACKAGE / "store.py", "state key")
    assert _counted(PACKAGE / "analysis.py", "file format")
    assert _counted(PACKAGE / "tuning" / "store.py", "file format")


def test_only_the_compat_module_touches_keras_tuner_by_name(vocabulary):
    """Issue 33, item 4: the 42 touches the patterns found on 2026-12-07 (in ``analysis``,
    ``export``, ``callbacks``, ``store`` and ``tuning/``: distributed, hypermodel, state,
    tuner) went behind ``tuning/kt_compat.py``; a new one fails here, by file, line, kind and
    name."""
    assert len(_ours()) > 40  # the scan sees the package
    assert _touches_outside_the_seam(vocabulary) == []


def test_the_installed_version_is_a_supported_one():
    kt_compat.check_version()  # the suite runs on a supported keras-tuner
    assert kt_compat.installed_version() == kt.__version__
    assert ".".join(kt.__version__.split(".")[:2]) in kt_compat.SUPPORTED


@pytest.mark.parametrize("version", ["1.5.0", "2.0.1", "1.3.0"])
def test_an_untested_version_is_refused_with_the_supported_ones(version, monkeypatch):
    monkeypatch.delenv(kt_compat.ALLOW_UNTESTED_ENV, raising=False)
    with pytest.raises(UserError) as err:
        kt_compat.check_version(version)
    text = str(err.value)
    assert f"keras-tuner {version} is installed" in text
    assert "1.4.x" in text and "keras-tuner>=1.4,<1.5" in text
    assert kt_compat.ALLOW_UNTESTED_ENV in text


def test_the_override_lets_an_untested_version_through(monkeypatch):
    monkeypatch.setenv(kt_compat.ALLOW_UNTESTED_ENV, "1")
    kt_compat.check_version("9.9.9")


def test_run_with_an_untested_keras_tuner_exits_2_with_the_message(tmp_path, csv_data):
    """At start: the version check runs when the search code is imported, before any trial."""
    args = search_args(csv_data, tmp_path)
    code = ("import sys, keras_tuner; keras_tuner.__version__ = '1.5.0'\n"
            "from fmnist_search.cli import main\n"
            f"sys.exit(main({args!r}))")
    env = {k: v for k, v in os.environ.items() if k != kt_compat.ALLOW_UNTESTED_ENV}
    env["PYTHONPATH"] = str(PACKAGE.parent)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "keras-tuner 1.5.0 is installed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("trial_*"))  # nothing started


def test_scoped_patches_are_restored():
    from keras_tuner.src import config, utils
    from keras_tuner.src.distribute import oracle_client
    from keras_tuner.src.engine import conditions

    before = (utils.save_json, config.DEBUG, oracle_client.TIMEOUT, conditions.Parent.to_proto)
    with kt_compat.json_saves(lambda path, obj: ""), kt_compat.trial_tracebacks(False), \
            kt_compat.client_timeout(5.0), kt_compat.no_condition_print():
        with kt_compat.no_condition_print():  # nested: one patch
            assert conditions.Parent.to_proto is not before[3]
        assert (utils.save_json, config.DEBUG, oracle_client.TIMEOUT) != before[:3]
        assert conditions.Parent.to_proto is not before[3]
    assert (utils.save_json, config.DEBUG, oracle_client.TIMEOUT,
            conditions.Parent.to_proto) == before


def test_the_stray_print_of_a_condition_is_silenced(capsys):
    from keras_tuner.src.engine import conditions

    parent = conditions.Parent("head", ["flatten"])
    parent.to_proto()
    assert capsys.readouterr().out == "flatten\n"  # the stray print this module hides
    with kt_compat.no_condition_print():
        parent.to_proto()
    assert capsys.readouterr().out == ""


def _conditional_space():
    hp = kt.HyperParameters()
    hp.Choice("head", ["flatten", "pool"])
    with hp.conditional_scope("head", ["flatten"]):
        hp.Int("units", 8, 16)
    return hp


def test_a_search_in_one_process_leaves_the_condition_print_alone():
    """The print is silenced only where gRPC converts trials (a chief, a worker): the settings
    of every search (``quiet_keras``) do not patch it."""
    from keras_tuner.src.engine import conditions

    from fmnist_search.tuning.search_loop import quiet_keras

    before = conditions.Parent.to_proto
    with quiet_keras(debug=False):
        assert conditions.Parent.to_proto is before


def test_the_chief_and_the_worker_convert_trials_quietly(capsys):
    """Each gRPC conversion of a conditional space or trial: the chief's answers
    (``servicer``) and copies (``trial_copy``), the worker's space and end reports."""
    from keras_tuner.src.engine import conditions

    before = conditions.Parent.to_proto
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("score", "max"),
                                           max_trials=3, hyperparameters=_conditional_space())
    trial = kt.engine.trial.Trial(oracle.get_space(), trial_id="1")
    oracle.get_space().to_proto()
    assert capsys.readouterr().out == "flatten\n"  # unsilenced, it prints
    answers = kt_compat.servicer(oracle, lambda tuner_id: trial, lambda *a: trial, lambda *a: None)
    assert answers.GetSpace(None, None).hyperparameters.space
    assert answers.CreateTrial(type("Request", (), {"tuner_id": "w0"}), None).trial.trial_id == "1"
    assert kt_compat.trial_copy(trial).trial_id == "1"

    class Client:
        def update_space(self, hyperparameters):
            hyperparameters.to_proto()

    client = Client()
    kt_compat.quiet_space_updates(client)
    client.update_space(oracle.get_space())
    assert capsys.readouterr().out == ""
    assert conditions.Parent.to_proto is before  # and taken off again


def test_a_fits_trial_and_its_checkpoints_are_found_as_keras_tuner_makes_them(tmp_path):
    """``Tuner.run_trial``'s callbacks: the ``TunerCallback`` that carries the trial, the
    ``SaveBestEpoch`` whose weights file ``trial_weights`` finds in the trial folder."""
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch, TunerCallback

    trial = kt.engine.trial.Trial(kt.HyperParameters(), trial_id="07")
    saver = SaveBestEpoch(kt.Objective("val_accuracy", "max"),
                          str(tmp_path / "checkpoint.weights.h5"))
    fit = [keras.callbacks.History(), TunerCallback(None, trial), saver]
    assert kt_compat.fit_trial_id(fit) == "07"
    assert kt_compat.fit_trial_id([keras.callbacks.History()]) is None
    assert kt_compat.best_epoch_saver(fit) is saver
    assert kt_compat.trial_weights(tmp_path) is None
    (tmp_path / "checkpoint.weights.h5").write_bytes(b"")
    assert kt_compat.trial_weights(tmp_path) == tmp_path / "checkpoint.weights.h5"


def test_a_released_worker_leaves_the_oracles_books(tmp_path):
    """What a chief does with a worker presumed dead: its trial is no longer ongoing and the
    worker no longer counts among those that keep a chief running (``exit_chief``)."""
    from keras_tuner.src.distribute.oracle_chief import exit_chief

    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("score", "max"),
                                           max_trials=3, hyperparameters=hp)
    oracle._set_project_dir(str(tmp_path), "p")
    trial = oracle.create_trial("worker0")
    assert kt_compat.ongoing_trials(oracle) == {"worker0": trial}
    with kt_compat.oracle_locked(oracle):
        kt_compat.release_worker(oracle, "worker0")
        kt_compat.queue_retry(oracle, trial.trial_id)
    assert kt_compat.ongoing_trials(oracle) == {} and exit_chief(oracle)
    assert kt_compat.retry_queue(oracle) == (trial.trial_id,)


def test_the_values_hash_is_keras_tuners(tmp_path):
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("val_accuracy", "max"),
                                           max_trials=3)
    values = {"b": 2, "a": "x", "c": 0.5}
    assert kt_compat.values_hash(values) == oracle._compute_values_hash(values)


def test_pyproject_pins_keras_tuner_to_the_supported_range():
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    pins = {d.split(">")[0].split("<")[0].strip(): d for d in project["dependencies"]}
    assert pins["keras-tuner"] == f"keras-tuner>=1.4.7,<{kt_compat._next_minor(kt_compat.SUPPORTED[-1])}"
    core = ("tensorflow", "keras", "numpy", "pandas", "scikit-learn", "matplotlib", "rich")
    assert all("<" in pins[name] for name in core)  # every core package has a ceiling


def test_bohb_runs_on_hyperbands_tuner_and_the_others_on_keras_tuners_own():
    """BOHB's oracle is a ``HyperbandOracle``: its trials need Hyperband's tuner steps
    (``tuner/epochs``, continuing a promoted trial from its parent's checkpoint)."""
    assert kt_compat.tuner_class("bohb") is kt_compat.tuner_class("hyperband")
    assert issubclass(kt_compat.tuner_class("bohb"), kt.Hyperband)
    assert kt_compat.tuner_class("random") is kt.Tuner
