"""Opening the node's backupdb with Tahoe's own module, so ``tahoe backup``'s skips carry over.

The walker decides with ``allmydata.scripts.backupdb`` itself — ``check_file``
(size, mtime and ctime unchanged, and a periodic re-check of caps older than
a month that becomes certain at two months), ``did_upload_file``,
``check_directory`` (a hash of the children's names and caps) and
``did_create_directory`` — on the file ``tahoe backup`` uses,
``NODEDIR/private/backupdb.sqlite``. A node that ran ``tahoe backup`` before
keeps every skip, and ``tahoe backup`` keeps ours.
"""

from __future__ import annotations

import io
import os
import random
import sqlite3
import stat
import time
from typing import Any

from allmydata.scripts import backupdb as tahoe_backupdb
from allmydata.util.encodingutil import to_bytes
from allmydata.util.fileutil import abspath_expanduser_unicode

BACKUPDB_RELPATH = os.path.join("private", "backupdb.sqlite")


class BackupDBError(Exception):
    """The backupdb could not be opened or created."""


def backupdb_path(nodedir: str) -> str:
    """The backupdb file of the node in ``nodedir`` (absolute)."""
    return abspath_expanduser_unicode(os.path.join(nodedir, BACKUPDB_RELPATH))


def open_backupdb(path: str) -> Any:
    """Open (or create) the backupdb at ``path``; a ``BackupDB_v2``.

    The parent directory must exist. Raises :class:`BackupDBError` with
    Tahoe's explanation when the file is not a usable backupdb.
    """
    if not os.path.isdir(os.path.dirname(path) or "."):
        raise BackupDBError(f"cannot open backupdb {path}: its directory does not exist")
    complaints = io.StringIO()
    db = tahoe_backupdb.get_backupdb(path, complaints)
    if db is None:
        reason = complaints.getvalue().strip() or "unknown error"
        raise BackupDBError(f"cannot open backupdb {path}: {reason}")
    # Tahoe's module commits after every file. In WAL mode with synchronous =
    # NORMAL a commit appends to the log without an fsync (checkpoints still
    # sync): a crash can lose the last few records — those files are found
    # again on the grid by their convergent caps — but never corrupts the
    # database, and `tahoe backup` reads a WAL database as it is.
    # The walker calls the backupdb in the reactor's thread pool (one call at a
    # time), so the connection is opened again for use from any thread.
    db.connection.close()
    db = tahoe_backupdb.BackupDB_v2(sqlite3, sqlite3.connect(path, check_same_thread=False))
    db.connection.execute("PRAGMA journal_mode = WAL")
    db.connection.execute("PRAGMA synchronous = NORMAL")
    return db


# -- reading a directory's records at once -------------------------------------
#
# ``check_file`` costs two queries and a stat per file. On a rescan most files
# are unchanged and were checked recently, and for those its answer is certain:
# reuse the recorded cap, no check (the re-check probability is zero until
# ``NO_CHECK_BEFORE``). ``recorded_children`` reads a directory's records in
# one query so the walker can give that certain answer itself; every other case
# (no record, anything changed, a record old enough to be re-checked at random,
# ``ignore_timestamps``) still goes to ``check_file``, which also keeps the
# database up to date exactly as before.

_CHILD_RECORDS = (
    "SELECT local_files.path, local_files.size, local_files.mtime, local_files.ctime,"
    " caps.filecap, last_upload.last_checked"
    " FROM local_files, caps, last_upload"
    " WHERE caps.fileid = local_files.fileid AND last_upload.fileid = local_files.fileid"
    " AND local_files.path > ? AND local_files.path < ?"
)


def recorded_children(db: Any, directory: str) -> dict[str, tuple[Any, ...]]:
    """The backupdb records of the files directly in ``directory``, by name.

    Each value is ``(size, mtime, ctime, filecap, last_checked)`` as stored.
    """
    key = abspath_expanduser_unicode(directory)
    prefix = key if key.endswith(os.sep) else key + os.sep
    upper = prefix[:-1] + chr(ord(os.sep) + 1)  # every path that starts with prefix sorts below
    records: dict[str, tuple[Any, ...]] = {}
    for path, size, mtime, ctime, filecap, last_checked in db.connection.execute(
            _CHILD_RECORDS, (prefix, upper)):
        name = path[len(prefix):]
        if os.sep not in name:
            records[name] = (size, mtime, ctime, filecap, last_checked)
    return records


def certain_reuse(record: tuple[Any, ...] | None, st: os.stat_result, now: float) -> bytes | None:
    """The cap ``check_file`` would certainly tell us to reuse without a check, else None.

    ``record`` is from :func:`recorded_children`, ``st`` the file's ``os.stat``
    and ``now`` the wall-clock time the backupdb measures ages with. None means
    "ask ``check_file``".
    """
    if record is None:
        return None
    size, mtime, ctime, filecap, last_checked = record
    if (size != st[stat.ST_SIZE] or mtime != st[stat.ST_MTIME] or ctime != st[stat.ST_CTIME]
            or filecap is None or last_checked is None):
        return None
    if now - last_checked >= tahoe_backupdb.BackupDB_v2.NO_CHECK_BEFORE:
        return None  # old enough for a random re-check: check_file decides
    cap: bytes = to_bytes(filecap)
    return cap


def check_file_stat(db: Any, path: str, st: os.stat_result, use_timestamps: bool = True) -> Any:
    """``db.check_file(path, use_timestamps)`` for a file whose ``os.stat`` is ``st``.

    Tahoe's ``check_file`` stats ``path`` itself; the walker already has the
    lstat its listing took relative to the open directory, which works at any
    depth (a full path may be longer than the system allows) and is the stat
    of the very file the walk saw. Otherwise this is Tahoe's code, returning
    Tahoe's ``FileResult``. Blocking (a query): run it in the thread pool.
    """
    path = abspath_expanduser_unicode(path)
    size = st[stat.ST_SIZE]
    ctime = st[stat.ST_CTIME]
    mtime = st[stat.ST_MTIME]
    now = time.time()
    c = db.cursor
    c.execute("SELECT size,mtime,ctime,fileid FROM local_files WHERE path=?", (path,))
    row = c.fetchone()
    if not row:
        return tahoe_backupdb.FileResult(db, None, False, path, mtime, ctime, size)
    last_size, last_mtime, last_ctime, last_fileid = row
    c.execute("SELECT caps.filecap, last_upload.last_checked FROM caps,last_upload"
              " WHERE caps.fileid=? AND last_upload.fileid=?", (last_fileid, last_fileid))
    row2 = c.fetchone()
    if (last_size != size or not use_timestamps or last_mtime != mtime
            or last_ctime != ctime or not row2):
        c.execute("DELETE FROM local_files WHERE path=?", (path,))
        db.connection.commit()
        return tahoe_backupdb.FileResult(db, None, False, path, mtime, ctime, size)
    filecap, last_checked = row2
    age = now - last_checked
    probability = ((age - db.NO_CHECK_BEFORE) / (db.ALWAYS_CHECK_AFTER - db.NO_CHECK_BEFORE))
    probability = min(max(probability, 0.0), 1.0)
    should_check = bool(random.random() < probability)
    return tahoe_backupdb.FileResult(db, to_bytes(filecap), should_check,
                                     path, mtime, ctime, size)
