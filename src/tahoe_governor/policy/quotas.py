"""Per-period data quotas (ISP volume caps): their values, calendar periods and states.

A quota is a number of wire bytes allowed per calendar period: ``quota.up =
200GB/month`` (node-wide), ``peer.<selector>.quota.up = 20GB/week`` (the peers
the selector names, together), ``<job>.quota = 50GB/month`` (the share data a
backup job sends). Periods are calendar periods of the node's local zone:

- ``day``: from local midnight to the next local midnight;
- ``week``: from Monday 00:00 local to the next Monday 00:00 (ISO weeks);
- ``month``: from 00:00 local on the 1st to 00:00 on the next 1st.

A period therefore lasts 23 or 25 hours over a daylight-saving change (a
month 743 or 745), and a local midnight that a transition skips (a zone that
moves its clocks at 00:00) starts the period at the transition, the first
instant of that local day. Usage counts from the period's start; at its end
it is 0 again. A quota is *exhausted* while the usage of the current period
is at or above the quota; it stays so until the period's end (``resets_at``).

Everything here is pure: instants are POSIX seconds given by the caller.
"""

from __future__ import annotations

import difflib
import math
import re
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import attrs

from tahoe_governor.policy.errors import ValueSyntaxError

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")

Scope = Literal["node", "peer", "job"]
SCOPES: tuple[Scope, ...] = ("node", "peer", "job")

VOLUME_UNITS: dict[str, int] = {
    "B": 1,
    "kB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
"""Bytes of one of each volume unit: SI (as ISPs count) and binary."""

QUOTA_EXPECTED = (
    "a volume per calendar period: a number with a unit ("
    + " ".join(VOLUME_UNITS)
    + "), '/', and day, week or month, e.g. 200GB/month or 20GB/week"
)
_QUOTA = re.compile(r"([0-9]+(?:\.[0-9]+)?)[ \t]*([A-Za-z]+)[ \t]*/[ \t]*([A-Za-z]+)")


@attrs.frozen
class Quota:
    """``bytes`` wire bytes per calendar ``period``; ``text`` is the value as written."""

    bytes: int
    period: Period
    text: str = ""

    def __str__(self) -> str:
        return self.text or f"{self.bytes}B/{self.period}"


def parse_quota(text: str) -> Quota:
    """``"50GB/month"`` -> ``Quota(50_000_000_000, "month")``; at least one byte."""
    stripped = text.strip()
    match = _QUOTA.fullmatch(stripped)
    if match is None:
        raise ValueSyntaxError(QUOTA_EXPECTED)
    number, unit, period = match.groups()
    if unit not in VOLUME_UNITS:
        near = [u for u in VOLUME_UNITS if u.lower() == unit.lower()] or difflib.get_close_matches(
            unit, list(VOLUME_UNITS), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueSyntaxError(QUOTA_EXPECTED + hint)
    if period not in PERIODS:
        plural = period.rstrip("s") if period.rstrip("s") in PERIODS else None
        hint = f" (did you mean {plural!r}?)" if plural else ""
        raise ValueSyntaxError(QUOTA_EXPECTED + hint)
    volume = float(number) * VOLUME_UNITS[unit]
    if not math.isfinite(volume) or volume < 1:
        raise ValueSyntaxError(QUOTA_EXPECTED + " (at least one byte)")
    return Quota(int(volume), period, stripped)


def _local_midnight(day: date, tz: ZoneInfo) -> float:
    """The first instant of local ``day``: its 00:00, or, when a transition skips
    00:00, the transition (``fold=0`` reads a skipped wall time with the offset
    before the gap, which lands on the instant the gap ends)."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def _first_day(period: Period, day: date) -> date:
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_first_day(period: Period, first: date) -> date:
    if period == "day":
        return first + timedelta(days=1)
    if period == "week":
        return first + timedelta(days=7)
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def period_bounds(period: Period, now: float, tz: ZoneInfo) -> tuple[float, float]:
    """``(start, end)`` of the calendar ``period`` that holds ``now``: start <= now < end."""
    day = datetime.fromtimestamp(now, tz).date()
    first = _first_day(period, day)
    return _local_midnight(first, tz), _local_midnight(_next_first_day(period, first), tz)


@attrs.frozen(order=True)
class QuotaKey:
    """What a quota counts: ``scope`` node, peer (``name`` = the selector) or job
    (``name`` = the job), and the ``direction`` (a job's quota counts ``up``)."""

    scope: Scope
    name: str
    direction: Literal["up", "down"]

    @property
    def directive(self) -> str:
        """The tahoe.cfg key that sets this quota."""
        if self.scope == "node":
            return f"quota.{self.direction}"
        if self.scope == "peer":
            return f"peer.{self.name}.quota.{self.direction}"
        return f"{self.name}.quota"

    def __str__(self) -> str:
        return self.directive


@attrs.frozen
class QuotaUsage:
    """Wire bytes counted in the period that started at ``period_start``."""

    used_bytes: int
    period_start: float


@attrs.frozen
class QuotaState:
    """A quota at one instant: what is used of it and when it resets."""

    key: QuotaKey
    quota: Quota
    used_bytes: int
    """Wire bytes counted in the current period (0 when the stored count is of an
    earlier period)."""
    period_start: float
    resets_at: float
    """The end of the current period: usage is 0 again from then on."""

    @property
    def exhausted(self) -> bool:
        return self.used_bytes >= self.quota.bytes

    @property
    def reason(self) -> str:
        """Why a job is held, in words fit for the public page (names and counts only)."""
        return (f"{self.key.directive} = {self.quota} used up "
                f"({self.used_bytes} of {self.quota.bytes} bytes)")


def quota_state(
    key: QuotaKey, quota: Quota, usage: QuotaUsage | None, now: float, tz: ZoneInfo
) -> QuotaState:
    """``quota`` at ``now`` given the stored ``usage`` (``None``: nothing counted)."""
    start, end = period_bounds(quota.period, now, tz)
    used = usage.used_bytes if usage is not None and usage.period_start == start else 0
    return QuotaState(key, quota, used, start, end)


def counted(usage: QuotaUsage | None, added: int, period: Period, now: float,
            tz: ZoneInfo) -> QuotaUsage:
    """``usage`` with ``added`` bytes counted at ``now``: a new period starts from 0."""
    start, _ = period_bounds(period, now, tz)
    before = usage.used_bytes if usage is not None and usage.period_start == start else 0
    return QuotaUsage(before + max(added, 0), start)
