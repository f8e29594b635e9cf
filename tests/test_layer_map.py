"""docs/development.md's map of the layers says what tests/test_layers.py's ``LAYERS`` says:
every module of the map is in a layer, every module of a layer is in the map, each in the
same layer, and each says what it owns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_layers import LAYERS

DOC = Path(__file__).resolve().parents[1] / "docs" / "development.md"
HEADER = re.compile(r"layer\s+module\s+owns")
ROW = re.compile(r"(?:(\d+)\s+)?([\w.]+)\s{2,}(\S.*)")


def read_map(text: str) -> dict[str, tuple[int, str]]:
    """``{module: (layer, what it owns)}`` from the code block that starts with the header
    ``layer  module  owns``; a row without a layer number is in the layer above it."""
    lines = iter(text.splitlines())
    for line in lines:
        if HEADER.fullmatch(line.strip()):
            break
    else:
        raise AssertionError(f"no 'layer  module  owns' map in {DOC.name}")
    found: dict[str, tuple[int, str]] = {}
    layer = None
    for line in lines:
        if line.startswith("```"):
            return found
        match = ROW.fullmatch(line.strip())
        assert match, f"not a row of the map: {line!r}"
        number, module, owns = match.groups()
        layer = int(number) if number is not None else layer
        assert layer is not None, f"the map's first row has no layer: {line!r}"
        assert module not in found, f"{module} is in the map twice"
        found[module] = (layer, owns)
    raise AssertionError("the map's code block does not end")


def layers_of(layers: list[set[str]]) -> dict[str, int]:
    return {module: i for i, layer in enumerate(layers) for module in layer}


def differences(found: dict[str, tuple[int, str]], layers: list[set[str]]) -> list[str]:
    want = layers_of(layers)
    out = [f"{m}: in the map, in no layer" for m in found if m not in want]
    out += [f"{m}: in layer {want[m]}, not in the map" for m in want if m not in found]
    out += [f"{m}: layer {found[m][0]} in the map, {want[m]} in LAYERS" for m in found
            if m in want and found[m][0] != want[m]]
    return out


def test_the_map_of_the_layers_is_in_step_with_layers():
    found = read_map(DOC.read_text(encoding="utf-8"))
    assert differences(found, LAYERS) == []
    assert all(len(owns.split()) >= 2 for _, owns in found.values())  # each says what


def test_the_map_fits_on_a_screen():
    text = DOC.read_text(encoding="utf-8")
    assert len(read_map(text)) <= 50
    block = text[text.index("layer  module"):]
    assert all(len(line) <= 100 for line in block[:block.index("```")].splitlines())


PLANTED = """
```
layer  module           owns
2      top              the top
1      middle           the middle
       side             beside it
0      bottom           the bottom
```
"""


@pytest.mark.parametrize("layers, problem", [
    ([{"bottom"}, {"middle", "side"}, {"top"}], None),
    ([{"bottom"}, {"middle", "side"}, {"top", "new"}], "new: in layer 2, not in the map"),
    ([{"bottom"}, {"middle"}, {"top"}], "side: in the map, in no layer"),
    ([{"bottom", "side"}, {"middle"}, {"top"}], "side: layer 1 in the map, 0 in LAYERS"),
])
def test_a_planted_map_out_of_step_is_named(layers, problem):
    found = read_map(PLANTED)
    assert found["side"] == (1, "beside it")  # a row without a number: the layer above
    assert differences(found, layers) == ([problem] if problem else [])


def test_a_row_that_is_not_module_and_owner_is_refused():
    with pytest.raises(AssertionError, match="not a row of the map"):
        read_map(PLANTED.replace("beside it", "").replace("side  ", "side"))
