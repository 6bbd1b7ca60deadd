"""The job-state database: runs, last completed runs, overrides, persisted estimates,
the usage of the quotas, and the maintenance tasks' passes (their tables are read and written by
:mod:`tahoe_governor.maintenance.records`; their schema is versioned here).

One sqlite file, ``NODEDIR/private/governor.sqlite``, in WAL mode with
``synchronous=FULL``: every change is one transaction, so a crash at any
point leaves either all of a change or none of it. The schema carries a
version (table ``schema_version``); opening an older file applies the
migrations in order, each in its own transaction; a newer file is refused.

Instants are POSIX seconds given by the caller: the database never reads a
clock.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import attrs

from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.policy.overrides import LimitKey, Overrides
from tahoe_governor.policy.quotas import SCOPES, QuotaKey, QuotaUsage
from tahoe_governor.policy.units import parse_rate

STATE_DB_NAME = "governor.sqlite"

Outcome = Literal["running", "completed", "failed", "aborted", "interrupted"]
OUTCOMES: tuple[Outcome, ...] = ("running", "completed", "failed", "aborted", "interrupted")
"""``running`` until finished; ``interrupted``: found running after a restart."""

CAPACITY_ESTIMATE_KEYS = {"up": "capacity.up", "down": "capacity.down"}
"""Keys of the persisted ``auto`` link-capacity estimates (bytes/s) in ``estimates``."""

COUNT_FIELDS = (
    "files_seen",
    "files_uploaded",
    "files_reused",
    "files_skipped",
    "files_failed",
    "bytes_uploaded",
    "files_checked",
    "files_verified",
    "files_unhealthy",
    "files_repaired",
    "files_unrecoverable",
    "bytes_verified",
)
"""The counts of a run: a backup run's first, then a maintenance run's (version 5)."""


def _migrate_to_1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            job TEXT NOT NULL,
            started REAL NOT NULL,
            ended REAL,
            outcome TEXT NOT NULL CHECK (outcome IN
                ('running', 'completed', 'failed', 'aborted', 'interrupted')),
            files_seen INTEGER NOT NULL DEFAULT 0,
            files_uploaded INTEGER NOT NULL DEFAULT 0,
            files_reused INTEGER NOT NULL DEFAULT 0,
            files_skipped INTEGER NOT NULL DEFAULT 0,
            files_failed INTEGER NOT NULL DEFAULT 0,
            bytes_uploaded INTEGER NOT NULL DEFAULT 0,
            detail TEXT,
            CHECK ((outcome = 'running') = (ended IS NULL))
        )"""
    )
    db.execute("CREATE INDEX runs_by_job ON runs (job, outcome, ended)")
    db.execute(
        """CREATE TABLE limit_overrides (
            scope TEXT NOT NULL, name TEXT NOT NULL, direction TEXT NOT NULL,
            rate TEXT NOT NULL, set_at REAL NOT NULL,
            PRIMARY KEY (scope, name, direction)
        )"""
    )
    db.execute("CREATE TABLE paused_jobs (job TEXT PRIMARY KEY, since REAL NOT NULL)")


def _migrate_to_2(db: sqlite3.Connection) -> None:
    # Version 2 keeps estimates (e.g. the auto link capacity) across restarts.
    db.execute(
        """CREATE TABLE estimates (
            key TEXT PRIMARY KEY, value REAL NOT NULL, updated REAL NOT NULL
        )"""
    )


def _migrate_to_3(db: sqlite3.Connection) -> None:
    # Version 3 keeps a job's settings changed from the private page (as written).
    db.execute(
        """CREATE TABLE job_setting_overrides (
            job TEXT NOT NULL, setting TEXT NOT NULL, value TEXT NOT NULL,
            set_at REAL NOT NULL, PRIMARY KEY (job, setting)
        )"""
    )


def _migrate_to_4(db: sqlite3.Connection) -> None:
    # Version 4 remembers when the recovery sheet was printed, and for which jobs.
    db.execute(
        """CREATE TABLE recovery_sheets (
            printed REAL NOT NULL, jobs TEXT NOT NULL
        )"""
    )


def _migrate_to_5(db: sqlite3.Connection) -> None:
    # Version 5: maintenance tasks. A run of a task counts checks, not uploads; a
    # pass (which may take several runs) keeps its frontier of directories and the
    # last findings of every object it reached, by storage index.
    for field in ("files_checked", "files_verified", "files_unhealthy", "files_repaired",
                  "files_unrecoverable", "bytes_verified"):
        db.execute(f"ALTER TABLE runs ADD COLUMN {field} INTEGER NOT NULL DEFAULT 0")
    db.execute(
        """CREATE TABLE maintenance_passes (
            job TEXT PRIMARY KEY,
            pass INTEGER NOT NULL,
            started REAL NOT NULL,
            ended REAL,
            verify_chosen INTEGER NOT NULL DEFAULT 0
        )"""
    )
    db.execute(
        """CREATE TABLE maintenance_directories (
            id INTEGER PRIMARY KEY,
            job TEXT NOT NULL,
            key TEXT NOT NULL,
            cap TEXT NOT NULL,
            path TEXT NOT NULL,
            listed INTEGER NOT NULL DEFAULT 0,
            UNIQUE (job, key)
        )"""
    )
    db.execute(
        """CREATE TABLE maintenance_objects (
            id INTEGER PRIMARY KEY,
            job TEXT NOT NULL,
            storage_index TEXT NOT NULL,
            cap TEXT NOT NULL,
            path TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('file', 'directory')),
            size INTEGER,
            expansion REAL NOT NULL DEFAULT 1.0,
            seen_pass INTEGER NOT NULL,
            checked_pass INTEGER NOT NULL DEFAULT 0,
            verify_pass INTEGER NOT NULL DEFAULT 0,
            last_checked REAL,
            last_verified REAL,
            result TEXT CHECK (result IN
                ('healthy', 'unhealthy', 'repaired', 'unrecoverable', 'failed')),
            shares_good INTEGER,
            shares_needed INTEGER,
            shares_total INTEGER,
            detail TEXT,
            UNIQUE (job, storage_index)
        )"""
    )
    db.execute("CREATE INDEX maintenance_directories_to_list "
               "ON maintenance_directories (job, listed, id)")
    db.execute("CREATE INDEX maintenance_objects_to_check "
               "ON maintenance_objects (job, seen_pass, checked_pass)")


def _migrate_to_6(db: sqlite3.Connection) -> None:
    # Version 6: the wire bytes counted for each quota in its current period.
    db.execute(
        """CREATE TABLE quota_usage (
            scope TEXT NOT NULL CHECK (scope IN ('node', 'peer', 'job')),
            name TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('up', 'down')),
            period_start REAL NOT NULL,
            used_bytes INTEGER NOT NULL CHECK (used_bytes >= 0),
            updated REAL NOT NULL,
            PRIMARY KEY (scope, name, direction)
        )"""
    )


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migrate_to_1, _migrate_to_2, _migrate_to_3, _migrate_to_4, _migrate_to_5, _migrate_to_6)
"""``MIGRATIONS[n]`` brings the schema from version ``n`` to ``n + 1``."""
SCHEMA_VERSION = len(MIGRATIONS)


class StateDatabaseError(Exception):
    """The state database cannot be used (newer schema, corrupt file, bad stored value)."""


@attrs.frozen
class Run:
    """One run of a job, as recorded."""

    id: int
    job: str
    started: float
    ended: float | None
    outcome: Outcome
    files_seen: int = 0
    files_uploaded: int = 0
    files_reused: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    bytes_uploaded: int = 0
    detail: str | None = None
    files_checked: int = 0
    files_verified: int = 0
    files_unhealthy: int = 0
    files_repaired: int = 0
    files_unrecoverable: int = 0
    bytes_verified: int = 0


@attrs.frozen
class RecoverySheetPrinted:
    """The last time the recovery sheet was printed, and the jobs it covered."""

    printed: float
    jobs: tuple[str, ...]


def state_db_path(nodedir: str) -> str:
    return os.path.join(nodedir, "private", STATE_DB_NAME)


class StateDatabase:
    """The job-state database at ``path`` (created and migrated on open).

    ``read_only=True`` opens an existing file without writing to it (and
    without migrating: an old schema is then an error); for ``check``.
    """

    def __init__(self, path: str, *, read_only: bool = False) -> None:
        self.path = path
        uri = f"file:{path}?mode=ro" if read_only else f"file:{path}"
        try:
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 5000")
            if not read_only:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            version = self.schema_version()
        except sqlite3.Error as e:
            raise StateDatabaseError(f"cannot open the state database {path}: {e}") from e
        if version > SCHEMA_VERSION:
            self._db.close()
            raise StateDatabaseError(
                f"{path} has schema version {version}; this program knows up to "
                f"{SCHEMA_VERSION}: use a newer tahoe-governor"
            )
        if version < SCHEMA_VERSION:
            if read_only:
                self._db.close()
                raise StateDatabaseError(
                    f"{path} has schema version {version}; it is upgraded to "
                    f"{SCHEMA_VERSION} the next time the node runs"
                )
            self._migrate(version)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StateDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of its statements take effect, or none."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def schema_version(self) -> int:
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not exists:
            return 0
        row = self._db.execute("SELECT version FROM schema_version").fetchone()
        return 0 if row is None else int(row[0])

    def _migrate(self, version: int) -> None:
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction() as db:
                # Re-read inside the transaction: another process may have migrated.
                if self.schema_version() >= target:
                    continue
                MIGRATIONS[target - 1](db)
                db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read-only statement (for the modules that own a table here)."""
        return self._db.execute(sql, args).fetchall()

    def integrity_problems(self) -> list[str]:
        """``PRAGMA integrity_check`` findings; empty when the file is sound."""
        rows = [r[0] for r in self._db.execute("PRAGMA integrity_check").fetchall()]
        return [] if rows == ["ok"] else rows

    # Runs.

    def start_run(self, job: str, started: float) -> int:
        """Record that ``job`` started at ``started``; return the run's id."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (job, started, outcome) VALUES (?, ?, 'running')",
                (job, started),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def record_progress(self, run_id: int, counts: Mapping[str, int]) -> None:
        """Store the running counts of a run (fields of :data:`COUNT_FIELDS`)."""
        self._update_counts(run_id, counts, None, None, None)

    def finish_run(
        self,
        run_id: int,
        ended: float,
        outcome: Outcome,
        counts: Mapping[str, int] | None = None,
        detail: str | None = None,
    ) -> None:
        """Close a run with its outcome and final counts, in one transaction."""
        if outcome == "running" or outcome not in OUTCOMES:
            raise ValueError(f"a finished run's outcome is one of {OUTCOMES[1:]}, got {outcome!r}")
        self._update_counts(run_id, counts or {}, ended, outcome, detail)

    def _update_counts(
        self,
        run_id: int,
        counts: Mapping[str, int],
        ended: float | None,
        outcome: Outcome | None,
        detail: str | None,
    ) -> None:
        unknown = set(counts) - set(COUNT_FIELDS)
        if unknown:
            raise ValueError(f"unknown count fields {sorted(unknown)}; known: {COUNT_FIELDS}")
        assignments = [f"{field} = ?" for field in counts]
        values: list[object] = list(counts.values())
        if outcome is not None:
            assignments += ["ended = ?", "outcome = ?", "detail = ?"]
            values += [ended, outcome, detail]
        if not assignments:
            return
        with self.transaction() as db:
            row = db.execute("SELECT outcome FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(f"no run {run_id}")
            if row[0] != "running":
                raise ValueError(f"run {run_id} is already finished ({row[0]})")
            db.execute(
                f"UPDATE runs SET {', '.join(assignments)} WHERE id = ?", (*values, run_id)
            )

    def mark_interrupted(self, at: float) -> int:
        """Close every run still ``running`` (left by a crash) as ``interrupted``."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE runs SET outcome = 'interrupted', ended = ? WHERE outcome = 'running'",
                (at,),
            ).rowcount

    def runs(self, job: str | None = None, limit: int = 100) -> list[Run]:
        """The most recent runs (of ``job``, or of all jobs), newest first."""
        where, args = ("WHERE job = ?", (job,)) if job is not None else ("", ())
        fields = ("id", "job", "started", "ended", "outcome", *COUNT_FIELDS, "detail")
        rows = self._db.execute(
            f"SELECT {', '.join(fields)} "
            f"FROM runs {where} ORDER BY started DESC, id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [Run(**dict(zip(fields, row, strict=True))) for row in rows]

    def last_completed(self) -> dict[str, float]:
        """Job name -> end of its last completed run."""
        rows = self._db.execute(
            "SELECT job, MAX(ended) FROM runs WHERE outcome = 'completed' GROUP BY job"
        ).fetchall()
        return {job: float(ended) for job, ended in rows}

    # Overrides.

    def overrides(self) -> Overrides:
        """Every override in force, as stored."""
        limits = {}
        for scope, name, direction, text in self._db.execute(
            "SELECT scope, name, direction, rate FROM limit_overrides"
        ):
            try:
                limits[LimitKey(scope, name, direction)] = parse_rate(text)
            except (ValueError, ValueSyntaxError) as e:
                raise StateDatabaseError(
                    f"stored override {scope} {name} {direction} = {text!r} is invalid: {e}"
                ) from e
        paused = {row[0] for row in self._db.execute("SELECT job FROM paused_jobs")}
        settings = {(job, setting): value for job, setting, value in self._db.execute(
            "SELECT job, setting, value FROM job_setting_overrides")}
        return Overrides(limits, paused, settings)

    def set_limit_override(self, key: LimitKey, rate_text: str | None, at: float) -> None:
        """Override the cap ``key`` with ``rate_text`` (as in tahoe.cfg), or clear it (None)."""
        with self.transaction() as db:
            if rate_text is None:
                db.execute(
                    "DELETE FROM limit_overrides WHERE scope = ? AND name = ? AND direction = ?",
                    (key.scope, key.name, key.direction),
                )
                return
            parse_rate(rate_text)  # refuse to store what could not be read back
            db.execute(
                "INSERT OR REPLACE INTO limit_overrides (scope, name, direction, rate, set_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (key.scope, key.name, key.direction, rate_text.strip(), at),
            )

    def set_job_setting(self, job: str, setting: str, text: str | None, at: float) -> None:
        """Override ``job``'s ``setting`` with ``text`` (as in tahoe.cfg), or clear it (None)."""
        with self.transaction() as db:
            if text is None:
                db.execute("DELETE FROM job_setting_overrides WHERE job = ? AND setting = ?",
                           (job, setting))
                return
            db.execute(
                "INSERT OR REPLACE INTO job_setting_overrides (job, setting, value, set_at) "
                "VALUES (?, ?, ?, ?)", (job, setting, text.strip(), at))

    def set_paused(self, job: str, paused: bool, at: float) -> None:
        with self.transaction() as db:
            if paused:
                db.execute(
                    "INSERT OR IGNORE INTO paused_jobs (job, since) VALUES (?, ?)", (job, at)
                )
            else:
                db.execute("DELETE FROM paused_jobs WHERE job = ?", (job,))

    # Estimates.

    def put_estimate(self, key: str, value: float, at: float) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO estimates (key, value, updated) VALUES (?, ?, ?)",
                (key, value, at),
            )

    def estimate(self, key: str) -> tuple[float, float] | None:
        """``(value, updated)`` of a persisted estimate, or ``None``."""
        row = self._db.execute("SELECT value, updated FROM estimates WHERE key = ?", (key,))
        found = row.fetchone()
        return None if found is None else (float(found[0]), float(found[1]))

    # Quotas.

    def quota_usage(self) -> dict[QuotaKey, QuotaUsage]:
        """The stored usage of every quota (of the period it was counted in)."""
        usage = {}
        for scope, name, direction, start, used in self._db.execute(
            "SELECT scope, name, direction, period_start, used_bytes FROM quota_usage"
        ):
            if scope in SCOPES and direction in ("up", "down"):
                usage[QuotaKey(scope, name, direction)] = QuotaUsage(int(used), float(start))
        return usage

    def put_quota_usage(self, usage: Mapping[QuotaKey, QuotaUsage], at: float) -> None:
        """Store the usage of these quotas, all in one transaction."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO quota_usage "
                "(scope, name, direction, period_start, used_bytes, updated) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(key.scope, key.name, key.direction, count.period_start, count.used_bytes, at)
                 for key, count in usage.items()],
            )

    # The recovery sheet.

    def record_recovery_sheet(self, printed: float, jobs: tuple[str, ...]) -> None:
        """Remember that the recovery sheet was printed at ``printed`` with ``jobs`` on it."""
        with self.transaction() as db:
            db.execute("DELETE FROM recovery_sheets")
            db.execute("INSERT INTO recovery_sheets (printed, jobs) VALUES (?, ?)",
                       (printed, "\n".join(jobs)))

    def recovery_sheet(self) -> RecoverySheetPrinted | None:
        """When the recovery sheet was last printed, or ``None`` if never."""
        found = self._db.execute("SELECT printed, jobs FROM recovery_sheets").fetchone()
        if found is None:
            return None
        return RecoverySheetPrinted(float(found[0]), tuple(j for j in found[1].split("\n") if j))
