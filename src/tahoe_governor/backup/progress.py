"""A backup run's progress: frozen snapshots for the status page, metrics and commands.

:class:`BackupProgress` is a value: the walker builds a new one on each
:meth:`~tahoe_governor.backup.walker.BackupWalker.progress` call, and holding
one never changes it.

Public and private fields
-------------------------
Every field is public — fit for the guessable ``/governor`` page and for
metric labels' values — *except* those whose name starts with ``private_``
and which carry ``{"private": True}`` in their attrs metadata. Public fields
hold counts, byte totals, rates, times and the phase: never a capability and
never a local path. :meth:`BackupProgress.public` gives the public fields
alone, as a plain dict; private pages may use :func:`attrs.asdict`.

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

from typing import Any

import attrs
import numpy as np

from tahoe_governor.throttle import WindowRate

PRIVATE: dict[str, bool] = {"private": True}
"""attrs metadata marking a field that may hold a local path or a capability."""

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

    private_current_paths: tuple[str, ...] = attrs.field(default=(), metadata=PRIVATE)
    """PRIVATE: local paths of the files in flight."""

    def public(self) -> dict[str, Any]:
        """The public fields as a plain dict (nested :class:`SkipCounts` too)."""
        return attrs.asdict(self, filter=lambda a, _v: not a.metadata.get("private", False))


class ProgressCounters:
    """The mutable counts a run keeps; :meth:`snapshot` freezes them.

    ``now`` arguments are reactor seconds. Rates are :class:`WindowRate`
    means over ``window_ticks`` ticks of ``tick_seconds``, ticked lazily as
    events and snapshots arrive, so no timer runs.
    """

    UPLOADED, DONE = 0, 1  # rate channels

    def __init__(self, now: float, tick_seconds: float = 1.0, window_ticks: int = 30) -> None:
        self.started_at = now
        self.phase = "preparing"
        self.files_seen = 0
        self.files_uploaded = 0
        self.files_reused = 0
        self.files_failed = 0
        self.files_checked = 0
        self.files_restarted = 0
        self.files_skipped = 0
        self.directories_created = 0
        self.directories_reused = 0
        self.directories_skipped = 0
        self.directories_checked = 0
        self.skips = {reason: 0 for reason in attrs.fields_dict(SkipCounts)}
        self.excluded = 0
        self.bytes_read = 0
        self.bytes_uploaded = 0
        self.bytes_reused = 0
        self.bytes_finished = 0
        self.in_flight: dict[str, int] = {}
        """Path of each file in flight -> bytes it has handed to the encoder."""
        self.estimated_files: int | None = None
        self.estimated_bytes: int | None = None
        self._tick_seconds = tick_seconds
        self._window = WindowRate(tick_seconds, window_ticks, channels=2)
        self._window_ticks = window_ticks
        self._tick_start = now
        self._pending = np.zeros(2, dtype=np.int64)

    # -- events --------------------------------------------------------------

    def skip(self, reason: str, is_directory: bool, size: int, now: float) -> None:
        """Count an entry not backed up, for ``reason`` (a :class:`SkipCounts` field)."""
        self.skips[reason] += 1
        if is_directory:
            self.directories_skipped += 1
        else:
            self.files_skipped += 1
            self._finished(size, now)

    def reused_file(self, size: int, now: float) -> None:
        self.files_reused += 1
        self.bytes_reused += size
        self._finished(size, now)

    def start_file(self, path: str) -> None:
        self.in_flight[path] = 0

    def read_bytes(self, path: str, n: int, now: float) -> None:
        """``n`` bytes of ``path`` were handed to the encoder."""
        self.bytes_read += n
        self.bytes_uploaded += n
        self.in_flight[path] = self.in_flight.get(path, 0) + n
        self._count(self.UPLOADED, n, now)
        self._count(self.DONE, n, now)

    def hashed_bytes(self, n: int) -> None:
        self.bytes_read += n

    def restart_file(self, path: str) -> None:
        """An in-flight upload of ``path`` was aborted and will start over."""
        self.files_restarted += 1
        self.in_flight[path] = 0

    def end_file(self, path: str, outcome: str, size: int, now: float) -> None:
        """``path`` left flight: ``uploaded``, ``reused`` (after a healthy re-check),
        ``failed``, ``unreadable`` or ``cancelled``."""
        handed = self.in_flight.pop(path, 0)
        if outcome == "reused":
            self.reused_file(size, now)
        elif outcome == "uploaded":
            self.files_uploaded += 1
            self.bytes_finished += handed
            self._finished(max(size - handed, 0), now)
        elif outcome == "failed":
            self.files_failed += 1
        elif outcome == "unreadable":
            self.skip("unreadable", False, size, now)

    # -- snapshot ------------------------------------------------------------

    def snapshot(self, now: float, suspended: bool) -> BackupProgress:
        self._advance(now)
        rates = self._window.rates(2)
        in_flight_handed = sum(self.in_flight.values())
        done = self.bytes_finished + in_flight_handed
        pace = float(rates[self.DONE])
        eta = None
        if self.estimated_bytes is not None and pace > 0:
            eta = max(self.estimated_bytes - done, 0) / pace
        return BackupProgress(
            phase=self.phase,
            suspended=suspended,
            elapsed_seconds=max(now - self.started_at, 0.0),
            files_seen=self.files_seen,
            files_uploaded=self.files_uploaded,
            files_reused=self.files_reused,
            files_skipped=self.files_skipped,
            files_failed=self.files_failed,
            files_checked=self.files_checked,
            files_in_flight=len(self.in_flight),
            files_restarted=self.files_restarted,
            directories_created=self.directories_created,
            directories_reused=self.directories_reused,
            directories_skipped=self.directories_skipped,
            directories_checked=self.directories_checked,
            skipped=SkipCounts(**self.skips),
            excluded=self.excluded,
            bytes_read=self.bytes_read,
            bytes_uploaded=self.bytes_uploaded,
            bytes_reused=self.bytes_reused,
            bytes_done=done,
            estimated_files=self.estimated_files,
            estimated_bytes=self.estimated_bytes,
            rate_bytes_per_second=float(rates[self.UPLOADED]),
            progress_bytes_per_second=pace,
            eta_seconds=eta,
            private_current_paths=tuple(sorted(self.in_flight)),
        )

    # -- internals -----------------------------------------------------------

    def _finished(self, size: int, now: float) -> None:
        self.bytes_finished += size
        self._count(self.DONE, size, now)

    def _count(self, channel: int, n: int, now: float) -> None:
        self._advance(now)
        self._pending[channel] += n

    def _advance(self, now: float) -> None:
        """Close every whole tick that ended by ``now``."""
        ticks = int((now - self._tick_start) // self._tick_seconds)
        if ticks <= 0:
            return
        self._window.update(self._pending)
        self._pending[:] = 0
        empty = np.zeros(2, dtype=np.int64)
        for _ in range(min(ticks - 1, self._window_ticks)):
            self._window.update(empty)
        self._tick_start += ticks * self._tick_seconds
