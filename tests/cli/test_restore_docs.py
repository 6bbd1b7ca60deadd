"""docs/restore.md against the command: its command lines parse, its options are the parser's."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tahoe_governor.cli.main import build_parser

DOCS = (Path(__file__).parents[2] / "docs" / "restore.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "line", [line.strip()[2:] for line in DOCS.splitlines()
             if line.strip().startswith("$ tahoe-governor ")])
def test_documented_command_lines_parse(line: str) -> None:
    """Every example tahoe-governor command in the page is accepted by the parser."""
    args = build_parser().parse_args(shlex.split(line.split("#")[0])[1:])
    assert args.func is not None


def test_reference_table_lists_every_option() -> None:
    """The reference table names exactly the options ``restore`` accepts (``-d``, which every
    command takes, is in the NODEDIR row)."""
    documented = set(re.findall(r"^\| `(--[a-z]+)", DOCS, flags=re.MULTILINE))
    restore = build_parser()._subparsers._group_actions[0].choices["restore"]  # type: ignore
    options = {option for action in restore._actions for option in action.option_strings
               if option.startswith("--") and option not in ("--help", "--node-directory")}
    assert documented == options
