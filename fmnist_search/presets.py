"""Search presets (``search/*.toml``): how to search, as data.

Layering, lowest first: these defaults, the preset file, then command-line options.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from fmnist_search import builder, catalog
from fmnist_search.errors import UserError
from fmnist_search.space import domain_problem, read_toml

TUNERS = ("random", "bayesian", "hyperband")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # training.PRECISIONS, without importing Keras


@dataclass(frozen=True)
class Preset:
    name: str = "default"
    description: str = ""
    tuner: str = "bayesian"
    trials: int = 20
    epochs: int = 8
    factor: int = 3
    iterations: int = 1  # Hyperband's hyperband_iterations
    subset: float = 1.0
    patience: int = 2
    precision: str = "auto"
    fixed: dict[str, Any] = field(default_factory=dict)

    def with_overrides(self, **overrides: Any) -> Preset:
        """Command-line options win over the file; None means 'not given'."""
        given = {k: v for k, v in overrides.items() if v is not None}
        fixed = {**self.fixed, **given.pop("fixed", {})}
        return replace(self, fixed=fixed, **given)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


SCALARS = {f.name: f.type for f in fields(Preset) if f.name not in ("name", "fixed")}


def load(name_or_path: str) -> Preset:
    path = catalog.preset_path(name_or_path)
    return parse(path, read_toml(path)[0])


def parse(path: Path, data: dict) -> Preset:
    unknown = set(data) - set(SCALARS) - {"fixed"}
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; a preset has "
                        f"{', '.join(sorted([*SCALARS, 'fixed']))}.")
    checks = {"trials": int, "epochs": int, "factor": int, "iterations": int, "patience": int,
              "subset": (int, float)}
    for key, kind in checks.items():
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], kind)):
            raise UserError(f"{path}: {key} = {data[key]!r} must be a number.")
    if data.get("tuner", "bayesian") not in TUNERS:
        raise UserError(f"{path}: tuner = {data['tuner']!r}; valid: {', '.join(TUNERS)}.")
    if data.get("precision", "auto") not in PRECISIONS:
        raise UserError(f"{path}: precision = {data['precision']!r}; valid: "
                        f"{', '.join(PRECISIONS)}.")
    fixed = data.get("fixed", {})
    if not isinstance(fixed, dict):
        raise UserError(f"{path}: fixed = {fixed!r} must be a [fixed] table of hyperparameter "
                        "values, e.g. batch_size = 128.")
    for key, value in fixed.items():
        domain = builder.domain_of(key)
        problem = (f"'{key}' is not a hyperparameter" if domain is None
                   else domain_problem(domain, value))
        if problem:
            raise UserError(f"{path}: [fixed] {key}: {problem}")
    preset = Preset(name=path.stem, **{k: v for k, v in data.items() if k != "fixed"},
                    fixed=dict(fixed))
    validate(preset, str(path))
    return preset


def validate(preset: Preset, where: str) -> None:
    if preset.trials < 1 or preset.epochs < 1:
        raise UserError(f"{where}: trials ({preset.trials}) and epochs ({preset.epochs}) must be "
                        "at least 1.")
    top = int(builder.DOMAINS["epochs"].high)
    if preset.epochs > top:
        raise UserError(f"{where}: epochs {preset.epochs} is more than the builder supports "
                        f"({top}).")
    if preset.tuner == "hyperband" and (preset.factor < 2 or preset.iterations < 1):
        raise UserError(f"{where}: Hyperband's factor must be at least 2 and its iterations at least 1 "
                        f"(got {preset.factor}, {preset.iterations}).")
    if not 0 < preset.subset <= 1:
        raise UserError(f"{where}: subset {preset.subset} must be a fraction in (0, 1].")
    if preset.patience < 0:
        raise UserError(f"{where}: patience {preset.patience} must be 0 (off) or more.")
