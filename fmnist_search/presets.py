"""Search presets (``search/*.toml``): how to search, as data.

Layering, lowest first: these defaults, the preset file, then command-line options.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from fmnist_search import builder, catalog, objectives
from fmnist_search.errors import UserError
from fmnist_search.space import domain_problem, read_toml

TUNERS = ("random", "bayesian", "hyperband", "bohb", "motpe")
MULTI_FIDELITY = ("hyperband", "bohb", "motpe")  # tuners that run Hyperband's brackets
MODEL_BASED = ("bohb", "motpe")  # tuners whose density model the [bohb] table sets
# Tuners that search several objectives: MO-TPE (tuning/motpe.py), and uniform draws, whose
# front is what they happened to find. The others optimise Keras Tuner's single objective.
MULTI_OBJECTIVE = ("motpe", "random")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # training.PRECISIONS, without importing Keras


@dataclass(frozen=True)
class BohbSettings:
    """BOHB's model (``tuner = "bohb"``, Falkner, Klein and Hutter 2018): the paper's defaults.
    Each is documented in docs/spaces-and-presets.md; ``BOHB_RULES`` says what is valid."""

    random_fraction: float = 1 / 3  # share of new configurations drawn at random (rho)
    min_points_in_model: int = 0  # N_min; 0: the searched hyperparameters + 1
    top_n_percent: float = 15.0  # the best q% of a budget's results are "good"
    num_samples: int = 64  # candidates drawn from the good density, best l/g kept
    bandwidth_factor: float = 3.0  # b_w: candidates drawn with bandwidths this much wider
    min_bandwidth: float = 1e-3  # no bandwidth below this (keeps exploring)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# The most each numeric setting may be, and why: past it a value means nothing more, or is a
# typo that would be taken at its word (`--factor 10**20` searched, `num_samples = 10**12`
# asked numpy for 29 TiB). The command line checks the same names (cli/options.py).
MAX_TRIALS = 10_000  # Keras Tuner rewrites oracle.json, listing every trial, after each one
_EPOCHS = int(builder.DOMAINS["epochs"].high)  # the builder's most epochs (1000)
LIMITS: dict[str, tuple[int | float, str]] = {
    "trials": (MAX_TRIALS, "Keras Tuner rewrites oracle.json, which lists every trial, after "
               "each one, and rereads every trial.json to resume; 10,000 trials of the quick "
               "preset are days of search here"),
    # At a factor above the epochs Hyperband has one bracket: a random search at full epochs.
    "factor": (_EPOCHS, "the builder's most epochs: at a larger factor Hyperband has one "
               "bracket, a random search at full epochs"),
    "iterations": (MAX_TRIALS, "each Hyperband iteration runs at least one trial"),
    "patience": (_EPOCHS, "the builder's most epochs: a longer patience never stops anything"),
    "prune_after": (_EPOCHS, "the builder's most epochs: no trial gets that far"),
    # 10^10 parameters are 40 GB of float32 weights: no 28x28 model comes near it.
    "max_params": (10**10, "ten billion parameters, 40 GB of float32 weights: a larger limit "
                   "limits nothing"),
    "max_seconds_per_epoch": (86_400, "a day per epoch: a larger limit limits nothing"),
    # model5 (ResNet50) costs about 100 model1 epochs here; 10,000 limits nothing real
    "max_epoch_cost": (10_000, "ten thousand model1 epochs: a larger limit limits nothing"),
    # Each is a full training of final_epochs on the whole split: the best preset's 3 take
    # about 3 hours on the 2-core development machine.
    "finalize_top": (100, "each one is a full training on the whole training split"),
}

# key -> (is the value valid, what is valid): checked with the file, key and value named.
# num_samples: each candidate is decoded and scored in about 0.6 ms (measured on the resnet
# space's 25 searched hyperparameters, 200 results: 64 took 0.05 s, 4000 took 2.3 s a
# proposal); past 4096 a proposal costs more than a screening epoch, and 10^12 asked numpy for
# 29 TiB. bandwidth_factor: 1000 times the least bandwidth (0.001) already spans the whole
# [0, 1] range of a hyperparameter, so a wider draw is uniform; inf made every draw NaN.
BOHB_RULES = {
    "random_fraction": (lambda v: 0 <= v <= 1, "a fraction in [0, 1] (the paper's 1/3)"),
    "min_points_in_model": (lambda v: isinstance(v, int) and 0 <= v <= MAX_TRIALS,
                            "a whole number from 0 (the searched hyperparameters + 1) to "
                            f"{MAX_TRIALS:,} (a search's most trials: past it the model would "
                            "never start)"),
    "top_n_percent": (lambda v: 0 < v < 100, "a percentage in (0, 100) (the paper's 15)"),
    "num_samples": (lambda v: isinstance(v, int) and 1 <= v <= 4096,
                    "a whole number from 1 to 4096 (the paper's 64; each candidate costs about "
                    "0.6 ms a proposal)"),
    "bandwidth_factor": (lambda v: 0 < v <= 1000,
                         "a number above 0, at most 1000 (the paper's 3; 1000 times the least "
                         "bandwidth spans a hyperparameter's whole range)"),
    "min_bandwidth": (lambda v: 0 < v < 1, "a number in (0, 1) (the paper's 0.001)"),
}


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
    # Budget-aware search (see search/best.toml): 0 means off / no limit.
    prune_after: int = 0  # median stopping from this epoch on
    max_params: int = 0  # reject a configuration with more parameters before it trains
    max_seconds_per_epoch: float = 0.0  # reject one whose estimated epoch takes longer
    # ... or longer than this many times an epoch of the report's model1 on the same images,
    # measured on this machine when the search starts (``calibration``): a limit that holds
    # on slow and fast CPUs alike
    max_epoch_cost: float = 0.0
    finalize_top: int = 0  # train the top k with the final protocol when the search ends
    final_epochs: int = 0  # the final protocol's epochs (0: the preset's epochs)
    final_baselines: tuple[str, ...] = ()  # report models trained beside them
    final_baselines_epochs: bool = False  # train those with final_epochs too
    # Finalize's ensemble (fmnist_search.ensemble): greedy rounds, at most this many members
    # counted with repeats; 0 or 1: off. Its parameters together stay under max_params.
    ensemble_size: int = 5
    start_from_default: bool = False  # the first trial trains the space's default point
    # TensorFlow's deterministic kernels (a GPU's trials then repeat bit for bit, slower and
    # without XLA); off by default: a CPU's kernels are deterministic already.
    deterministic: bool = False
    # The least share of --max-time the search gets whatever finalize's reserve says: on a slow
    # day the reserve for slow candidates can exceed the budget and end the search after one
    # trial. Finalize then trains the best configuration and the report models, and the
    # runners-up that fit the time left.
    min_search_share: float = 0.0
    fixed: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] = field(default_factory=dict)  # values the final protocol pins
    bohb: BohbSettings = field(default_factory=BohbSettings)  # [bohb]: bohb and motpe only
    # What the search optimises (``objectives``): validation accuracy, or two or three
    # measured numbers with their directions ("params:min"), searched by tuner = "motpe".
    objectives: tuple[str, ...] = objectives.DEFAULT

    def with_overrides(self, **overrides: Any) -> Preset:
        """Command-line options win over the file; None means 'not given'."""
        given = {k: v for k, v in overrides.items() if v is not None}
        fixed = {**self.fixed, **given.pop("fixed", {})}
        return replace(self, fixed=fixed, **given)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["final_baselines"] = list(self.final_baselines)
        out["bohb"] = self.bohb.as_dict()
        out["objectives"] = list(self.objectives)
        return out

    @property
    def final_epoch_count(self) -> int:
        return self.final_epochs or self.epochs


def from_dict(data: dict[str, Any]) -> Preset:
    """A preset as a project's ``run.json`` recorded it (``Preset.as_dict``)."""
    known = {f.name for f in fields(Preset)}
    values = {k: v for k, v in data.items() if k in known}
    values["final_baselines"] = tuple(values.get("final_baselines", ()))
    values["bohb"] = BohbSettings(**values.get("bohb", {}))
    values["objectives"] = tuple(values.get("objectives", objectives.DEFAULT))
    return Preset(**values)


TABLES = ("fixed", "final")
MAX_ENSEMBLE = 50  # each round scores every candidate once: cheap, but more says nothing
SCALARS = {f.name: f.type for f in fields(Preset) if f.name not in ("name", "bohb", *TABLES)}


def load(name_or_path: str) -> Preset:
    path = catalog.preset_path(name_or_path)
    return parse(path, read_toml(path)[0])


def parse(path: Path, data: dict) -> Preset:
    if not data:
        raise UserError(f"{path} sets nothing: an empty preset would search with the built-in "
                        "defaults without a word. Set at least one key (e.g. trials = 20), or "
                        f"use a shipped preset ({', '.join(catalog.list_presets())}).")
    unknown = set(data) - set(SCALARS) - set(TABLES) - {"bohb"}
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; a preset has "
                        f"{', '.join(sorted([*SCALARS, *TABLES, 'bohb']))}.")
    checks = {"trials": int, "epochs": int, "factor": int, "iterations": int, "patience": int,
              "subset": (int, float), "prune_after": int, "max_params": int,
              "max_seconds_per_epoch": (int, float), "max_epoch_cost": (int, float),
              "finalize_top": int, "final_epochs": int,
              "min_search_share": (int, float), "ensemble_size": int}
    for key, kind in checks.items():
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], kind)):
            raise UserError(f"{path}: {key} = {data[key]!r} must be a number.")
    for key in ("final_baselines_epochs", "start_from_default", "deterministic"):
        if key in data and not isinstance(data[key], bool):
            raise UserError(f"{path}: {key} = {data[key]!r} must be true or false.")
    names = data.get("final_baselines", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{path}: final_baselines = {names!r} must be a list of baseline "
                        'names, e.g. ["model3"].')
    for name in names:
        catalog.baseline_path(name)  # a typo is refused now, not after hours of search
    if data.get("tuner", "bayesian") not in TUNERS:
        raise UserError(f"{path}: tuner = {data['tuner']!r}; valid: {', '.join(TUNERS)}.")
    if "objectives" in data:
        try:
            data = {**data, "objectives": objectives.parse(data["objectives"],
                                                           f"{path}: objectives")}
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if data.get("precision", "auto") not in PRECISIONS:
        raise UserError(f"{path}: precision = {data['precision']!r}; valid: "
                        f"{', '.join(PRECISIONS)}.")
    tables = {name: _values_table(path, name, data.get(name, {})) for name in TABLES}
    scalars = {k: v for k, v in data.items() if k not in (*TABLES, "bohb")}
    scalars["final_baselines"] = tuple(names)
    preset = Preset(name=path.stem, **scalars, **tables,
                    bohb=_bohb_table(path, data.get("bohb", {})))
    validate(preset, str(path))
    return preset


def _values_table(path: Path, name: str, table: Any) -> dict[str, Any]:
    """``[fixed]`` and ``[final]``: hyperparameter values, each checked against its domain."""
    if not isinstance(table, dict):
        raise UserError(f"{path}: {name} = {table!r} must be a [{name}] table of hyperparameter "
                        "values, e.g. batch_size = 128.")
    for key, value in table.items():
        domain = builder.domain_of(key)
        problem = (f"'{key}' is not a hyperparameter" if domain is None
                   else domain_problem(domain, value))
        if problem:
            raise UserError(f"{path}: [{name}] {key}: {problem}")
    return dict(table)


def _bohb_table(path: Path, table: Any) -> BohbSettings:
    """``[bohb]``: BOHB's settings, each checked with what would be valid."""
    if not isinstance(table, dict):
        raise UserError(f"{path}: bohb = {table!r} must be a [bohb] table of BOHB's settings, "
                        f"e.g. random_fraction = 0.33 (keys: {', '.join(BOHB_RULES)}).")
    for key, value in table.items():
        if key not in BOHB_RULES:
            raise UserError(f"{path}: [bohb] {key} is not a BOHB setting; the settings are "
                            f"{', '.join(BOHB_RULES)} (docs/spaces-and-presets.md).")
        valid, what = BOHB_RULES[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not valid(value):
            raise UserError(f"{path}: [bohb] {key} = {value!r} is not valid: {key} must be "
                            f"{what}.")
    return BohbSettings(**table)


def validate(preset: Preset, where: str) -> None:
    if preset.trials < 1 or preset.epochs < 1:
        raise UserError(f"{where}: trials ({preset.trials}) and epochs ({preset.epochs}) must be "
                        "at least 1.")
    top = int(builder.DOMAINS["epochs"].high)
    if preset.epochs > top:
        raise UserError(f"{where}: epochs {preset.epochs} is more than the builder supports "
                        f"({top}).")
    if preset.tuner in MULTI_FIDELITY and (preset.factor < 2 or preset.iterations < 1):
        raise UserError(f"{where}: Hyperband's factor must be at least 2 and its iterations at least 1 "
                        f"(got {preset.factor}, {preset.iterations}).")
    if not 0 < preset.subset <= 1:
        raise UserError(f"{where}: subset {preset.subset} must be a fraction in (0, 1].")
    if preset.patience < 0:
        raise UserError(f"{where}: patience {preset.patience} must be 0 (off) or more.")
    for key in ("prune_after", "max_params", "max_seconds_per_epoch", "max_epoch_cost",
                "finalize_top", "final_epochs"):
        if getattr(preset, key) < 0:
            raise UserError(f"{where}: {key} {getattr(preset, key)} must be 0 (off) or more.")
    for key, (most, why) in LIMITS.items():
        if not getattr(preset, key) <= most:  # NaN too
            raise UserError(f"{where}: {key} {getattr(preset, key)!r} must be at most "
                            f"{most:,} ({why}).")
    if not 0 <= preset.ensemble_size <= MAX_ENSEMBLE:
        raise UserError(f"{where}: ensemble_size {preset.ensemble_size} must be 0 (off) to "
                        f"{MAX_ENSEMBLE} (greedy rounds of finalize's ensemble).")
    if not 0 <= preset.min_search_share < 1:
        raise UserError(f"{where}: min_search_share {preset.min_search_share} must be a "
                        "fraction in [0, 1) of --max-time (0: the reserve alone decides).")
    if preset.final_epochs > top:
        raise UserError(f"{where}: final_epochs {preset.final_epochs} is more than the builder "
                        f"supports ({top}).")
    validate_objectives(preset, where)


def validate_objectives(preset: Preset, where: str) -> None:
    """The objectives with the tuner and the pruning they are searched with."""
    named = ",".join(preset.objectives)
    several = objectives.several(preset.objectives)
    if several and preset.tuner not in MULTI_OBJECTIVE:
        raise UserError(f"{where}: objectives {named} need tuner = \"motpe\" (or \"random\"): "
                        f"tuner {preset.tuner!r} optimises one number (val_accuracy); valid "
                        f"tuners for several objectives: {', '.join(MULTI_OBJECTIVE)}.")
    if preset.tuner == "motpe" and not several:
        raise UserError(f"{where}: tuner \"motpe\" searches two or three objectives, and "
                        f"objectives is {named}: set objectives (--objectives), e.g. "
                        "val_accuracy:max,params:min.")
    if several and preset.prune_after:
        raise UserError(f"{where}: prune_after {preset.prune_after} with objectives {named}: "
                        "median stopping ends a trial on validation accuracy alone, which "
                        "would end the small, less accurate models a front needs; set "
                        "prune_after = 0.")
