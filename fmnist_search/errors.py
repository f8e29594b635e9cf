"""Errors a user can fix. The CLI prints them as one paragraph and exits with status 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a missing resource: the message says what and how to fix it."""


class ArchitectureError(UserError):
    """A set of hyperparameter values that describes a model that cannot exist."""
