"""The node's status snapshot, taken once per meter tick for all its readers.

A hundred readers of the pages and ``/metrics`` in one second would otherwise
make a hundred snapshots, each a little different (the clock, the byte
counters), so no rendering could serve two readers. :class:`RecentSnapshot`
keeps the last snapshot for up to ``max_age_seconds`` of the reactor's time
(one meter tick: the rates it shows change only at ticks anyway) and hands
the same frozen value to every reader meanwhile; the pages and ``/metrics``
then render each snapshot once (:mod:`tahoe_governor.web.rendered_once`).

A control the owner carries out (:class:`~.controls.NodeControls`) and a
job's change of state (the scheduler's change listeners) call
:meth:`RecentSnapshot.invalidate`, so a page read after a pause, a new limit
or a failed run shows it, whatever the clock says. Everything else the
snapshot shows (a file finished, bytes sent) is at most ``max_age_seconds``
late.
"""

from __future__ import annotations

from collections.abc import Callable

from tahoe_governor.status import GovernorStatus
from tahoe_governor.throttle.reactor_clock import ReactorClock


class RecentSnapshot:
    """``status()``: the snapshot ``take()`` made at most ``max_age_seconds`` ago."""

    def __init__(
        self,
        take: Callable[[], GovernorStatus],
        reactor: ReactorClock,
        max_age_seconds: float,
    ) -> None:
        if not max_age_seconds >= 0:
            raise ValueError(f"max_age_seconds must be >= 0, got {max_age_seconds!r}")
        self._take = take
        self._reactor = reactor
        self._max_age = max_age_seconds
        self._last: GovernorStatus | None = None
        self._taken_at = 0.0

    def status(self) -> GovernorStatus:
        """The last snapshot if it is recent enough, else a new one."""
        now = self._reactor.seconds()
        last = self._last
        # a clock that went backwards also takes a new one
        if last is None or not self._taken_at <= now < self._taken_at + self._max_age:
            last = self._last = self._take()
            self._taken_at = now
        return last

    def invalidate(self) -> None:
        """Something the snapshot shows changed: the next reader gets a new one."""
        self._last = None
