"""Checks of command-line values and output paths, made before any work starts.

An output file that cannot be written is found out before a model is loaded or a table built,
not after; a number outside what the builder supports is refused before it reaches Keras.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fmnist_search.errors import UserError

MAX_SEED = 2**32 - 1  # scikit-learn's and NumPy's limit for a random_state


def check_at_least(option: str, value: int | None, low: int, meaning: str = "") -> None:
    """``--top -1`` and the like: None means 'not given'."""
    if value is not None and value < low:
        raise UserError(f"{option} {value} must be {low} or more{meaning}.")


def check_range(option: str, value: int | None, low: int, high: int, why: str = "") -> None:
    if value is not None and not low <= value <= high:
        raise UserError(f"{option} {value} must be from {low} to {high}{why}.")


def check_domain(option: str, value: int | None, hyperparameter: str) -> None:
    """A command-line override of a hyperparameter stays inside the builder's domain."""
    from fmnist_search.builder import DOMAINS

    domain = DOMAINS[hyperparameter]
    check_range(option, value, int(domain.low), int(domain.high),
                f" (what the builder supports for {hyperparameter})")


def check_seed(value: int | None) -> None:
    check_range("--seed", value, 0, MAX_SEED)


def check_output_file(path: Path, option: str, example: str = "out.csv") -> None:
    """Refuse an output path that is a directory or cannot be written, before the work.

    Tried by opening it for appending (and removing it again if it was not there): as root,
    permission bits say nothing, and only an attempt tells.
    """
    if path.is_dir():
        raise UserError(f"{option} {path} is a directory; give a file name, e.g. "
                        f"{path / example}.")
    existed = path.exists()
    with writing(path, option):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
        if not existed:
            path.unlink()


@contextmanager
def writing(path: Path, option: str) -> Iterator[None]:
    """An OSError while writing ``path`` (disk, permissions) as one clear error."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"{option} {path} cannot be written: {exc.strerror or exc}. Choose "
                        "another path.") from exc
