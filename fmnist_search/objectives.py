"""What a search optimises: validation accuracy alone (the default), or two or three measured
numbers of a trial, each with its direction (``--objectives``, a preset's ``objectives``).

Plain data and checks, without Keras: the command line refuses a bad name before TensorFlow
loads. Every objective is a number of a finished trial's ``record.json``, read at its best
epoch by validation accuracy (the epoch whose weights Keras Tuner keeps):

- ``val_accuracy`` (max), ``val_loss`` (min): that epoch's;
- ``params`` (min): trainable and non-trainable parameters;
- ``seconds_per_epoch`` (min): the median training epoch, validation included, the first
  epoch's tracing left out (``callbacks.EpochLog``);
- ``ms_per_image`` (min): inference milliseconds per image, measured the same way for every
  trial (``costs.inference_ms``: batch 512 of validation images, the process's threads);
- ``model_bytes`` (min): the size of the model saved as ``.keras`` without its optimizer.

A search with several objectives measures the last two for every trial, whichever it
optimises, so that its records can be read against any of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# name -> the one direction that makes sense for it (a typo such as val_accuracy:min would
# search for the worst models: refused, not followed)
DIRECTIONS = {"val_accuracy": "max", "val_loss": "min", "params": "min",
              "seconds_per_epoch": "min", "ms_per_image": "min", "model_bytes": "min"}
# Costs: positive and spread over orders of magnitude (10K to 10M parameters), so compared on a
# log scale where a distance matters (crowding, hypervolume, the density model's split).
COSTS = ("params", "seconds_per_epoch", "ms_per_image", "model_bytes")
MEASURED = ("ms_per_image", "model_bytes")  # measured only by a search with several objectives
DEFAULT = ("val_accuracy:max",)
MAX_OBJECTIVES = 3
VALID = ", ".join(f"{name}:{direction}" for name, direction in DIRECTIONS.items())
# The two a front is drawn over when a project searched one objective (``compare``'s fronts)
ACCURACY_AND_SIZE = ("val_accuracy:max", "params:min")


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str

    def __str__(self) -> str:
        return f"{self.name}:{self.direction}"

    def minimised(self, value: float | None) -> float:
        """``value`` as a number to minimise (the search's scale); NaN when unknown."""
        if value is None or not math.isfinite(float(value)):
            return math.nan
        value = float(value)
        if self.name in COSTS:
            value = math.log10(max(value, 1e-12))
        return -value if self.direction == "max" else value


def parse(given: str | Sequence[str], where: str = "--objectives") -> tuple[str, ...]:
    """``"val_accuracy:max,params:min"`` (or a list of such) -> the objectives, checked;
    raises ``ValueError`` with what is wrong and what is valid (``where`` names the key)."""
    items = given.split(",") if isinstance(given, str) else \
        list(given) if isinstance(given, (list, tuple)) else [given]
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"{where} = {given!r} must be a list of NAME:DIRECTION strings, "
                         f"e.g. [\"val_accuracy:max\", \"params:min\"]; valid: {VALID}")
    out: list[str] = []
    for item in (i.strip() for i in items):
        name, sep, direction = item.partition(":")
        if name not in DIRECTIONS:
            raise ValueError(f"{where}: {item!r} is not an objective; valid: {VALID}")
        if not sep:
            raise ValueError(f"{where}: {item!r} needs its direction: {name}:"
                             f"{DIRECTIONS[name]} (valid: {VALID})")
        if direction != DIRECTIONS[name]:
            verb = "maximised" if DIRECTIONS[name] == "max" else "minimised"
            raise ValueError(f"{where}: {item!r}: {name} can only be {verb}, "
                             f"{name}:{DIRECTIONS[name]} (valid: {VALID})")
        if item in out:
            raise ValueError(f"{where}: {item!r} is named twice")
        out.append(item)
    if tuple(out) != DEFAULT and not 2 <= len(out) <= MAX_OBJECTIVES:
        raise ValueError(f"{where}: {','.join(out) or 'nothing'}: give two or three objectives "
                         "(e.g. val_accuracy:max,params:min), or val_accuracy:max alone (the "
                         f"default); valid: {VALID}")
    return tuple(out)


def of(names: Sequence[str]) -> tuple[Objective, ...]:
    """Checked objective strings (``parse``) as ``Objective``s."""
    return tuple(Objective(*text.split(":")) for text in names)


def several(names: Sequence[str]) -> bool:
    """Whether a search optimises more than one number (a front, not a winner)."""
    return len(names) > 1
