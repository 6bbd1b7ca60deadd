"""Rates, percentages, durations and weights: table-driven, and no stray exceptions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.policy.units import (
    RATE_UNITS,
    Rate,
    format_duration,
    format_rate,
    parse_duration,
    parse_percent,
    parse_rate,
    parse_weight,
)
from tahoe_governor.throttle import UNLIMITED

RATES = [
    # text, bytes/s, why
    ("200kbps", 25_000, "the story's parents' cap: SI kilobits"),
    ("1Mbps", 125_000, "megabits"),
    ("1.5Gbps", 187_500_000, "decimal fraction"),
    ("8bps", 1, "plain bits"),
    ("100 kbps", 12_500, "a space before the unit"),
    ("1B/s", 1, "plain bytes"),
    ("2kB/s", 2_000, "SI kilobytes"),
    ("3MB/s", 3_000_000, "SI megabytes"),
    ("1GB/s", 1_000_000_000, "SI gigabytes"),
    ("1KiB/s", 1024, "binary kibibytes"),
    ("2MiB/s", 2 * 1024**2, "binary mebibytes"),
    ("1GiB/s", 1024**3, "binary gibibytes"),
    ("  600kbps\t", 75_000, "surrounding blanks"),
]


@pytest.mark.parametrize(("text", "expected", "why"), RATES)
def test_absolute_rates(text: str, expected: float, why: str) -> None:
    """Each unit converts to bytes per second exactly as documented."""
    rate = parse_rate(text)
    assert rate.kind == "absolute", why
    assert rate.bytes_per_second == pytest.approx(expected), why


def test_percent_and_unlimited() -> None:
    """N% is a fraction of the capacity; 'unlimited' resolves to UNLIMITED."""
    rate = parse_rate("60%")
    assert rate.kind == "percent" and rate.fraction == pytest.approx(0.6)
    assert rate.resolve(1_000_000) == pytest.approx(600_000)
    assert rate.resolve(None) is None
    assert parse_rate("unlimited").resolve(None) == UNLIMITED
    assert parse_rate("12.5 %").fraction == pytest.approx(0.125)


BAD_RATES = [
    ("", "empty"),
    ("200", "no unit"),
    ("200kbit/s", "unit not in the list"),
    ("200KBPS", "units are case-sensitive"),
    ("0kbps", "zero would stall every transfer"),
    ("-5kbps", "negative"),
    ("0%", "zero percent"),
    ("101%", "more than the whole link"),
    ("1e3kbps", "no exponent notation"),
    ("Unlimited", "keywords are lowercase"),
    ("inf", "not a keyword"),
    ("nan B/s", "not a number"),
    ("9" * 400 + "Gbps", "overflows to infinity"),
    ("１２kbps", "non-ASCII digits"),
]


@pytest.mark.parametrize(("text", "why"), BAD_RATES)
def test_bad_rates(text: str, why: str) -> None:
    """Every malformed rate is refused with a message listing the units."""
    with pytest.raises(ValueSyntaxError) as caught:
        parse_rate(text)
    assert "kbps" in caught.value.expected, why


def test_unit_suggestion() -> None:
    """A wrongly capitalised unit gets a 'did you mean' with the right spelling."""
    with pytest.raises(ValueSyntaxError, match="did you mean 'kB/s'"):
        parse_rate("5KB/s")


DURATIONS = [
    ("30s", 30),
    ("15min", 900),
    ("6h", 21_600),
    ("1day", 86_400),
    ("2days", 172_800),
    ("1week", 604_800),
    ("2weeks", 1_209_600),
    ("1.5 hours", 5_400),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_durations(text: str, seconds: float) -> None:
    """The documented duration forms give seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "1wk", "0days", "week", "1 fortnight", "-1day"])
def test_bad_durations(text: str) -> None:
    """Durations need a positive number and a known unit."""
    with pytest.raises(ValueSyntaxError):
        parse_duration(text)


def test_percent_weight_and_formatting() -> None:
    """Percent bounds, weights above zero, and the human forms used by check."""
    assert parse_percent("100%") == 1.0
    with pytest.raises(ValueSyntaxError):
        parse_percent("25")
    assert parse_weight("2.5") == 2.5
    for bad in ("0", "-1", "x", "1e3", ""):
        with pytest.raises(ValueSyntaxError):
            parse_weight(bad)
    assert format_rate(25_000) == "25 kB/s (200 kbps)"
    assert format_rate(math.inf) == "unlimited"
    assert format_duration(604_800) == "1week"
    assert format_duration(90) == "90s"
    assert str(Rate.unlimited()) == "unlimited"


@given(st.text())
def test_any_text_is_a_rate_or_a_syntax_error(text: str) -> None:
    """No text makes a value parser raise anything but ValueSyntaxError."""
    for parse in (parse_rate, parse_duration, parse_percent, parse_weight):
        try:
            parse(text)
        except ValueSyntaxError:
            pass


@given(st.floats(min_value=0.001, max_value=1e9), st.sampled_from(sorted(RATE_UNITS)))
def test_rate_round_trip(number: float, unit: str) -> None:
    """A decimal number with any unit parses to number * unit size."""
    text = f"{number:.3f}{unit}"
    value = float(f"{number:.3f}")
    if value == 0:
        return
    assert parse_rate(text).bytes_per_second == pytest.approx(value * RATE_UNITS[unit])
