"""A delay-based rate controller: finds how fast one peer's line can take bytes without queueing.

The idea is LEDBAT's (RFC 6817, BitTorrent's uTP): the round-trip time of a
connection is its line's base delay plus the time its bytes wait in queues,
mostly the modem's buffer in front of a slow uplink. Keep the base delay (the
smallest round trip seen over a long window) and steer the sending rate so
the queueing delay (current minus base) stays at a small target: grow while
it is under the target, back off in proportion while it is over. Other
traffic on the same line (the parents' email and browsing) then never waits
behind ours for more than the target.

This is the pure core: every method takes the time (seconds) and the
measurements, and returns the rate (bytes/s) to give the peer's token bucket.
Nothing here reads a clock or a socket.

- **Base delay**: the minimum round trip of each minute, over the last
  :data:`BASE_MINUTES` minutes (LEDBAT's ten one-minute minima), so a line
  whose delay changes for good is followed within ten minutes.
- **Current delay**: the minimum of the last :data:`CURRENT_SAMPLES` samples
  (a filter against one-off spikes).
- **Setpoint**: the queueing delay measured is the kernel's smoothed round
  trip, which averages the peaks out; the controller steers it to
  ``SETPOINT_OF_TARGET`` of the target, so that the peaks the parents'
  interactive traffic feels stay under the target.
- **Growth**: each second, the rate grows by ``GROWTH_PER_SECOND`` of itself
  (at least ``MIN_STEP_BYTES`` bytes/s) times how far under the setpoint the
  queueing delay is (1 with no queue, 0 at the setpoint), but never above twice
  what the peer was actually sent (a rate nobody uses proves nothing about the
  line) nor above the ceiling.
- **The knee**: the rate at which the last back-off began is where the line's
  queue started. Within ``KNEE_BAND`` below it, growth is ``KNEE_GROWTH`` of
  the usual (as CUBIC's plateau near its last loss): the rate creeps up to the
  line instead of overshooting it every few seconds. Above the knee (the line
  got faster) growth is the usual again.
- **Back-off**: each second over the setpoint, the rate shrinks by
  ``BACKOFF_PER_SECOND`` of itself times how far over it the delay is (in
  targets, at most 4), never below the floor.
- Without samples (no bytes in flight, so no round trips measured) the rate
  stays where it is.
"""

from __future__ import annotations

import math
from collections import deque

import attrs

from tahoe_governor.throttle.token_bucket import UNLIMITED

DEFAULT_TARGET_SECONDS = 0.025
"""Queueing delay the controller allows. LEDBAT allows up to 100 ms; a DSL line's
interactive traffic (a video call, a web page) barely notices 25 ms."""

BASE_MINUTES = 10
CURRENT_SAMPLES = 2
GROWTH_PER_SECOND = 0.05
BACKOFF_PER_SECOND = 0.25
# Chosen on a simulated modem (125 kB/s and 30 kB/s, 256 KB buffer): 93 % of the line
# used, 18 ms of queue on average, never 100 ms (tests/throttle/test_delay_controller.py).
MAX_OVERSHOOT_TARGETS = 4.0
MIN_STEP_BYTES = 2_000.0
KNEE_BAND = 0.10
KNEE_GROWTH = 0.2
SETPOINT_OF_TARGET = 0.6
# Measured on an emulated 1 Mbit/s line 20 ms away (benchmarks/bench_dsl.py): without the
# knee the rate swung 97-117 kB/s every ~5 s, each overshoot queueing 25-50 ms, and the
# parents' interactive p95 was idle + 31-39 ms; with the knee, steering to the target
# itself, idle + 28 ms; with both, idle + 23 ms (the bound: idle + 25 ms).


@attrs.frozen
class DelaySettings:
    """What a user may set of one automatic cap (bytes/s and seconds)."""

    floor: float
    """The rate never goes below this (the upload floor: a segment must reach the
    server within its idle limit)."""
    ceiling: float = UNLIMITED
    """The rate never goes above this (the node cap, if any)."""
    target_seconds: float = DEFAULT_TARGET_SECONDS
    start: float | None = None
    """The first rate; ``None``: four times the floor."""

    def __attrs_post_init__(self) -> None:
        if not (self.floor > 0 and math.isfinite(self.floor)):
            raise ValueError(f"floor must be a positive number of bytes/s, got {self.floor!r}")
        if not self.ceiling >= self.floor:
            raise ValueError(f"ceiling must be at least the floor ({self.floor:g} bytes/s), "
                             f"got {self.ceiling!r}")
        if not (self.target_seconds > 0 and math.isfinite(self.target_seconds)):
            raise ValueError(f"target delay must be a positive number of seconds, "
                             f"got {self.target_seconds!r}")


class RoundTrips:
    """One connection's round trips: the base (windowed minimum) and the filtered current one."""

    def __init__(self) -> None:
        self._minute_minima: deque[tuple[int, float]] = deque(maxlen=BASE_MINUTES)
        self._recent: deque[float] = deque(maxlen=CURRENT_SAMPLES)

    def observe(self, now: float, rtt_seconds: float) -> None:
        """One round-trip sample of the connection at ``now``."""
        if not (rtt_seconds > 0 and math.isfinite(rtt_seconds)):
            return
        minute = int(now // 60)
        if self._minute_minima and self._minute_minima[-1][0] == minute:
            last = self._minute_minima[-1][1]
            self._minute_minima[-1] = (minute, min(last, rtt_seconds))
        else:
            self._minute_minima.append((minute, rtt_seconds))
        # forget minima older than the window even when minutes passed without samples
        while self._minute_minima and self._minute_minima[0][0] <= minute - BASE_MINUTES:
            self._minute_minima.popleft()
        self._recent.append(rtt_seconds)

    @property
    def base_rtt(self) -> float | None:
        """The line's base round trip (seconds), ``None`` before any sample."""
        return min(m for _, m in self._minute_minima) if self._minute_minima else None

    @property
    def current_rtt(self) -> float | None:
        """The filtered current round trip (seconds), ``None`` before any sample."""
        return min(self._recent) if self._recent else None

    @property
    def queueing_delay(self) -> float | None:
        """How long bytes wait in the line's queues now (seconds)."""
        base, current = self.base_rtt, self.current_rtt
        return None if base is None or current is None else max(0.0, current - base)


class DelayController:
    """The rate of one automatic cap; see the module doc.

    A peer's controller follows its own connection's :class:`RoundTrips`
    (:meth:`observe`, :meth:`update`); the node's follows a queueing delay found
    from several connections (:meth:`steer`).
    """

    def __init__(self, settings: DelaySettings, now: float) -> None:
        self.settings = settings
        start = settings.start if settings.start is not None else 4 * settings.floor
        self._rate = min(max(start, settings.floor), settings.ceiling)
        self.round_trips = RoundTrips()
        self._last_update = now
        self._knee: float | None = None
        self._backing_off = False

    # -- measurements ------------------------------------------------------------

    def observe(self, now: float, rtt_seconds: float) -> None:
        """One round-trip sample of the peer's connection at ``now``."""
        self.round_trips.observe(now, rtt_seconds)

    @property
    def base_rtt(self) -> float | None:
        """The line's base round trip (seconds), ``None`` before any sample."""
        return self.round_trips.base_rtt

    @property
    def current_rtt(self) -> float | None:
        """The filtered current round trip (seconds), ``None`` before any sample."""
        return self.round_trips.current_rtt

    @property
    def queueing_delay(self) -> float | None:
        """How long bytes wait in the line's queues now (seconds)."""
        return self.round_trips.queueing_delay

    @property
    def rate(self) -> float:
        """The rate chosen (bytes/s)."""
        return self._rate

    # -- control -------------------------------------------------------------------

    def update(self, now: float, sent_rate: float) -> float:
        """The rate from ``now`` on, given what the peer was sent lately (bytes/s)."""
        return self.steer(now, sent_rate, self.queueing_delay)

    def steer(self, now: float, sent_rate: float, queueing: float | None) -> float:
        """The rate from ``now`` on, given what was sent lately (bytes/s) and the
        queueing delay now (seconds; ``None``: not measured)."""
        elapsed = max(0.0, now - self._last_update)
        self._last_update = now
        if queueing is None or elapsed == 0.0:
            return self._rate
        target = self.settings.target_seconds
        setpoint = SETPOINT_OF_TARGET * target
        rate = self._rate
        if queueing <= setpoint:
            self._backing_off = False
            under = (setpoint - queueing) / setpoint
            step = max(MIN_STEP_BYTES, GROWTH_PER_SECOND * rate) * under * elapsed
            if self._knee is not None and (1 - KNEE_BAND) * self._knee <= rate < self._knee:
                step *= KNEE_GROWTH
            used = max(2.0 * sent_rate, self.settings.floor)
            rate = rate if rate >= used else min(rate + step, used)
        else:
            if not self._backing_off:  # the queue began at this rate
                self._knee, self._backing_off = rate, True
            over = min((queueing - setpoint) / target, MAX_OVERSHOOT_TARGETS)
            rate -= BACKOFF_PER_SECOND * over * rate * min(elapsed, 1.0)
        self._rate = min(max(rate, self.settings.floor), self.settings.ceiling)
        return self._rate

    def set_limits(self, floor: float | None = None, ceiling: float | None = None) -> None:
        """Change the floor or ceiling (the node cap changed); the rate is kept within."""
        self.settings = attrs.evolve(
            self.settings,
            floor=self.settings.floor if floor is None else floor,
            ceiling=self.settings.ceiling if ceiling is None else ceiling,
        )
        self._rate = min(max(self._rate, self.settings.floor), self.settings.ceiling)
