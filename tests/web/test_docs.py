"""docs/status-pages.md against the code: controls and sample output (its command lines are
checked with every page's, in tests/cli/test_docs_commands.py)."""

from __future__ import annotations

import re
from pathlib import Path

from tahoe_governor.cli.status import status_lines
from tahoe_governor.status import public_dict
from tahoe_governor.web.control_actions import ACTIONS
from tests.web.controls_double import InMemoryControls

DOCS = (Path(__file__).parents[2] / "docs" / "status-pages.md").read_text(encoding="utf-8")


def test_every_control_is_documented() -> None:
    """The controls table lists exactly the actions the private page accepts."""
    documented = re.findall(r"^\| `(\w+)` \|", DOCS, flags=re.MULTILINE)
    assert documented == list(ACTIONS)


def test_sample_status_output_is_what_the_command_prints() -> None:
    """The sample table in the docs is the command's output for the test node."""
    printed = status_lines(public_dict(InMemoryControls().status()))
    block = DOCS.split("$ tahoe-governor status ~/.tahoe\n", 1)[1].split("```", 1)[0]
    assert block.rstrip("\n").splitlines() == printed
