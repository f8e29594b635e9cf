"""How much of ``--max-time`` the final stage needs: a pure estimate, from measured epochs.

A budget-aware search (``finalize_top > 0``) stops starting trials when the time left is what
finalize needs. Finalize trains the top k configurations for ``final_epochs`` on the whole
training split, so its cost is the sum of their measured seconds per epoch, scaled from the
screening subset to the full split (an epoch's cost is proportional to its images), plus a
margin for evaluation, start-up and the noise of a shared machine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_DURATION = re.compile(
    r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*")
MARGIN = 0.15  # a share of the estimate, for evaluation and timing noise
FLOOR_SECONDS = 60.0  # and at least this much (loading, building, writing the run dirs)
# The longest --max-time: a budget for one run of one machine; past a year it is a typo, and
# `99999999999999999999h` was taken as a deadline in the year 10^16.
MAX_SECONDS = 365 * 86_400


def finalize_reserve(seconds_per_epoch: Sequence[float], top: int, final_epochs: int,
                     scale: float = 1.0, baseline_epochs: Sequence[int] = (),
                     margin: float = MARGIN, floor: float = FLOOR_SECONDS) -> float:
    """Seconds to keep for finalizing ``top`` models of ``final_epochs`` epochs each.

    ``seconds_per_epoch``: measured epochs of the best trials, best first (only the first
    ``top`` are used); a model not measured yet is assumed to cost as much as the slowest one
    measured. ``scale``: full training split / screening subset, in images. Nothing measured,
    or ``top`` 0: nothing to reserve (the first trial always runs and measures one).
    """
    measured = [float(s) for s in seconds_per_epoch[:top] if s and s == s and s > 0]
    if top <= 0 or not measured:
        return 0.0
    measured += [max(measured)] * (top - len(measured))
    training = sum(measured) * final_epochs * scale
    training += sum(measured) / len(measured) * sum(baseline_epochs) * scale
    return training * (1 + margin) + floor


def model_seconds(seconds_per_epoch: float, epochs: int, scale: float = 1.0,
                  margin: float = MARGIN, floor: float = FLOOR_SECONDS) -> float:
    """Seconds to train one model of ``epochs`` epochs at a measured screening cost, with the
    reserve's margin and floor (loading, building, the test set's evaluation, writing): what
    finalize checks against the deadline before it starts a model that may not fit."""
    return seconds_per_epoch * scale * epochs * (1 + margin) + floor


def parse_duration(text: str) -> float:
    """'90s', '45m', '2h', '1h30m', '15' (seconds) -> seconds; ValueError names the forms."""
    if text.strip().startswith("-"):
        raise ValueError(f"{text!r} is negative; give a time to run, e.g. 90s, 45m, 2h or 1h30m")
    parts = _DURATION.fullmatch(text)
    if not parts or not any(parts.groups()):
        raise ValueError(f"{text!r} is not a duration; use e.g. 90s, 45m, 2h or 1h30m")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    seconds = h * 3600 + m * 60 + s
    if seconds > MAX_SECONDS:
        raise ValueError(f"{text!r} is more than a year ({MAX_SECONDS // 3600:,} h); give a "
                         "time to run, e.g. 90s, 45m, 2h or 1h30m")
    return seconds
