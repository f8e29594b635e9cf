"""Command line for searches and their results: run, leaderboard, show, retrain, predict, compare."""

from __future__ import annotations


def register(sub, common, dopts, topts, commands) -> None:
    pass
