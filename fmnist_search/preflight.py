"""Checks that a command's outputs can be written, made before the work that produces them.

A baseline trains for minutes to hours and writes its run directory only at the end; a
read-only results directory found then loses the trained model. So commands try a real write
first: permissions, read-only mounts, a file where a folder should be, and root's exemption
from permission bits are all answered by the filesystem itself, not guessed from mode bits.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fmnist_search.errors import UserError


def ensure_writable_dir(directory: Path, what: str, remedy: str) -> None:
    """Prove a file can be created and removed in ``directory``; leave no trace behind.

    Missing folders are created for the probe and removed again, so a command refused later
    (say, for a bad input file) has written nothing.
    """
    created = [p for p in (directory, *directory.parents) if not p.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
        for folder in created:  # deepest first
            folder.rmdir()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"{what} {directory} is not writable ({reason}), so nothing could be "
                        f"saved there. {remedy}") from exc


def ensure_writable_results(directory: Path) -> None:
    ensure_writable_dir(directory, "The results directory", "Choose another with --results-dir "
                        "DIR (or FMNIST_RESULTS), or make it writable.")


def ensure_writable_file(path: Path, option: str) -> None:
    """An output file: its folder must take a new file, and the file itself must not be a
    folder or write-protected (it is replaced)."""
    if path.is_dir():
        raise UserError(f"{option} {path} is a directory; give a file name.")
    remedy = f"Give {option} a path in a writable folder."
    ensure_writable_dir(path.parent, f"{option} {path}: the folder", remedy)
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{option} {path} exists and is write-protected. {remedy}")


@contextmanager
def writing(path: Path, option: str) -> Iterator[None]:
    """An OSError while writing ``path`` (disk, permissions) as one clear error."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"{option} {path} cannot be written: {exc.strerror or exc}. Choose "
                        "another path.") from exc
