"""Quotas: their grammar, calendar periods (month ends, leap years, DST), states and the ledger.

Fixed instants only; each row of a table says why it is there.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.policy.errors import ConfigError, ValueSyntaxError
from tahoe_governor.policy.quota_ledger import QuotaLedger
from tahoe_governor.policy.quotas import (
    Quota,
    QuotaKey,
    QuotaUsage,
    counted,
    parse_quota,
    period_bounds,
    quota_state,
)

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
SANTIAGO = ZoneInfo("America/Santiago")  # moves its clocks at local midnight


def at(tz: ZoneInfo, *wall: int, fold: int = 0) -> float:
    return datetime(*wall, tzinfo=tz, fold=fold).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(("text", "expected", "why"), [
    ("200GB/month", Quota(200 * 10**9, "month", "200GB/month"), "SI gigabytes, as ISPs count"),
    ("20GB/week", Quota(20 * 10**9, "week", "20GB/week"), "a week"),
    ("1.5 TiB / day", Quota(int(1.5 * 2**40), "day", "1.5 TiB / day"), "binary, spaces"),
    ("500kB/day", Quota(500_000, "day", "500kB/day"), "small"),
    ("1B/day", Quota(1, "day", "1B/day"), "one byte is the least"),
])
def test_quota_grammar(text: str, expected: Quota, why: str) -> None:
    """Each written quota reads as so many bytes per period."""
    assert parse_quota(text) == expected, why


@pytest.mark.parametrize(("text", "hint", "why"), [
    ("200GB", "", "no period"),
    ("200/month", "", "no unit"),
    ("200gb/month", "did you mean 'GB'?", "units are case-sensitive"),
    ("200GB/months", "did you mean 'month'?", "the period is singular"),
    ("200GB/fortnight", "", "not a calendar period"),
    ("0GB/month", "at least one byte", "nothing allowed is not a quota"),
    ("0.1B/day", "at least one byte", "under a byte"),
    ("-5GB/month", "", "negative"),
    ("unlimited", "", "leave the key out instead"),
])
def test_bad_quotas_say_what_was_expected(text: str, hint: str, why: str) -> None:
    """A wrong value is refused with the grammar (and a hint where one helps)."""
    with pytest.raises(ValueSyntaxError) as e:
        parse_quota(text)
    assert e.value.expected.startswith("a volume per calendar period"), why
    assert hint in e.value.expected, why


@pytest.mark.parametrize(("period", "tz", "now", "start", "end", "why"), [
    ("day", UTC, at(UTC, 2026, 11, 26, 13, 0), at(UTC, 2026, 11, 26), at(UTC, 2026, 11, 27),
     "a plain day"),
    ("day", UTC, at(UTC, 2026, 11, 26), at(UTC, 2026, 11, 26), at(UTC, 2026, 11, 27),
     "midnight belongs to the day it starts"),
    ("day", UTC, at(UTC, 2026, 11, 26) - 0.001, at(UTC, 2026, 11, 25), at(UTC, 2026, 11, 26),
     "a millisecond before midnight is the day before"),
    ("week", UTC, at(UTC, 2026, 11, 26, 12), at(UTC, 2026, 11, 23), at(UTC, 2026, 11, 30),
     "Thursday: Monday to Monday"),
    ("week", UTC, at(UTC, 2026, 11, 29, 23, 59), at(UTC, 2026, 11, 23), at(UTC, 2026, 11, 30),
     "Sunday night is still the week"),
    ("week", UTC, at(UTC, 2026, 12, 31, 12), at(UTC, 2026, 12, 28), at(UTC, 2027, 1, 4),
     "a week across the new year"),
    ("month", UTC, at(UTC, 2026, 1, 31, 23, 59, 59), at(UTC, 2026, 1, 1), at(UTC, 2026, 2, 1),
     "31 January 23:59:59 is January"),
    ("month", UTC, at(UTC, 2026, 12, 15), at(UTC, 2026, 12, 1), at(UTC, 2027, 1, 1),
     "December ends with the year"),
    ("month", UTC, at(UTC, 2028, 2, 29, 12), at(UTC, 2028, 2, 1), at(UTC, 2028, 3, 1),
     "29 February of a leap year is February"),
    ("month", UTC, at(UTC, 2027, 2, 28, 23), at(UTC, 2027, 2, 1), at(UTC, 2027, 3, 1),
     "February of a common year has 28 days"),
    ("month", UTC, at(UTC, 2026, 4, 30, 12), at(UTC, 2026, 4, 1), at(UTC, 2026, 5, 1),
     "a 30-day month"),
    ("month", BERLIN, at(BERLIN, 2026, 3, 15), at(BERLIN, 2026, 3, 1), at(BERLIN, 2026, 4, 1),
     "March in Berlin: 743 hours (clocks go forward)"),
    ("month", BERLIN, at(BERLIN, 2026, 10, 31, 23, 30), at(BERLIN, 2026, 10, 1),
     at(BERLIN, 2026, 11, 1), "October in Berlin: 745 hours (clocks go back)"),
    ("day", BERLIN, at(BERLIN, 2026, 3, 29, 12), at(BERLIN, 2026, 3, 29), at(BERLIN, 2026, 3, 30),
     "the spring-forward day lasts 23 hours"),
    ("day", BERLIN, at(BERLIN, 2026, 10, 25, 2, 30, fold=1), at(BERLIN, 2026, 10, 25),
     at(BERLIN, 2026, 10, 26), "the repeated hour of the fall-back day is that day"),
    ("day", SANTIAGO, at(SANTIAGO, 2026, 9, 6, 12), at(SANTIAGO, 2026, 9, 6, 1),
     at(SANTIAGO, 2026, 9, 7), "a skipped midnight: the day starts when the clocks move"),
])
def test_period_bounds(period, tz, now, start, end, why) -> None:
    """The calendar period holding ``now`` in the zone: start <= now < end."""
    assert period_bounds(period, now, tz) == (start, end), why
    assert start <= now < end


def test_dst_lengths() -> None:
    """Local periods follow the wall clock: Berlin's March is an hour short, October one long."""
    march = period_bounds("month", at(BERLIN, 2026, 3, 10), BERLIN)
    october = period_bounds("month", at(BERLIN, 2026, 10, 10), BERLIN)
    assert march[1] - march[0] == 743 * 3600
    assert october[1] - october[0] == 745 * 3600


KEY = QuotaKey("job", "b1", "up")
MONTHLY = Quota(1000, "month", "1kB/month")
NOV = at(UTC, 2026, 11, 1)
DEC = at(UTC, 2026, 12, 1)


@pytest.mark.parametrize(("usage", "now", "used", "exhausted", "why"), [
    (None, NOV + 5, 0, False, "nothing counted yet"),
    (QuotaUsage(999, NOV), NOV + 5, 999, False, "one byte left"),
    (QuotaUsage(1000, NOV), NOV + 5, 1000, True, "exactly the quota is used up"),
    (QuotaUsage(1500, NOV), DEC - 0.001, 1500, True, "overrun, until the last instant"),
    (QuotaUsage(1500, NOV), DEC, 0, False, "the next month starts from 0"),
    (QuotaUsage(1500, NOV - 31 * 86400), NOV + 5, 0, False, "a count of an earlier period"),
])
def test_quota_state(usage, now, used, exhausted, why) -> None:
    """Usage counts in its period only; used up at or above the quota until the reset."""
    state = quota_state(KEY, MONTHLY, usage, now, UTC)
    assert (state.used_bytes, state.exhausted) == (used, exhausted), why
    assert state.resets_at == period_bounds("month", now, UTC)[1]


def test_reason_names_the_directive_and_counts() -> None:
    """The public words of a hold: the key, its value and the byte counts."""
    state = quota_state(KEY, MONTHLY, QuotaUsage(1200, NOV), NOV + 5, UTC)
    assert state.reason == "b1.quota = 1kB/month used up (1200 of 1000 bytes)"
    assert QuotaKey("peer", "parents", "down").directive == "peer.parents.quota.down"
    assert QuotaKey("node", "", "up").directive == "quota.up"


def test_counted_rolls_over_at_the_period_start() -> None:
    """Bytes counted after the reset start a new period's count."""
    usage = counted(None, 600, "month", DEC - 10, UTC)
    usage = counted(usage, 300, "month", DEC - 5, UTC)
    assert usage == QuotaUsage(900, NOV)
    assert counted(usage, 50, "month", DEC + 1, UTC) == QuotaUsage(50, DEC)


def test_ledger_counts_what_each_counter_added() -> None:
    """Running totals become additions, per counter; a total that went down is a new counter."""
    ledger = QuotaLedger(UTC, {KEY: QuotaUsage(100, NOV)})
    ledger.observe(KEY, MONTHLY, "a", 40, NOV + 1)  # first look: all 40 bytes are this process's
    ledger.observe(KEY, MONTHLY, "b", 10, NOV + 1)
    ledger.observe(KEY, MONTHLY, "a", 70, NOV + 2)
    assert ledger.usage()[KEY] == QuotaUsage(180, NOV)
    ledger.observe(KEY, MONTHLY, "a", 5, NOV + 3)  # counter made again
    assert ledger.usage()[KEY] == QuotaUsage(185, NOV)
    ledger.observe(KEY, MONTHLY, "a", 25, DEC + 1)
    assert ledger.usage()[KEY] == QuotaUsage(20, DEC)


def test_ledger_tells_what_to_save() -> None:
    """Only usages changed since their last save are to be written."""
    ledger = QuotaLedger(UTC)
    assert ledger.unsaved() == {}
    ledger.observe(KEY, MONTHLY, "a", 40, NOV + 1)
    unsaved = ledger.unsaved()
    assert unsaved == {KEY: QuotaUsage(40, NOV)}
    ledger.observe(KEY, MONTHLY, "a", 40, NOV + 2)  # nothing moved
    ledger.saved(unsaved)
    assert ledger.unsaved() == {}
    ledger.observe(KEY, MONTHLY, "a", 41, NOV + 3)
    assert ledger.unsaved() == {KEY: QuotaUsage(41, NOV)}


JOB = """
[backups]
b1.source = /srv
b1.target = backup:x
b1.frequency = 1day
"""


def test_config_reads_every_quota() -> None:
    """Node, peer (both directions) and job quotas, in that order."""
    policy = parse_policy_text(JOB + """b1.quota = 50GB/month
[bandwidth]
quota.up = 200GB/month
quota.down = 1TB/month
peer.parents.quota.up = 20GB/week
peer.parents.quota.down = 5GB/week
peer.parents.up = 800kbps
""", UTC)
    assert [(str(k), q.bytes, q.period) for k, q in policy.quotas()] == [
        ("quota.up", 200 * 10**9, "month"),
        ("quota.down", 10**12, "month"),
        ("peer.parents.quota.up", 20 * 10**9, "week"),
        ("peer.parents.quota.down", 5 * 10**9, "week"),
        ("b1.quota", 50 * 10**9, "month"),
    ]
    assert policy.peers[0].up is not None  # the rate cap of the same selector stays


@pytest.mark.parametrize(("lines", "section", "key", "words"), [
    ("b1.quota = 50GB\n", "backups", "b1.quota", "a volume per calendar period"),
    ("[bandwidth]\nquota.up = 200GB/fortnight\n", "bandwidth", "quota.up",
     "day, week or month"),
    ("[bandwidth]\nquota.sideways = 1GB/day\n", "bandwidth", "quota.sideways",
     "quota.up"),
    ("[bandwidth]\npeer.parents.quota.up = 20 GiBs/week\n", "bandwidth",
     "peer.parents.quota.up", "a volume per calendar period"),
    ("[bandwidth]\npeer.parents.quota.both = 1GB/day\n", "bandwidth",
     "peer.parents.quota.both", "peer.<selector>.quota.up"),
])
def test_config_errors_name_the_key(lines: str, section: str, key: str, words: str) -> None:
    """A bad quota is a ConfigError naming the section, the key and what was expected."""
    with pytest.raises(ConfigError) as e:
        parse_policy_text(JOB + lines, UTC)
    [problem] = e.value.problems
    assert (problem.section, problem.key) == (section, key)
    assert words in problem.expected
    assert f"[{section}] {key}" in str(e.value)


def test_maintenance_tasks_have_no_quota_of_their_own() -> None:
    """A task's quota key is refused (node and peer quotas count its bytes)."""
    with pytest.raises(ConfigError) as e:
        parse_policy_text(JOB + "[maintenance]\nm1.target = backup:x\nm1.frequency = 1week\n"
                          "m1.quota = 1GB/month\n", UTC)
    assert [p.key for p in e.value.problems] == ["m1.quota"]
