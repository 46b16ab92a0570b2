"""The docs stay true to the code: every RPC, CLI subcommand and option, and experiment-file
field is documented; every relative link leads somewhere; the README stays a short guide."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from convoy.cli.main import _parser
from convoy.spec import _FIELDS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PROTO = ROOT / "proto" / "convoy" / "v1" / "coordinator.proto"
README_MAX_WORDS = 1600
FIRST_COMMANDS = [
    "bash scripts/example.sh   # installs what is missing, then runs the example experiment"
    " end to end",
    "bash scripts/test.sh      # runs the test suite",
]

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose(text: str) -> str:
    """The Markdown without its fenced code blocks (whose `# comments` are no headings)."""
    return _FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in _HEADING.findall(prose(page.read_text()))}


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command of the parser, as (its words after `convoy`, its parser)."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        opt
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction)
        for opt in action.option_strings
        if opt.startswith("--")
    }


def mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def test_every_rpc_of_the_coordinator_is_in_the_api_doc() -> None:
    """Each `rpc X(` of coordinator.proto is named in docs/api.md."""
    rpcs = re.findall(r"^\s*rpc\s+(\w+)\s*\(", PROTO.read_text(), re.M)
    assert len(rpcs) >= 9, rpcs  # Submit ... Rerun: the parse found them
    doc = (DOCS / "api.md").read_text()
    missing = [r for r in rpcs if not mentions(doc, r)]
    assert not missing, f"docs/api.md does not describe the RPCs {missing}"


def test_every_cli_subcommand_and_long_option_is_in_the_cli_doc() -> None:
    """Each `convoy` subcommand (as `convoy WORDS`) and each long option is in docs/cli.md."""
    found = list(commands(_parser()))
    subcommands = [path for path, _ in found if path]
    assert {("run",), ("up",), ("hosts", "add")} <= set(subcommands), subcommands
    doc = (DOCS / "cli.md").read_text()
    missing = [" ".join(p) for p in subcommands if not mentions(doc, f"convoy {' '.join(p)}")]
    assert not missing, f"docs/cli.md does not describe `convoy {missing}`"
    options = {(" ".join(path), opt) for path, parser in found for opt in long_options(parser)}
    assert ("run", "--results") in options and ("", "--home") in options, options
    absent = sorted((cmd, opt) for cmd, opt in options if not mentions(doc, opt))
    assert not absent, f"docs/cli.md does not describe the options {absent}"


def test_every_experiment_field_is_in_the_experiment_file_doc() -> None:
    """Each top-level field convoy/spec.py accepts is in docs/experiment-file.md, in backticks."""
    fields = list(_FIELDS)
    assert {"name", "image", "command", "placement"} <= set(fields), fields
    doc = (DOCS / "experiment-file.md").read_text()
    missing = [f for f in fields if f"`{f}`" not in doc]
    assert not missing, f"docs/experiment-file.md does not describe the fields {missing}"


def test_every_relative_link_leads_to_a_file_and_heading_that_exist() -> None:
    """Relative links in README.md and docs/*.md name existing files (and headings there)."""
    assert len(pages()) >= 8, pages()  # the README and the docs it links to
    checked = anchored = 0
    broken = []
    for page in pages():
        for target in _LINK.findall(prose(page.read_text())):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            checked += 1
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md":
                anchored += 1
                if anchor not in anchors(dest):
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert checked >= 10 and anchored >= 3, (checked, anchored)
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_readme_is_short() -> None:
    """README.md stays a short guide: at most README_MAX_WORDS words (as `wc -w` counts)."""
    words = len(README.read_text().split())
    assert 0 < words <= README_MAX_WORDS, f"README.md has {words} words; move detail to docs/"


def test_the_readme_starts_with_the_two_commands() -> None:
    """The README's first code block is exactly the fresh machine's two commands."""
    first = re.search(r"^```[^\n]*\n(.*?)^```", README.read_text(), re.M | re.S)
    assert first is not None, "README.md has no code block"
    assert first.group(1).rstrip("\n").split("\n") == FIRST_COMMANDS
