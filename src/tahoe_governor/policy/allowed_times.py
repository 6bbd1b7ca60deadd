"""Allowed times: weekly windows of local wall-clock time, and their arithmetic.

A window is a set of minutes of the local week. An instant is inside when
its local wall-clock time (in the policy's ``zoneinfo`` zone, at that
instant) falls on a minute of the set. Everything else follows from that
definition, including daylight-saving time: a wall time skipped by a spring
transition is never inside (a window ``0230-0400`` on that night opens at
03:00), and a wall time repeated by an autumn transition is inside both times.

Grammar (see docs/configuration.md, "Time windows")::

    allowed_times := item ("," item)*
    item          := [days " "] range   |   day
    days          := "*" | day | day "-" day
    range         := time "-" time
    time          := HHMM | HH:MM        (0000 to 2400; 2400 only as an end)

A range whose end is not after its start crosses midnight (``2200-0800``)
and belongs to the day it starts on: ``Fri 2200-0800`` ends Saturday 08:00.
A weekday prefix applies to the ranges after it up to the next prefix
(``*`` means every day); a bare day joins the list of the next prefix
(``Sat,Sun 0000-2400``). Instants are POSIX seconds (``reactor.seconds()``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import attrs

from tahoe_governor.policy.errors import ValueSyntaxError

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_SEARCH_DAYS = 17  # a weekly window recurs within 8 days; 17 also spans a skipped week

WINDOW_EXPECTED = (
    "comma-separated local time ranges HHMM-HHMM or HH:MM-HH:MM (2400 allowed as an end), "
    "each optionally prefixed by weekdays: e.g. '2200-0800', 'Mon-Fri 2200-0800', "
    "'Sat,Sun 0000-2400', '* 0900-1700'"
)
_TIME = re.compile(r"([0-9]{2})([0-9]{2})|([0-9]{1,2}):([0-9]{2})")
_RANGE = re.compile(r"([0-9:]+)-([0-9:]+)")


def _expected(detail: str) -> ValueSyntaxError:
    return ValueSyntaxError(f"{WINDOW_EXPECTED} ({detail})")


def _parse_time(text: str, *, is_end: bool) -> int:
    match = _TIME.fullmatch(text)
    if match is None:
        raise _expected(f"{text!r} is not a time HHMM or HH:MM")
    hours = int(match.group(1) or match.group(3))
    minutes = int(match.group(2) or match.group(4))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes != 0):
        raise _expected(f"{text!r} is not a time of day between 0000 and 2400")
    if hours == 24 and not is_end:
        raise _expected(f"{text!r}: 2400 may only end a range")
    return hours * 60 + minutes


def _parse_day(text: str) -> int:
    for index, name in enumerate(WEEKDAYS):
        if text.lower() == name.lower():
            return index
    raise _expected(f"{text!r} is not a weekday; weekdays are {' '.join(WEEKDAYS)}")


def _parse_days(text: str) -> set[int]:
    if text == "*":
        return set(range(7))
    if "-" in text:
        first, _, last = text.partition("-")
        start, end = _parse_day(first), _parse_day(last)
        return {(start + i) % 7 for i in range((end - start) % 7 + 1)}
    return {_parse_day(text)}


def _mark_range(minutes: bytearray, days: Iterable[int], start: int, end: int) -> None:
    length = end - start if end > start else MINUTES_PER_DAY - start + end
    for day in days:
        first = day * MINUTES_PER_DAY + start
        for offset in range(length):
            minutes[(first + offset) % MINUTES_PER_WEEK] = 1


def parse_week_minutes(text: str) -> bytes:
    """The minutes of the local week (Monday 00:00 = 0) that ``text`` allows.

    One byte per minute, 1 = allowed. Raises ``ValueSyntaxError``.
    """
    minutes = bytearray(MINUTES_PER_WEEK)
    items = [item.strip() for item in text.split(",")]
    if items == [""]:
        raise _expected("the value is empty")
    current_days: set[int] = set(range(7))
    pending_days: set[int] = set()
    for item in items:
        if not item:
            raise _expected("an empty item between commas")
        words = item.split()
        if len(words) > 2:
            raise _expected(f"{item!r} has more than a weekday prefix and a range")
        if len(words) == 1 and _RANGE.fullmatch(words[0]) is None:
            if any(c.isdigit() for c in words[0]):
                raise _expected(f"{words[0]!r} is not a range HHMM-HHMM")
            # A bare weekday: it joins the list of the next prefix.
            pending_days |= _parse_days(words[0])
            continue
        if len(words) == 2:
            current_days = pending_days | _parse_days(words[0])
            pending_days = set()
        elif pending_days:
            raise _expected(f"weekdays before {item!r} need a space and a range after them")
        range_match = _RANGE.fullmatch(words[-1])
        if range_match is None:
            raise _expected(f"{words[-1]!r} is not a range HHMM-HHMM")
        start = _parse_time(range_match.group(1), is_end=False)
        end = _parse_time(range_match.group(2), is_end=True)
        if start == end:
            raise _expected(f"{words[-1]!r} is empty; a whole day is 0000-2400")
        _mark_range(minutes, current_days, start, end)
    if pending_days:
        raise _expected("the value ends with weekdays but no range")
    return bytes(minutes)


def describe_minute(minute_of_week: int) -> str:
    """``600`` -> ``"Mon 10:00"``."""
    day, minute = divmod(minute_of_week, MINUTES_PER_DAY)
    return f"{WEEKDAYS[day]} {minute // 60:02d}:{minute % 60:02d}"


def _boundaries(minutes: bytes) -> tuple[int, ...]:
    return tuple(
        m for m in range(MINUTES_PER_WEEK) if minutes[m] != minutes[m - 1]
    )  # minutes[-1] is Sunday 23:59: the week wraps


@attrs.frozen
class AllowedTimes:
    """A weekly window of local time in zone ``tz``; see the module documentation.

    ``minutes`` has one byte per minute of the local week (1 = inside).
    ``text`` is the value as configured (``None`` for "any time").
    """

    minutes: bytes = attrs.field(repr=False)
    tz: ZoneInfo
    text: str | None = None
    _edges: tuple[int, ...] = attrs.field(init=False, repr=False, eq=False)
    # (t, c): next_change(t) was c, so next_change is c for every instant in [t, c).
    _last_change: tuple[float, float] | None = attrs.field(
        init=False, repr=False, eq=False, default=None
    )

    def __attrs_post_init__(self) -> None:
        if len(self.minutes) != MINUTES_PER_WEEK:
            raise ValueError(f"minutes must have {MINUTES_PER_WEEK} entries")
        object.__setattr__(self, "_edges", _boundaries(self.minutes))

    @classmethod
    def parse(cls, text: str, tz: ZoneInfo) -> AllowedTimes:
        """Parse the grammar of the module documentation; ``ValueSyntaxError`` if wrong."""
        return cls(parse_week_minutes(text), tz, text.strip())

    @classmethod
    def always(cls, tz: ZoneInfo) -> AllowedTimes:
        """Any time: what an absent ``allowed_times`` means."""
        return cls(b"\x01" * MINUTES_PER_WEEK, tz, None)

    @property
    def is_always(self) -> bool:
        return not self._edges and self.minutes[0] == 1

    @property
    def is_never(self) -> bool:
        return not self._edges and self.minutes[0] == 0

    def _minute_of_week(self, instant: float) -> int:
        local = datetime.fromtimestamp(instant, self.tz)
        return local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute

    def contains(self, instant: float) -> bool:
        """Whether ``instant`` (POSIX seconds) is inside the window."""
        return self.minutes[self._minute_of_week(instant)] == 1

    def next_change(self, instant: float) -> float | None:
        """The first instant after ``instant`` where being inside changes, or
        ``None`` if it never does (always or never inside)."""
        if not self._edges:
            return None
        last = self._last_change
        if last is not None and last[0] <= instant < last[1]:
            return last[1]
        inside = self.contains(instant)
        for candidate in self._candidates(instant):
            if candidate > instant and self.contains(candidate) != inside:
                object.__setattr__(self, "_last_change", (instant, candidate))
                return candidate
        return None

    def next_start(self, instant: float) -> float | None:
        """``instant`` if inside, else the next instant that is; ``None`` if never."""
        if self.contains(instant):
            return instant
        return self.next_change(instant)

    def window_end(self, instant: float) -> float | None:
        """The end of the window that contains ``instant``.

        ``None`` if ``instant`` is outside the window or the window never ends.
        """
        if not self.contains(instant):
            return None
        return self.next_change(instant)

    def _offset(self, instant: int) -> timedelta | None:
        return datetime.fromtimestamp(instant, self.tz).utcoffset()

    def _transition_between(self, low: int, high: int) -> int:
        """The first whole second in (low, high] with the UTC offset of ``high``."""
        target = self._offset(high)
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(middle) == target:
                high = middle
            else:
                low = middle
        return high

    def _wall_instants(self, wall: datetime) -> Iterator[float]:
        """The instants where the local time reaches ``wall`` (naive local datetime):
        each instant showing it, or the transition that skips over it."""
        folds = [wall.replace(tzinfo=self.tz, fold=fold).timestamp() for fold in (0, 1)]
        for instant in folds:
            if datetime.fromtimestamp(instant, self.tz).replace(tzinfo=None) == wall:
                yield instant
        if folds[0] != folds[1]:
            low, high = sorted(folds)
            yield float(self._transition_between(math.floor(low), math.ceil(high)))

    def _candidates(self, instant: float) -> list[float]:
        first_day: date = datetime.fromtimestamp(instant, self.tz).date() - timedelta(days=1)
        found: set[float] = set()
        for day_offset in range(_SEARCH_DAYS):
            day = first_day + timedelta(days=day_offset)
            week_start = day.weekday() * MINUTES_PER_DAY
            midnight = datetime(day.year, day.month, day.day)
            for edge in self._edges:
                if week_start <= edge < week_start + MINUTES_PER_DAY:
                    wall = midnight + timedelta(minutes=edge - week_start)
                    found.update(self._wall_instants(wall))
        return sorted(found)
