"""Rates, percentages, durations and weights as written in tahoe.cfg.

Every parser here takes the text of one value and returns a typed value, or
raises :class:`~tahoe_governor.policy.errors.ValueSyntaxError` saying what was
expected. Units are case-sensitive, as listed in :data:`RATE_UNITS` and
:data:`DURATION_UNITS`; a number may have a decimal fraction (``1.5Mbps``)
and may be separated from its unit by spaces (``200 kbps``).
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Literal

import attrs

from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.throttle import UNLIMITED

RATE_UNITS: dict[str, float] = {
    "bps": 1 / 8,
    "kbps": 1e3 / 8,
    "Mbps": 1e6 / 8,
    "Gbps": 1e9 / 8,
    "B/s": 1.0,
    "kB/s": 1e3,
    "MB/s": 1e6,
    "GB/s": 1e9,
    "KiB/s": 1024.0,
    "MiB/s": 1024.0**2,
    "GiB/s": 1024.0**3,
}
"""Bytes per second of one of each rate unit: bits (SI), bytes (SI) and binary."""

DURATION_UNITS: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "day": 86400.0,
    "days": 86400.0,
    "week": 604800.0,
    "weeks": 604800.0,
    "month": 2592000.0,
    "months": 2592000.0,
}
"""Seconds of one of each duration unit (a month is 30 days)."""

UNLIMITED_WORD = "unlimited"
AUTO_WORD = "auto"

_NUMBER_WITH_UNIT = re.compile(r"([0-9]+(?:\.[0-9]+)?)[ \t]*([^0-9 \t].*)")
_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]+)?)[ \t]*%")

RATE_EXPECTED = (
    "a rate above zero: a number with a unit ("
    + " ".join(RATE_UNITS)
    + "), N% of the link capacity, or 'unlimited'"
)
ABSOLUTE_RATE_EXPECTED = "a rate above zero: a number with a unit (" + " ".join(RATE_UNITS) + ")"
PERCENT_EXPECTED = "a percentage N% with 0 < N <= 100"
DURATION_EXPECTED = (
    "a duration above zero: a number with a unit (e.g. 30s 15min 6h 1day 2days 1week; units: "
    + " ".join(DURATION_UNITS)
    + ")"
)
WEIGHT_EXPECTED = "a weight: a number above zero (e.g. 1, 2, 0.5)"


def _did_you_mean(unit: str, known: dict[str, float]) -> str:
    folded = [u for u in known if u.lower() == unit.lower()]
    close = folded or difflib.get_close_matches(unit, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _positive_finite(number_text: str, expected: str) -> float:
    value = float(number_text)
    if not math.isfinite(value) or value <= 0:
        raise ValueSyntaxError(expected)
    return value


def parse_percent(text: str) -> float:
    """``"25%"`` -> ``0.25``: a fraction in (0, 1]."""
    match = _PERCENT.fullmatch(text.strip())
    if match is None:
        raise ValueSyntaxError(PERCENT_EXPECTED)
    percent = float(match.group(1))
    if not 0 < percent <= 100:
        raise ValueSyntaxError(PERCENT_EXPECTED)
    return percent / 100


@attrs.frozen
class Rate:
    """A configured rate: absolute bytes/s, a fraction of the link capacity, or unlimited.

    ``kind`` is ``"absolute"`` (``bytes_per_second`` set), ``"percent"``
    (``fraction`` of the capacity of the same direction, in (0, 1]) or
    ``"unlimited"``. ``text`` is the value as written, for messages.
    """

    kind: Literal["absolute", "percent", "unlimited"]
    bytes_per_second: float | None = None
    fraction: float | None = None
    text: str = ""

    @classmethod
    def absolute(cls, bytes_per_second: float, text: str = "") -> Rate:
        return cls("absolute", bytes_per_second=float(bytes_per_second), text=text)

    @classmethod
    def percent(cls, fraction: float, text: str = "") -> Rate:
        return cls("percent", fraction=float(fraction), text=text)

    @classmethod
    def unlimited(cls) -> Rate:
        return cls("unlimited", text=UNLIMITED_WORD)

    def resolve(self, capacity: float | None) -> float | None:
        """Bytes per second, ``UNLIMITED``, or ``None`` for a percentage of an
        unknown capacity (the cap cannot be applied yet)."""
        if self.kind == "absolute":
            assert self.bytes_per_second is not None
            return self.bytes_per_second
        if self.kind == "unlimited":
            return UNLIMITED
        assert self.fraction is not None
        if capacity is None:
            return None
        return self.fraction * capacity

    def __str__(self) -> str:
        return self.text or (
            UNLIMITED_WORD
            if self.kind == "unlimited"
            else f"{(self.fraction or 0) * 100:g}%"
            if self.kind == "percent"
            else f"{self.bytes_per_second:g}B/s"
        )


def parse_absolute_rate(text: str) -> Rate:
    """``"200kbps"`` -> 25000 bytes/s. Only absolute units are accepted."""
    stripped = text.strip()
    match = _NUMBER_WITH_UNIT.fullmatch(stripped)
    if match is None:
        raise ValueSyntaxError(ABSOLUTE_RATE_EXPECTED)
    number, unit = match.groups()
    unit = unit.strip()
    if unit not in RATE_UNITS:
        raise ValueSyntaxError(ABSOLUTE_RATE_EXPECTED + _did_you_mean(unit, RATE_UNITS))
    per_second = _positive_finite(number, ABSOLUTE_RATE_EXPECTED) * RATE_UNITS[unit]
    if not math.isfinite(per_second) or per_second <= 0:
        raise ValueSyntaxError(ABSOLUTE_RATE_EXPECTED)
    return Rate.absolute(per_second, text=stripped)


def parse_rate(text: str) -> Rate:
    """A rate as written in tahoe.cfg: ``200kbps``, ``1.5MiB/s``, ``60%``, ``unlimited``."""
    stripped = text.strip()
    if stripped == UNLIMITED_WORD:
        return Rate.unlimited()
    if stripped.endswith("%"):
        try:
            return Rate.percent(parse_percent(stripped), text=stripped)
        except ValueSyntaxError:
            raise ValueSyntaxError(RATE_EXPECTED) from None
    try:
        return parse_absolute_rate(stripped)
    except ValueSyntaxError as e:
        hint = e.expected[len(ABSOLUTE_RATE_EXPECTED) :]
        raise ValueSyntaxError(RATE_EXPECTED + hint) from None


def parse_duration(text: str) -> float:
    """``"1week"`` -> 604800.0 seconds."""
    match = _NUMBER_WITH_UNIT.fullmatch(text.strip())
    if match is None:
        raise ValueSyntaxError(DURATION_EXPECTED)
    number, unit = match.groups()
    unit = unit.strip()
    if unit not in DURATION_UNITS:
        raise ValueSyntaxError(DURATION_EXPECTED + _did_you_mean(unit, DURATION_UNITS))
    seconds = _positive_finite(number, DURATION_EXPECTED) * DURATION_UNITS[unit]
    if not math.isfinite(seconds):
        raise ValueSyntaxError(DURATION_EXPECTED)
    return seconds


def parse_weight(text: str) -> float:
    """``"2"`` -> 2.0: a job's share when several jobs compete."""
    stripped = text.strip()
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", stripped) is None:
        raise ValueSyntaxError(WEIGHT_EXPECTED)
    return _positive_finite(stripped, WEIGHT_EXPECTED)


def format_rate(bytes_per_second: float | None) -> str:
    """A human form of an effective rate: ``"25.0 kB/s (200 kbps)"``, ``"unlimited"``."""
    if bytes_per_second is None:
        return "not applied (capacity not known yet)"
    if math.isinf(bytes_per_second):
        return UNLIMITED_WORD
    for unit, size in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if bytes_per_second >= size:
            shown = f"{bytes_per_second / size:.3g} {unit}"
            break
    else:
        shown = f"{bytes_per_second:.3g} B/s"
    bits = bytes_per_second * 8
    for unit, size in (("Gbps", 1e9), ("Mbps", 1e6), ("kbps", 1e3)):
        if bits >= size:
            return f"{shown} ({bits / size:.3g} {unit})"
    return f"{shown} ({bits:.3g} bps)"


def format_duration(seconds: float) -> str:
    """``604800`` -> ``"1week"``: the largest unit that divides the duration."""
    for unit in ("months", "weeks", "days", "hours", "minutes"):
        size = DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count}{unit[:-1] if count == 1 else unit}"
    return f"{seconds:g}s"
