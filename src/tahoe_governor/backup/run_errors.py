"""How a backup run ends other than with a result: the errors a run raises, and its own signals.

Database faults (an ``sqlite3`` error on the job-state database or the
backupdb: a full disk, a lock held past the timeout) are named here too, in
words fit for the public page: :func:`database_fault_kind`.

They live apart from :mod:`~tahoe_governor.backup.walker` so that the parts of
a run (:mod:`~tahoe_governor.backup.tree_walk`,
:mod:`~tahoe_governor.backup.completion`) can raise them; the walker module
re-exports the public ones, where callers import them from.
"""

from __future__ import annotations

import sqlite3

from twisted.python.failure import Failure


class SourceError(Exception):
    """The source directory is missing, not a directory, or cannot be listed."""


class BackupCancelled(Exception):
    """The run was cancelled (:meth:`~tahoe_governor.backup.walker.BackupWalker.cancel`)."""


class BackupFailed(Exception):
    """An upload or grid operation failed; the run stopped. ``cause`` is the first failure."""

    def __init__(self, message: str, cause: Failure) -> None:
        super().__init__(message)
        self.cause = cause


class Stopping(Exception):
    """Fails the other activities of a run that is stopping after a failure."""


def describe(failure: Failure) -> str:
    """The message of the :class:`BackupFailed` that ``failure`` ends a run with."""
    return f"backup failed: {failure.type.__name__}: {failure.getErrorMessage()}"


class StateDatabaseFault(Exception):
    """A record of a run could not be written to the job-state database.

    ``action`` says what was being recorded (e.g. "record the start of a
    run"), ``error`` is the ``sqlite3`` error that stopped it.
    """

    def __init__(self, action: str, error: sqlite3.Error) -> None:
        super().__init__(f"could not {action} in the state database: {error}")
        self.action = action
        self.error = error


_FAULT_KINDS_BY_CODE = {
    "SQLITE_FULL": "disk full",
    "SQLITE_BUSY": "locked by another process",
    "SQLITE_LOCKED": "locked by another process",
    "SQLITE_READONLY": "read-only",
    "SQLITE_CORRUPT": "corrupt",
    "SQLITE_NOTADB": "corrupt",
    "SQLITE_CANTOPEN": "cannot be opened",
    "SQLITE_IOERR": "input/output error",
}
_FAULT_KINDS_BY_MESSAGE = {
    "disk is full": "disk full",
    "database is locked": "locked by another process",
    "readonly database": "read-only",
    "malformed": "corrupt",
    "disk i/o error": "input/output error",
}


def database_fault_kind(error: BaseException) -> str:
    """A few public words for what went wrong with a database: "disk full",
    "locked by another process", ... ("error" when not known).

    The sqlite error code decides when the error carries one (errors raised by
    ``sqlite3`` do); otherwise its message (an error made by hand, as in tests).
    """
    code = getattr(error, "sqlite_errorname", None) or ""
    for prefix, kind in _FAULT_KINDS_BY_CODE.items():
        if code == prefix or code.startswith(prefix + "_"):
            return kind
    message = str(error).lower()
    for words, kind in _FAULT_KINDS_BY_MESSAGE.items():
        if words in message:
            return kind
    return "error"
