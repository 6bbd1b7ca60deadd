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
the gate also lets one new upload at a time through while any queue is
capped (:meth:`BacklogGate.admit`): the next waits until the one before has
handed its first bytes to the encoder (or ended), and a run's first moments
do not admit every upload slot at once behind an empty queue.

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

TAHOE_QUERY_TIMEOUT_SECONDS = 15.0
"""How long Tahoe's uploader waits for a server's answer in server selection."""

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
        self.starting = 0
        """Uploads admitted whose bytes have not reached the queues yet."""

    def open(self) -> bool:
        """True if no capped queue is over its bound now, and no upload admitted
        before is still choosing its servers while a queue is capped."""
        capped = False
        for queued, limit in self._shaper.outbound_backlog():
            if limit is None:
                continue
            capped = True
            if queued > max(self.min_bytes, limit * self.seconds):
                return False
        return not (capped and self.starting)

    def admit(self) -> Callable[[], None] | None:
        """Let one upload start if :meth:`open`: a function to call once it has
        handed bytes to the encoder or ended (calling it again does nothing);
        None if the gate is closed (:meth:`wait`, then ask again)."""
        if not self.open():
            return None
        self.starting += 1
        done = False

        def started() -> None:
            nonlocal done
            if not done:
                done = True
                self.starting -= 1

        return started

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
