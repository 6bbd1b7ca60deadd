"""A maintenance task's passes as kept in the state database: the frontier and the findings.

One task's pass is three kinds of rows (the schema is versioned in
:mod:`tahoe_governor.policy.state_db`, version 5):

- ``maintenance_passes``: the task's current or last pass (its number, start,
  end, and whether its verify set is chosen);
- ``maintenance_directories``: the directories of the current pass, each once
  however many paths reach it (keyed by storage index, or by cap for a literal
  directory), listed or still to list, in the order they were found;
- ``maintenance_objects``: every file and directory the task has reached, each
  once per storage index (an object shared by many snapshots is checked once
  per pass), with the pass that last reached it, the pass that last checked
  it, whether this pass verifies it, when it was last checked and verified,
  and what the last check found.

Each change is one transaction, and every step of a pass is one change: a
process killed between steps loses nothing, and one killed inside a step
redoes that step only. Caps are stored (the file lives under ``private/``)
because the next window resumes from them. Instants are given by the caller.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable

import attrs

from tahoe_governor.policy.state_db import StateDatabase
from tahoe_governor.status.maintenance_progress import CHECK_RESULTS

KINDS = ("file", "directory")


@attrs.frozen
class PassState:
    """The task's current (``ended`` is ``None``) or last pass."""

    number: int
    started: float
    ended: float | None
    verify_chosen: bool


@attrs.frozen
class GridEntry:
    """An object a listing found: ``key`` is its storage index (base32), ``cap`` the cap
    to reach it (private), ``path`` its names below the target joined by ``/``."""

    key: str
    cap: str = attrs.field(repr=False)
    path: str
    kind: str
    size: int | None = None
    expansion: float = 1.0
    """Wire bytes per plaintext byte of its shares (N/k), for charging a verify or repair."""


@attrs.frozen
class PendingDirectory:
    """A directory of the current pass not listed yet."""

    id: int
    cap: str = attrs.field(repr=False)
    path: str


@attrs.frozen
class PendingObject:
    """An object of the current pass not checked yet; ``verify``: this pass verifies it."""

    id: int
    key: str
    cap: str = attrs.field(repr=False)
    path: str
    kind: str
    size: int | None
    expansion: float
    verify: bool


@attrs.frozen
class Finding:
    """What one check (and repair) of an object found; ``result`` one of CHECK_RESULTS."""

    result: str
    shares_good: int | None = None
    shares_needed: int | None = None
    shares_total: int | None = None
    verified: bool = False
    detail: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.result not in CHECK_RESULTS:
            raise ValueError(f"a check's result is one of {CHECK_RESULTS}, got {self.result!r}")


@attrs.frozen
class PassCounts:
    """How far the task's current pass is, from the database."""

    directories_listed: int
    directories_pending: int
    objects_found: int
    objects_checked: int
    verified: int
    bytes_verified: int
    results: dict[str, int]


class MaintenanceRecords:
    """One task's rows in the state database (see the module doc)."""

    def __init__(self, database: StateDatabase, job: str) -> None:
        self._db = database
        self.job = job

    # -- the pass ----------------------------------------------------------------

    def current_pass(self) -> PassState | None:
        """The task's current or last pass; ``None`` before its first."""
        rows = self._db.query(
            "SELECT pass, started, ended, verify_chosen FROM maintenance_passes WHERE job = ?",
            (self.job,))
        if not rows:
            return None
        number, started, ended, chosen = rows[0]
        return PassState(int(number), float(started),
                         None if ended is None else float(ended),
                         bool(chosen))

    def start_pass(self, root: GridEntry, now: float) -> PassState:
        """Begin the next pass at ``root`` (the target directory): a fresh frontier."""
        previous = self.current_pass()
        number = 1 if previous is None else previous.number + 1
        with self._db.transaction() as db:
            db.execute("DELETE FROM maintenance_directories WHERE job = ?", (self.job,))
            db.execute(
                "INSERT OR REPLACE INTO maintenance_passes (job, pass, started, ended, "
                "verify_chosen) VALUES (?, ?, ?, NULL, 0)", (self.job, number, now))
            self._add_entries(db, number, [root])
        return PassState(number, now, None, False)

    def end_pass(self, number: int, now: float) -> None:
        """End pass ``number``; forget the objects it no longer reached (deleted or unlinked)."""
        with self._db.transaction() as db:
            db.execute("UPDATE maintenance_passes SET ended = ? WHERE job = ? AND pass = ?",
                       (now, self.job, number))
            db.execute("DELETE FROM maintenance_objects WHERE job = ? AND seen_pass < ?",
                       (self.job, number))
            db.execute("DELETE FROM maintenance_directories WHERE job = ?", (self.job,))

    # -- directories ---------------------------------------------------------------

    def next_directory(self) -> PendingDirectory | None:
        """The directory found first among those not listed yet."""
        rows = self._db.query(
            "SELECT id, cap, path FROM maintenance_directories WHERE job = ? AND listed = 0 "
            "ORDER BY id LIMIT 1", (self.job,))
        if not rows:
            return None
        row_id, cap, path = rows[0]
        return PendingDirectory(int(row_id), str(cap), str(path))

    def directory_listed(self, directory_id: int, number: int,
                         children: Iterable[GridEntry]) -> tuple[int, int]:
        """Directory ``directory_id`` is listed: its children join the pass (directories
        to list, objects to check), each only if not already reached this pass. Returns
        the pass's objects found and directories still to list, after this step."""
        with self._db.transaction() as db:
            self._add_entries(db, number, children)
            db.execute("UPDATE maintenance_directories SET listed = 1 WHERE id = ?",
                       (directory_id,))
            found = db.execute(
                "SELECT COUNT(*) FROM maintenance_objects WHERE job = ? AND seen_pass = ?",
                (self.job, number)).fetchone()[0]
            pending = db.execute(
                "SELECT COUNT(*) FROM maintenance_directories WHERE job = ? AND listed = 0",
                (self.job,)).fetchone()[0]
        return int(found), int(pending)

    def _add_entries(self, db: sqlite3.Connection, number: int,
                     entries: Iterable[GridEntry]) -> None:
        execute = db.execute
        for entry in entries:
            if entry.kind not in KINDS:
                raise ValueError(f"an object's kind is one of {KINDS}, got {entry.kind!r}")
            if entry.kind == "directory":
                execute("INSERT OR IGNORE INTO maintenance_directories (job, key, cap, path) "
                        "VALUES (?, ?, ?, ?)", (self.job, entry.key, entry.cap, entry.path))
            # The first path that reaches an object in a pass names it in that pass.
            execute(
                "INSERT INTO maintenance_objects (job, storage_index, cap, path, kind, size, "
                "expansion, seen_pass) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (job, storage_index) DO UPDATE SET "
                "path = CASE WHEN seen_pass = excluded.seen_pass THEN path ELSE excluded.path END,"
                " cap = excluded.cap, kind = excluded.kind, size = excluded.size, "
                "expansion = excluded.expansion, seen_pass = excluded.seen_pass",
                (self.job, entry.key, entry.cap, entry.path, entry.kind, entry.size,
                 entry.expansion, number))

    # -- objects ---------------------------------------------------------------------

    def choose_verify(self, number: int, share: float) -> int:
        """Mark ``share`` (0 to 1, rounded up) of the pass's objects to be verified: those
        verified longest ago first (never verified before any), then those checked longest
        ago; return how many."""
        with self._db.transaction() as db:
            found = db.execute(
                "SELECT COUNT(*) FROM maintenance_objects WHERE job = ? AND seen_pass = ?",
                (self.job, number)).fetchone()[0]
            chosen = min(found, math.ceil(share * found - 1e-9)) if share > 0 else 0
            db.execute(
                "UPDATE maintenance_objects SET verify_pass = ? WHERE id IN ("
                " SELECT id FROM maintenance_objects WHERE job = ? AND seen_pass = ?"
                " ORDER BY last_verified IS NOT NULL, last_verified,"
                " last_checked IS NOT NULL, last_checked, id LIMIT ?)",
                (number, self.job, number, chosen))
            db.execute("UPDATE maintenance_passes SET verify_chosen = 1 WHERE job = ?",
                       (self.job,))
        return int(chosen)

    def pending_objects(self, number: int, after_id: int, limit: int) -> list[PendingObject]:
        """Up to ``limit`` objects of pass ``number`` not checked in it yet, found after the
        object ``after_id`` (0: from the first), in the order found."""
        rows = self._db.query(
            "SELECT id, storage_index, cap, path, kind, size, expansion, verify_pass "
            "FROM maintenance_objects WHERE job = ? AND seen_pass = ? AND checked_pass < ? "
            "AND id > ? ORDER BY id LIMIT ?", (self.job, number, number, after_id, limit))
        return [
            PendingObject(int(row_id), str(key), str(cap), str(path), str(kind),
                          None if size is None else int(size), float(expansion),
                          verify_pass == number)
            for row_id, key, cap, path, kind, size, expansion, verify_pass in rows
        ]

    def record_check(self, object_id: int, number: int, finding: Finding, now: float) -> None:
        """Object ``object_id`` is checked in pass ``number``: remember what was found."""
        with self._db.transaction() as db:
            db.execute(
                "UPDATE maintenance_objects SET checked_pass = ?, last_checked = ?, "
                "last_verified = CASE WHEN ? THEN ? ELSE last_verified END, result = ?, "
                "shares_good = ?, shares_needed = ?, shares_total = ?, detail = ? WHERE id = ?",
                (number, now, finding.verified, now, finding.result, finding.shares_good,
                 finding.shares_needed, finding.shares_total, finding.detail, object_id))

    # -- reading -----------------------------------------------------------------------

    def pass_counts(self, number: int) -> PassCounts:
        """How far pass ``number`` is (one read of every row of the task: call it once a run)."""
        listed: dict[int, int] = dict(self._db.query(
            "SELECT listed, COUNT(*) FROM maintenance_directories WHERE job = ? GROUP BY listed",
            (self.job,)))
        found = self._db.query(
            "SELECT COUNT(*) FROM maintenance_objects WHERE job = ? AND seen_pass = ?",
            (self.job, number))[0][0]
        checked = self._db.query(
            "SELECT result, COUNT(*), SUM(verify_pass = ?), "
            "SUM(CASE WHEN verify_pass = ? THEN COALESCE(size, 0) ELSE 0 END) "
            "FROM maintenance_objects WHERE job = ? AND checked_pass = ? GROUP BY result",
            (number, number, self.job, number))
        return PassCounts(
            directories_listed=int(listed.get(1, 0)),
            directories_pending=int(listed.get(0, 0)),
            objects_found=int(found),
            objects_checked=sum(int(row[1]) for row in checked),
            verified=sum(int(row[2] or 0) for row in checked),
            bytes_verified=sum(int(row[3] or 0) for row in checked),
            results={str(row[0]): int(row[1]) for row in checked},
        )

    def paths_with_result(self, number: int, result: str) -> list[str]:
        """The paths of the objects whose check in pass ``number`` found ``result``."""
        rows = self._db.query(
            "SELECT path FROM maintenance_objects WHERE job = ? AND checked_pass = ? "
            "AND result = ? ORDER BY id", (self.job, number, result))
        return [str(row[0]) for row in rows]
