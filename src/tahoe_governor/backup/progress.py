"""A backup run's progress counters: the mutable counts a run keeps while it goes.

:class:`ProgressCounters` counts as ``tahoe backup`` reports (see
:mod:`tahoe_governor.status.backup_progress` for what each count means) and
freezes them into a :class:`~tahoe_governor.status.backup_progress.BackupProgress`
snapshot on each :meth:`ProgressCounters.snapshot`.
"""

from __future__ import annotations

import attrs
import numpy as np

from tahoe_governor.status.backup_progress import BackupProgress, SkipCounts
from tahoe_governor.throttle import WindowRate


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
