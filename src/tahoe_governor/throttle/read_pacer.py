"""Reads from one socket paced at its download cap, in sips, counted below TLS.

The shaped connection sits above TLS (Foolscap starts TLS on the real
transport, whose ``TLSMemoryBIOProtocol`` then feeds the connection
plaintext), and TLS hands plaintext over a whole record at a time: up to
16 KiB, after several small reads of ciphertext. Holding that plaintext and
pausing until it has been delivered at the cap turns steady small reads back
into a pause of 160 ms at 800 kbit/s followed by a burst of reads: the window
reopens by a whole record at once and the sender puts it on the line in one
go. :class:`ReadPacer` paces the reads themselves instead: each read from the
socket (ciphertext, whatever TLS makes of it) spends credit that accrues at the
cap, and the next read waits until a whole sip (:func:`.read_size_bytes`) has
accrued. The window then reopens a sip at a time, at the cap's pace.
"""

from __future__ import annotations

from collections.abc import Callable

from tahoe_governor.throttle.reactor_clock import DelayedCall, ReactorClock
from tahoe_governor.throttle.receive_window import read_size_bytes

SAVED_SIPS = 2
"""The most credit kept, in sips."""


class ReadPacer:
    """Whether one socket may be read now, at ``rate`` bytes/s in sips of
    :func:`.read_size_bytes` of it; ``rate`` ``None`` reads freely.

    ``took(n)`` counts a read of ``n`` bytes; :meth:`may_read` answers, and when
    it answers no, ``ready()`` is called once the next sip has accrued (or the
    rate changed). All timing is on the injected clock.
    """

    def __init__(self, clock: ReactorClock, ready: Callable[[], None]) -> None:
        self.clock = clock
        self.rate: float | None = None
        self.sip = 0
        self._credit = 0.0
        self._last = clock.seconds()
        self._ready = ready
        self._timer: DelayedCall | None = None

    def set_rate(self, rate: float | None) -> None:
        """Pace at ``rate`` bytes/s from now on (``None``: no pacing); ``ready()`` is
        called if a read waits, so it is asked again at the new rate."""
        if rate == self.rate:
            return
        self._advance()
        starting = self.rate is None
        self.rate = rate
        self.sip = read_size_bytes(rate) or 0
        # a pacer that starts, starts with a sip in hand: the first read need not wait
        saved = SAVED_SIPS * float(self.sip)
        self._credit = float(self.sip) if starting else min(self._credit, saved)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._ready()

    def took(self, nbytes: int) -> None:
        """``nbytes`` were just read from the socket."""
        if self.rate is not None:
            self._advance()
            self._credit -= nbytes

    def may_read(self) -> bool:
        """Whether the socket may be read now; if not, ``ready()`` comes when it may."""
        if self.rate is None:
            return True
        self._advance()
        if self._credit >= self.sip - 0.5:  # a timer's float rounding is not a wait
            return True
        if self._timer is None and self.rate > 0:
            wait = (self.sip - self._credit) / self.rate
            self._timer = self.clock.callLater(wait, self._sip_accrued)
        return False

    def stop(self) -> None:
        """Cancel the pending timer (the connection is gone)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sip_accrued(self) -> None:
        self._timer = None
        self._ready()

    def _advance(self) -> None:
        now = self.clock.seconds()
        elapsed, self._last = now - self._last, now
        if elapsed > 0 and self.rate:
            # Saved credit is two sips at most: a read that comes a little late (the
            # reactor was busy) loses nothing, and after an idle spell the reads that
            # may come at once are two sips, not the seconds idle.
            self._credit = min(SAVED_SIPS * float(self.sip), self._credit + elapsed * self.rate)
