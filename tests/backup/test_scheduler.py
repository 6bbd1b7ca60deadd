"""The backup scheduler on an injected clock: windows, suspension, pause, retries, restarts.

The walker is a test double whose run ends when the test says so; the
policy, its engine, the job lifecycle, the job throttle and the state
database are the real ones.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from tahoe_governor.backup.job_runner import IDLE_ABORT_SECONDS, RETRY_FIRST_SECONDS
from tahoe_governor.backup.progress import ProgressCounters
from tahoe_governor.backup.scheduler import BackupScheduler
from tahoe_governor.backup.walker import BackupFailed, BackupResult
from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.policy.state_db import StateDatabase
from tahoe_governor.status import ControlError

UTC = ZoneInfo("UTC")
HOUR = 3600.0
DAY = 24 * HOUR
# 2026-11-26 00:00 UTC, a Thursday
MIDNIGHT = 1795651200.0

CONFIG = """
[backups]
b1.source = /srv/photos
b1.target = backup:photos
b1.frequency = 1day
b1.allowed_times = 2200-2400,0000-0800
b1.bandwidth = 200kbps
"""


class FakeWalker:
    """A run that ends when the test calls finish() or fail()."""

    def __init__(self, job, throttle, clock):
        self.job, self.throttle, self.clock = job, throttle, clock
        self.done: Deferred[BackupResult] = Deferred()
        self.cancelled = False
        self.counters = ProgressCounters(clock.seconds())

    def run(self):
        return self.done

    def progress(self):
        return self.counters.snapshot(self.clock.seconds(), self.throttle.suspended)

    def cancel(self):
        self.cancelled = True
        from tahoe_governor.backup.walker import BackupCancelled

        self.done.errback(BackupCancelled("cancelled"))

    def finish(self):
        self.done.callback(
            BackupResult(
                archive_name="2026-11-26_01:00:00Z",
                progress=self.progress(),
                private_snapshot_cap=b"URI:DIR2-CHK:xyz",
            )
        )

    def fail(self, reason="not enough servers"):
        self.done.errback(BackupFailed(reason, Failure(RuntimeError(reason))))


class Harness:
    def __init__(self, tmp_path, start=MIDNIGHT + 1 * HOUR, config=CONFIG):
        self.clock = Clock()
        self.clock.advance(start)
        self.db = StateDatabase(str(tmp_path / "governor.sqlite"))
        self.policy = parse_policy_text(config, UTC)
        self.walkers: list[FakeWalker] = []
        self.live = LivePolicy.from_database(self.clock, self.policy, self.db)
        self.scheduler = BackupScheduler(self.clock, self.live, self.db, self.make_walker)
        self.live.startService()
        self.scheduler.startService()
        self.clock.advance(0)

    def make_walker(self, job, throttle):
        walker = FakeWalker(job, throttle, self.clock)
        self.walkers.append(walker)
        return walker

    @property
    def state(self):
        return self.scheduler.runners["b1"].lifecycle.state

    def outcomes(self):
        return [run.outcome for run in self.db.runs("b1")][::-1]

    def advance_to(self, t):
        while self.clock.seconds() < t:
            self.clock.advance(min(60.0, t - self.clock.seconds()))


@pytest.fixture
def harness(tmp_path):
    return Harness(tmp_path)


def test_never_run_job_starts_at_once_inside_its_window(harness):
    """A job that never completed is due; at 01:00 it is inside 0000-0800, so it runs."""
    assert harness.state == "running"
    assert len(harness.walkers) == 1
    assert harness.scheduler.runners["b1"].throttle.wire_rate == 25_000
    assert harness.outcomes() == ["running"]


def test_completed_run_is_recorded_and_not_due_until_frequency(harness):
    """After completion the job is done until a day has passed since the run ended."""
    harness.clock.advance(600)
    harness.walkers[0].finish()
    harness.clock.advance(0)
    assert harness.state == "done"
    assert harness.outcomes() == ["completed"]
    ended = MIDNIGHT + HOUR + 600
    assert harness.db.last_completed()["b1"] == ended
    status = harness.scheduler.job_statuses()[0]
    assert status.last_success == ended
    # due again one day later, at 01:10 the next night: inside the window
    harness.advance_to(ended + DAY - 60)
    assert harness.state == "done"
    harness.advance_to(ended + DAY + 60)
    assert harness.state == "running"
    assert len(harness.walkers) == 2


def test_window_end_suspends_and_next_window_resumes_the_same_run(harness):
    """At 08:00 the run is held within a second; at 22:00 the same run moves again."""
    throttle = harness.scheduler.runners["b1"].throttle
    harness.advance_to(MIDNIGHT + 8 * HOUR)
    assert harness.state == "suspended"
    assert throttle.suspended
    status = harness.scheduler.job_statuses()[0]
    assert status.next_start == MIDNIGHT + 22 * HOUR
    harness.advance_to(MIDNIGHT + 22 * HOUR)
    assert harness.state == "running"
    assert not throttle.suspended
    assert len(harness.walkers) == 1  # the same run, not a new one
    harness.walkers[0].finish()
    harness.clock.advance(0)
    assert harness.outcomes() == ["completed"]


def test_long_suspension_aborts_uploads_in_flight(harness):
    """A 14-hour suspension outlasts the servers' 30-minute idle limit: abort in-flight files."""
    runner = harness.scheduler.runners["b1"]
    aborted = []
    runner.throttle.abort_in_flight = lambda: aborted.append(harness.clock.seconds()) or 1
    harness.advance_to(MIDNIGHT + 8 * HOUR)
    assert aborted == [MIDNIGHT + 8 * HOUR]


def test_short_suspension_keeps_uploads_in_flight(tmp_path):
    """A gap of 10 minutes between windows keeps in-flight uploads."""
    config = CONFIG.replace("2200-2400,0000-0800", "0000-0800,0810-2400")
    h = Harness(tmp_path, config=config)
    aborted = []
    h.scheduler.runners["b1"].throttle.abort_in_flight = lambda: aborted.append(1) or 1
    h.advance_to(MIDNIGHT + 8 * HOUR + 60)
    assert h.state == "suspended"
    h.advance_to(MIDNIGHT + 8 * HOUR + 11 * 60)
    assert h.state == "running"
    assert aborted == []


def test_pause_holds_in_any_window_and_persists(harness, tmp_path):
    """Pause holds the run inside its window, survives a restart, and resume lets it go."""
    harness.scheduler.pause("b1")
    assert harness.state == "paused"
    assert harness.scheduler.runners["b1"].throttle.suspended
    harness.clock.advance(10)
    assert harness.state == "paused"
    assert "b1" in harness.db.overrides().paused
    harness.scheduler.resume("b1")
    assert harness.state == "running"
    assert not harness.scheduler.runners["b1"].throttle.suspended


def test_paused_too_long_aborts_in_flight(harness):
    """A pause that lasts past the idle limit aborts the uploads in flight."""
    aborted = []
    harness.scheduler.runners["b1"].throttle.abort_in_flight = lambda: aborted.append(1) or 1
    harness.scheduler.pause("b1")
    harness.clock.advance(IDLE_ABORT_SECONDS - 1)
    assert aborted == []
    harness.clock.advance(1)
    assert aborted == [1]


def test_failure_retries_with_backoff_then_succeeds(harness):
    """A grid error fails the run; it is retried after 1 min, then 2 min; success resets."""
    harness.walkers[0].fail()
    harness.clock.advance(0)
    assert harness.state == "failed"
    status = harness.scheduler.job_statuses()[0]
    assert status.last_failure == "an operation on the grid failed (RuntimeError)"
    assert status.last_failure_detail == "not enough servers"
    assert status.retry_at == harness.clock.seconds() + RETRY_FIRST_SECONDS
    harness.clock.advance(RETRY_FIRST_SECONDS)
    assert harness.state == "running"
    harness.walkers[1].fail()
    harness.clock.advance(0)
    harness.clock.advance(RETRY_FIRST_SECONDS)
    assert harness.state == "failed"
    harness.clock.advance(RETRY_FIRST_SECONDS)
    assert harness.state == "running"
    harness.walkers[2].finish()
    harness.clock.advance(0)
    assert harness.outcomes() == ["failed", "failed", "completed"]


def test_stop_interrupts_and_restart_resumes(harness, tmp_path):
    """Stopping the service records the run as interrupted; a new scheduler starts it again."""
    d = harness.scheduler.stopService()
    harness.clock.advance(0)
    assert harness.walkers[0].cancelled
    assert d.called
    assert harness.outcomes() == ["interrupted"]
    again = Harness.__new__(Harness)
    again.clock, again.db, again.policy, again.walkers = (
        harness.clock, harness.db, harness.policy, [])
    again.live = LivePolicy.from_database(again.clock, again.policy, again.db)
    again.scheduler = BackupScheduler(again.clock, again.live, again.db, again.make_walker)
    again.live.startService()
    again.scheduler.startService()
    assert again.state == "running"
    assert again.outcomes() == ["interrupted", "running"]
    assert again.db.integrity_problems() == []


def test_run_now_and_forced_run_outside_the_window(tmp_path):
    """Run-now waits for the window; forced, it runs at once and ignores the window end."""
    h = Harness(tmp_path, start=MIDNIGHT + 12 * HOUR)  # noon: outside
    assert h.state == "waiting"
    h.scheduler.run_now("b1")
    assert h.state == "waiting"
    h.scheduler.run_now("b1", force=True)
    assert h.state == "running"
    h.walkers[0].finish()
    h.clock.advance(0)
    assert h.state == "done"


def test_controls_reject_unknown_jobs(harness):
    """An unknown job name is a ControlError naming the known jobs."""
    with pytest.raises(ControlError, match="unknown job 'nope': expected one of b1"):
        harness.scheduler.pause("nope")
    harness.scheduler.pause("b1")
    with pytest.raises(ControlError, match="paused"):
        harness.scheduler.run_now("b1")


def test_due_job_shows_waiting_before_the_scheduler_starts(tmp_path):
    """Until the jobs start (the node is still meeting its grid) a due job is
    shown waiting, not done."""
    clock = Clock()
    clock.advance(MIDNIGHT + HOUR)
    db = StateDatabase(str(tmp_path / "governor.sqlite"))
    live = LivePolicy.from_database(clock, parse_policy_text(CONFIG, UTC), db)
    scheduler = BackupScheduler(clock, live, db, lambda job, throttle: None)
    assert scheduler.job_statuses()[0].state == "waiting"


def test_change_listeners_hear_of_every_change_of_a_jobs_state(harness):
    """A run failing, and its retry starting, each tell the change listeners at the
    instant they happen (the node's shared status snapshot is renewed by them)."""
    heard = []
    harness.scheduler.add_change_listener(lambda: heard.append(harness.state))
    harness.walkers[0].fail()
    harness.clock.advance(0)
    assert heard[-1] == "failed"
    harness.clock.advance(RETRY_FIRST_SECONDS)
    assert heard[-1] == "running"
