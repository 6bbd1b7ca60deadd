"""Retention (bN.keep): the rule's grammar, fixed-instant tables with a reason per row,
and a simulated year of daily runs against what restic's forget keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.policy.retention import (
    KEEP_EXPECTED,
    KeepRule,
    archive_instant,
    parse_keep,
    retention_verdicts,
)


def name(text: str) -> str:
    """'2026-11-26 22:00' -> the archive name tahoe backup gives a run linked then (UTC)."""
    return datetime.fromisoformat(text).strftime("%Y-%m-%d_%H:%M:%SZ")


# Fixed instants (UTC): two on one day, the next day, a week later, a month later.
a0 = name("2026-01-05 08:00")  # Monday, ISO week 2
a1 = name("2026-01-05 22:00")  # same day, later
a2 = name("2026-01-06 22:00")  # next day, same week
a3 = name("2026-01-12 22:00")  # a week later (week 3)
a4 = name("2026-02-02 22:00")  # next month (week 6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7 daily, 4 weekly, 12 monthly, 3 yearly",
         KeepRule(daily=7, weekly=4, monthly=12, yearly=3)),
        ("3 last", KeepRule(last=3)),
        (" 24 hourly ,2 Daily", KeepRule(hourly=24, daily=2)),
    ],
)
def test_parse_keep(text, expected) -> None:
    """The rule reads as written: counts per period, any order, case of the period ignored."""
    assert parse_keep(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("7", "no period"),
        ("daily", "no count"),
        ("0 daily", "a count of zero keeps nothing: leave the kind out"),
        ("7 daily, 3 daily", "a period twice"),
        ("7 dayly", "an unknown period"),
        ("7 daily; 4 weekly", "not comma-separated"),
        ("-1 daily", "negative"),
        ("7 daily,", "an empty entry"),
    ],
)
def test_parse_keep_refuses(text, why) -> None:
    """Malformed rules raise the error that names the grammar and gives an example."""
    with pytest.raises(ValueSyntaxError) as caught:
        parse_keep(text)
    assert caught.value.expected == KEEP_EXPECTED, why


@pytest.mark.parametrize(
    ("names", "rule", "latest", "kept", "reasons", "why"),
    [
        ([a0, a1, a2], KeepRule(daily=2), None, {a1, a2},
         {a2: ("daily: the newest of 2026-01-06",), a1: ("daily: the newest of 2026-01-05",),
          a0: ("no kind of 2 daily keeps it",)},
         "one per day, the newest of each day"),
        ([a0, a1, a2], KeepRule(last=2), None, {a1, a2},
         {a2: ("last: one of the 2 newest",)}, "last keeps the N newest"),
        ([a0, a1, a2, a3], KeepRule(weekly=1), None, {a3},
         {a3: ("weekly: the newest of week 2026-W03",)},
         "the count used up, older weeks are forgotten"),
        ([a1, a2, a3], KeepRule(weekly=3), None, {a1, a2, a3},
         {a2: ("weekly: the newest of week 2026-W02",),
          a1: ("weekly: the oldest archive, kept while 1 weekly are not used up",)},
         "count left at the oldest archive: restic keeps it too"),
        ([a0, a2, a3, a4], KeepRule(monthly=1, daily=1), None, {a4},
         {a4: ("daily: the newest of 2026-02-02", "monthly: the newest of 2026-02")},
         "one archive kept by two kinds lists both"),
        ([a0, a3, a4], KeepRule(last=1), a3, {a4, a3},
         {a3: ("the target of Latest: always kept",)}, "Latest's target whatever the rule"),
        ([a0, "old-by-hand", a4], KeepRule(last=1), None, {a4, "old-by-hand"},
         {"old-by-hand": ("not named as a backup's time: never forgotten",)},
         "a name that is not an archive time is never forgotten"),
        ([a1, a0], KeepRule(yearly=1, monthly=1), None, {a1},
         {a0: ("no kind of 1 monthly, 1 yearly keeps it",)}, "periods counted from the newest"),
    ],
)
def test_verdict_table(names, rule, latest, kept, reasons, why) -> None:
    """Each row: archives, a rule, which are kept, and the reasons given for some of them."""
    verdicts = retention_verdicts(names, rule, UTC, latest=latest)
    assert {v.name for v in verdicts if v.keep} == kept, why
    by_name = {v.name: v for v in verdicts}
    for archive, expected in reasons.items():
        assert by_name[archive].reasons == expected, why
    dated = [v.instant for v in verdicts if v.instant is not None]
    assert dated == sorted(dated, reverse=True), "newest first"


def test_periods_follow_the_owners_calendar() -> None:
    """Days are the zone's days: 23:30 and 00:30 UTC are one day in New York, two in UTC."""
    late, early = name("2026-03-10 23:30"), name("2026-03-11 00:30")
    rule = KeepRule(daily=2)
    in_utc = retention_verdicts([late, early], rule, UTC)
    in_new_york = retention_verdicts([late, early], rule, ZoneInfo("America/New_York"))
    assert [v.keep for v in in_utc] == [True, True]
    # New York: one day; the older one is still kept as the oldest with count left.
    assert in_new_york[1].reasons == ("daily: the oldest archive, kept while 1 daily are not "
                                      "used up",)
    three = [late, early, name("2026-03-11 01:30")]
    assert [v.keep for v in retention_verdicts(three, KeepRule(daily=1), UTC)] == \
        [True, False, False]


def test_a_year_of_daily_runs_keeps_what_restic_keeps() -> None:
    """365 daily archives of 2026 under '7 daily, 4 weekly, 12 monthly, 3 yearly' keep, as
    restic's forget does: the last 7 days, the newest of the last 4 ISO weeks, the last day of
    each of the 12 months, the newest of 2026, and the oldest archive (2 yearly left over)."""
    start = datetime(2026, 1, 1, 22, 0, tzinfo=UTC)
    names = [(start + timedelta(days=d)).strftime("%Y-%m-%d_%H:%M:%SZ") for d in range(365)]
    rule = parse_keep("7 daily, 4 weekly, 12 monthly, 3 yearly")
    verdicts = retention_verdicts(names, rule, UTC, latest=names[-1])
    kept = {v.name[:10] for v in verdicts if v.keep}
    daily = {f"2026-12-{d}" for d in range(25, 32)}
    weekly = {"2026-12-31", "2026-12-27", "2026-12-20", "2026-12-13"}  # W53, W52, W51, W50
    monthly = {"2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31",
               "2026-06-30", "2026-07-31", "2026-08-31", "2026-09-30", "2026-10-31",
               "2026-11-30", "2026-12-31"}
    oldest = {"2026-01-01"}
    assert kept == daily | weekly | monthly | oldest
    assert len(kept) == 21
    assert len(verdicts) == 365


def test_archive_instant_reads_tahoe_backup_names() -> None:
    """tahoe backup's names are UTC times; anything else has no instant."""
    assert archive_instant("2026-11-26_22:00:05Z") == \
        datetime(2026, 11, 26, 22, 0, 5, tzinfo=UTC).timestamp()
    assert archive_instant("2026-11-26 22:00:05") is None
    assert archive_instant("photos") is None


def test_pruning_after_every_run_of_a_year_ends_as_restic_on_the_whole_year() -> None:
    """Applied after each of 365 daily runs (what the node does), the rule leaves exactly
    the archives restic keeps when it judges the whole year at once: nothing it forgot on
    the way was needed later, and Latest's archive is never forgotten."""
    start = datetime(2026, 1, 1, 22, 0, tzinfo=UTC)
    rule = parse_keep("7 daily, 4 weekly, 12 monthly, 3 yearly")
    every, remaining = [], []
    for day in range(365):
        newest = (start + timedelta(days=day)).strftime("%Y-%m-%d_%H:%M:%SZ")
        every.append(newest)
        remaining.append(newest)
        verdicts = retention_verdicts(remaining, rule, UTC, latest=newest)
        remaining = [v.name for v in verdicts if v.keep]
        assert newest in remaining
    at_once = {v.name for v in retention_verdicts(every, rule, UTC, latest=every[-1]) if v.keep}
    assert set(remaining) == at_once
    assert len(remaining) == 21
