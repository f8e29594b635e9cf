"""The report's six models as pinned points of the one builder.

A baseline file holds the values to pin (architecture and training protocol), the space it
belongs to, and what the report measured, so that runs can be set beside the report's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmnist_search import builder, catalog
from fmnist_search.errors import ArchitectureError, UserError
from fmnist_search.space import domain_problem, read_toml

TOP_KEYS = {"title", "space", "outside", "values", "report"}


@dataclass
class Baseline:
    name: str
    title: str
    space: str
    values: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)
    outside: list[str] = field(default_factory=list)
    path: Path | None = None

    def final_epochs(self, final_epochs: int, use_final_epochs: bool) -> int:
        """Its epochs in a search's final table: the final stage's when the preset says so
        (``final_baselines_epochs``), else its own protocol's."""
        return final_epochs if use_final_epochs else int(self.values.get("epochs", final_epochs))

    def hyperparameters(self):
        """The pinned values as Keras Tuner ``Fixed`` hyperparameters."""
        import keras_tuner as kt

        hp = kt.HyperParameters()
        for name, value in self.values.items():
            hp.Fixed(name, value)
        return hp


def load(name: str) -> Baseline:
    return load_file(catalog.baseline_path(name), name)


def load_file(path: Path, name: str | None = None) -> Baseline:
    data, _ = read_toml(path)
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; a baseline file "
                        f"has {', '.join(sorted(TOP_KEYS))}.")
    values = data.get("values")
    if not isinstance(values, dict) or not values:
        raise UserError(f"{path}: [values] must be a table of hyperparameter values.")
    for key, value in values.items():
        domain = builder.domain_of(key)
        if domain is None:
            raise UserError(f"{path}: [values] {key} is not a hyperparameter the builder knows.")
        problem = domain_problem(domain, value)
        if problem:
            raise UserError(f"{path}: [values] {key}: {problem}")
    try:
        builder.plan_layers(values)
    except ArchitectureError as exc:
        raise UserError(f"{path}: {exc}") from exc
    return Baseline(name or path.stem, str(data.get("title", "")), str(data.get("space", "")),
                    values, dict(data.get("report", {})), list(data.get("outside", [])), path)


def all_baselines() -> list[Baseline]:
    return [load(name) for name in catalog.list_baselines()]
