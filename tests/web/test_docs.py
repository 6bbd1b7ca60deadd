"""docs/status-pages.md against the code: controls, command lines and sample output."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tahoe_governor.cli.main import build_parser
from tahoe_governor.cli.status import status_lines
from tahoe_governor.status import public_dict
from tahoe_governor.web.control_actions import ACTIONS
from tests.web.controls_double import InMemoryControls

DOCS = (Path(__file__).parents[2] / "docs" / "status-pages.md").read_text(encoding="utf-8")


def test_every_control_is_documented() -> None:
    """The controls table lists exactly the actions the private page accepts."""
    documented = re.findall(r"^\| `(\w+)` \|", DOCS, flags=re.MULTILINE)
    assert documented == list(ACTIONS)


@pytest.mark.parametrize(
    "line", [line[2:] for line in DOCS.splitlines() if line.startswith("$ tahoe-governor ")])
def test_documented_command_lines_parse(line: str) -> None:
    """Every example command in the page is accepted by the parser."""
    argv = shlex.split(line.split("#")[0])[1:]
    args = build_parser().parse_args(argv)
    assert args.func is not None


def test_sample_status_output_is_what_the_command_prints() -> None:
    """The sample table in the docs is the command's output for the test node."""
    printed = status_lines(public_dict(InMemoryControls().status()))
    block = DOCS.split("$ tahoe-governor status ~/.tahoe\n", 1)[1].split("```", 1)[0]
    assert block.rstrip("\n").splitlines() == printed
