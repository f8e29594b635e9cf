"""Option types and the options several commands share, each defined once.

Every value a user types is checked here, by argparse, before a command imports anything
heavy: TensorFlow takes 5-10 s to load, and ``--trials 0`` should not cost that to refuse.
A type's message continues the option's name ("--trials" + " 0 must be ..."), which is how
:class:`fmnist_search.cli.common.Parser` prints it.
"""

from __future__ import annotations

import argparse

from fmnist_search.presets import PRECISIONS, TUNERS  # noqa: F401 - the one definition

MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's seeds are unsigned 32-bit



def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value:  # NaN compares false with every bound below
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    return value


def positive_int(text: str) -> int:
    """Counts such as trials, epochs and batch sizes: 1 or more."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a positive whole number")
    return value


def hyperband_factor(text: str) -> int:
    """Hyperband keeps 1/factor of each round's models: a factor of 1 would keep them all."""
    value = _whole(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{value} must be 2 or more (Hyperband keeps one in "
                                         "FACTOR of each round's models; 3 is usual)")
    return _at_most(value, "factor")


def _at_most(value: int | float, setting: str) -> int | float:
    """``value``, refused above the most ``presets.LIMITS`` allows for ``setting``."""
    from fmnist_search.presets import LIMITS

    most, why = LIMITS[setting]
    if not value <= most:
        raise argparse.ArgumentTypeError(f"{value:g} is more than {most:,} ({why})"
                                         if isinstance(value, float)
                                         else f"{value} is more than {most:,} ({why})")
    return value


def trial_count(text: str) -> int:
    """--trials: 1 to presets.LIMITS' most."""
    return _at_most(positive_int(text), "trials")


def final_count(text: str) -> int:
    """finalize's configurations: 1 to presets.LIMITS' most for finalize_top."""
    return _at_most(positive_int(text), "finalize_top")


def max_params(text: str) -> int:
    return _at_most(positive_int(text), "max_params")


def max_seconds_per_epoch(text: str) -> float:
    return _at_most(positive_float(text), "max_seconds_per_epoch")



def in_domain(hyperparameter: str):
    """A positive count that also lies in the builder's domain for ``hyperparameter``."""

    def check(text: str) -> int:
        from fmnist_search.builder import DOMAINS  # plain data: no Keras behind it

        value, domain = positive_int(text), DOMAINS[hyperparameter]
        if not domain.low <= value <= domain.high:
            raise argparse.ArgumentTypeError(
                f"{value} must be from {int(domain.low)} to {int(domain.high)} (what the "
                f"builder supports for {hyperparameter})")
        return value

    check.__name__ = hyperparameter
    return check


def num_classes(text: str) -> int:
    """A classifier of Fashion-MNIST's images has 2 to 10 outputs."""
    value = _whole(text)
    if not 2 <= value <= 10:
        raise argparse.ArgumentTypeError(f"{value} must be from 2 to 10 (a classifier of "
                                         "Fashion-MNIST's images has 2 to 10 classes)")
    return value


def ensemble_size(text: str) -> int:
    """--ensemble-size: 0 (off) to presets.MAX_ENSEMBLE greedy rounds."""
    from fmnist_search.presets import MAX_ENSEMBLE

    value = non_negative_int(text)
    if value > MAX_ENSEMBLE:
        raise argparse.ArgumentTypeError(f"{text} is more than {MAX_ENSEMBLE} rounds (each "
                                          "adds one member, repeats counted); 0 turns it off")
    return value


def objective_list(text: str) -> tuple[str, ...]:
    """--objectives: NAME:DIRECTION pairs, comma-separated (``objectives.parse``)."""
    from fmnist_search import objectives

    try:
        return objectives.parse(text, "")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(": ")) from None


def non_negative_int(text: str) -> int:
    """Counts where 0 means 'off' or 'all' (patience, rows to show)."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be a whole number, 0 or more")
    return value


def patience(text: str) -> int:
    """--patience: 0 (off) to presets.LIMITS' most."""
    return _at_most(non_negative_int(text), "patience")


def seed(text: str) -> int:
    """A seed numpy, scikit-learn and Keras all accept."""
    value = _whole(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} must be a whole number from 0 to {MAX_SEED}")
    return value


def positive_float(text: str) -> float:
    """A limit in seconds: more than 0."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be a number above 0")
    return value


def fraction(text: str) -> float:
    """A share of the training set to use: (0, 1]."""
    value = _number(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} must be a fraction in (0, 1], e.g. 0.1")
    return value


def split_fraction(text: str) -> float:
    """A share to split off: (0, 1), since both sides of the split must hold images."""
    value = _number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} must be a fraction in (0, 1), e.g. 0.2")
    return value


# Limits of the options that are no preset setting, and why.
MAX_ROWS = 1_000_000  # rows of a table to show; 0 shows them all
MAX_WORKERS = 1024  # processes on one machine: more than any machine's cores
MAX_WORKERS_PER_GPU = 64  # each worker holds its own TensorFlow runtime on the GPU
MAX_THREADS = 1024  # TensorFlow threads: more than any machine's cores
MAX_RESAMPLES = 1000  # each resample fits a random forest: 8 take seconds, 1000 minutes
MAX_WAIT = 86_400  # seconds: a chief or worker silent for a day is gone


def _capped(base, most: int | float, why: str):
    def check(text: str):
        value = base(text)
        if not value <= most:
            raise argparse.ArgumentTypeError(f"{text} is more than {most:,} ({why})")
        return value

    return check


rows = _capped(non_negative_int, MAX_ROWS, "0 shows every row")
workers = _capped(positive_int, MAX_WORKERS,
                  "each is a process on this machine")
workers_per_gpu = _capped(positive_int, MAX_WORKERS_PER_GPU,
                          "each holds its own TensorFlow runtime on the GPU")
threads = _capped(positive_int, MAX_THREADS,
                  "more threads than any machine has cores")
resamples = _capped(positive_int, MAX_RESAMPLES,
                    "each fits a random forest: 8 take seconds, 1000 minutes")
slices = _capped(positive_int, MAX_ROWS,
                 "the hyperparameters to slice; more shows them all")
wait_seconds = _capped(positive_float, MAX_WAIT, "seconds: a day")


def parse_duration(text: str) -> float:
    """'90s', '45m', '2h', '1h30m', '15' (seconds) -> seconds (``budget.parse_duration``)."""
    from fmnist_search import budget

    try:
        return budget.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration(text: str) -> float:
    """--max-time: its seconds, parsed once, here (the command line is recorded as typed)."""
    return parse_duration(text)


def class_list(text: str) -> str:
    """Checked here with the data module's own rules, kept as text (parsed where used)."""
    from fmnist_search.dataset import parse_classes
    from fmnist_search.errors import UserError

    try:
        parse_classes(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def address(text: str):
    """HOST:PORT, parsed once, here, into ``tuning.network.Address``."""
    from fmnist_search.tuning.network import parse_address

    try:
        return parse_address(text, "")
    except Exception:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an address: give HOST:PORT, e.g. 127.0.0.1:8470") from None


def bind_host(text: str) -> str:
    import ipaddress

    host = text.strip("[]")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an IP address of this machine: give one such as 127.0.0.1, "
                "10.0.0.5 or 0.0.0.0 (every interface)") from None
    return host


def port(text: str) -> int:
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} must be a port from 1 to 65535 (0: a free one)")
    return value


def worker_id(text: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", text) or "chief" in text.lower():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a worker id: use up to 64 letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, without the word 'chief' (Keras Tuner reserves "
            "it), e.g. gpu-node1")
    return text


def cpu_list(text: str) -> tuple[int, ...]:
    try:
        cpus = tuple(sorted({int(c) for c in text.split(",") if c.strip()}))
    except ValueError:
        cpus = ()
    if not cpus or min(cpus) < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of core numbers, e.g. 0,1")
    return cpus


# --------------------------------------------------------------------------- renamed options


class Deprecated(argparse.Action):
    """An old spelling kept for one release: hidden from ``--help``, it sets the new option's
    value and says on stderr, once, what to write instead."""

    def __init__(self, option_strings, dest, instead: str, **kwargs) -> None:
        kwargs.setdefault("default", argparse.SUPPRESS)
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)
        self.instead = instead

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if values is None:  # an optional positional that was not given
            return
        import sys

        old = option_string or f"{self.metavar or self.dest.upper()} as a positional"
        sys.stderr.write(f"warning: {old} is deprecated and goes in the next release: use "
                         f"{self.instead}.\n")
        setattr(namespace, self.dest, values)


def add_renamed(parser, old: str, new: str, **kwargs) -> None:
    """``old`` as a deprecated alias of the option ``new`` (same destination and type)."""
    dest = new.lstrip("-").replace("-", "_")
    parser.add_argument(old, dest=dest, action=Deprecated, instead=new, **kwargs)


# --------------------------------------------------------------------------- shared options


def add_epochs(group, help: str = "override the protocol's epochs") -> None:
    group.add_argument("--epochs", type=in_domain("epochs"), help=help)


def add_precision(group, default: str | None = "auto",
                  help: str = "auto: bf16 on CPUs with AMX/AVX512-BF16, fp16 on CUDA, "
                  "else fp32") -> None:
    group.add_argument("--precision", default=default, choices=PRECISIONS, help=help)


def add_patience(group, default: int | None, help: str) -> None:
    group.add_argument("--patience", type=patience, default=default, help=help)


def add_data_dir(group, help: str = "folder with the four IDX .gz files (else FMNIST_DATA, "
                 "data/, Debian's package, the Keras cache)") -> None:
    group.add_argument("--data-dir", help=help)
