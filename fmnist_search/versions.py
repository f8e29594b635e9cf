"""What code produced a result: the versions of Python and the core packages, and a digest of
this package's own sources (two checkouts of one version can still differ). Recorded in
``run.json`` and every run's ``metrics.json``; a distributed worker compares them with its
chief's."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path


def code_digest() -> str:
    """A digest of this package's sources: two checkouts of one version can still differ."""
    package = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def versions() -> dict[str, str]:
    import keras
    import keras_tuner

    import fmnist_search
    from fmnist_search import backend

    return {"python": platform.python_version(), backend.name(): backend.version(),
            "keras": keras.__version__, "keras-tuner": keras_tuner.__version__,
            "fmnist-search": fmnist_search.__version__, "code": code_digest()}
