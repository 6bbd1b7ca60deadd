"""Allowed times: parsing, and window arithmetic at fixed instants across DST,
midnight and weekday boundaries (rate_test.go style tables), plus hypothesis
checks against a minute-by-minute scan."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tahoe_governor.policy.allowed_times import (
    MINUTES_PER_WEEK,
    WEEKDAYS,
    AllowedTimes,
    parse_week_minutes,
)
from tahoe_governor.policy.errors import ValueSyntaxError

AMS = ZoneInfo("Europe/Amsterdam")
NYC = ZoneInfo("America/New_York")


def at(text: str) -> float:
    """An ISO 8601 time with offset -> POSIX seconds."""
    return datetime.fromisoformat(text).timestamp()


# Europe/Amsterdam 2026: 03-29 02:00 CET -> 03:00 CEST; 10-25 03:00 CEST -> 02:00 CET.
# America/New_York 2026: 03-08 02:00 EST -> 03:00 EDT; 11-01 02:00 EDT -> 01:00 EST.
# 2026-11-27 is a Friday.
WINDOWS = [
    # zone, window, now, inside, next_start, window_end (of next_start's window), why
    (AMS, "2200-0800", "2026-03-28T23:00+01:00", True, "2026-03-28T23:00+01:00",
     "2026-03-29T08:00+02:00", "spring night: the window is one real hour shorter"),
    (AMS, "0230-0400", "2026-03-28T12:00+01:00", False, "2026-03-29T03:00+02:00",
     "2026-03-29T04:00+02:00", "a start in the skipped hour opens when the clock jumps"),
    (AMS, "0200-0300", "2026-03-29T00:00+01:00", False, "2026-03-30T02:00+02:00",
     "2026-03-30T03:00+02:00", "a window wholly in the skipped hour does not exist that day"),
    (AMS, "0230-0300", "2026-10-25T00:00+02:00", False, "2026-10-25T02:30+02:00",
     "2026-10-25T02:00+01:00", "autumn: first pass ends when the clock goes back"),
    (AMS, "0230-0300", "2026-10-25T02:10+01:00", False, "2026-10-25T02:30+01:00",
     "2026-10-25T03:00+01:00", "autumn: the repeated half hour is inside again"),
    (AMS, "2200-0800", "2026-10-24T23:00+02:00", True, "2026-10-24T23:00+02:00",
     "2026-10-25T08:00+01:00", "autumn night: one real hour longer"),
    (AMS, "Mon-Fri 2200-0800", "2026-11-27T23:00+01:00", True, "2026-11-27T23:00+01:00",
     "2026-11-28T08:00+01:00", "Friday's range ends on Saturday morning"),
    (AMS, "Mon-Fri 2200-0800", "2026-11-28T23:00+01:00", False, "2026-11-30T22:00+01:00",
     "2026-12-01T08:00+01:00", "no range starts on Saturday or Sunday"),
    (AMS, "Mon-Fri 2200-0800", "2026-11-30T03:00+01:00", False, "2026-11-30T22:00+01:00",
     "2026-12-01T08:00+01:00", "Monday early morning belongs to Sunday night: not allowed"),
    (AMS, "2200-2400,0000-0800", "2026-11-26T23:59:59+01:00", True,
     "2026-11-26T23:59:59+01:00", "2026-11-27T08:00+01:00", "ranges meeting at midnight join"),
    (AMS, "Sat,Sun 0000-2400", "2026-11-27T23:59:59+01:00", False, "2026-11-28T00:00+01:00",
     "2026-11-30T00:00+01:00", "a bare weekday joins the next prefix"),
    (AMS, "1800-2400", "2026-11-26T23:59+01:00", True, "2026-11-26T23:59+01:00",
     "2026-11-27T00:00+01:00", "2400 ends at midnight"),
    (AMS, "Mon 0900-1000, 1400-1500", "2026-11-24T12:00+01:00", False,
     "2026-11-30T09:00+01:00", "2026-11-30T10:00+01:00", "a prefix carries to later ranges"),
    (AMS, "Mon 0900-1000, * 1400-1500", "2026-11-24T12:00+01:00", False,
     "2026-11-24T14:00+01:00", "2026-11-24T15:00+01:00", "'*' resets the prefix to every day"),
    (AMS, "Fri-Mon 12:00-13:00", "2026-11-24T12:30+01:00", False, "2026-11-27T12:00+01:00",
     "2026-11-27T13:00+01:00", "a weekday range wraps over the weekend; HH:MM form"),
    (NYC, "0130-0230", "2026-03-08T01:00-05:00", False, "2026-03-08T01:30-05:00",
     "2026-03-08T03:00-04:00", "spring: the clock jumps past the end, the window ends then"),
    (NYC, "0100-0200", "2026-11-01T00:30-04:00", False, "2026-11-01T01:00-04:00",
     "2026-11-01T02:00-05:00", "autumn: the repeated hour keeps the window open two hours"),
    (NYC, "Sun 2300-0100", "2026-11-29T23:30-05:00", True, "2026-11-29T23:30-05:00",
     "2026-11-30T01:00-05:00", "Sunday's range crosses into Monday"),
    (NYC, "Sat 2330-0030", "2026-10-31T23:45-04:00", True, "2026-10-31T23:45-04:00",
     "2026-11-01T00:30-04:00", "the night before the autumn change"),
]


@pytest.mark.parametrize(
    ("tz", "window", "now", "inside", "start", "end", "why"),
    WINDOWS,
    ids=[row[-1] for row in WINDOWS],
)
def test_window_table(
    tz: ZoneInfo, window: str, now: str, inside: bool, start: str, end: str, why: str
) -> None:
    """At each fixed instant: inside or not, next start, and the end of that window."""
    times = AllowedTimes.parse(window, tz)
    instant = at(now)
    assert times.contains(instant) is inside, why
    next_start = times.next_start(instant)
    assert next_start == at(start), why
    assert times.window_end(next_start) == at(end), why
    assert times.next_change(instant) == (at(end) if inside else at(start)), why


def test_always_and_never() -> None:
    """An absent allowed_times is always inside and never changes."""
    always = AllowedTimes.always(AMS)
    assert always.contains(at("2026-03-29T02:30+02:00"))
    assert always.next_change(0.0) is None and always.window_end(0.0) is None
    assert always.is_always and not always.is_never
    whole_week = AllowedTimes.parse("* 0000-2400", AMS)
    assert whole_week.is_always and whole_week.next_change(1e9) is None


BAD_WINDOWS = [
    ("", "empty"),
    ("2200", "no range"),
    ("2200-", "no end"),
    ("0800-0800", "empty range"),
    ("2400-0100", "2400 as a start"),
    ("2401-0100", "not a time"),
    ("2460-0100", "minute 60"),
    ("25:00-26:00", "hour 25"),
    ("Mon", "weekdays and no range"),
    ("Mon,0800-0900", "weekday list without a space"),
    ("Monday 0800-0900", "full day names are not accepted"),
    ("Mon Tue 0800-0900", "two prefixes"),
    ("0800-0900,,1000-1100", "empty item"),
    ("8-9", "too short"),
    ("0800–0900", "an en dash"),
]


@pytest.mark.parametrize(("text", "why"), BAD_WINDOWS)
def test_bad_windows(text: str, why: str) -> None:
    """Malformed windows are refused with the grammar in the message."""
    with pytest.raises(ValueSyntaxError) as caught:
        AllowedTimes.parse(text, AMS)
    assert "HHMM-HHMM" in caught.value.expected, why


def test_week_minutes() -> None:
    """The parsed minute set matches the grammar: start day, crossing midnight, wrap."""
    minutes = parse_week_minutes("Sun 2300-0100")
    allowed = [m for m in range(MINUTES_PER_WEEK) if minutes[m]]
    assert allowed == list(range(0, 60)) + list(range(MINUTES_PER_WEEK - 60, MINUTES_PER_WEEK))
    assert sum(parse_week_minutes("mon-fri 0900-1700")) == 5 * 8 * 60


# Hypothesis: compare the arithmetic with a scan of every minute.

ZONES = [AMS, NYC, ZoneInfo("UTC"), ZoneInfo("Australia/Lord_Howe")]  # Lord Howe: 30 min DST


def _hhmm(minute: int, colon: bool) -> str:
    separator = ":" if colon else ""
    return f"{minute // 60:02d}{separator}{minute % 60:02d}"


# Half the boundaries fall between 00:00 and 04:00, where DST transitions happen.
minutes_of_day = st.one_of(st.integers(0, 1439), st.integers(0, 240), st.integers(60, 180))


@st.composite
def window_texts(draw: st.DrawFn) -> str:
    items = []
    for _ in range(draw(st.integers(1, 3))):
        start = draw(minutes_of_day)
        end = draw(
            st.one_of(minutes_of_day, st.just(1440)).filter(lambda e, s=start: e not in (0, s))
        )
        colon = draw(st.booleans())
        days = draw(
            st.one_of(
                st.none(),
                st.just("*"),
                st.sampled_from(WEEKDAYS),
                st.tuples(st.sampled_from(WEEKDAYS), st.sampled_from(WEEKDAYS)).map("-".join),
            )
        )
        text = f"{_hhmm(start, colon)}-{_hhmm(end, colon)}"
        items.append(text if days is None else f"{days} {text}")
    return ",".join(items)


FIRST, LAST = int(at("2025-01-01T00:00+00:00")), int(at("2027-12-31T00:00+00:00"))


def _transitions(tz: ZoneInfo) -> list[int]:
    """The hours in [FIRST, LAST] at which the UTC offset of ``tz`` differs from the hour before."""
    found = []
    previous = datetime.fromtimestamp(FIRST, tz).utcoffset()
    for hour in range(FIRST, LAST, 1800):
        offset = datetime.fromtimestamp(hour, tz).utcoffset()
        if offset != previous:
            found.append(hour)
        previous = offset
    return found


TRANSITIONS = {tz.key: _transitions(tz) for tz in ZONES}


@st.composite
def zone_and_instant(draw: st.DrawFn) -> tuple[ZoneInfo, float]:
    """A zone, and an instant: anywhere, or within two days before one of its transitions."""
    tz = draw(st.sampled_from(ZONES))
    near = TRANSITIONS[tz.key]
    anywhere = st.integers(FIRST, LAST)
    if near:
        before = st.tuples(st.sampled_from(near), st.integers(-2 * 86400, 3600)).map(sum)
        anywhere = st.one_of(anywhere, before, before)
    return tz, float(draw(anywhere))


def _scan(times: AllowedTimes, instant: float, want: bool, limit_days: int = 16) -> float | None:
    """The first instant >= instant whose membership is ``want``, minute by minute
    (offsets of these zones are whole minutes, so membership is constant within
    each UTC minute)."""
    if times.contains(instant) is want:
        return instant
    minute = math.ceil(instant / 60) * 60
    for step in range(limit_days * 24 * 60):
        candidate = float(minute + 60 * step)
        if times.contains(candidate) is want:
            return candidate
    return None


@settings(max_examples=60, deadline=None)
@given(window_texts(), zone_and_instant())
def test_next_start_is_the_first_inside_instant(
    text: str, zone_instant: tuple[ZoneInfo, float]
) -> None:
    """For any instant, next_start is inside the window and nothing between now and it is."""
    tz, instant = zone_instant
    times = AllowedTimes.parse(text, tz)
    assert times.next_start(instant) == _scan(times, instant, True)


@settings(max_examples=60, deadline=None)
@given(window_texts(), zone_and_instant())
def test_window_end_is_the_first_outside_instant(
    text: str, zone_instant: tuple[ZoneInfo, float]
) -> None:
    """Inside a window, everything up to window_end is inside and window_end is not."""
    tz, instant = zone_instant
    times = AllowedTimes.parse(text, tz)
    start = times.next_start(instant)
    if start is None:
        return
    assert times.window_end(start) == _scan(times, start, False)


@given(st.text())
def test_any_text_is_a_window_or_a_syntax_error(text: str) -> None:
    """No text makes the window parser raise anything but ValueSyntaxError."""
    try:
        AllowedTimes.parse(text, AMS)
    except ValueSyntaxError:
        pass


def test_local_days_follow_the_zone() -> None:
    """The same instant is Friday night in New York and Saturday in Amsterdam."""
    instant = at("2026-11-27T23:30-05:00")
    friday_night = "Fri 2300-2400"
    assert AllowedTimes.parse(friday_night, NYC).contains(instant)
    assert not AllowedTimes.parse(friday_night, AMS).contains(instant)
    assert AllowedTimes.parse("Sat 0500-0600", AMS).contains(instant)


@settings(max_examples=40, deadline=None)
@given(window_texts(), zone_and_instant(), st.floats(0, 1))
def test_remembered_change_matches_a_fresh_computation(
    text: str, zone_instant: tuple[ZoneInfo, float], fraction: float
) -> None:
    """After next_change(t) = c, asking at any t' in [t, c) gives what a fresh window gives."""
    tz, instant = zone_instant
    times = AllowedTimes.parse(text, tz)
    change = times.next_change(instant)
    if change is None:
        return
    later = instant + fraction * (change - instant)
    if later >= change:
        return
    assert times.next_change(later) == AllowedTimes.parse(text, tz).next_change(later) == change
