"""Database faults during a backup job: a full disk, a locked database, a failing backupdb.

The scheduler, the job runner, the lifecycle, the policy and the state
database are the real ones, on a ``task.Clock``; the walker is the suite's
:class:`FakeWalker`. Each test says whether its fault is real (a full tmpfs,
see :mod:`tests.full_disk`) or injected (an ``sqlite3.OperationalError``
raised by a wrapper around the real database). After every fault the job must
fail with its reason, be retried with the usual backoff, and complete with
nothing lost once the database works again.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from twisted.python.failure import Failure

from tahoe_governor.backup.job_runner import RETRY_FIRST_SECONDS, failure_summary
from tahoe_governor.backup.run_errors import describe
from tahoe_governor.backup.walker import BackupFailed
from tahoe_governor.policy.state_db import StateDatabase

from ..full_disk import small_filesystem
from .test_scheduler import DAY, HOUR, MIDNIGHT, Harness

NOON = MIDNIGHT + 12 * HOUR
WINDOW_OPENS = MIDNIGHT + 22 * HOUR  # b1.allowed_times = 2200-2400,0000-0800
DISK_FULL = "the state database could not be written (disk full)"


def job_status(harness: Harness) -> Any:
    return harness.scheduler.job_statuses()[0]


class RefusingDatabase:
    """The real state database, except that the methods named in :attr:`refuse`
    raise ``sqlite3.OperationalError(message)`` (an injected fault)."""

    def __init__(self, db: StateDatabase, message: str = "database is locked") -> None:
        self._db = db
        self.message = message
        self.refuse: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._db, name)
        if name not in self.refuse:
            return method

        def refused(*args: Any, **kw: Any) -> Any:
            raise sqlite3.OperationalError(self.message)

        return refused


def test_full_disk_when_a_run_starts_fails_it_and_the_retry_completes(tmp_path):
    """Real full disk (tmpfs): the start of a run cannot be recorded, so the run
    fails at once with the state database's reason and is retried after
    RETRY_FIRST_SECONDS; with room again the retry runs and completes."""
    with small_filesystem(tmp_path / "private") as disk:
        harness = Harness(disk.path, start=NOON)
        assert harness.state == "waiting"
        disk.fill()
        harness.advance_to(WINDOW_OPENS)
        assert harness.state == "failed"
        assert harness.walkers == [], "no walker runs when its start could not be recorded"
        status = job_status(harness)
        assert status.last_failure == DISK_FULL
        assert "database or disk is full" in status.last_failure_detail
        assert status.retry_at == WINDOW_OPENS + RETRY_FIRST_SECONDS
        assert harness.scheduler.running

        disk.make_room()
        harness.advance_to(WINDOW_OPENS + RETRY_FIRST_SECONDS)
        assert harness.state == "running"
        harness.walkers[0].finish()
        harness.clock.advance(0)
        assert harness.state == "done"
        assert harness.outcomes() == ["completed"]
        assert job_status(harness).last_failure is None
        harness.db.close()


def test_full_disk_when_a_run_fails_still_retries_and_writes_the_failure_later(tmp_path):
    """Real full disk (tmpfs): a run fails while the disk is full, so its end
    cannot be recorded; the retry is planned all the same, the status says the
    record waits in memory, and the record is written once there is room."""
    with small_filesystem(tmp_path / "private") as disk:
        harness = Harness(disk.path, start=MIDNIGHT + HOUR)
        assert harness.state == "running"
        disk.fill()
        harness.walkers[0].fail()
        harness.clock.advance(0)
        assert harness.state == "failed"
        status = job_status(harness)
        assert status.retry_at == MIDNIGHT + HOUR + RETRY_FIRST_SECONDS
        assert status.last_failure == (
            "an operation on the grid failed (RuntimeError); " + DISK_FULL
            + "; the end of 1 run is kept in memory and written when the state database "
            "can be written again")
        assert harness.outcomes() == ["running"]

        disk.make_room()
        harness.clock.advance(RETRY_FIRST_SECONDS)
        assert harness.outcomes() == ["failed", "running"], "the failure, then the retry"
        harness.walkers[1].finish()
        harness.clock.advance(0)
        assert harness.outcomes() == ["failed", "completed"]
        assert job_status(harness).last_failure is None
        harness.db.close()


def test_full_disk_when_a_run_completes_keeps_it_completed_and_writes_it_later(tmp_path):
    """Real full disk (tmpfs): a run completes (its snapshot is linked) but its
    record cannot be written. The job is done and not due again at once (the
    completion is kept in memory), the status says so, and the record is
    written by its own retry once the disk has room."""
    with small_filesystem(tmp_path / "private") as disk:
        harness = Harness(disk.path, start=MIDNIGHT + HOUR)
        disk.fill()
        harness.walkers[0].finish()
        harness.clock.advance(0)
        ended = MIDNIGHT + HOUR
        assert harness.state == "done"
        status = job_status(harness)
        assert status.last_success == ended
        assert status.last_failure == (
            DISK_FULL + "; the end of 1 run is kept in memory and written when the state "
            "database can be written again")
        harness.advance_to(ended + 10 * RETRY_FIRST_SECONDS)
        assert harness.state == "done", "not due again: the run did complete"
        assert len(harness.walkers) == 1
        assert harness.outcomes() == ["running"]

        disk.make_room()
        harness.advance_to(ended + 16 * RETRY_FIRST_SECONDS)  # retries at 1, 3, 7, 15 min
        assert harness.outcomes() == ["completed"]
        assert harness.db.last_completed() == {"b1": ended}
        assert job_status(harness).last_failure is None
        harness.advance_to(ended + DAY + 60)
        assert len(harness.walkers) == 2, "due again a day after the completed run"
        harness.db.close()


def test_locked_database_at_every_step_never_jams_the_job(tmp_path):
    """Injected "database is locked" (a wrapper around the real database): a
    refused start fails the run with backoff (1 min, then 2); a refused end
    keeps the record in memory; once the lock is gone the job completes and
    every record is written."""
    harness = Harness(tmp_path, start=NOON)
    real = harness.db
    locked = RefusingDatabase(real)
    runner = harness.scheduler.runners["b1"]
    runner._history = locked
    locked.refuse = {"start_run", "finish_run"}
    harness.advance_to(WINDOW_OPENS)
    assert harness.state == "failed"
    assert job_status(harness).last_failure == (
        "the state database could not be written (locked by another process)")
    assert job_status(harness).retry_at == WINDOW_OPENS + RETRY_FIRST_SECONDS
    harness.advance_to(WINDOW_OPENS + RETRY_FIRST_SECONDS)
    assert harness.state == "failed"
    assert job_status(harness).retry_at == WINDOW_OPENS + 3 * RETRY_FIRST_SECONDS

    locked.refuse = {"finish_run"}
    harness.advance_to(WINDOW_OPENS + 3 * RETRY_FIRST_SECONDS)
    assert harness.state == "running"
    harness.walkers[0].finish()
    harness.clock.advance(0)
    assert harness.state == "done"
    assert harness.outcomes() == ["running"]
    locked.refuse = set()
    harness.clock.advance(RETRY_FIRST_SECONDS)
    assert harness.outcomes() == ["completed"]


def test_backupdb_fault_during_a_run_fails_it_with_the_backup_database_reason(tmp_path):
    """Injected: the walker fails as it does when a backupdb query raises (a
    BackupFailed whose cause is the sqlite3 error); the public reason names the
    backup database and the kind of fault, the detail keeps the message, and
    the retry comes after RETRY_FIRST_SECONDS."""
    harness = Harness(tmp_path)
    cause = Failure(sqlite3.OperationalError("database or disk is full"))
    failed_at = harness.clock.seconds()
    harness.walkers[0].done.errback(BackupFailed(describe(cause), cause))
    harness.clock.advance(0)
    status = job_status(harness)
    assert harness.state == "failed"
    assert status.last_failure == "the backup database could not be used (disk full)"
    assert status.last_failure_detail == (
        "backup failed: OperationalError: database or disk is full")
    assert status.retry_at == failed_at + RETRY_FIRST_SECONDS
    harness.clock.advance(RETRY_FIRST_SECONDS)
    assert harness.state == "running"


def test_failure_summary_names_each_database_and_fault_kind():
    """Public words for sqlite faults: which database, and what kind of fault."""
    from tahoe_governor.backup.backupdb import BackupDBError
    from tahoe_governor.backup.run_errors import StateDatabaseFault

    locked = sqlite3.OperationalError("database is locked")
    assert failure_summary(Failure(StateDatabaseFault("record", locked))) == (
        "the state database could not be written (locked by another process)")
    assert failure_summary(Failure(locked)) == (
        "the backup database could not be used (locked by another process)")
    assert failure_summary(Failure(BackupDBError("cannot open backupdb /x: no"))) == (
        "the backup database could not be opened")
    assert failure_summary(Failure(sqlite3.OperationalError("something new"))) == (
        "the backup database could not be used (error)")
