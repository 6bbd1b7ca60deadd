"""The user guides against the parser and each other: examples parse, every page is reachable."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tahoe_governor.policy.config import parse_policy_text

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
GUIDES = ["quickstart.md", "migrating.md", "dsl-story.md", "operations.md", "architecture.md"]


def _ini_blocks(page: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    # Fenced blocks may be indented inside a list item; drop the indent.
    blocks = re.findall(r"^( *)```ini\n(.*?)^\1```", text, flags=re.DOTALL | re.MULTILINE)
    return ["\n".join(line[len(indent):] for line in body.splitlines()) for indent, body in blocks]


@pytest.mark.parametrize("page", GUIDES)
def test_guide_ini_examples_parse(page: str) -> None:
    """Every ```ini example of a guide is a tahoe.cfg the policy parser accepts."""
    for block in _ini_blocks(page):
        parse_policy_text(block, ZoneInfo("UTC"))


def test_guides_have_examples() -> None:
    """The guides that promise a tahoe.cfg example carry one (so the test above bites)."""
    for page in ["quickstart.md", "migrating.md", "dsl-story.md"]:
        blocks = _ini_blocks(page)
        assert any("[backups]" in block for block in blocks), page


def test_every_page_is_in_the_toctree_and_the_readme() -> None:
    """Each docs page is in one of the index's toctrees (user guide first) and linked from
    the README."""
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    trees = re.findall(r"```\{toctree\}\n(.*?)```", index, flags=re.DOTALL)
    assert trees and ":caption: User guide" in trees[0]
    entries = [line.strip() for tree in trees for line in tree.splitlines()
               if line.strip() and not line.startswith(":")]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.stem for p in DOCS.glob("*.md") if p.stem != "index")
    assert sorted(entries) == pages
    assert entries[0] == "quickstart"
    for page in pages:
        assert f"(docs/{page}.md)" in readme, page
