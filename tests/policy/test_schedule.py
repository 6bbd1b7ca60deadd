"""Schedules (time-of-day limits) and peer selectors."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.policy.peers import KnownPeer, PeerSelector, resolve_selector
from tahoe_governor.policy.schedule import parse_schedule

AMS = ZoneInfo("Europe/Amsterdam")


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_entries_and_edges() -> None:
    """The entry in force follows the windows; next_change is the nearest edge of any entry."""
    schedule = parse_schedule("Mon-Fri 0800-1800 100 kbps; * 2200-0800 unlimited;", AMS)
    assert len(schedule.entries) == 2
    monday_noon = at("2026-11-23T12:00+01:00")
    entry = schedule.entry_at(monday_noon)
    assert entry is not None and entry.rate.bytes_per_second == 12_500
    assert schedule.next_change(monday_noon) == at("2026-11-23T18:00+01:00")
    evening = at("2026-11-23T19:00+01:00")
    assert schedule.entry_at(evening) is None
    assert schedule.next_change(evening) == at("2026-11-23T22:00+01:00")
    night = schedule.entry_at(at("2026-11-24T03:00+01:00"))
    assert night is not None and night.rate.kind == "unlimited"
    saturday = at("2026-11-28T12:00+01:00")
    assert schedule.entry_at(saturday) is None
    assert schedule.next_change(saturday) == at("2026-11-28T22:00+01:00")


BAD = [
    ("", "empty"),
    ("100kbps", "a rate without a window"),
    ("0800-1800", "a window without a rate"),
    ("0800-1800 fast", "not a rate"),
    ("0800-1800 100kbps;; 2000-2100 1Mbps", "an empty entry"),
    ("Mon 0800-1800 100kbps; Mon-Fri 1700-1900 1Mbps", "overlap"),
    ("Funday 0800-1800 100kbps", "not a weekday"),
]


@pytest.mark.parametrize(("text", "why"), BAD)
def test_bad_schedules(text: str, why: str) -> None:
    """Malformed schedules are refused with what a schedule looks like."""
    with pytest.raises(ValueSyntaxError):
        parse_schedule(text, AMS)


def test_overlap_names_entries_and_minute() -> None:
    """An overlap names both entries and the first minute they share."""
    with pytest.raises(ValueSyntaxError, match="entries 1 and 2 both cover Mon 17:00"):
        parse_schedule("Mon 0800-1800 100kbps; Mon-Fri 1700-1900 1Mbps", AMS)


@given(st.text(max_size=80))
def test_any_text_is_a_schedule_or_a_syntax_error(text: str) -> None:
    """No text makes the schedule parser raise anything but ValueSyntaxError."""
    try:
        parse_schedule(text, AMS)
    except ValueSyntaxError:
        pass


TUBID = "a" * 32
SERVER_ID = "v0-" + "b" * 52
KNOWN = [
    KnownPeer(TUBID, SERVER_ID, "parents"),
    KnownPeer("c" * 32, None, "twin"),
    KnownPeer("d" * 32, None, "twin"),
]


def test_selector_resolution() -> None:
    """TubIDs resolve at once; server ids and nicknames via the known peers; a nickname
    several peers announce names them all (so another server taking it cannot lift a
    cap), with a note recommending a TubID."""
    assert resolve_selector(PeerSelector.parse(TUBID), []).tubids == (TUBID,)
    assert resolve_selector(PeerSelector.parse(SERVER_ID), KNOWN).tubids == (TUBID,)
    assert resolve_selector(PeerSelector.parse("parents"), KNOWN).tubids == (TUBID,)
    shared = resolve_selector(PeerSelector.parse("twin"), KNOWN)
    assert shared.tubids == ("c" * 32, "d" * 32) and shared.problem is None
    assert "announced by 2 peers" in str(shared.note) and "TubID" in str(shared.note)
    unknown = resolve_selector(PeerSelector.parse("v0-" + "e" * 52), KNOWN)
    assert unknown.tubids == () and "no known peer has server id" in str(unknown.problem)
    assert PeerSelector.parse("Parents").kind == "nickname"
    assert PeerSelector.parse("A" * 32).kind == "nickname"  # TubIDs are lowercase
