"""Searching a space with Keras Tuner: ``search`` (in ``search_loop``) is the loop; its helpers'
modules are named for what they hold.

The names below load on first use (PEP 562). ``search`` imports TensorFlow (5-10 s), and
the light modules of this package (the chief's address, the project lock, the worker's
parent watch) serve checks that must answer before TensorFlow loads.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "best_so_far": "project", "finished_count": "project", "project_lock": "project",
    "SearchOutcome": "search_loop", "SearchRequest": "search_loop", "search": "search_loop",
    "Stopped": "signals", "StopSignals": "signals",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)

