"""How many uploads a job keeps in flight: many small files at once, fewer large ones.

A small file costs Tahoe's uploader several round trips for a few hundred
bytes, so the more of them are in flight the more each reactor wakeup (and
each storage server's) carries, and the less CPU each file costs; a large file
already keeps its connections busy and holds segment buffers while in flight.
:class:`UploadSlots` is a first-come-first-served counting semaphore whose
requests have weights: a small upload takes one slot, a large one
:data:`LARGE_UPLOAD_WEIGHT`. A request waits while any earlier one waits, so
a large file is never starved by a stream of small ones.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred, succeed

SMALL_UPLOAD_BYTES = 128 * 1024
"""Uploads up to this size count as small: a file this size is one segment of a
few hundred KiB of buffers (Tahoe's segments go up to 1 MiB, ~4.3 MiB in flight)."""

LARGE_UPLOAD_WEIGHT = 4
"""Slots a larger upload takes: with 32 slots, at most 8 large files in flight."""


class UploadSlots:
    """``capacity`` slots shared by a job's uploads, granted in request order."""

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a whole number >= 1, got {capacity!r}")
        self.capacity = capacity
        self.available = capacity
        self._waiting: deque[tuple[int, Deferred[int]]] = deque()

    def weight(self, size: int) -> int:
        """The slots an upload of ``size`` bytes takes (never more than there are)."""
        return min(1 if size <= SMALL_UPLOAD_BYTES else LARGE_UPLOAD_WEIGHT, self.capacity)

    def acquire(self, size: int) -> Deferred[int]:
        """Fires with the weight taken once slots for an upload of ``size`` bytes are free.

        Pass that weight to :meth:`release` when the upload ends.
        """
        n = self.weight(size)
        if not self._waiting and self.available >= n:
            self.available -= n
            return succeed(n)
        waiter: Deferred[int] = Deferred()
        self._waiting.append((n, waiter))
        return waiter

    def release(self, n: int) -> None:
        """Give back ``n`` slots; waiting requests are granted in order while they fit."""
        self.available += n
        if self.available > self.capacity:
            raise RuntimeError("UploadSlots released more slots than were acquired")
        while self._waiting and self._waiting[0][0] <= self.available:
            n, waiter = self._waiting.popleft()
            self.available -= n
            waiter.callback(n)
