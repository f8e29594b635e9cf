"""The results directory: which names may become paths, and how its files are written.

Everything this tool keeps on disk (our records and Keras Tuner's own state) is written through
``write_text``/``write_json``: a temporary file in the same directory, flushed and fsynced, then
renamed over the old one, and the directory fsynced. A reader (or a resume after ``kill -9``)
sees the old file or the new one, never half of one. A full or read-only disk is one
``StateWriteError`` naming the path, and the old file is left as it was.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any

from fmnist_search.errors import UserError

RUN_JSON = "run.json"
RECORD_JSON = "record.json"
TRIAL_JSON = "trial.json"
ORACLE_JSON = "oracle.json"
TUNER_JSON = "tuner0.json"

_SAFE = re.compile(r"[A-Za-z0-9._-]+")
# Errors that are the disk's fault, not the configuration's: they stop a search (resumable)
# instead of failing a trial.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


class StateWriteError(UserError):
    """A file of the results directory could not be written (disk full, read-only, no access)."""


def check_name(value: str | None, what: str = "--project") -> str:
    """A name that becomes one directory: letters, digits, '-', '_', '.'; not '.', '..' or ''.

    Checked before anything is touched, so that no name can reach outside the results
    directory (``..``), replace it (``.``), or nest (``a/b``).
    """
    if value is None or not _SAFE.fullmatch(value) or value in (".", ".."):
        shown = "an empty name" if not value else repr(value)
        raise UserError(
            f"{what} {shown} is not a valid name: use one path component of letters, digits, "
            "'-', '_' and '.' (not '.' or '..', no '/'), for example cnn-bayesian."
        )
    return value


def project_dir(root: Path, project: str) -> Path:
    return root / check_name(project)


def is_project(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and (path / RUN_JSON).is_file()


def remove_project(root: Path, project: str) -> bool:
    """``--overwrite``: delete a project of this tool, and nothing else.

    Only a real directory directly inside ``root`` that holds our ``run.json`` is removed; any
    other existing path is refused, so a mistyped name cannot delete a user's directory.
    """
    path = project_dir(root, project)
    if not path.exists() and not path.is_symlink():
        return False
    if not is_project(path):
        raise UserError(
            f"--overwrite refused: {path} exists but is not an fmnist-search project (it has "
            f"no {RUN_JSON}). Nothing was deleted; choose another --project or remove it yourself."
        )
    shutil.rmtree(path)
    return True


def is_disk_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return True
    text = str(exc)
    return "No space left on device" in text or "Read-only file system" in text


def disk_error(path: Path | str, exc: BaseException) -> StateWriteError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return StateWriteError(
        f"Cannot write {path}: {reason}. Nothing finished was lost (state files are replaced "
        "whole or not at all); free some space (or make the directory writable) and rerun the "
        "same command to resume."
    )


def write_text(path: Path | str, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (see the module docstring)."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        if is_disk_error(exc):
            raise disk_error(path, exc) from exc
        raise
    finally:
        if tmp is not None:
            with suppress(OSError):
                os.unlink(tmp)


def write_json(path: Path | str, obj: Any, indent: int | None = 2) -> str:
    text = json.dumps(obj, indent=indent, default=float)
    write_text(path, text)
    return text


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object, or None when the file is missing, empty, truncated or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _fsync_dir(directory: Path) -> None:
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
