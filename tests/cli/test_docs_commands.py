"""The docs against the command: every command line of every page parses, and the
restore reference's option table is the parser's."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tahoe_governor.cli.main import build_parser

ROOT = Path(__file__).parents[2]
RESTORE_REFERENCE = (ROOT / "docs" / "restore-command.md").read_text(encoding="utf-8")
SHELL_ENDS = re.compile(r"\s(?:#|>|\||&&|;)\s?")
"""Where a documented command line stops being the command: a comment, a redirection,
a pipe or the next command."""


def _command_lines() -> list[tuple[str, str]]:
    pages = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
    return [(f"{page.name}: {line.strip()}", line.strip()[2:]) for page in pages
            for line in page.read_text(encoding="utf-8").splitlines()
            if line.strip().startswith("$ tahoe-governor ")]


COMMAND_LINES = _command_lines()


@pytest.mark.parametrize(("where", "line"), COMMAND_LINES, ids=[w for w, _ in COMMAND_LINES])
def test_every_documented_command_line_parses(where: str, line: str) -> None:
    """Every ``$ tahoe-governor ...`` line of every docs page and of the README is
    accepted by the command's parser (a reader copying it gets no usage error)."""
    argv = shlex.split(SHELL_ENDS.split(" " + line, maxsplit=1)[0])[1:]
    if argv == ["--version"]:
        return  # argparse's version action exits at once; test_version covers it
    args = build_parser().parse_args(argv)
    assert args.func is not None


def test_the_docs_have_command_lines() -> None:
    """The lines above are found in the quick start and the restore guide (a change of
    prompt would silently skip them)."""
    assert len(COMMAND_LINES) >= 30
    assert any(where.startswith("quickstart.md") for where, _ in COMMAND_LINES)
    assert any(where.startswith("restore.md") for where, _ in COMMAND_LINES)


def test_reference_table_lists_every_option() -> None:
    """The reference table names exactly the options ``restore`` accepts (``-d``, which every
    command takes, is in the NODEDIR row)."""
    documented = set(re.findall(r"^\| `(--[a-z]+)", RESTORE_REFERENCE, flags=re.MULTILINE))
    restore = build_parser()._subparsers._group_actions[0].choices["restore"]  # type: ignore
    options = {option for action in restore._actions for option in action.option_strings
               if option.startswith("--") and option not in ("--help", "--node-directory")}
    assert documented == options
