"""Searching a space with Keras Tuner: see ``search`` for the loop and its helpers' modules."""

from fmnist_search.tuning.project import best_so_far, finished_count, project_lock
from fmnist_search.tuning.search import (
    SearchOutcome,
    SearchRequest,
    search,
)
from fmnist_search.tuning.signals import Stopped, StopSignals

__all__ = ["SearchOutcome", "SearchRequest", "StopSignals", "Stopped", "best_so_far",
           "finished_count", "project_lock", "search"]
