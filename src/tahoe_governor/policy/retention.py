"""Retention: which of a job's archives ``bN.keep`` keeps, and why (restic's ``forget --keep-*``).

A rule such as ``7 daily, 4 weekly, 12 monthly, 3 yearly`` is read by
:func:`parse_keep` into a :class:`KeepRule`. :func:`retention_verdicts`
applies it to the names under ``Archives/`` as restic's ``forget`` applies
its ``--keep-*`` options to snapshots:

- the archives are taken newest first; each period kind (``last``,
  ``hourly``, ``daily``, ``weekly``, ``monthly``, ``yearly``) keeps the first
  archive it meets in each period different from the last one it kept, until
  its count is used up. ``N daily`` therefore keeps the newest archive of each
  of the N most recent days *that have an archive*, counted back from the
  newest archive, not from now; ``last`` keeps the N newest archives;
- when a kind still has count left at the oldest archive, it keeps that one
  too (restic: "the oldest snapshot is kept additionally"), so history is as
  long as the rule allows;
- periods are calendar periods in the given zone (the policy's: the owner's
  days); weeks are ISO weeks (Monday to Sunday);
- the archive ``Latest`` points at is always kept, whatever the rule;
- an entry whose name is not a time as ``tahoe backup`` names archives
  (``2026-11-26_22:00:05Z``) was put there by hand: it is never forgotten.

Pure: the instants come from the names, nothing reads a clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, tzinfo

import attrs

from tahoe_governor.policy.errors import ValueSyntaxError

PERIODS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
"""The period kinds of a rule, in restic's order (``--keep-last`` ... ``--keep-yearly``)."""

KEEP_EXPECTED = (
    "comma-separated 'N period' with N a whole number >= 1 and each period one of "
    + ", ".join(PERIODS) + " at most once, e.g. '7 daily, 4 weekly, 12 monthly, 3 yearly'"
)

ARCHIVE_NAME_FORMAT = "%Y-%m-%d_%H:%M:%SZ"
"""How ``tahoe backup`` names an archive: the UTC time it was linked."""

_ENTRY = re.compile(r"([0-9]+)\s+([A-Za-z]+)")


@attrs.frozen
class KeepRule:
    """How many archives of each period kind to keep (0: that kind keeps none)."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def counts(self) -> dict[str, int]:
        """Period kind -> count, for the kinds that keep something, in :data:`PERIODS` order."""
        return {p: getattr(self, p) for p in PERIODS if getattr(self, p) > 0}

    def __str__(self) -> str:
        return ", ".join(f"{n} {p}" for p, n in self.counts().items())


def parse_keep(text: str) -> KeepRule:
    """``"7 daily, 4 weekly"`` -> ``KeepRule(daily=7, weekly=4)``; ValueSyntaxError otherwise."""
    counts: dict[str, int] = {}
    for part in text.split(","):
        match = _ENTRY.fullmatch(part.strip())
        if match is None:
            raise ValueSyntaxError(KEEP_EXPECTED)
        number, period = int(match.group(1)), match.group(2).lower()
        if period not in PERIODS or period in counts or number < 1:
            raise ValueSyntaxError(KEEP_EXPECTED)
        counts[period] = number
    return KeepRule(**counts)


def archive_instant(name: str) -> float | None:
    """The POSIX time of an archive named as ``tahoe backup`` names them, else ``None``."""
    try:
        moment = datetime.strptime(name, ARCHIVE_NAME_FORMAT)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC).timestamp()


def newest_first(names: Iterable[str]) -> list[tuple[float | None, str]]:
    """``(instant, name)`` of each distinct name, newest first; names that are not archive
    times come last, in reverse order of name."""
    return sorted(((archive_instant(n), n) for n in set(names)),
                  key=lambda pair: (pair[0] is not None, pair[0] or 0.0, pair[1]), reverse=True)


@attrs.frozen
class ArchiveVerdict:
    """What the rule does with one archive, and why."""

    name: str
    instant: float | None
    """From the name; ``None`` for a name that is not an archive time."""
    keep: bool
    reasons: tuple[str, ...]
    """Why it is kept (one line per kind that keeps it), or why it is forgotten."""


def _period_key(kind: str, moment: datetime) -> tuple[int, ...]:
    if kind == "hourly":
        return (moment.year, moment.month, moment.day, moment.hour)
    if kind == "daily":
        return (moment.year, moment.month, moment.day)
    if kind == "weekly":
        iso = moment.isocalendar()
        return (iso.year, iso.week)
    if kind == "monthly":
        return (moment.year, moment.month)
    return (moment.year,)


_PERIOD_WORDS: dict[str, Callable[[datetime], str]] = {
    "hourly": lambda m: m.strftime("%Y-%m-%d %H:00"),
    "daily": lambda m: m.strftime("%Y-%m-%d"),
    "weekly": lambda m: f"week {m.isocalendar().year}-W{m.isocalendar().week:02d}",
    "monthly": lambda m: m.strftime("%Y-%m"),
    "yearly": lambda m: m.strftime("%Y"),
}


def retention_verdicts(
    names: Iterable[str], rule: KeepRule, tz: tzinfo, latest: str | None = None
) -> tuple[ArchiveVerdict, ...]:
    """Every archive's verdict under ``rule``, newest first (see the module documentation).

    :param names: the entries of ``Archives/``.
    :param tz: the zone whose calendar the periods follow.
    :param latest: the name of the archive ``Latest`` points at, kept whatever the rule.
    """
    timed = newest_first(names)
    dated = [(instant, name) for instant, name in timed if instant is not None]
    left = rule.counts()
    last_key: dict[str, tuple[int, ...] | int] = {}
    verdicts = []
    for index, (instant, name) in enumerate(dated):
        moment = datetime.fromtimestamp(instant, tz)
        oldest = index == len(dated) - 1
        reasons = []
        for kind, count in left.items():
            if count == 0:
                continue
            key = index if kind == "last" else _period_key(kind, moment)
            if key == last_key.get(kind) and not oldest:
                continue
            if key == last_key.get(kind):
                reasons.append(f"{kind}: the oldest archive, kept while {count} {kind} "
                               "are not used up")
            elif kind == "last":
                reasons.append(f"last: one of the {rule.last} newest")
            else:
                reasons.append(f"{kind}: the newest of {_PERIOD_WORDS[kind](moment)}")
            last_key[kind] = key
            left[kind] = count - 1
        if name == latest:
            reasons.append("the target of Latest: always kept")
        keep = bool(reasons)
        if not keep:
            reasons.append(f"no kind of {rule} keeps it")
        verdicts.append(ArchiveVerdict(name, instant, keep, tuple(reasons)))
    verdicts.extend(
        ArchiveVerdict(name, None, True, ("not named as a backup's time: never forgotten",))
        for instant, name in timed if instant is None
    )
    return tuple(verdicts)
