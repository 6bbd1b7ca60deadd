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
"""

from __future__ import annotations

import math
from typing import Protocol

from twisted.internet.defer import Deferred

from tahoe_governor.throttle.reactor_clock import ReactorClock

DEFAULT_BACKLOG_SECONDS = 2.0
"""Outbound bytes a capped peer may have queued, in seconds of its cap."""

MIN_BACKLOG_BYTES = 65_536
"""Never hold work for a queue shorter than this (a slow cap still admits a file)."""

POLL_SECONDS = 0.05
"""How often a held wait looks at the queues again."""


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

    def open(self) -> bool:
        """True if no capped queue is over its bound now."""
        for queued, limit in self._shaper.outbound_backlog():
            if limit is None:
                continue
            if queued > max(self.min_bytes, limit * self.seconds):
                return False
        return True

    def wait(self) -> Deferred[None]:
        """A Deferred that fires (with None) once :meth:`open`; at once if it is.

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
            if self.open():
                d.callback(None)
            else:
                timer = self._clock.callLater(POLL_SECONDS, look)

        look()
        return d
