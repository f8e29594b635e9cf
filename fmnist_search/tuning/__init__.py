"""Searching a space with Keras Tuner: see ``search`` for the loop and its helpers' modules.

The names below load on first use (PEP 562). ``search`` imports TensorFlow (5-10 s), and
the light modules of this package (the chief's address, the project lock, the worker's
parent watch) serve checks that must answer before TensorFlow loads.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_NAMES = {
    "best_so_far": "project", "finished_count": "project", "project_lock": "project",
    "SearchOutcome": "search", "SearchRequest": "search", "search": "search",
    "Stopped": "signals", "StopSignals": "signals",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)


class _Package(types.ModuleType):
    """``tuning.search`` stays the function: importing the module ``tuning.search`` would
    otherwise set it as this package's attribute, over the name (as an eager
    ``from .search import search`` used to rebind it)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "search" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
