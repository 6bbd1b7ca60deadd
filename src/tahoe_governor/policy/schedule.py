"""Time-of-day limits: ``schedule.up = Mon-Fri 0800-1800 100kbps; * 2200-0800 unlimited``.

A schedule is a list of entries separated by ``;``. Each entry is a window in
the grammar of :mod:`tahoe_governor.policy.allowed_times` followed by a rate
(the last word, or the last two words for ``100 kbps``). Entries must not
overlap: every minute of the week belongs to at most one entry, so which rate
is in force is never a matter of order. Outside every entry the plain
``limit.*`` applies.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import attrs

from tahoe_governor.policy.allowed_times import AllowedTimes, describe_minute
from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.policy.units import Rate, parse_rate

SCHEDULE_EXPECTED = (
    "entries separated by ';', each a time window followed by a rate, "
    "e.g. 'Mon-Fri 0800-1800 100kbps; * 2200-0800 unlimited'"
)


@attrs.frozen
class ScheduleEntry:
    """One entry: ``rate`` is in force while ``times`` contains the instant."""

    times: AllowedTimes
    rate: Rate


@attrs.frozen
class Schedule:
    """Non-overlapping entries; see the module documentation."""

    entries: tuple[ScheduleEntry, ...]
    text: str

    def entry_at(self, instant: float) -> ScheduleEntry | None:
        """The entry in force at ``instant`` (POSIX seconds), if any."""
        for entry in self.entries:
            if entry.times.contains(instant):
                return entry
        return None

    def next_change(self, instant: float) -> float | None:
        """The next instant an entry starts or ends, or ``None`` if none ever does."""
        changes = [c for e in self.entries if (c := e.times.next_change(instant)) is not None]
        return min(changes, default=None)


def _split_rate(entry: str) -> tuple[str, Rate]:
    words = entry.split()
    if len(words) < 2:
        raise ValueSyntaxError(f"{SCHEDULE_EXPECTED} ({entry!r} needs a window and a rate)")
    for rate_words in (1, 2):
        if len(words) <= rate_words:
            break
        try:
            rate = parse_rate(" ".join(words[-rate_words:]))
        except ValueSyntaxError as e:
            last_error = e
            continue
        return " ".join(words[:-rate_words]), rate
    raise ValueSyntaxError(
        f"{SCHEDULE_EXPECTED} (the rate of {entry!r}: expected {last_error.expected})"
    )


def parse_schedule(text: str, tz: ZoneInfo) -> Schedule:
    """Parse a ``schedule.*`` value; ``ValueSyntaxError`` says what is wrong."""
    entries: list[ScheduleEntry] = []
    parts = [part.strip() for part in text.split(";")]
    for number, part in enumerate(parts, start=1):
        if not part:
            if number == len(parts) and number > 1:
                continue  # a trailing ';' is harmless
            raise ValueSyntaxError(f"{SCHEDULE_EXPECTED} (entry {number} is empty)")
        window_text, rate = _split_rate(part)
        try:
            times = AllowedTimes.parse(window_text, tz)
        except ValueSyntaxError as e:
            raise ValueSyntaxError(f"entry {number}: {e.expected}") from None
        for earlier_number, earlier in enumerate(entries, start=1):
            pairs = zip(earlier.times.minutes, times.minutes, strict=True)
            overlap = bytes(a & b for a, b in pairs)
            if any(overlap):
                first = overlap.index(1)
                raise ValueSyntaxError(
                    f"{SCHEDULE_EXPECTED}; entries must not overlap, but entries "
                    f"{earlier_number} and {number} both cover {describe_minute(first)}"
                )
        entries.append(ScheduleEntry(times, rate))
    return Schedule(tuple(entries), text.strip())
