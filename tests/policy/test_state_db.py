"""The job-state database: runs, overrides, estimates, migrations, and consistency
after a process is killed in the middle of a transaction."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tahoe_governor.policy.overrides import LimitKey
from tahoe_governor.policy.recovery_reminder import recovery_sheet_reminder
from tahoe_governor.policy.state_db import (
    MIGRATIONS,
    SCHEMA_VERSION,
    RecoverySheetPrinted,
    StateDatabase,
    StateDatabaseError,
    state_db_path,
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDatabase]:
    database = StateDatabase(str(tmp_path / "governor.sqlite"))
    yield database
    database.close()


def test_runs_and_last_completed(db: StateDatabase) -> None:
    """Runs record counts and outcome; the last completed run per job ignores failures."""
    first = db.start_run("b1", 100.0)
    db.record_progress(first, {"files_seen": 10, "bytes_uploaded": 5})
    db.finish_run(first, 200.0, "completed", {"files_uploaded": 9, "files_skipped": 1})
    failed = db.start_run("b1", 300.0)
    db.finish_run(failed, 350.0, "failed", detail="grid unreachable")
    other = db.start_run("b2", 400.0)
    (latest, earlier) = db.runs("b1")
    assert (latest.outcome, latest.detail, earlier.outcome) == ("failed", "grid unreachable",
                                                                "completed")
    assert (earlier.files_seen, earlier.files_uploaded, earlier.bytes_uploaded) == (10, 9, 5)
    assert db.last_completed() == {"b1": 200.0}
    assert db.mark_interrupted(500.0) == 1
    assert db.runs("b2")[0].outcome == "interrupted" and db.runs("b2")[0].id == other
    assert db.integrity_problems() == []


def test_run_mistakes_are_refused(db: StateDatabase) -> None:
    """Finishing twice, unknown counters, unknown runs and 'running' as an outcome fail."""
    run = db.start_run("b1", 1.0)
    with pytest.raises(ValueError, match="unknown count fields"):
        db.record_progress(run, {"files_sent": 1})
    with pytest.raises(ValueError):
        db.finish_run(run, 2.0, "running")
    db.finish_run(run, 2.0, "aborted")
    with pytest.raises(ValueError, match="already finished"):
        db.finish_run(run, 3.0, "completed")
    with pytest.raises(KeyError):
        db.record_progress(999, {"files_seen": 1})
    assert db.runs("b1")[0].outcome == "aborted"


def test_overrides_and_estimates(db: StateDatabase) -> None:
    """Overrides are kept until cleared; estimates keep their value and time."""
    key = LimitKey("peer", "parents", "up")
    db.set_limit_override(key, " 100kbps ", 10.0)
    db.set_paused("b1", True, 11.0)
    db.set_paused("b1", True, 12.0)
    overrides = db.overrides()
    assert overrides.limit(key) is not None and overrides.limit(key).bytes_per_second == 12_500
    assert overrides.paused == {"b1"}
    with pytest.raises(ValueError):
        db.set_limit_override(key, "fast", 13.0)
    db.set_limit_override(key, None, 14.0)
    assert db.overrides().limits == {}
    db.put_estimate("capacity.up", 125_000.0, 20.0)
    db.put_estimate("capacity.up", 130_000.0, 30.0)
    assert db.estimate("capacity.up") == (130_000.0, 30.0)
    assert db.estimate("capacity.down") is None


def test_a_bad_stored_override_is_reported(db: StateDatabase) -> None:
    """A value edited by hand into nonsense is a StateDatabaseError, not a crash later."""
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO limit_overrides VALUES ('node', '', 'up', 'lots', 1.0)"
        )
    with pytest.raises(StateDatabaseError, match="'lots' is invalid"):
        db.overrides()


def test_wal_and_version(db: StateDatabase) -> None:
    """The file is in WAL mode at the current schema version."""
    assert sqlite3.connect(db.path).execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.schema_version() == SCHEMA_VERSION


def test_migration_from_version_1(tmp_path: Path) -> None:
    """A version-1 file is migrated in place and keeps its runs."""
    path = str(tmp_path / "old.sqlite")
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](conn)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.execute("INSERT INTO runs (job, started, ended, outcome) VALUES ('b1', 1, 2, 'completed')")
    conn.close()
    with pytest.raises(StateDatabaseError, match="upgraded"):
        StateDatabase(path, read_only=True)
    with StateDatabase(path) as db:
        assert db.schema_version() == SCHEMA_VERSION
        assert db.last_completed() == {"b1": 2.0}
        db.put_estimate("capacity.down", 1.0, 3.0)
        # Version 5's maintenance counts join the old runs as zeros.
        (run,) = db.runs("b1")
        assert (run.outcome, run.files_checked, run.bytes_verified) == ("completed", 0, 0)


def test_newer_schema_and_read_only(tmp_path: Path) -> None:
    """A file from a newer program is refused; read-only open never creates a file."""
    path = str(tmp_path / "new.sqlite")
    with StateDatabase(path) as db, db.transaction() as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StateDatabaseError, match="newer tahoe-governor"):
        StateDatabase(path)
    missing = str(tmp_path / "missing.sqlite")
    with pytest.raises(StateDatabaseError):
        StateDatabase(missing, read_only=True)
    assert not Path(missing).exists()
    assert state_db_path("/n").endswith("/n/private/governor.sqlite")


def test_interrupted_transaction_rolls_back(db: StateDatabase) -> None:
    """An exception inside a transaction leaves nothing of it."""
    db.start_run("b1", 1.0)
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO runs (job, started, outcome) VALUES ('b2', 2, 'running')")
        conn.execute("UPDATE runs SET files_seen = 99")
        raise RuntimeError("crash")
    (run,) = db.runs()
    assert (run.job, run.files_seen) == ("b1", 0)


WRITER = textwrap.dedent(
    """
    import sys
    from tahoe_governor.policy.state_db import StateDatabase

    db = StateDatabase(sys.argv[1])
    batch = 0
    while True:
        with db.transaction() as conn:
            for row in range(50):
                conn.execute(
                    "INSERT INTO runs (job, started, ended, outcome, detail, files_seen) "
                    "VALUES ('b1', ?, ?, 'completed', ?, ?)",
                    (batch, batch + 1, f"batch {batch}", row),
                )
                if batch == 3 and row == 25:
                    print("inside", flush=True)
                    sys.stdin.readline()  # wait here, mid-transaction, to be killed
        print("committed", batch, flush=True)
        batch += 1
    """
)


@pytest.mark.e2e
def test_kill_mid_transaction_leaves_a_consistent_file(tmp_path: Path) -> None:
    """SIGKILL inside a transaction: committed batches are whole, the open one is absent,
    and PRAGMA integrity_check passes."""
    path = str(tmp_path / "governor.sqlite")
    StateDatabase(path).close()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        lines = [writer.stdout.readline().strip() for _ in range(4)]
        assert lines == [f"committed {n}" for n in range(3)] + ["inside"]
        writer.kill()
    finally:
        writer.wait(timeout=30)
    with StateDatabase(path) as db:
        assert db.integrity_problems() == []
        rows = sqlite3.connect(path).execute(
            "SELECT detail, COUNT(*) FROM runs GROUP BY detail ORDER BY detail"
        ).fetchall()
        assert rows == [(f"batch {n}", 50) for n in range(3)]
        db.start_run("b1", 10.0)  # and the file is writable again


MIGRATING = textwrap.dedent(
    """
    import sys
    from tahoe_governor.policy import state_db

    upgrade = state_db.MIGRATIONS[1]

    def upgrade_then_hang(db):
        upgrade(db)
        print("inside", flush=True)
        sys.stdin.readline()  # wait here, mid-migration, to be killed

    state_db.MIGRATIONS = (state_db.MIGRATIONS[0], upgrade_then_hang)
    state_db.StateDatabase(sys.argv[1])
    """
)


@pytest.mark.e2e
def test_kill_mid_migration_then_migrate(tmp_path: Path) -> None:
    """SIGKILL inside a migration leaves the old version intact; the next open migrates."""
    path = str(tmp_path / "governor.sqlite")
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](conn)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.execute("INSERT INTO runs (job, started, ended, outcome) VALUES ('b1', 1, 2, 'completed')")
    conn.close()
    migrator = subprocess.Popen(
        [sys.executable, "-c", MIGRATING, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert migrator.stdout is not None
        assert migrator.stdout.readline().strip() == "inside"
        migrator.kill()
    finally:
        migrator.wait(timeout=30)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    assert conn.execute(
        "SELECT name FROM sqlite_master WHERE name = 'estimates'"
    ).fetchall() == []
    conn.close()
    with StateDatabase(path) as db:
        assert db.schema_version() == SCHEMA_VERSION
        assert db.integrity_problems() == []
        assert db.last_completed() == {"b1": 2.0}


def test_recovery_sheet_is_remembered_with_its_jobs(db: StateDatabase) -> None:
    """Printing the sheet is remembered (the last time only), with the jobs it covered."""
    assert db.recovery_sheet() is None
    db.record_recovery_sheet(10.0, ("b1",))
    db.record_recovery_sheet(20.0, ("b1", "photos"))
    assert db.recovery_sheet() == RecoverySheetPrinted(20.0, ("b1", "photos"))


@pytest.mark.parametrize(
    ("printed", "jobs", "expected", "why"),
    [
        (None, ["b1"], "never been printed", "never printed"),
        (RecoverySheetPrinted(1.0, ("b1",)), ["b1"], None, "printed, covers every job"),
        (RecoverySheetPrinted(1.0, ("b1",)), ["b1", "b2"], "before job b2 existed",
         "a job added since"),
        (RecoverySheetPrinted(1.0, ()), ["b1", "b2"], "before jobs b1, b2 existed",
         "printed with no job"),
        (None, [], None, "no job: nothing to find again"),
    ],
)
def test_recovery_sheet_reminder(printed, jobs, expected, why) -> None:
    """The reminder shows until a sheet covering every job has been printed."""
    reminder = recovery_sheet_reminder(printed, jobs)
    if expected is None:
        assert reminder is None, why
    else:
        assert reminder is not None and expected in reminder, why
        assert "tahoe-governor recovery-sheet NODEDIR" in reminder


def test_quota_usage_survives_a_restart_and_a_version_5_file_gains_it(tmp_path: Path) -> None:
    """A version-5 file migrates to 6 keeping its runs; the usage written survives a reopen."""
    from tahoe_governor.policy.quotas import QuotaKey, QuotaUsage

    path = str(tmp_path / "v5.sqlite")
    conn = sqlite3.connect(path, isolation_level=None)
    for migrate in MIGRATIONS[:5]:
        migrate(conn)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (5)")
    conn.execute("INSERT INTO runs (job, started, ended, outcome) VALUES ('b1', 1, 2, 'completed')")
    conn.close()
    usage = {QuotaKey("node", "", "up"): QuotaUsage(123, 1000.0),
             QuotaKey("peer", "parents", "down"): QuotaUsage(7, 2000.0),
             QuotaKey("job", "b1", "up"): QuotaUsage(2**40, 1000.0)}
    with StateDatabase(path) as db:
        assert db.schema_version() == SCHEMA_VERSION == 6
        assert db.quota_usage() == {}
        db.put_quota_usage(usage, at=5.0)
        db.put_quota_usage({QuotaKey("node", "", "up"): QuotaUsage(200, 1000.0)}, at=6.0)
    with StateDatabase(path, read_only=True) as db:
        assert db.last_completed() == {"b1": 2.0}
        assert db.quota_usage() == {**usage, QuotaKey("node", "", "up"): QuotaUsage(200, 1000.0)}
