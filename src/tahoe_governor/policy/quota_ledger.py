"""The usage of every quota, counted from the running totals of the node's byte counters.

The node's counters (the shaper's bytes per peer and node-wide, a job's
granted wire bytes) only grow while the process lives. :class:`QuotaLedger`
turns each counter's running total into what it added since the last look
and counts that in the quota's current period (:func:`~tahoe_governor.policy.quotas.counted`):
a period that has ended starts again from 0. A counter seen for the first time
counts from 0 (its bytes were all moved by this process), unless it is started
at its current total (:meth:`QuotaLedger.start_at`: a quota added while the node
runs counts from then on); a total below the last one is a new counter (a job's
throttle made again) and counts from 0 too.

It remembers which usages changed since they were last saved, so the node
writes only those to the state database. Pure: instants come from the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo

from tahoe_governor.policy.quotas import Quota, QuotaKey, QuotaUsage, counted


class QuotaLedger:
    """The usage of the quotas, starting from ``stored`` (as the state database kept it)."""

    def __init__(self, tz: ZoneInfo, stored: Mapping[QuotaKey, QuotaUsage] | None = None) -> None:
        self._tz = tz
        self._usage: dict[QuotaKey, QuotaUsage] = dict(stored or {})
        self._totals: dict[tuple[QuotaKey, str], int] = {}
        self._unsaved: set[QuotaKey] = set()

    def observe(self, key: QuotaKey, quota: Quota, counter: str, total: int, now: float) -> None:
        """``counter`` (a name unique within ``key``) has moved ``total`` bytes so far."""
        last = self._totals.get((key, counter), 0)
        added = total - last if total >= last else total
        self._totals[(key, counter)] = total
        before = self._usage.get(key)
        after = counted(before, added, quota.period, now, self._tz)
        if after != before:
            self._usage[key] = after
            self._unsaved.add(key)

    def start_at(self, key: QuotaKey, counter: str, total: int) -> None:
        """Count ``counter`` for ``key`` from its running ``total`` on, not from 0."""
        self._totals[(key, counter)] = total

    def usage(self) -> dict[QuotaKey, QuotaUsage]:
        """Every quota's usage now (a copy), as last counted."""
        return dict(self._usage)

    def unsaved(self) -> dict[QuotaKey, QuotaUsage]:
        """The usages that changed since :meth:`saved` was last told about them."""
        return {key: self._usage[key] for key in self._unsaved}

    def saved(self, usage: Mapping[QuotaKey, QuotaUsage]) -> None:
        """``usage`` (from :meth:`unsaved`) is in the state database now."""
        for key, count in usage.items():
            if self._usage.get(key) == count:
                self._unsaved.discard(key)
