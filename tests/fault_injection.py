"""Run the CLI with one state write turned into a crash: ``python fault_injection.py NAME:N
ACTION -- ARGS``.

The N-th write of a file called NAME either dies with SIGKILL half-way (a partial temporary file
is left beside it, as a real kill during the write would) or raises ENOSPC, the way a full disk
does. Used by the state tests, which then resume the project without the fault; a test that
needs no kill installs ``faulty_write`` in its own process (monkeypatch) and saves a process.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from fmnist_search import store

real_write_text = store.write_text


def faulty_write(target: str, nth: int, action: str) -> Callable[[Path | str, str], None]:
    """``store.write_text`` with the ``nth`` write of a file named ``target`` made ``action``."""
    seen = {"n": 0}

    def write_text(path, text: str) -> None:
        path = Path(path)
        if path.name == target:
            seen["n"] += 1
            if seen["n"] == nth:
                if action == "enospc":
                    raise store.disk_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
                (path.parent / f".{path.name}.crash.tmp").write_text(text[: len(text) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
        real_write_text(path, text)

    return write_text


def install(target: str, nth: int, action: str) -> None:
    store.write_text = faulty_write(target, nth, action)


if __name__ == "__main__":
    spec, action, sep, *args = sys.argv[1:]
    name, nth = spec.rsplit(":", 1)
    install(name, int(nth), action)
    from fmnist_search.cli import main

    sys.exit(main(args))
