"""The configuration error: every problem of a tahoe.cfg, reported together."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

FILE = "tahoe.cfg"
"""The ``section`` of a problem with the file as a whole (unreadable, not INI)."""


@attrs.frozen
class ConfigProblem:
    """One wrong directive: where it is, what it says, and what was expected.

    ``key`` and ``value`` are ``None`` when the problem is not about a single
    key (a missing file, a job without a required key names that key with
    ``value=None``).
    """

    section: str
    key: str | None
    value: str | None
    expected: str

    def __str__(self) -> str:
        where = self.section if self.section == FILE else f"[{self.section}]"
        if self.key is not None:
            where += f" {self.key}"
        if self.value is None:
            shown = " (absent)" if self.key is not None else ""
        else:
            shown = f" = {self.value!r}"
        return f"{where}{shown}: expected {self.expected}"


class ConfigError(Exception):
    """The project's configuration error: one or more :class:`ConfigProblem`.

    It is the only exception the parser lets escape for any text of a
    directive; ``problems`` lists all the problems of the file in file order.
    """

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("a ConfigError needs at least one problem")
        super().__init__(self.problems)

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"{count} configuration problem{'s' if count != 1 else ''}:"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


class ValueSyntaxError(ValueError):
    """A single value does not follow its grammar; ``expected`` says what would.

    Raised by the value parsers (units, windows, schedules); the tahoe.cfg
    parser turns each into a :class:`ConfigProblem` naming section and key.
    """

    def __init__(self, expected: str) -> None:
        self.expected = expected
        super().__init__(expected)
