"""The documentation keeps up with the code: every command, option and choice that ``--help``
shows is in docs/commands.md, and every relative link in README.md and docs/*.md resolves.

The parser is built in-process from the CLI's own command table, so a new option fails here
by name until commands.md describes it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from fmnist_search.cli import COMMANDS
from fmnist_search.cli.common import Parser, shared_options

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
COMMANDS_MD = DOCS / "commands.md"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

# The sections of commands.md that document the options a command inherits from a shared
# parent parser (``cli.common.SharedOptions``), so that they are written once, not 13 times.
SHARED_SECTIONS = {"common": "Options every command takes", "data": "Data options",
                   "train": "Training options"}

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def _sections(text: str) -> dict[str, str]:
    """Heading text (without the #s) -> the text up to the next heading of any level."""
    parts = re.split(r"^(#{1,6} .*)$", text, flags=re.M)
    return {parts[i].lstrip("#").strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _parsers() -> tuple[dict[str, argparse.ArgumentParser], dict[str, set[argparse.Action]]]:
    """Each command's parser, built as ``cli.build_parser`` builds it, and the actions each
    shared parent contributes (the same objects are added to every child)."""
    shared = shared_options()
    top = Parser(prog="fmnist-search", parents=[shared.common])
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS.values():
        command.add(sub, shared)
    inherited = {name: set(getattr(shared, name)._actions) for name in SHARED_SECTIONS}
    return {"": top, **sub.choices}, inherited


def _shown(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.help != argparse.SUPPRESS
            and not isinstance(a, (argparse._SubParsersAction, argparse._HelpAction))]


def _words(action: argparse.Action) -> list[str]:
    """What ``--help`` shows of an action: its long option strings (a positional's name in
    capitals, singular), and its choices."""
    if action.option_strings:
        names = [s for s in action.option_strings if s.startswith("--")]
    else:
        names = [str(action.metavar or action.dest).upper().removesuffix("S")]
    return names + [str(c) for c in action.choices or ()]


def _command_section(sections: dict[str, str], name: str) -> str | None:
    for heading, body in sections.items():
        if re.fullmatch(rf"`fmnist-search {name}( [^`]*)?`.*", heading):
            return f"{heading}\n{body}"
    return None


def test_every_command_has_a_section_in_commands_md():
    sections = _sections(COMMANDS_MD.read_text())
    missing = [name for name in COMMANDS if _command_section(sections, name) is None]
    assert missing == [], (
        f"docs/commands.md has no section for {', '.join(missing)}: add a heading such as "
        f"'## `fmnist-search {missing[0] if missing else 'NAME'} ...`'")


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_every_option_and_choice_of_help_is_in_commands_md(name):
    sections = _sections(COMMANDS_MD.read_text())
    parsers, inherited = _parsers()
    own = sections[SHARED_SECTIONS["common"]] if name == "" else _command_section(sections, name)
    assert own is not None, f"docs/commands.md has no section for `fmnist-search {name}`"
    missing = []
    for action in _shown(parsers[name]):
        group = next((g for g, actions in inherited.items() if action in actions), None)
        where = sections.get(SHARED_SECTIONS[group], "") if group else own
        title = f"'{SHARED_SECTIONS[group]}'" if group else f"`fmnist-search {name}`".strip()
        missing += [f"{word} (section {title})" for word in _words(action)
                    if not re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", where)]
    command = f"fmnist-search {name}".strip()
    assert missing == [], (f"`{command} --help` shows what docs/commands.md does not describe: "
                           f"{', '.join(missing)}")


def test_shared_sections_exist():
    sections = _sections(COMMANDS_MD.read_text())
    assert [t for t in SHARED_SECTIONS.values() if t not in sections] == []


# --------------------------------------------------------------------------- links


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in _sections(FENCE.sub("", page.read_text())):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _relative_links(page: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", page.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_the_readme_links_every_docs_page():
    """Also what keeps the link test below from passing on an empty docs/ folder."""
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in _relative_links(ROOT / "README.md")}
    pages = set(DOCS.glob("*.md"))
    assert COMMANDS_MD in pages and len(pages) >= 9
    assert sorted(p.name for p in pages if p.resolve() not in linked) == []


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_resolves(page):
    broken = []
    for target in _relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no file {file})")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target} (no heading with anchor #{anchor} in {file.name})")
    assert broken == [], f"{page.relative_to(ROOT)}: broken links: {'; '.join(broken)}"
