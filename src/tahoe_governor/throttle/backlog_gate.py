"""Hold new work while a capped peer's queue is long: bytes in flight stay a few seconds of its cap.

A shaper queues what a connection writes faster than its caps allow. Tahoe's
uploader does not wait for that queue, so with many uploads in flight the
bytes waiting for one slow peer can be minutes of its cap: every file then
finishes at the end, an interruption (a kill, a window's end) loses all of
them, and Tahoe's own small queries wait behind the queue past their timeouts.

:class:`BacklogGate` is asked before new work starts (a new file's upload):
:meth:`BacklogGate.wait` fires once every capped peer's outbound queue, and
the node's, holds at most ``seconds`` of its rate (never less than
``min_bytes``). Work already started goes on; only new work waits, so files
finish one after another at the cap's pace. Unlimited peers never hold it.

A queue shows an upload's bytes only once Tahoe has chosen its servers, so
an upload the gate admits (:meth:`BacklogGate.admit`) reserves what it will
queue first (:func:`first_share_bytes` of its size) until it hands bytes to
the encoder or ends, and the next is admitted only if every capped queue,
the reservations and its own still fit the bound: a run's first moments do
not admit every upload slot at once behind an empty queue. The first upload
waiting needs only the queue within the bound, so a file larger than the
bound still starts.

The bound is short because a cap may fall while bytes wait: what was queued at
the old rate then leaves at the new one, and Tahoe's server-selection queries
behind it give up after 15 s. One second of the rate (at least 16 KiB, one
piece) keeps that wait under 15 s when a cap of 100 kbit/s or more is cut
tenfold at once; new work then waits for the queue to shrink to a second of
the new rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred

from tahoe_governor.throttle.reactor_clock import ReactorClock

DEFAULT_BACKLOG_SECONDS = 1.0
"""Outbound bytes a capped peer may have queued, in seconds of its cap."""

MIN_BACKLOG_BYTES = 16_384
"""Never hold work for a queue shorter than this (a slow cap still admits a file)."""

SEGMENT_BYTES = 1024 * 1024
"""Tahoe's default immutable segment (``DEFAULT_IMMUTABLE_MAX_SEGMENT_SIZE``, 1 MiB
since Tahoe-LAFS 1.19): an upload's first bytes to a server are one share of it."""

TAHOE_QUERY_TIMEOUT_SECONDS = 15.0
"""How long Tahoe's uploader waits for a server's answer in server selection."""

POLL_SECONDS = 0.05
"""How often a held wait looks at the queues again."""


def first_share_bytes(upload_bytes: int) -> int:
    """What an upload of ``upload_bytes`` first queues to one server: its share of the
    first segment (at most half of it: two shares or more are needed to read a file)."""
    return min(max(upload_bytes, 0), SEGMENT_BYTES) // 2


class QueueSource(Protocol):
    """What the gate reads of a shaper (``ConnectionShaper`` provides it)."""

    def outbound_backlog(self) -> list[tuple[int, float | None]]:
        """``(queued bytes, limit in bytes/s or None)`` of every capped queue: each
        peer's and the node's, up direction."""


class BacklogGate:
    """See the module documentation. ``seconds`` and ``min_bytes`` bound each queue."""

    def __init__(
        self,
        shaper: QueueSource,
        clock: ReactorClock,
        seconds: float = DEFAULT_BACKLOG_SECONDS,
        min_bytes: int = MIN_BACKLOG_BYTES,
    ) -> None:
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"seconds must be a positive number, got {seconds!r}")
        if min_bytes < 0:
            raise ValueError(f"min_bytes must be >= 0, got {min_bytes!r}")
        self._shaper = shaper
        self._clock = clock
        self.seconds = seconds
        self.min_bytes = min_bytes
        self.reserved = 0
        """Bytes that admitted uploads will queue once their servers are chosen."""

    def open(self, upload_bytes: int = 0) -> bool:
        """True if an upload of ``upload_bytes`` may start now: no capped queue is
        over its bound with the reservations of the uploads admitted before and this
        one's (with none before, the queue alone)."""
        extra = self.reserved + first_share_bytes(upload_bytes) if self.reserved else 0
        for queued, limit in self._shaper.outbound_backlog():
            if limit is None:
                continue
            if queued + extra > max(self.min_bytes, limit * self.seconds):
                return False
        return True

    def admit(self, upload_bytes: int = 0) -> Callable[[], None] | None:
        """Let an upload of ``upload_bytes`` start if :meth:`open`, reserving its first
        share: a function to call once it has handed bytes to the encoder or ended
        (calling it again does nothing); None if the gate is closed
        (:meth:`wait`, then ask again)."""
        if not self.open(upload_bytes):
            return None
        reserved = first_share_bytes(upload_bytes)
        self.reserved += reserved
        done = False

        def started() -> None:
            nonlocal done
            if not done:
                done = True
                self.reserved -= reserved

        return started

    def wait(self, upload_bytes: int = 0) -> Deferred[None]:
        """A Deferred that fires (with None) once :meth:`open` for an upload of
        ``upload_bytes``; at once if it is.

        Cancelling it stops the wait (the Deferred fails with ``CancelledError``).
        """
        timer = None

        def cancel(_: Deferred[None]) -> None:
            if timer is not None and timer.active():
                timer.cancel()

        d: Deferred[None] = Deferred(cancel)

        def look() -> None:
            nonlocal timer
            timer = None
            if self.open(upload_bytes):
                d.callback(None)
            else:
                timer = self._clock.callLater(POLL_SECONDS, look)

        look()
        return d
