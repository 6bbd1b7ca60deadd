"""docs/configuration.md against the parser: the reference and the code cannot drift."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tahoe_governor.policy.allowed_times import AllowedTimes
from tahoe_governor.policy.config import DIRECTIVES, parse_policy_text
from tahoe_governor.policy.units import DURATION_UNITS, RATE_UNITS

DOCS = Path(__file__).parents[2] / "docs"
REFERENCE = (DOCS / "configuration.md").read_text(encoding="utf-8")
UTC = ZoneInfo("UTC")


def _tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table as rows of cells (header first, separator dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= set("-: ") for cell in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match, f"expected a `code` cell, got {cell!r}"
    return match.group(1)


def _rows(first_header: str, last_header: str | None = None) -> list[list[str]]:
    rows = []
    for table in _tables(REFERENCE):
        header = table[0]
        if header[0] == first_header and (last_header is None or header[-1] == last_header):
            rows += table[1:]
    assert rows, f"no table with header {first_header!r} in docs/configuration.md"
    return rows


DIRECTIVE_ROWS = [(_code(row[0]), _code(row[-1])) for row in _rows("Directive", "Example")]
DIRECTIVE_NEEDS = {
    _code(row[0]): re.findall(r"needs `([^`]+)`", row[1]) for row in _rows("Directive", "Example")
}
"""The directives a row's Value cell says it needs ("needs `<job>.cpu`")."""


def test_every_directive_is_documented_and_nothing_else() -> None:
    """The directive tables list exactly the keys the parser knows."""
    documented = [name for name, _example in DIRECTIVE_ROWS]
    assert sorted(documented) == sorted(DIRECTIVES)


@pytest.mark.parametrize(("directive", "example"), DIRECTIVE_ROWS)
def test_each_documented_example_is_accepted(directive: str, example: str) -> None:
    """Each directive, set to the example shown in its row (and the directives it says it
    needs to theirs), parses."""
    job = {"b1.source": "/data", "b1.target": "backup:", "b1.frequency": "1day"}
    task = {"m1.target": "backup:", "m1.frequency": "1week"}
    bandwidth = {"capacity.up": "1Mbps", "capacity.down": "8Mbps"}
    examples = dict(DIRECTIVE_ROWS)
    for name in [*DIRECTIVE_NEEDS[directive], directive]:
        key = name.replace("<job>", "b1").replace("<task>", "m1").replace("<selector>", "parents")
        section = job if name.startswith("<job>.") else task if name.startswith("<task>.") \
            else bandwidth
        section[key] = examples[name]
    text = "[backups]\n" + "".join(f"{k} = {v}\n" for k, v in job.items())
    text += "[maintenance]\n" + "".join(f"{k} = {v}\n" for k, v in task.items())
    text += "[bandwidth]\n" + "".join(f"{k} = {v}\n" for k, v in bandwidth.items())
    policy = parse_policy_text(text, UTC)
    assert policy.jobs[0].name == "b1"
    assert policy.maintenance[0].name == "m1"


def test_rate_units_table() -> None:
    """The rate units table lists every unit with its exact size in bytes per second."""
    documented = {_code(row[0]): float(row[-1]) for row in _rows("Unit", "Bytes per second")}
    assert documented == pytest.approx(RATE_UNITS)
    assert set(documented) == set(RATE_UNITS)


def test_duration_units_table() -> None:
    """The duration units table lists every unit with its size in seconds."""
    documented = {_code(row[0]): float(row[-1]) for row in _rows("Unit", "Seconds")}
    assert documented == DURATION_UNITS


def test_window_examples_parse() -> None:
    """Every window in the examples table is valid; '* 0000-2400' means any time."""
    for row in _rows("Window"):
        times = AllowedTimes.parse(_code(row[0]), UTC)
        assert not times.is_never
    assert AllowedTimes.parse("* 0000-2400", UTC).is_always


def _ini_examples() -> list[tuple[str, str]]:
    pages = sorted(DOCS.glob("*.md")) + [DOCS.parent / "README.md"]
    return [(f"{page.name} example {i + 1}", example) for page in pages
            for i, example in enumerate(re.findall(
                r"```ini\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.DOTALL))]


INI_EXAMPLES = _ini_examples()


@pytest.mark.parametrize(("where", "example"), INI_EXAMPLES, ids=[w for w, _ in INI_EXAMPLES])
def test_every_ini_example_in_the_docs_is_accepted_as_check_accepts_it(
        where: str, example: str) -> None:
    """Every ```ini example of every page and of the README passes the judgement ``check``
    makes: Tahoe's own sections and keys, then the governor's sections."""
    from allmydata.util import configutil

    from tahoe_governor.node.config import _governor_valid_config

    parser = configutil.get_config_from_string(example)
    configutil.validate_config(where, parser, _governor_valid_config())
    parse_policy_text(example, UTC)


def test_the_docs_have_ini_examples() -> None:
    """The examples above are found (a change of fence would silently skip them)."""
    assert len(INI_EXAMPLES) >= 10


def test_reference_is_in_the_toctree() -> None:
    """The reference is reachable from the docs index."""
    assert re.search(r"^configuration$", (DOCS / "index.md").read_text(), flags=re.MULTILINE)
