"""Quotas counted and enforced on an injected clock: a job reaching its quota is held with
the reason and resumes when the period rolls over; the usage survives a restart.

The scheduler, the live policy, the engine, the job throttle, the quota ledger and the
state database are the real ones; the walker ends when the test says so, and the shaper
is a double whose byte totals the test moves (the real one counts the same way: running
totals per peer and node-wide).
"""

from __future__ import annotations

from types import SimpleNamespace
from zoneinfo import ZoneInfo

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from tahoe_governor.backup.scheduler import BackupScheduler
from tahoe_governor.node.quota_counting import QUOTA_SAVE_SECONDS, QuotaCounting
from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.policy.measurements import Measurements
from tahoe_governor.policy.peers import KnownPeer
from tahoe_governor.policy.quota_ledger import QuotaLedger
from tahoe_governor.policy.quotas import QuotaKey, QuotaUsage
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.policy.state_db import StateDatabase
from tests.backup.test_scheduler import FakeWalker

UTC = ZoneInfo("UTC")
HOUR = 3600.0
MIDNIGHT = 1795651200.0  # 2026-11-26 00:00 UTC, a Thursday
PARENTS = "a" * 32

CONFIG = f"""
[backups]
b1.source = /srv/photos
b1.target = backup:photos
b1.frequency = 1day
b1.quota = 1MB/day
[bandwidth]
quota.up = 50MB/month
peer.{PARENTS}.quota.up = 3MB/week
"""
JOB_QUOTA = QuotaKey("job", "b1", "up")


class CountingShaper:
    """The counters QuotaCounting reads of a shaper, moved by the test."""

    def __init__(self) -> None:
        self.sent = {PARENTS: 0}
        self.received = 0

    def node_stats(self) -> SimpleNamespace:
        return SimpleNamespace(sent_bytes=sum(self.sent.values()), received_bytes=self.received)

    def peers(self) -> list[str]:
        return list(self.sent)

    def peer_stats(self, tubid: str) -> SimpleNamespace:
        return SimpleNamespace(sent_bytes=self.sent[tubid], received_bytes=0)


class Node:
    """The parts of a governed node that count and enforce quotas, on ``clock``."""

    def __init__(self, tmp_path, clock: Clock) -> None:
        self.clock = clock
        self.db = StateDatabase(str(tmp_path / "governor.sqlite"))
        self.live = LivePolicy.from_database(clock, parse_policy_text(CONFIG, UTC), self.db)
        self.live.set_known_peers([KnownPeer(PARENTS)])
        self.walkers: list[FakeWalker] = []
        self.scheduler = BackupScheduler(clock, self.live, self.db, self.make_walker)
        self.shaper = CountingShaper()
        self.counting = QuotaCounting(clock, self.shaper, self.live, self.scheduler, self.db,
                                      QuotaLedger(UTC, self.db.quota_usage()))
        self.live.startService()
        self.scheduler.startService()
        self.counting.start()
        clock.advance(0)

    def make_walker(self, job, throttle):
        walker = FakeWalker(job, throttle, self.clock)
        self.walkers.append(walker)
        return walker

    def upload(self, wire_bytes: int) -> None:
        """The job's run sends ``wire_bytes``: its throttle grants them, the shaper passes them."""
        throttle = self.scheduler.runners["b1"].throttle
        ensureDeferred(throttle.admit(throttle.lease(abortable=True), wire_bytes))
        self.shaper.sent[PARENTS] += wire_bytes

    def tick(self) -> None:
        """One meter tick: count, and hand the usage to the policy (as the governor does)."""
        self.live.update_measurements(
            Measurements(quota_usage=self.counting.tick(self.clock.seconds())))

    @property
    def b1(self):
        return self.scheduler.job_statuses()[0]

    def stop(self) -> None:
        self.scheduler.stopService()
        self.counting.stop()
        self.live.stopService()
        self.db.close()


def test_a_job_reaching_its_quota_is_held_with_the_reason_and_resumes_at_midnight(tmp_path):
    """1MB/day: after 1.2 MB the running job is suspended, its throttle holds every byte,
    the status says why and when it resets; at the next local midnight the same run goes on."""
    clock = Clock()
    clock.advance(MIDNIGHT + 20 * HOUR)
    node = Node(tmp_path, clock)
    assert node.b1.state == "running"
    node.upload(600_000)
    node.tick()
    assert node.b1.state == "running" and node.b1.held_by is None
    node.upload(600_000)
    node.tick()
    status = node.b1
    assert status.state == "suspended"
    assert status.held_by == "b1.quota = 1MB/day used up (1200000 of 1000000 bytes)"
    assert status.held_until == status.next_start == MIDNIGHT + 24 * HOUR
    assert node.scheduler.runners["b1"].throttle.suspended
    # Held, it sends nothing more; at midnight the policy's timer lets it go on.
    clock.advance(MIDNIGHT + 24 * HOUR - clock.seconds() - 1)
    assert node.b1.state == "suspended"
    clock.advance(1)
    assert node.b1.state == "running"
    assert node.b1.held_by is None
    assert not node.scheduler.runners["b1"].throttle.suspended
    assert len(node.walkers) == 1  # the same run
    node.tick()
    assert node.live.current.quotas[-1].used_bytes == 0  # a new day counts from 0
    node.stop()


def test_node_and_peer_usage_are_counted_and_a_peer_quota_holds_the_job(tmp_path):
    """The shaper's totals count towards quota.up and the peer's quota; 3MB/week to the
    parents used up makes their upload limit 0 and holds the job until Monday."""
    clock = Clock()
    clock.advance(MIDNIGHT + HOUR)
    node = Node(tmp_path, clock)
    node.shaper.sent[PARENTS] += 3_000_000  # e.g. a maintenance repair, not the job
    node.tick()
    usage = {str(q.key): q.used_bytes for q in node.live.current.quotas}
    assert usage == {"quota.up": 3_000_000, f"peer.{PARENTS}.quota.up": 3_000_000,
                     "b1.quota": 0}
    assert node.live.current.peer_rates_by_tubid()[PARENTS][0] == 0
    monday = MIDNIGHT + 4 * 24 * HOUR
    assert node.b1.state == "suspended"
    assert node.b1.held_until == monday
    assert node.b1.held_by.startswith(f"peer.{PARENTS}.quota.up = 3MB/week used up")
    node.stop()


def test_usage_survives_a_restart_and_a_crash_loses_at_most_the_save_interval(tmp_path):
    """Saved every QUOTA_SAVE_SECONDS: after a restart the job is held from the start by
    the usage counted before; bytes counted after the last save are all a crash loses."""
    clock = Clock()
    clock.advance(MIDNIGHT + HOUR)
    node = Node(tmp_path, clock)
    node.upload(990_000)
    node.tick()
    clock.advance(QUOTA_SAVE_SECONDS)  # the periodic save
    node.upload(20_000)
    node.tick()  # counted, not saved yet: what a crash now would lose
    assert node.b1.state == "suspended"
    with StateDatabase(str(tmp_path / "governor.sqlite"), read_only=True) as other:
        assert other.quota_usage()[JOB_QUOTA] == QuotaUsage(990_000, MIDNIGHT)
    node.stop()  # a clean stop saves the rest
    restarted = Node(tmp_path, clock)
    assert restarted.db.quota_usage()[JOB_QUOTA] == QuotaUsage(1_010_000, MIDNIGHT)
    assert restarted.b1.state == "waiting"
    assert restarted.b1.held_by is not None and "b1.quota" in restarted.b1.held_by
    assert restarted.walkers == []  # never started: held before its first byte
    restarted.stop()


def test_a_quota_added_by_reload_counts_from_then_on(tmp_path):
    """Bytes moved before a quota existed are not its: after a reload adds quota.down, only
    what arrives afterwards counts, while the quotas there from the start count from 0."""
    clock = Clock()
    clock.advance(MIDNIGHT + HOUR)
    node = Node(tmp_path, clock)
    node.shaper.received = 7_000_000
    node.shaper.sent[PARENTS] += 1_000
    node.tick()
    node.live.set_policy(parse_policy_text(CONFIG + "quota.down = 1GB/month\n", UTC))
    node.tick()
    node.shaper.received += 2_000
    node.tick()
    usage = {str(q.key): q.used_bytes for q in node.live.current.quotas}
    assert usage["quota.down"] == 2_000
    assert usage["quota.up"] == 1_000
    node.stop()


def test_a_peer_quota_added_by_reload_counts_a_late_named_peer_from_the_reload(tmp_path):
    """A peer quota whose selector names its server only after the reload (a nickname the
    node learns later) counts that server's bytes from the reload, not since start-up."""
    clock = Clock()
    clock.advance(MIDNIGHT + HOUR)
    node = Node(tmp_path, clock)
    friends = "b" * 32
    node.shaper.sent[friends] = 5_000_000  # before the quota existed
    node.tick()
    node.live.set_policy(parse_policy_text(CONFIG + "peer.friends.quota.up = 1GB/month\n", UTC))
    node.tick()  # "friends" names no server yet
    node.shaper.sent[friends] += 3_000
    node.live.set_known_peers([KnownPeer(PARENTS), KnownPeer(friends, nickname="friends")])
    node.tick()
    usage = {str(q.key): q.used_bytes for q in node.live.current.quotas}
    assert usage["peer.friends.quota.up"] == 3_000
    node.stop()
