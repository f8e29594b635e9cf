"""The only code that knows where named spaces, baselines and search presets live.

From a source checkout they are the top-level ``spaces/`` and ``search/`` folders; in an
installed wheel the same files are shipped under ``fmnist_search/_shipped/``.
"""

from __future__ import annotations

from pathlib import Path

from fmnist_search.errors import UserError

_PACKAGE = Path(__file__).resolve().parent


def _root(folder: str) -> Path:
    shipped = _PACKAGE / "_shipped" / folder
    return shipped if shipped.is_dir() else _PACKAGE.parent / folder


def spaces_dir() -> Path:
    return _root("spaces")


def baselines_dir() -> Path:
    return _root("spaces") / "baselines"


def presets_dir() -> Path:
    return _root("search")


def _names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.toml"))


def list_spaces() -> list[str]:
    return _names(spaces_dir())


def list_baselines() -> list[str]:
    return _names(baselines_dir())


def list_presets() -> list[str]:
    return _names(presets_dir())


def is_path(name: str) -> bool:
    """A name that means a file (``my.toml``, ``dir/x``) rather than a shipped name."""
    return name.endswith(".toml") or "/" in name


def _find(name: str, folder: Path, what: str, option: str, allow_path: bool) -> Path:
    from fmnist_search.preflight import check_path

    check_path(name if allow_path and is_path(name) else f"{name}.toml", option)
    if allow_path and is_path(name):
        path = Path(name)
        if path.is_dir():
            raise UserError(f"{option} {name} is a directory; a .toml file is expected.")
        if not path.is_file():
            raise UserError(f"{option} {name}: no such file.")
        return path
    path = folder / f"{name}.toml"
    if not path.is_file():
        extra = " or a path to a .toml file" if allow_path else ""
        raise UserError(
            f"{option} {name!r} is not a known {what}. Valid names: "
            f"{', '.join(_names(folder)) or '(none found in ' + str(folder) + ')'}{extra}."
        )
    return path


def space_path(name: str, option: str = "--space") -> Path:
    return _find(name, spaces_dir(), "space", option, allow_path=True)


def baseline_path(name: str) -> Path:
    return _find(name, baselines_dir(), "baseline model", "baseline", allow_path=False)


def preset_path(name: str) -> Path:
    return _find(name, presets_dir(), "search preset", "--search", allow_path=True)
