"""How a backup run ends other than with a result: the errors a run raises, and its own signals.

They live apart from :mod:`~tahoe_governor.backup.walker` so that the parts of
a run (:mod:`~tahoe_governor.backup.tree_walk`,
:mod:`~tahoe_governor.backup.completion`) can raise them; the walker module
re-exports the public ones, where callers import them from.
"""

from __future__ import annotations

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
