"""Counting the quotas: each meter tick, the node's byte counters into the quota ledger; saving it.

What each quota counts (wire bytes, the counters the caps and meters use):

- ``quota.up`` / ``quota.down``: every byte the shaper passes, node-wide (the
  node's governed Foolscap traffic, maintenance tasks' included);
- ``peer.<selector>.quota.*``: the shaper's bytes to or from each peer the
  selector names now, together;
- ``<job>.quota``: the wire bytes the job's throttle granted (the share data
  its uploads send, the bytes ``<job>.bandwidth`` caps).

A quota added while the node runs (``reload``) counts from then on: the bytes
moved before it existed are not its, even to a peer its selector names only
later. Bytes are counted every meter tick
(:data:`~tahoe_governor.node.governor.TICK_SECONDS`) and saved to the state
database every :data:`QUOTA_SAVE_SECONDS` and when the node stops: a crash
loses at most the last :data:`QUOTA_SAVE_SECONDS` of counting.
"""

from __future__ import annotations

import sqlite3

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from tahoe_governor.backup.scheduler import BackupScheduler
from tahoe_governor.policy.quota_ledger import QuotaLedger
from tahoe_governor.policy.quotas import QuotaKey, QuotaUsage
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.policy.state_db import StateDatabase
from tahoe_governor.throttle import ConnectionShaper
from tahoe_governor.throttle.reactor_clock import ReactorClock

QUOTA_SAVE_SECONDS = 5.0
"""How often the quotas' usage is written to the state database (one small transaction)."""

log = Logger()


class QuotaCounting:
    """Feeds ``ledger`` from the shaper and the jobs' throttles and saves it (see the module)."""

    def __init__(
        self,
        reactor: ReactorClock,
        shaper: ConnectionShaper,
        live: LivePolicy,
        scheduler: BackupScheduler,
        database: StateDatabase,
        ledger: QuotaLedger,
    ) -> None:
        self._reactor = reactor
        self._shaper = shaper
        self._live = live
        self._scheduler = scheduler
        self._database = database
        self.ledger = ledger
        self._save_loop = LoopingCall(self.save)
        self._save_loop.clock = reactor
        self._counted: set[QuotaKey] | None = None
        """The quotas counted so far; ``None`` before the first tick."""

    def tick(self, now: float) -> dict[QuotaKey, QuotaUsage]:
        """Count what every counter added since the last tick; every quota's usage now."""
        quotas = self._live.policy.quotas()
        counted = {key for key, _ in quotas}
        for key, quota in quotas:
            if self._counted is not None and key not in self._counted:
                # Added now: every counter it may count starts here, a peer its
                # selector names only later (an unresolved nickname) too.
                for counter, total in self._totals(key, every_peer=True):
                    self.ledger.start_at(key, counter, total)
                continue
            for counter, total in self._totals(key):
                self.ledger.observe(key, quota, counter, total, now)
        self._counted = counted
        return self.ledger.usage()

    def _totals(self, key: QuotaKey, every_peer: bool = False) -> list[tuple[str, int]]:
        """The running totals of the counters ``key`` counts, each with its name; for a
        peer quota and ``every_peer``, those of every peer, named by it or not."""
        if key.scope == "node":
            node = self._shaper.node_stats()
            return [("node", node.sent_bytes if key.direction == "up" else node.received_bytes)]
        if key.scope == "peer":
            shaped = set(self._shaper.peers())
            named = shaped if every_peer else next(
                (peer.tubids for peer in self._live.current.peers
                 if peer.selector.text == key.name), ())
            return [(tubid, stats.sent_bytes if key.direction == "up" else stats.received_bytes)
                    for tubid in named if tubid in shaped
                    for stats in (self._shaper.peer_stats(tubid),)]
        runner = self._scheduler.runners.get(key.name)
        if runner is None:
            return []
        # A throttle made again (the job removed and added back) is another counter.
        return [(f"throttle {id(runner.throttle)}", runner.throttle.granted_wire_bytes)]

    def start(self) -> None:
        self._save_loop.start(QUOTA_SAVE_SECONDS, now=False)

    def stop(self) -> None:
        """Stop the periodic saving, and save what is not saved yet."""
        if self._save_loop.running:
            self._save_loop.stop()
        self.save()

    def save(self) -> None:
        """Write the usages that changed since the last save."""
        # Run by a LoopingCall (which an exception would stop for good) and at shutdown:
        # a refused write is only logged; what it held is written by the next one.
        unsaved = self.ledger.unsaved()
        if not unsaved:
            return
        try:
            self._database.put_quota_usage(unsaved, self._reactor.seconds())
        except sqlite3.Error as e:
            log.warn("could not save the quotas' usage in the state database ({error}); "
                     "tried again in {delay:.0f} s", error=e, delay=QUOTA_SAVE_SECONDS)
            return
        self.ledger.saved(unsaved)
