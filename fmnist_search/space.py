"""Space files -> validated Keras Tuner hyperparameters.

A space file is TOML. ``[hp.NAME]`` tables declare one hyperparameter each; ``[stage.NAME]``
tables declare one per convolution stage (``NAME_1`` .. ``NAME_n``), each active only when
``stages`` reaches it (an ``[hp.NAME_i]`` table overrides stage i). Every entry maps onto one Keras Tuner call::

    [hp.learning_rate]              # -> hp.Float("learning_rate", 1e-4, 3e-3, sampling="log")
    type = "float"
    min = 1e-4
    max = 3e-3
    sampling = "log"

    [hp.dense_units_2]              # -> inside hp.conditional_scope("dense_layers", [2])
    type = "int"
    min = 32
    max = 256
    step = 32
    when = { dense_layers = [2] }

Everything is checked before anything trains, against the builder's own vocabulary
(``builder.DOMAINS``), so a typo is an error naming the file and key, not a failed trial later.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmnist_search import builder
from fmnist_search.errors import ArchitectureError, UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TYPES = ("int", "float", "choice", "boolean", "fixed")
KEYS = {
    "int": {"min", "max", "step", "sampling"},
    "float": {"min", "max", "step", "sampling"},
    "choice": {"values"},
    "boolean": set(),
    "fixed": {"value"},
}
REQUIRED = {"int": {"min", "max"}, "float": {"min", "max"}, "choice": {"values"},
            "fixed": {"value"}, "boolean": set()}
SAMPLINGS = ("linear", "log", "reverse_log")
TOP_KEYS = {"description", "hp", "stage"}
MAX_POOLS = 4


@dataclass(frozen=True)
class Entry:
    name: str
    type: str
    spec: Mapping[str, Any]
    when: tuple[tuple[str, tuple], ...] = ()
    key: str = ""

    def possible(self) -> list[Any] | None:
        """The finite set of values it can take, or None for a numeric range.

        A range is never expanded here: a space file may declare ``max = 1000000000``, and its
        values must be checked by arithmetic before anything trusts them.
        """
        if self.type == "fixed":
            return [self.spec["value"]]
        if self.type == "choice":
            return list(self.spec["values"])
        if self.type == "boolean":
            return [False, True]
        return None

    def last(self) -> Any:
        """The largest value a range can draw (an int range with a step may stop short of max)."""
        lo, hi, step = self.spec["min"], self.spec["max"], self.spec.get("step")
        if self.type == "int" and self.linear_steps():
            return lo + (hi - lo) // step * step
        return hi

    def linear_steps(self) -> bool:
        """An int range that draws min, min + step, ... (Keras Tuner's linear sampling)."""
        return (self.type == "int" and self.spec.get("sampling", "linear") == "linear"
                and bool(self.spec.get("step")))

    def small_int_values(self, limit: int = 64) -> list[int]:
        """Every value of an int entry the builder bounds to a few (stages); checked first."""
        values = self.possible()
        if values is not None:
            return list(values)
        lo, hi = self.spec["min"], self.last()
        step = self.spec.get("step") if self.linear_steps() else 1
        if (hi - lo) // step >= limit:
            raise UserError(f"[{self.key}] spans more than {limit} values; it must be narrower.")
        return list(range(lo, hi + 1, step))

    def contains(self, value: Any) -> bool:
        """Whether the entry can draw this value, by arithmetic (ranges are never listed)."""
        values = self.possible()
        if values is not None:
            return any(_same(value, v) for v in values)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not self.spec["min"] <= value <= self.spec["max"]:
            return False
        if self.type != "int":
            return True
        if isinstance(value, float) and not value.is_integer():
            return False
        if self.linear_steps():
            return (int(value) - self.spec["min"]) % self.spec["step"] == 0
        return True

    def default(self) -> Any:
        if self.type == "fixed":
            return self.spec["value"]
        if "default" in self.spec:
            return self.spec["default"]
        if self.type in ("int", "float"):
            return self.spec["min"]
        return self.possible()[0]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))
    return a == b


@dataclass
class Space:
    name: str
    path: Path
    description: str
    entries: list[Entry]
    text: str = field(repr=False, default="")

    def entry(self, name: str) -> Entry | None:
        return next((e for e in self.entries if e.name == name), None)

    def register(self, hp) -> dict[str, Any]:
        """Declare every entry on a Keras Tuner ``HyperParameters``; return the active values."""
        active: dict[str, Any] = {}
        for entry in self.entries:
            value = _register(hp, entry, list(entry.when))
            if value is not None:
                active[entry.name] = value
        return active

    def default_values(self) -> dict[str, Any]:
        import keras_tuner as kt

        return self.register(kt.HyperParameters())

    def control_values(self, fixed: dict[str, Any], final: dict[str, Any],
                       epochs: int) -> dict[str, Any]:
        """The control of a final table: the default point with a preset's fixed values,
        trained with its final protocol (``finalize``; the search's reserve asks the same)."""
        return {**self.default_values(), **fixed, **final, "epochs": epochs}


def _register(hp, entry: Entry, conditions: list[tuple[str, tuple]]) -> Any:
    if conditions:
        parent, values = conditions[0]
        with hp.conditional_scope(parent, list(values)):
            return _register(hp, entry, conditions[1:])
    s, name = entry.spec, entry.name
    if entry.type == "int":
        return hp.Int(name, s["min"], s["max"], step=s.get("step"),
                      sampling=s.get("sampling", "linear"), default=s.get("default"))
    if entry.type == "float":
        return hp.Float(name, float(s["min"]), float(s["max"]), step=s.get("step"),
                        sampling=s.get("sampling", "linear"), default=s.get("default"))
    if entry.type == "choice":
        return hp.Choice(name, list(s["values"]), default=s.get("default"))
    if entry.type == "boolean":
        return hp.Boolean(name, default=s.get("default", False))
    return hp.Fixed(name, s["value"])


# --------------------------------------------------------------------------- loading


def read_toml(path: Path) -> tuple[dict, str]:
    """The parsed file and its text; a directory, a binary file or bad TOML is a UserError."""
    if path.is_dir():
        raise UserError(f"{path} is a directory; a .toml file is expected here.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not a text file (byte {exc.start} is not UTF-8); a .toml "
                        "file (space or search preset) is expected here.") from exc
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc}") from exc
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML: {exc}.") from exc


def load_space(path: Path, name: str | None = None) -> Space:
    """Read and fully validate a space file."""
    data, text = read_toml(path)
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise UserError(
            f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; a space file has "
            f"{', '.join(sorted(TOP_KEYS))}."
        )
    for table in ("hp", "stage"):
        if not isinstance(data.get(table, {}), dict):
            raise UserError(f"{path}: '{table}' must be a table of [{table}.NAME] entries.")
    entries: list[Entry] = []
    for hp_name, raw in data.get("hp", {}).items():
        entries.append(_entry(path, f"hp.{hp_name}", hp_name, raw, entries))
    stages = next((e for e in entries if e.name == "stages"), None)
    for base, raw in data.get("stage", {}).items():
        entries += _stage_entries(path, base, raw, stages, entries)
    if not entries:
        raise UserError(
            f"{path} declares no hyperparameters: a space needs at least one [hp.NAME] or "
            "[stage.NAME] table (an empty space would search only the builder's defaults)."
        )
    space = Space(name or path.stem, path, str(data.get("description", "")), entries, text)
    check_architectures(space)
    return space


def _entry(path: Path, key: str, name: str, raw: Any, earlier: list[Entry]) -> Entry:
    if not isinstance(raw, dict):
        raise UserError(f"{path}: [{key}] must be a table with a 'type' key.")
    domain = builder.domain_of(name)
    if domain is None:
        raise UserError(
            f"{path}: [{key}] names an unknown hyperparameter '{name}'. The builder knows: "
            f"{', '.join(builder.known_names())}."
        )
    kind = raw.get("type")
    if kind is None:  # an older, inline form such as filters_1 = { min = 32, max = 128 }
        raise UserError(
            f"{path}: [{key}] has no type (its keys: {', '.join(sorted(raw)) or 'none'}). Each "
            f"hyperparameter is a table of its own with type = one of {', '.join(TYPES)}, e.g. "
            f"[hp.{name}] then type = \"int\", min = 32, max = 128 on their own lines.")
    if kind not in TYPES:
        raise UserError(f"{path}: [{key}] type = {kind!r}; valid types are {', '.join(TYPES)}.")
    spec = {k: v for k, v in raw.items() if k not in ("type", "when")}
    allowed = KEYS[kind] | ({"default"} if kind != "fixed" else set())
    extra = set(spec) - allowed
    if extra:
        raise UserError(
            f"{path}: [{key}] has unknown key(s) {', '.join(sorted(extra))}; a {kind} entry "
            f"takes {', '.join(sorted(allowed | {'type', 'when'}))}."
        )
    missing = REQUIRED[kind] - set(spec)
    if missing:
        raise UserError(f"{path}: [{key}] is missing {', '.join(sorted(missing))}.")
    _check_shape(path, key, kind, spec)
    entry = Entry(name, kind, spec, _when(path, key, raw.get("when"), earlier), key)
    _check_domain(path, key, entry, domain)
    return entry


def _check_shape(path: Path, key: str, kind: str, spec: dict) -> None:
    where = f"{path}: [{key}]"
    if kind in ("int", "float"):
        number = int if kind == "int" else (int, float)
        for k in ("min", "max", "step"):
            if k in spec and (isinstance(spec[k], bool) or not isinstance(spec[k], number)):
                raise UserError(f"{where} {k} = {spec[k]!r} must be a{'n integer' if kind == 'int' else ' number'}.")
        lo, hi = spec["min"], spec["max"]
        if lo > hi:
            raise UserError(f"{where} has an inverted range: min {lo} > max {hi}.")
        if lo == hi:
            raise UserError(f"{where} has an empty range (min = max = {lo}); use type = \"fixed\".")
        if spec.get("step") is not None and spec["step"] <= 0:
            raise UserError(f"{where} step = {spec['step']} must be positive.")
        sampling = spec.get("sampling", "linear")
        if sampling not in SAMPLINGS:
            raise UserError(f"{where} sampling = {sampling!r}; valid: {', '.join(SAMPLINGS)}.")
        if sampling != "linear" and lo <= 0:
            raise UserError(f"{where} {sampling} sampling needs min > 0 (got {lo}).")
    if kind == "choice":
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise UserError(f"{where} values must be a non-empty list.")
        if len({type(v) for v in values}) > 1 and not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise UserError(f"{where} values {values} mix types; use one type.")
        if len(set(values)) != len(values):
            raise UserError(f"{where} values {values} repeat a value.")
    if kind == "boolean" and "default" in spec and not isinstance(spec["default"], bool):
        raise UserError(f"{where} default = {spec['default']!r} must be true or false.")


def _check_domain(path: Path, key: str, entry: Entry, domain: builder.Domain) -> None:
    """Every value the entry can produce must be one the builder can build."""
    where = f"{path}: [{key}]"
    probes = entry.possible()
    if probes is None:  # the builder's domains are intervals: the two ends settle it
        probes = [entry.spec["min"], entry.last()]
    if "default" in entry.spec:
        if not entry.contains(entry.spec["default"]):
            raise UserError(f"{where} default = {entry.spec['default']!r} is outside its own "
                            "range or values.")
        probes = [*probes, entry.spec["default"]]
    for value in probes:
        problem = domain_problem(domain, value)
        if problem:
            raise UserError(f"{where}: {problem}")


def domain_problem(domain: builder.Domain, value: Any) -> str | None:
    """Why the builder cannot take this value, or None."""
    if domain.kind == "choice":
        if value not in domain.choices:
            return f"{value!r} is not a valid choice; valid: {', '.join(map(repr, domain.choices))}."
        return None
    if domain.kind == "bool":
        return None if isinstance(value, bool) else f"{value!r} must be true or false."
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value!r} must be a number."
    if domain.kind == "int" and not isinstance(value, int):
        return f"{value!r} must be an integer."
    if not domain.low <= value <= domain.high:
        return f"{value!r} is outside what the builder supports ({domain.low} to {domain.high})."
    return None


def _when(path: Path, key: str, raw: Any, earlier: list[Entry]) -> tuple[tuple[str, tuple], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{path}: [{key}] when must be a table such as {{ dense_layers = [2] }}.")
    out = []
    for parent, values in raw.items():
        values = values if isinstance(values, list) else [values]
        source = next((e for e in earlier if e.name == parent), None)
        if source is None:
            raise UserError(
                f"{path}: [{key}] when refers to '{parent}', which is not declared above it in "
                "the file (a condition's parent must be declared first)."
            )
        if source.when:
            raise UserError(
                f"{path}: [{key}] when refers to '{parent}', which is itself conditional "
                f"([{source.key}] is only drawn when {dict((p, list(v)) for p, v in source.when)}"
                f"); a condition's parent must always be drawn: condition on "
                f"{', '.join(p for p, _ in source.when)} instead."
            )
        bad = [v for v in values if not source.contains(v)]
        if bad or not values:
            raise UserError(
                f"{path}: [{key}] when {parent} = {values}: {bad or 'no values'} can never be "
                f"drawn by [{source.key}]."
            )
        out.append((parent, tuple(values)))
    return tuple(out)


def _stage_entries(path: Path, base: str, raw: Any, stages: Entry | None,
                   earlier: list[Entry]) -> list[Entry]:
    if base not in builder.INDEXED or builder.INDEXED[base] != builder.MAX_STAGES:
        per_stage = [k for k, top in builder.INDEXED.items() if top == builder.MAX_STAGES]
        raise UserError(f"{path}: [stage.{base}] is not a per-stage hyperparameter; valid: "
                        f"{', '.join(per_stage)}.")
    if stages is None:
        raise UserError(f"{path}: [stage.{base}] needs [hp.stages] declared in the file.")
    counts = stages.small_int_values()
    low, high = min(counts), max(counts)
    entries = []
    declared = {e.name for e in earlier}
    for i in range(1, high + 1):
        if f"{base}_{i}" in declared:  # an [hp.NAME_i] table overrides the stage entry
            continue
        entry = _entry(path, f"stage.{base}", f"{base}_{i}", raw, earlier)
        if i > low:
            reach = tuple(n for n in counts if n >= i)
            entry = Entry(entry.name, entry.type, entry.spec, (("stages", reach), *entry.when),
                          entry.key)
        entries.append(entry)
    return entries


# --------------------------------------------------------------------------- architectures


def check_architectures(space: Space) -> None:
    """Reject spaces that can draw a model that cannot exist, naming the keys to change."""
    stages = space.entry("stages")
    top = max(stages.small_int_values()) if stages else builder.DOMAINS["stages"].default
    pool_keys = []
    for i in range(1, top + 1):
        entry = space.entry(f"pool_{i}")
        if entry is None or any(v is True for v in entry.possible() or ()):
            pool_keys.append(entry.key if entry else f"pool_{i} (default true)")
    final = space.entry("final_pool")
    if final is not None and any(v is True for v in final.possible() or ()):
        pool_keys.append(final.key)
    if len(pool_keys) > MAX_POOLS:
        raise UserError(
            f"{space.path}: this space can draw {len(pool_keys)} 2x2 poolings "
            f"({', '.join(pool_keys)}), but a 28x28 image allows at most {MAX_POOLS}. Lower "
            "[hp.stages] max or fix some pool_<i> / final_pool to false."
        )
    try:
        builder.plan_layers(space.default_values())
    except ArchitectureError as exc:
        raise UserError(f"{space.path}: the space's default point cannot be built: {exc}") from exc


def load_named(name: str, option: str = "--space") -> Space:
    from fmnist_search import catalog

    path = catalog.space_path(name, option)
    return load_space(path, name=path.stem)


def values_outside(space: Space, values: Mapping[str, Any], allowed: Iterable[str] = ()) -> list[str]:
    """The values (of hyperparameters this space declares) that lie outside it."""
    skip = set(allowed)
    problems = []
    for name, value in values.items():
        entry = space.entry(name)
        if entry is None or name in skip:
            continue
        if not entry.contains(value):
            problems.append(f"{name} = {value!r} is outside [{entry.key}]")
    return problems
