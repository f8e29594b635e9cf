"""TensorFlow's native start-up logging, kept off a command's stderr (``--debug`` shows it).

With TensorFlow 2.21, importing it prints six lines from C++ through absl before Python
logging exists ("All log messages before absl::InitializeLog() ...", the oneDNN notice and
"Could not find cuda drivers", once for each of two shared libraries), and the first use of a
device adds ``E0000 ... failed call to cuInit``. ``TF_CPP_MIN_LOG_LEVEL`` no longer hides
them, and ``TF_ENABLE_ONEDNN_OPTS=0`` would also switch oneDNN off (slower training). They are
written straight to file descriptor 2, so no Python-level setting can reach them.

So the CLI points descriptor 2 at a pipe read by a small filter process, which drops those
lines and passes everything else through. Python's own ``sys.stderr`` (error messages,
tracebacks, warnings) is re-opened on the real stderr and bypasses the filter. A separate
process rather than a thread: when TensorFlow aborts on a failed check, its last ``F...``
line is in the pipe, and the filter, still alive, delivers it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

# absl's prefix: severity, MMDD, time, thread id, file:line]
ABSL_LINE = re.compile(r"([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] (.*)")
NOISE_TEXT = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "To enable the following instructions:",  # second line of cpu_feature_guard's notice
)
# Warnings and errors that only say that no GPU, TensorRT or second plugin copy is there, and
# gRPC's own line for a chief's port it cannot bind (the chief's error message says it, once).
NOISE_MESSAGES = re.compile(
    r"failed call to cuInit|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"computation placer already registered|Could not find TensorRT|Skipping the delay kernel|"
    r"Failed to add port to server")


def is_noise(line: str) -> bool:
    """True for TensorFlow's informational lines and its known no-GPU warnings; warnings
    and errors of any other kind (memory, failed checks) are kept."""
    line = line.rstrip("\r\n")
    if any(line.startswith(text) or line.endswith(text) for text in NOISE_TEXT):
        return True
    match = ABSL_LINE.match(line)
    if not match:
        return False
    severity, message = match.groups()
    return severity == "I" or bool(NOISE_MESSAGES.search(message))


def copy_filtered(source: Iterable[bytes], sink: BinaryIO) -> None:
    """Pass on every line that is not noise, as it arrives."""
    for raw in source:
        if not is_noise(raw.decode("utf-8", "replace")):
            sink.write(raw)
            sink.flush()


def hide() -> None:
    """Route descriptor 2 through the filter for the rest of this process.

    Only for a process that owns its stderr (the ``fmnist-search`` command): in-process
    callers such as tests capture descriptor 2 themselves.
    """
    read_end, write_end = os.pipe()
    package_parent = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)}
    try:
        # A session of its own: Ctrl-C meant for the command must not kill its stderr.
        child = subprocess.Popen([sys.executable, "-m", "fmnist_search.native_logs"],
                                 stdin=read_end, stdout=subprocess.DEVNULL, env=env,
                                 start_new_session=True)
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return  # nothing filtered is better than nothing shown
    os.close(read_end)
    sys.stderr.flush()
    terminal = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    sys.stderr = open(terminal, "w", buffering=1, encoding=encoding,  # noqa: SIM115
                      errors="backslashreplace", closefd=False)
    atexit.register(_restore, terminal, child)


def _restore(terminal: int, child: subprocess.Popen) -> None:
    """At exit: give descriptor 2 back (closing the pipe) and let the filter finish, so that
    its last lines come before the shell's prompt."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os.dup2(terminal, 2)
    sys.stderr = sys.__stderr__
    # Past the timeout, a subprocess we started still holds the pipe; the filter ends with it.
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=5)


def main() -> None:
    # OSError: the terminal went away, so there is nothing left to show anything on.
    with contextlib.suppress(OSError, KeyboardInterrupt):
        copy_filtered(sys.stdin.buffer, sys.stderr.buffer)


if __name__ == "__main__":
    main()
