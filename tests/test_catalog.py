from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fmnist_search import catalog
from fmnist_search.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_names():
    assert catalog.list_spaces() == ["cnn", "resnet"]
    assert catalog.list_presets() == ["best", "pareto", "quick", "report", "standard"]
    assert len(catalog.list_baselines()) == 6


def test_unknown_names_list_valid_ones():
    with pytest.raises(UserError, match="Valid names: cnn, resnet"):
        catalog.space_path("vgg")
    with pytest.raises(UserError, match="Valid names: best, pareto, quick, report, standard"):
        catalog.preset_path("fast")


@pytest.mark.slow
def test_names_resolve_from_an_installed_wheel(tmp_path):
    """Build the wheel, unpack it alone on sys.path, and resolve names outside the checkout."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import fmnist_search, fmnist_search.catalog as c, fmnist_search.space as s, "
            "fmnist_search.baselines as b;"
            "print(fmnist_search.__file__); print(c.space_path('cnn'));"
            "print(len(s.load_named('resnet').entries), len(b.all_baselines()),"
            " c.list_presets())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith(str(site))
    assert lines[1] == str(site / "fmnist_search" / "_shipped" / "spaces" / "cnn.toml")
    assert lines[2].split(" ", 2)[1] == "6" and "standard" in lines[2]
