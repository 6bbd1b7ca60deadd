"""Two simulated days of a governed node: every window to the second, no drift, no leak.

The real Governor (policy, scheduler, shaper, meters, budgets, peer watching)
on an injected clock, with a fake client and walkers whose runs take a set
time of unsuspended work. Two jobs with nightly windows, a time-of-day node
schedule and a live peer override run for 48 hours; at every minute, and one
second either side of every window edge, the jobs' states and the shaper's
limits are checked against what tahoe.cfg says for that instant.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from tahoe_governor.app import build_governor
from tahoe_governor.backup.progress import ProgressCounters
from tahoe_governor.backup.walker import BackupCancelled, BackupResult
from tahoe_governor.node.backup_walkers import BackupWalkers
from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.policy.state_db import StateDatabase
from tahoe_governor.throttle.testing import FakeCounters
from tests.node.test_governor import NOON, PARENTS, UTC, FakeClient, FakeServer

HOUR = 3600.0
THURSDAY_NOON = NOON  # 2026-11-26 12:00 UTC

CONFIG = """
[backups]
b1.source = /srv/photos
b1.target = backup:photos
b1.frequency = 1day
b1.allowed_times = 2200-0600
b2.source = /srv/mail
b2.target = backup:mail
b2.frequency = 1day
b2.allowed_times = 0100-0300

[bandwidth]
limit.up = 1MB/s
schedule.up = * 2200-0600 unlimited
peer.parents.up = 200kbps
"""

WORK_SECONDS = {"b1": 3 * HOUR, "b2": 3 * HOUR}
"""Unsuspended time each job's run takes: b2's 3 h need two of its 2 h windows."""

EDGES_HOURS = (22, 6, 1, 3)
"""Every window edge of the day (UTC hours), where the checks go to the second."""


class TimedWalker:
    """A run that needs ``work`` seconds while its job's throttle is not suspended."""

    def __init__(self, throttle: Any, clock: Clock, work: float) -> None:
        self.throttle, self.clock, self.left = throttle, clock, work
        self.done: Deferred[BackupResult] = Deferred()
        self.counters = ProgressCounters(clock.seconds())
        self.timer: Any = None
        self.last = clock.seconds()

    def run(self) -> Deferred[BackupResult]:
        self._step()
        return self.done

    def _step(self) -> None:
        # The clock jumps a minute at a time: count what passed since the last step.
        now = self.clock.seconds()
        if not self.throttle.suspended:
            self.left -= now - self.last
        self.last = now
        if self.left <= 0:
            self.done.callback(BackupResult(
                archive_name="2026-11-27_00:00:00Z",
                progress=self.counters.snapshot(self.clock.seconds(), False),
                private_snapshot_cap=b"URI:DIR2-CHK:abc"))
            return
        self.timer = self.clock.callLater(1.0, self._step)

    def progress(self) -> Any:
        return self.counters.snapshot(self.clock.seconds(), self.throttle.suspended)

    def cancel(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        if not self.done.called:
            self.done.errback(BackupCancelled("cancelled"))


class TimedWalkers(BackupWalkers):
    """The node's walker factory, its runs replaced by :class:`TimedWalker`."""

    def __call__(self, job: Any, throttle: Any) -> Any:  # type: ignore[override]
        return TimedWalker(throttle, self._reactor, WORK_SECONDS[job.name])  # type: ignore[arg-type]


def open_descriptors() -> int:
    """Descriptors open now, after collecting garbage: earlier tests' unreferenced sockets
    must not close mid-test and hide (or fake) a leak of this one."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def checkpoints(start: float, end: float) -> list[float]:
    """Every minute, and one second either side of every window edge, in order."""
    instants = {start + 60.0 * i for i in range(int((end - start) // 60) + 1)}
    day = start - start % (24 * HOUR)
    while day < end:
        for hour in EDGES_HOURS:
            edge = day + hour * HOUR
            instants.update({edge - 1.0, edge, edge + 1.0})
        day += 24 * HOUR
    return sorted(t for t in instants if start <= t <= end)


def test_two_days_honour_every_window_to_the_second_and_leak_nothing(tmp_path: Path) -> None:
    """48 simulated hours: a job runs only inside its window and is never left suspended
    inside one while due; the node cap follows its schedule and the peer cap its override
    at every instant; both jobs complete as their windows allow; timers and file
    descriptors do not grow."""
    clock = Clock()
    clock.advance(THURSDAY_NOON)
    fds_before = open_descriptors()
    client = FakeClient(clock)
    client.storage_broker.servers = [FakeServer(PARENTS, "parents")]
    database = StateDatabase(str(tmp_path / "governor.sqlite"))
    policy = parse_policy_text(CONFIG, UTC)
    governor = build_governor(
        clock, client, str(tmp_path), policy, database, counters=FakeCounters(),
        walkers=TimedWalkers(clock, client, str(tmp_path)),
    )
    governor.start()
    client.storage_broker.connected_enough.callback(None)
    override_at = THURSDAY_NOON + 30 * HOUR
    timers_after_a_day = None
    violations: list[str] = []
    for instant in checkpoints(THURSDAY_NOON, THURSDAY_NOON + 48 * HOUR):
        clock.advance(instant - clock.seconds())
        if instant >= override_at and governor.live.overrides.limits == {}:
            governor.controls.set_limit("peer", "parents", "up", "400kbps")
        if timers_after_a_day is None and instant >= THURSDAY_NOON + 24 * HOUR:
            timers_after_a_day = len(clock.getDelayedCalls())
        at = f"{instant - THURSDAY_NOON:.0f} s"
        for job in policy.jobs:
            state = governor.scheduler.runners[job.name].lifecycle.state
            inside = job.allowed_times.contains(instant)
            if state == "running" and not inside:
                violations.append(f"{at}: {job.name} running outside its window")
            if state == "suspended" and inside:
                violations.append(f"{at}: {job.name} suspended inside its window")
        night = policy.link("up").schedule is not None and any(
            e.times.contains(instant) for e in policy.link("up").schedule.entries)
        expected_node = None if night else 1_000_000
        if client.shaper.node_limit()[0] != expected_node:
            violations.append(f"{at}: node up {client.shaper.node_limit()[0]}, "
                              f"expected {expected_node}")
        expected_peer = 50_000 if instant >= override_at else 25_000
        if client.shaper.peer_limit(PARENTS)[0] != min(expected_peer, expected_node or 1e18):
            violations.append(f"{at}: peer up {client.shaper.peer_limit(PARENTS)[0]}")
    assert violations == []
    completed = {job: [r.outcome for r in database.runs(job)].count("completed")
                 for job in ("b1", "b2")}
    assert completed == {"b1": 2, "b2": 1}
    assert timers_after_a_day is not None
    assert len(clock.getDelayedCalls()) <= timers_after_a_day
    governor.stop_parts()
    database.close()
    assert [c for c in clock.getDelayedCalls() if c.active()] == []
    assert open_descriptors() <= fds_before
