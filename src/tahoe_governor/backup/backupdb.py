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
from typing import Any

from allmydata.scripts import backupdb as tahoe_backupdb
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
    return db
