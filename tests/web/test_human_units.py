"""How numbers read on the pages and in the command."""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

import pytest

from tahoe_governor.web.human_units import (
    format_bytes,
    format_instant,
    format_seconds,
    format_speed,
    fraction_done,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "?"), (0, "0 B"), (999, "999 B"), (1000, "1 kB"), (1_500_000, "1.5 MB"),
     (5e9, "5 GB"), (2.5e12, "2.5 TB")],
)
def test_format_bytes(value, text) -> None:
    """SI units, three significant digits."""
    assert format_bytes(value) == text


def test_format_speed() -> None:
    """Rates get /s; no cap reads 'unlimited'."""
    assert format_speed(25_000) == "25 kB/s"
    assert format_speed(float("inf")) == "unlimited"
    assert format_speed(None) == "unlimited"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (0, "0 s"), (59.4, "59 s"), (60, "1 min"), (3725, "1 h 2 min"),
     (18720, "5 h 12 min"), (90061, "1 d 1 h"), (-120, "2 min"), (float("inf"), "never")],
)
def test_format_seconds(seconds, text) -> None:
    """The two largest units."""
    assert format_seconds(seconds) == text


def test_format_instant() -> None:
    """A local time and how far away it is; None reads as the given word."""
    now = 1_795_000_000.0
    assert format_instant(None, now, UTC) == "never"
    assert format_instant(now + 18720, now, UTC) == "Wed 2026-11-18 16:18 UTC (in 5 h 12 min)"
    assert format_instant(now - 86400, now, ZoneInfo("Europe/Amsterdam")) == (
        "Tue 2026-11-17 12:06 CET (1 d ago)")
    assert format_instant(now, now, UTC).endswith("(now)")


def test_fraction_done() -> None:
    """Clamped to [0, 1]; unknown without a total."""
    assert fraction_done(5, 10) == 0.5
    assert fraction_done(15, 10) == 1.0
    assert fraction_done(5, None) is None
    assert fraction_done(5, 0) is None
