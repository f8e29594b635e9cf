"""The trial and run store (``store``): one status per trial (``read_trials``), read from
record.json only (Keras Tuner's trial.json only tells "never began" from "lost"); a finished
record written once, across processes and kills."""

from __future__ import annotations

import ast
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmnist_search import store


def _trial(project: Path, trial_id: str, record=None, keras_status=None, raw=None) -> None:
    d = project / f"trial_{trial_id}"
    d.mkdir(parents=True)
    if record is not None:
        store.write_trial_record(d, {"trial_id": trial_id, **record})
    if raw is not None:
        (d / store.RECORD_JSON).write_text(raw)
    if keras_status is not None:
        (d / store.TRIAL_JSON).write_text(json.dumps({"trial_id": trial_id,
                                                       "status": keras_status}))


def test_each_trial_gets_one_status_from_its_record(tmp_path):
    _trial(tmp_path, "0", {"status": "COMPLETED", "val_accuracy": 0.9}, "COMPLETED")
    _trial(tmp_path, "1", {"status": "PRUNED", "reason": "below the median"}, "COMPLETED")
    _trial(tmp_path, "2", {"status": "REJECTED", "reason": "too big"}, "FAILED")
    _trial(tmp_path, "3", None, "COMPLETED")  # record.json deleted
    _trial(tmp_path, "4", None, "INVALID")  # Keras Tuner's INVALID, record lost
    _trial(tmp_path, "5", raw="{trunc", keras_status="RUNNING")  # a damaged record
    _trial(tmp_path, "6", None, "RUNNING")  # created, killed before it began
    _trial(tmp_path, "7", {"status": "COMPLETED", "val_accuracy": 0.5}, None)  # KT's lost
    (tmp_path / "trial_8").mkdir()  # Keras Tuner makes folders eagerly
    entries = store.read_trials(tmp_path)
    assert [(e.trial_id, e.status) for e in entries] == [
        ("0", "COMPLETED"), ("1", "PRUNED"), ("2", "REJECTED"), ("3", "DAMAGED"),
        ("4", "DAMAGED"), ("5", "DAMAGED"), ("6", "RUNNING"), ("7", "COMPLETED")]
    assert {e.status for e in entries} <= set(store.TRIAL_STATUSES)
    damaged = entries[3]
    assert damaged.record == {} and str(damaged.path / "record.json") in damaged.reason
    assert "fmnist-search run" in damaged.reason
    assert entries[1].reason == "below the median" and entries[0].reason == ""


def test_records_carry_the_schema_and_are_written_whole(tmp_path):
    _trial(tmp_path, "0", {"status": "RUNNING"})
    saved = json.loads((tmp_path / "trial_0" / store.RECORD_JSON).read_text())
    assert saved["schema"] == store.SCHEMA
    assert not list(tmp_path.glob("trial_0/.*.tmp"))  # the temporary file was renamed


# --------------------------------------------------------------------------- written once


def test_a_finished_record_is_written_once(tmp_path):
    """RUNNING is rewritten until the trial ends; the finished record then stands, and a
    second write (any status) is refused with an error naming the record."""
    folder = tmp_path / "trial_0"
    folder.mkdir()
    store.write_trial_record(folder, {"trial_id": "0", "status": "RUNNING", "started": 1.0})
    store.write_trial_record(folder, {"trial_id": "0", "status": "RUNNING", "started": 2.0})
    store.write_trial_record(folder, {"trial_id": "0", "status": "FAILED", "reason": "gone"})
    for late in ("COMPLETED", "RUNNING", "FAILED"):
        with pytest.raises(store.RecordFinishedError) as err:
            store.write_trial_record(folder, {"trial_id": "0", "status": late})
        assert str(folder / store.RECORD_JSON) in str(err.value) and "FAILED" in str(err.value)
    assert store.read_trial_record(folder)["reason"] == "gone"


def test_a_damaged_record_blocks_no_first_write(tmp_path):
    """A record that cannot be read (a disk fault, a hand edit) is rebuilt, not kept."""
    folder = tmp_path / "trial_0"
    folder.mkdir()
    (folder / store.RECORD_JSON).write_text('{"status": "COMPLE')
    store.write_trial_record(folder, {"trial_id": "0", "status": "COMPLETED"})
    assert store.read_trial_record(folder)["status"] == "COMPLETED"


# Run in another interpreter: wait for GO, then try to end each trial with STATUS; the reading
# of the old record is slowed, so that two writers that did not exclude each other would both
# read RUNNING and both write. Prints the trials it won, as JSON.
_WRITER = """
import json, sys, time
from pathlib import Path
from fmnist_search import store
root, status, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
read = store.read_trial_record
def slow_read(folder):
    record = read(folder)
    time.sleep(0.05)
    return record
store.read_trial_record = slow_read
while not go.exists():
    time.sleep(0.005)
won = []
for folder in store.trial_dirs(root):
    try:
        store.write_trial_record(folder, {"trial_id": store.trial_id_of(folder),
                                          "status": status, "by": status})
        won.append(store.trial_id_of(folder))
    except store.RecordFinishedError as exc:
        assert str(folder / store.RECORD_JSON) in str(exc)
print(json.dumps(won))
"""


def _writer(root: Path, status: str, go: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(root), status, str(go)],
                            stdout=subprocess.PIPE, text=True)


def test_a_slow_workers_late_result_cannot_replace_a_finished_record(tmp_path):
    """Two processes end the same trials at once (a chief failing a silent worker's trial and
    the worker's late result): each trial is won by exactly one, and its record is the
    winner's; the loser is refused and replaces nothing."""
    for i in range(6):
        folder = tmp_path / f"trial_{i}"
        folder.mkdir()
        store.write_trial_record(folder, {"trial_id": str(i), "status": "RUNNING"})
    go = tmp_path / "go"
    chief, worker = _writer(tmp_path, "FAILED", go), _writer(tmp_path, "COMPLETED", go)
    time.sleep(0.5)  # both interpreters started and waiting
    go.touch()
    failed, completed = (json.loads(p.communicate(timeout=60)[0]) for p in (chief, worker))
    assert chief.returncode == worker.returncode == 0
    assert sorted(failed + completed, key=int) == [str(i) for i in range(6)]  # one winner each
    for trial_id in failed + completed:
        record = store.read_trial_record(tmp_path / f"trial_{trial_id}")
        assert record["status"] == ("FAILED" if trial_id in failed else "COMPLETED")
        assert record["by"] == record["status"]


# Run in another interpreter: begin writing a finished record and stop for good at the step
# named by argv[2] ("lock": holding the lock, before writing; "replace": the new record written
# to its temporary file, not yet renamed), saying so on stdout, to be killed there.
_STUCK = """
import sys, time
from pathlib import Path
from fmnist_search import store
folder, step = Path(sys.argv[1]), sys.argv[2]
def stuck(*args, **kwargs):
    print("stuck", flush=True)
    time.sleep(600)
if step == "lock":
    store.write_json = stuck
else:
    store.os.replace = stuck
store.write_trial_record(folder, {"trial_id": "0", "status": "COMPLETED", "by": "killed"})
"""


@pytest.mark.parametrize("step", ["lock", "replace"])
def test_a_writer_killed_mid_write_leaves_the_old_record_and_blocks_nothing(tmp_path, step):
    """kill -9 while holding the record's lock, or with the new record written but not yet in
    place: the old record is whole, and the first legitimate finished write goes through at
    once (the kernel dropped the dead process's lock; no record half-written)."""
    folder = tmp_path / "trial_0"
    folder.mkdir()
    store.write_trial_record(folder, {"trial_id": "0", "status": "RUNNING"})
    proc = subprocess.Popen([sys.executable, "-c", _STUCK, str(folder), step],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "stuck"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert store.read_trial_record(folder)["status"] == "RUNNING"  # whole, and still the old
    began = time.monotonic()
    store.write_trial_record(folder, {"trial_id": "0", "status": "COMPLETED", "by": "resume"})
    assert time.monotonic() - began < 5
    assert store.read_trial_record(folder)["by"] == "resume"
    with pytest.raises(store.RecordFinishedError):
        store.write_trial_record(folder, {"trial_id": "0", "status": "FAILED"})


# --------------------------------------------------------------------------- the store's names

PACKAGE = Path(store.__file__).resolve().parent
# The results directory's file names and folder shapes: named by the store only.
NAMES = (store.RUN_JSON, store.RECORD_JSON, store.METRICS_JSON, store.MODEL_FILE,
         store.INFERENCE_FILE, store.PREDICTIONS, store.HISTORY_CSV, store.CURVES_PNG,
         store.CONFUSION_PNG, store.FINAL_JSON, store.CLOCK_JSON, store.CHIEF_JSON,
         store.CHECKPOINT_STATE)
SHAPES = (store.CHECKPOINT_PREFIX, store.PARTIAL)
_NAMED = re.compile("|".join(re.escape(n) for n in NAMES + SHAPES)
                    + rf"|^{store.TRIAL_PREFIX}$|{store.TRIAL_PREFIX}[*{{]")
# Another folder named like the trials on purpose: HParams' sessions, one per trial, in the
# folder the user gave (not the results directory).
NAME_EXEMPT = {"hparams.py": {"trial_*/", "trial_"}}
# Calls that write, move or remove a file: none of them may be given a trial record's path.
WRITERS = {"write_text", "write_json", "write_bytes", "open", "replace", "rename", "link",
           "symlink_to", "hardlink_to", "dump", "unlink", "copy", "copyfile", "copy2", "move",
           "rmtree", "touch", "mkstemp", "savez", "save", "write"}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant):
            found.add(id(node.body[0].value))
    return found


def file_names(source: str, exempt: set[str] = frozenset()) -> list[tuple[int, str]]:
    """Each string in code (docstrings aside, f-strings' parts included) that names a file or
    folder of the results directory: (line, text)."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    return sorted({(n.lineno, n.value) for n in ast.walk(tree)
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)
                   and id(n) not in skip and n.value not in exempt and _NAMED.search(n.value)})


def _called(node: ast.Call) -> str:
    return getattr(node.func, "attr", None) or getattr(node.func, "id", "")


def record_writes(source: str) -> list[tuple[int, str]]:
    """Each write (a call of ``WRITERS``) given a trial record's path (``RECORD_JSON``), and
    each function of that name, outside the store: (line, what)."""
    tree = ast.parse(source)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "write_trial_record":
            found.add((node.lineno, "def write_trial_record"))
        if isinstance(node, ast.Call) and _called(node) in WRITERS:
            parts = [node.func, *node.args, *(k.value for k in node.keywords)]
            if any(getattr(n, "attr", getattr(n, "id", None)) == "RECORD_JSON"
                   for part in parts for n in ast.walk(part)):
                found.add((node.lineno, f"{_called(node)}(... RECORD_JSON ...)"))
    return sorted(found)


def _modules() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE)): p.read_text(encoding="utf-8")
            for p in sorted(PACKAGE.rglob("*.py")) if p.name != "store.py"}


@pytest.mark.parametrize("source, found", [
    ('path = run / "model.keras"', [(1, "model.keras")]),
    ('f"{trial}/record.json is lost"', [(1, "/record.json is lost")]),
    ('folder = project / f"trial_{trial_id}"', [(1, "trial_")]),
    ('hidden = parent / f".{run_id}.partial"', [(1, ".partial")]),
    ('for d in project.glob("trial_*"): pass', [(1, "trial_*")]),
    ('"""Its record.json (a docstring may name it)."""\nx = store.RECORD_JSON', []),
    ('key = "trial_id"; name = "model"', []),
])
def test_the_name_scan_catches_a_planted_file_name(source, found):
    assert file_names(source) == found


@pytest.mark.parametrize("source, found", [
    ("store.write_json(d / store.RECORD_JSON, record)", [(1, "write_json(... RECORD_JSON ...)")]),
    ("(d / store.RECORD_JSON).write_text(text)", [(1, "write_text(... RECORD_JSON ...)")]),
    ("with open(d / RECORD_JSON, 'w') as fh: pass", [(1, "open(... RECORD_JSON ...)")]),
    ("os.replace(tmp, d / RECORD_JSON)", [(1, "replace(... RECORD_JSON ...)")]),
    ("def write_trial_record(d, r):\n    pass", [(1, "def write_trial_record")]),
    ("ok = (d / store.RECORD_JSON).exists(); store.write_trial_record(d, r)", []),
])
def test_the_record_scan_catches_a_planted_write(source, found):
    assert record_writes(source) == found


def test_only_the_store_names_the_results_files():
    """The results directory's file names and folder shapes are spelled in ``store`` only;
    every other module names them through it (``store.RECORD_JSON``, ``store.trial_dir``)."""
    found = {name: hits for name, source in _modules().items()
             if (hits := file_names(source, NAME_EXEMPT.get(name, set())))}
    assert found == {}


def test_every_write_of_a_trial_record_goes_through_the_store():
    """Nothing but ``store.write_trial_record`` writes, moves or removes a ``record.json``
    (the write-once rule lives there), and nothing else defines such a writer."""
    found = {name: hits for name, source in _modules().items()
             if (hits := record_writes(source))}
    assert found == {}
    in_store = record_writes(Path(store.__file__).read_text(encoding="utf-8"))
    assert [what for _, what in in_store] == ["def write_trial_record"]  # and no other write


# --------------------------------------------------------------------------- written before

RESULTS_73D21F7 = Path(__file__).with_name("fixtures") / "results-73d21f7"


@pytest.mark.slow
def test_results_written_before_the_store_open_and_resume(tmp_path, csv_data, capsys,
                                                        monkeypatch):
    """``fixtures/results-73d21f7``: what main wrote at 73d21f7, before this module was the
    store (a 2-trial random search of tests/tiny_space.toml on the CSVs of ``csv_data``, seed
    0, found at csv/ relative to the cwd, then ``retrain p --trial 0 --epochs 1``; Keras
    Tuner's checkpoint weights dropped). It reads the same, and the search resumes."""
    import shutil

    from fmnist_search import results
    from fmnist_search.cli import main

    root = tmp_path / "res"
    shutil.copytree(RESULTS_73D21F7, root)
    (tmp_path / "csv").mkdir()
    for name, src in zip(("train.csv", "test.csv"), csv_data, strict=True):
        shutil.copy(src, tmp_path / "csv" / name)
    monkeypatch.chdir(tmp_path)
    entries = store.read_trials(root / "p")
    assert [(e.trial_id, e.status, e.ended) for e in entries] == [("0", "COMPLETED", True),
                                                                   ("1", "COMPLETED", True)]
    rows = {r["trial"]: r for r in results.trial_rows(root, "p")}
    assert rows["0"]["val_accuracy"] == pytest.approx(0.075) and rows["0"]["params"] == 15770
    run = results.find_run(root, "p-0")
    assert run.parent == root / store.RETRAINED / "p-0" and store.run_damage(run) is None
    assert sorted(p.name for p in run.iterdir()) == sorted(store.RUN_FILES)
    assert set(store.read_predictions(run)) == {"val", "test"}
    assert results.collect(root, ["p"], baselines=False)[0]["test_accuracy"] is not None
    with pytest.raises(store.RecordFinishedError):  # its finished records are final now
        store.write_trial_record(entries[0].path, {"trial_id": "0", "status": "FAILED"})
    args = ["run", "--space", str(Path(__file__).with_name("tiny_space.toml")), "--tuner",
            "random", "--trials", "3", "--epochs", "1", "--train-csv", "csv/train.csv",
            "--test-csv", "csv/test.csv", "--subset", "0.5", "--precision", "fp32",
            "--project", "p", "--results-dir", str(root), "--no-finalize"]
    assert main(args) == 0, capsys.readouterr().err
    assert "Ran 1 trial(s); project p has 3/3 finished" in " ".join(
        capsys.readouterr().out.split())
    assert [e.status for e in store.read_trials(root / "p")] == ["COMPLETED"] * 3
    assert rows["0"] == {r["trial"]: r for r in results.trial_rows(root, "p")}["0"]
