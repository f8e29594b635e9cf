"""The package's import graph: no cycles, and every import goes down the layers.

Function-level (lazy) imports count too: a cycle that only closes at run time is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fmnist_search"

# Lowest first. A module may import its own layer or lower ones, never a higher one.
LAYERS: list[set[str]] = [
    {"errors", "store", "versions", "catalog", "native_logs", "preflight", "images", "backend", "objectives",
     "costs", "arrays"},
    {"builder", "augment", "losses", "space", "presets", "sources", "dataset", "csvdata", "baselines", "pretrained",
     "progress", "budget", "reproducibility", "paired", "budget_clock"},
    {"callbacks", "training", "plots", "report", "portable", "calibration", "checkpoints"},
    {"runs", "tuning", "predict", "results", "analysis", "hparams", "ensemble", "pareto",
     "export"},
    {"finalize"},
    {"pipeline"},  # the commands as library calls: what cli/ and api.py both call
    {"cli", "__main__", "api", "study"},
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "__init__"


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports (``fmnist_search.x.y`` -> ``x.y``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "fmnist_search":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("fmnist_search."):
                found.add(node.module.removeprefix("fmnist_search."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("fmnist_search.") for a in node.names
                      if a.name.startswith("fmnist_search.")}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for target in _imports(path):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]  # an attribute imported from a module
            if target in modules and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"module {module} is in no layer of tests/test_layers.py")


def test_every_module_has_a_layer():
    for module in _graph():
        if module != "__init__":
            _layer(module)


def test_imports_go_down_the_layers():
    wrong = [f"{a} -> {b}" for a, targets in _graph().items() if a != "__init__"
             for b in targets if _layer(b) > _layer(a)]
    assert wrong == []


def test_no_import_cycles():
    graph = _graph()
    # A package's modules may import each other freely, but not their package's __init__.
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue  # a package and its own submodules
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


@pytest.mark.parametrize("low", ["sources", "dataset", "builder", "training", "callbacks", "space"])
def test_lower_layers_know_nothing_of_searches_or_the_cli(low):
    graph = _graph()
    reach, todo = set(), [low]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in reach:
                reach.add(nxt)
                todo.append(nxt)
    assert not {m for m in reach if m.split(".")[0] in ("tuning", "cli", "runs")}
