"""Checks made before the work they guard, and before TensorFlow loads (5-10 s).

A baseline trains for minutes to hours and writes its run directory only at the end; a
read-only results directory found then loses the trained model. So commands try a real write
first: permissions, read-only mounts, a file where a folder should be, and root's exemption
from permission bits are all answered by the filesystem itself, not guessed from mode bits.
The same goes for a project (its folder, its lock), the chief's port and the worker count:
each is answered here in a fraction of a second, with nothing created.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fmnist_search import store
from fmnist_search.errors import UserError

# bench_workers on 2 cores (quick preset, 6 trials, both orders): one process ran 115-118
# trials/h, --workers 2 ran 106-112. More workers than cores only share the cores.

# Linux's limits, in bytes: a longer name or path is refused by every system call with
# ENAMETOOLONG, which Python raises from a mere exists() or is_dir().
NAME_MAX = 255  # one file or folder name
PATH_MAX = 4096  # a whole path, its terminating NUL included


def check_path(path: str | os.PathLike, what: str) -> None:
    """A path the system can look up, checked before the first look: each file or folder
    name in it at most ``NAME_MAX`` bytes, the whole shorter than ``PATH_MAX``. ``what``
    names where it came from (``--space``, ``--results-dir``)."""
    text = os.fspath(path)
    raw = os.fsencode(text)
    if len(raw) >= PATH_MAX:
        problem = f"it has {len(raw):,} bytes, and a path holds at most {PATH_MAX - 1:,}"
    else:
        name = next((part for part in raw.split(b"/") if len(part) > NAME_MAX), None)
        if name is None:
            return
        problem = (f"the name {os.fsdecode(name)[:20]}... in it has {len(name)} bytes, and a "
                   f"file or folder name holds at most {NAME_MAX}")
    shown = text if len(text) <= 60 else text[:40] + "..."
    raise UserError(f"{what} {shown} is too long to be a path: {problem}. Give a shorter path.")


def ensure_writable_dir(directory: Path, what: str, remedy: str) -> None:
    """Prove a file can be created and removed in ``directory``; leave no trace behind.

    Missing folders are created for the probe and removed again, so a command refused later
    (say, for a bad input file) has written nothing.
    """
    check_path(directory, what)
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
        blocker = next((p for p in reversed((directory, *directory.parents))
                        if p.exists() and not p.is_dir()), None)
        if blocker is not None:  # ENOTDIR or EEXIST: name the file, not the errno
            raise UserError(f"{what} {directory} is not writable: {blocker} is a file where "
                            "a folder should be, so nothing could be saved there. Move or remove "
                            f"that file. {remedy}") from exc
        raise UserError(f"{what} {directory} is not writable ({reason}), so nothing could be "
                        f"saved there. {remedy}") from exc


def ensure_writable_results(directory: Path) -> None:
    ensure_writable_dir(directory, "The results directory", "Choose another with --results-dir "
                        "DIR (or FMNIST_RESULTS), or make it writable.")


def ensure_writable_file(path: Path, option: str) -> None:
    """An output file: its folder must take a new file, and the file itself must not be a
    folder or write-protected (it is replaced)."""
    check_path(path, option)
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


def check_project(root: Path, project: str) -> None:
    """A search's project: a real folder of the results directory (``store.check_inside``),
    writable when it exists, and not being searched by another process right now."""
    path = store.check_inside(root, project)
    check_not_searched(root, project)
    if path.is_dir():
        ensure_writable_dir(path, f"The project folder of '{project}'",
                            "Make it writable, or choose another --project.")


def check_not_searched(root: Path, project: str) -> None:
    """The project's lock is free (taken and released at once; a missing lock file is not
    created). The search takes it for good later, so a race is still refused there."""
    lock = store.lock_file(root, project)
    try:
        fh = open(lock)  # noqa: SIM115 (closed below; read-only: creates nothing)
    except OSError:
        return
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise store.busy_error(root, project) from None


def ensure_bindable(host: str, port: int) -> None:
    """The chief's address can be listened on: bound and released at once, before the search
    creates its project. (``SO_REUSEADDR``, as gRPC sets it: a port in TIME_WAIT is free.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise UserError(f"The chief cannot listen on {shown} ({why}): the port is in use or "
                        "the address is not one of this machine's. Choose another --port (0 "
                        "picks a free one) or --bind; nothing was created.") from exc


def wait_for_chief(host: str, port: int, chief_json: Path, timeout: float,
                   note: Callable[[str], None] = print) -> None:
    """A worker's first step, before TensorFlow loads: its chief accepts a connection at
    HOST:PORT and has written ``chief.json`` (the search it serves), within ``timeout`` seconds
    (``--chief-timeout``) from the start. A worker started before its chief waits for it."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    deadline = time.monotonic() + timeout
    why, told = "", False
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, timeout)):
                pass
            if (store.read_json(chief_json) or {}).get("session") is not None:
                return
            why = f"it answers, but {chief_json} was not found"
        except OSError as exc:
            why = exc.strerror or str(exc)
        if time.monotonic() >= deadline:
            raise UserError(
                f"No chief at {shown} ({why}, for {timeout:g} s: --chief-timeout). Start the "
                "chief first (`fmnist-search chief`), give --chief the address it printed, and "
                "give every worker its --results-dir, on a file system they share.")
        if not told:
            note(f"waiting for the chief at {shown} ({why}) ...")
            told = True
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
