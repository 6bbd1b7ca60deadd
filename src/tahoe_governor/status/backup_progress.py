"""A backup run's progress: the frozen snapshot the pages, metrics and commands read.

:class:`BackupProgress` is a value: the walker builds a new one (from its
:class:`~tahoe_governor.backup.progress.ProgressCounters`) on each
``progress()`` call, and holding one never changes it. Its fields are public
(counts, byte totals, rates, times, the phase) except ``private_current_paths``,
declared with :func:`~tahoe_governor.status.privacy.private_field`.

Counting, as ``tahoe backup`` reports it
----------------------------------------
``files_uploaded`` (its "files uploaded"), ``files_reused`` (skipped because
the backupdb knows them), ``files_skipped`` (not backed up: unreadable,
special, symlink, undecodable — by reason in ``skipped``, which counts
directories too), and the same for directories; ``files_checked`` and
``directories_checked`` count the backupdb's periodic re-checks of old caps.
``files_failed`` counts uploads that failed on the grid (the run then fails).
"""

from __future__ import annotations

import attrs

from tahoe_governor.status.privacy import private_field

PHASES = ("preparing", "walking", "linking", "finished", "failed", "cancelled")
"""A run's phases: opening the target, walking the tree, linking the new
snapshot under ``Archives/`` and ``Latest``, then one of the three ends."""


@attrs.frozen
class SkipCounts:
    """Entries (files and directories) not backed up, by reason."""

    unreadable: int = 0
    """Could not be listed, opened or read (permissions, I/O errors, vanished)."""
    special: int = 0
    """Neither a regular file nor a directory: FIFO, socket, device."""
    symlink: int = 0
    """Symbolic links, never followed."""
    undecodable: int = 0
    """Names not valid in the filesystem encoding."""

    @property
    def total(self) -> int:
        """All skipped entries."""
        return self.unreadable + self.special + self.symlink + self.undecodable


@attrs.frozen(kw_only=True)
class BackupProgress:
    """One moment of a backup run (see the module doc for public and private fields)."""

    phase: str
    """One of :data:`PHASES`."""
    suspended: bool
    """True while the job's throttle holds all work."""
    elapsed_seconds: float
    """Seconds since the run started (reactor time, suspensions included)."""

    files_seen: int
    """Non-excluded, non-directory entries met so far."""
    files_uploaded: int
    files_reused: int
    files_skipped: int
    files_failed: int
    files_checked: int
    files_in_flight: int
    """Files being hashed or uploaded now."""
    files_restarted: int
    """Uploads aborted in flight and started again."""
    directories_created: int
    directories_reused: int
    directories_skipped: int
    directories_checked: int
    skipped: SkipCounts
    excluded: int
    """Entries (files or directories) left out by an exclude pattern."""

    bytes_read: int
    """Bytes read from local files: the key pass and the encoder's reads."""
    bytes_uploaded: int
    """Plaintext bytes handed to Tahoe's encoder (times N/k on the wire)."""
    bytes_reused: int
    """Sizes of the files the backupdb let us reuse."""
    bytes_done: int
    """Bytes of the tree accounted for: reused, skipped and finished files,
    and what in-flight files have handed to the encoder."""
    estimated_files: int | None
    """Files the run expects (the estimate walk, or the caller's figure); None until known."""
    estimated_bytes: int | None
    """Bytes the run expects; None until known."""

    rate_bytes_per_second: float
    """Plaintext bytes handed to the encoder per second, mean over the last 30 s."""
    progress_bytes_per_second: float
    """``bytes_done`` per second over the last 30 s: the pace the ETA assumes."""
    eta_seconds: float | None
    """Seconds until done if the rest goes at ``progress_bytes_per_second``;
    None when there is no estimate or no pace yet."""

    private_current_paths: tuple[str, ...] = private_field(default=())
    """Private: local paths of the files in flight."""

    @property
    def work_bytes(self) -> int:
        """Bytes of work done (read from local files), the CPU budget's measure of work."""
        return self.bytes_read

    def outcome_counts(self) -> dict[str, int]:
        """Files per outcome (``uploaded``, ``reused``, ``skipped``, ``failed``), for the totals."""
        return {"uploaded": self.files_uploaded, "reused": self.files_reused,
                "skipped": self.files_skipped, "failed": self.files_failed}

    def run_counts(self) -> dict[str, int]:
        """The counts the state database keeps for a run (its ``runs`` row)."""
        return {
            "files_seen": self.files_seen,
            "files_uploaded": self.files_uploaded,
            "files_reused": self.files_reused,
            "files_skipped": self.files_skipped,
            "files_failed": self.files_failed,
            "bytes_uploaded": self.bytes_uploaded,
        }
