"""Noticing a step of the wall clock (a sleep, a clock set by hand) and keeping timers true.

Twisted's reactor schedules every ``callLater`` at an instant of the wall clock
(``reactor.seconds()`` is ``time.time()``). When that clock steps back by an
hour, every timer of the process (the shaper's releases, the meters, Foolscap's
keepalives, a job's retry) waits an hour longer; when it steps forward, or the
machine wakes from a sleep, every timer is due at once. The monotonic clock
does neither (on Linux it stands still while the machine sleeps), so the
difference between the two changes only when the wall clock steps.

:class:`ClockStepDetector` is the pure part: readings of both clocks in, the
step out. :class:`ClockStepWatch` acts on a step. After a step back, every
pending timer of the reactor is moved back by the step, so each fires after
the time it asked for instead of that plus the step (a timer set after the step
fires early, once, which every timer here tolerates). After a step forward the
timers are left alone: the overdue ones fire at once, as Twisted does anyway,
and by the time the watch looks they may already have set new timers from the
new time, which moving would push into the future. Then its listeners run; a
listener re-plans what is meant for a time of day (the policy's next window
edge), which a move puts at the wrong instant.
:class:`ClockStepThread` calls the watch every second from a thread: after a
step back the reactor's own timers are stalled, so only another thread can
notice within seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

STEP_TOLERANCE_SECONDS = 1.0
"""A change of wall minus monotonic time smaller than this is drift or slewing, not a step."""

CHECK_INTERVAL_SECONDS = 1.0
"""How often :class:`ClockStepThread` asks the watch to look (a step is noticed within this)."""


class ClockStepDetector:
    """Finds steps of the wall clock against the monotonic clock.

    Each :meth:`observe` gets one reading of each clock (seconds) and returns
    how far the wall clock stepped since the previous reading: positive when
    it jumped forward (or the machine slept that long), negative when it was
    set back, ``0.0`` when the two clocks moved together within ``tolerance``.
    """

    def __init__(self, tolerance: float = STEP_TOLERANCE_SECONDS) -> None:
        if not tolerance > 0:
            raise ValueError(f"tolerance must be > 0 seconds, got {tolerance!r}")
        self.tolerance = tolerance
        self._offset: float | None = None

    def observe(self, wall: float, monotonic: float) -> float:
        """The step since the last reading (seconds), ``0.0`` for none or the first reading."""
        offset = wall - monotonic
        if self._offset is None:
            self._offset = offset
            return 0.0
        step = offset - self._offset
        if abs(step) < self.tolerance:
            return 0.0
        self._offset = offset
        return step


def move_timers(reactor: Any, step: float) -> int:
    """Move every pending timer of ``reactor`` by ``step`` seconds (none to before now);
    how many were moved.

    After the wall clock stepped back by ``-step``, a timer due in 50 s before the
    step still fires 50 s later: Twisted keeps its time on the wall clock.
    """
    now = reactor.seconds()
    moved = 0
    for call in reactor.getDelayedCalls():
        if call.active():
            call.reset(max(0.0, call.getTime() + step - now))
            moved += 1
    return moved


StepListener = Callable[[float], None]


class ClockStepWatch:
    """Moves the reactor's timers when the wall clock steps, then tells the listeners.

    ``reactor`` provides ``seconds()`` (the wall clock its timers use),
    ``getDelayedCalls()``; ``monotonic`` is the clock that does not step
    (``time.monotonic``; a function of the test in tests).
    """

    def __init__(
        self,
        reactor: Any,
        monotonic: Callable[[], float] = time.monotonic,
        tolerance: float = STEP_TOLERANCE_SECONDS,
    ) -> None:
        self._reactor = reactor
        self._monotonic = monotonic
        self._detector = ClockStepDetector(tolerance)
        self._listeners: list[StepListener] = []
        self.steps: list[float] = []
        """Every step noticed, in seconds, oldest first."""
        self.check()  # the baseline

    def add_listener(self, listener: StepListener) -> None:
        """Call ``listener(step)`` after each step, once the timers have been moved."""
        self._listeners.append(listener)

    def check(self) -> float:
        """Look now; on a step, move the timers back (if it was back) and tell the
        listeners. The step, or 0.0."""
        step = self._detector.observe(self._reactor.seconds(), self._monotonic())
        if step:
            self.steps.append(step)
            if step < 0:
                move_timers(self._reactor, step)
            for listener in list(self._listeners):
                listener(step)
        return step


class ClockStepThread:
    """Calls ``watch.check`` in the reactor thread every ``interval`` seconds, from a thread.

    A daemon thread that sleeps on the monotonic clock (``Event.wait``), so a
    stalled reactor timer cannot stall it. :meth:`stop` ends it.
    """

    def __init__(self, reactor: Any, watch: ClockStepWatch,
                 interval: float = CHECK_INTERVAL_SECONDS) -> None:
        self._reactor = reactor
        self._watch = watch
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clock-step-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self._reactor.callFromThread(self._watch.check)
