"""Meters: CPU use and link traffic, sampled on the injected reactor clock and smoothed.

:class:`Meters` reads a :class:`~tahoe_governor.throttle.counters.SystemCounters`
(psutil in production, synthetic counters in tests) every ``tick_seconds``
(0.25 s, at least 4 Hz) from a ``LoopingCall`` on the injected clock, turns the
cumulative counters into per-tick amounts, and feeds them to the numpy
estimators:

================================  ==========================================
reading                           unit and smoothing
================================  ==========================================
``process_cpu``                   share of one core; EWMA, half-life 1 s
``process_cpu_10s``               share of one core; exact mean over 10 s
``machine_cpu``                   fraction of all cores (0..1); EWMA 1 s
``other_cpu``                     all cores except this process's use,
                                  fraction of all cores; mean over 1 s
``machine_idle``                  see :class:`IdleRule`
``link_up`` / ``link_down``       interface bytes/s; EWMA 1 s
``own_up`` / ``own_down``         our governed bytes/s; EWMA 1 s
``other_up`` / ``other_down``     :class:`~.other_traffic.OtherTrafficEstimate`
``capacity_up`` / ``capacity_down`` :class:`~.link_capacity.LinkCapacityEstimate`
================================  ==========================================

Each tick is also handed, as a :class:`MeterTick` of raw amounts, to every
subscriber (the jobs' CPU budgets charge their CPU seconds from it).

"Our own bytes" come from a callable the caller supplies (the shaper's totals
of governed bytes sent and received); reading them in the same tick as the
interface keeps the two aligned.

If the reactor falls behind and a tick comes late, the amounts of the missed
ticks are spread evenly over them (at most 40 ticks, 10 s, are replayed into
the estimators). A counter that goes backwards (an interface re-created) counts
as zero for that tick.

A tick that raises (a counter that cannot be read, a subscriber's fault) never
stops the sampling: the error is logged and the next tick comes as usual
(the readings keep their last values meanwhile; a counter not read in the
failed tick is counted in full by the next good one). A fault that repeats every tick
is logged once at once, then at most once every :data:`FAULT_LOG_SECONDS`
(with the number of failures since), and once more when the ticks work again
(:class:`RepeatedFaultLog`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import attrs
import numpy as np
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from tahoe_governor.throttle.counters import SystemCounters
from tahoe_governor.throttle.estimators import EwmaRate, WindowRate
from tahoe_governor.throttle.link_capacity import LinkCapacityEstimate
from tahoe_governor.throttle.other_traffic import OtherTrafficEstimate
from tahoe_governor.throttle.reactor_clock import ReactorClock

DEFAULT_TICK_SECONDS = 0.25
MAX_TICK_SECONDS = 0.25
"""The meters sample at least 4 times a second."""

MAX_CATCHUP_TICKS = 40

FAULT_LOG_SECONDS = 60.0
"""A fault repeated every tick is logged at most once per this many seconds."""

log = Logger()

_US = 1_000_000  # CPU time is kept in whole microseconds by the windowed estimators


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _fraction(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{attribute.name} must be a fraction within (0, 1], got {value!r}")


@attrs.frozen
class IdleRule:
    """When the machine counts as idle (for ``cpu.idle`` budgets).

    The machine is idle when the CPU use of everything *except this process*
    (machine busy time minus this process's CPU time), averaged over the last
    second and taken as a fraction of all cores, has stayed below
    ``threshold`` for the last ``hold_seconds``. One second at or above the
    threshold ends idleness at once; it starts again only after another
    ``hold_seconds``. Right after the meters start, the machine is not idle
    until ``hold_seconds`` have been measured.
    """

    threshold: float = attrs.field(default=0.10, validator=_fraction)
    """Fraction of all cores (0.10: 10 % of the machine)."""

    hold_seconds: float = attrs.field(default=60.0, validator=_positive)
    """Seconds the other processes' CPU use must stay below the threshold."""


@attrs.frozen
class MeterTick:
    """The raw amounts of one tick (or of several missed ticks taken together)."""

    now: float
    """Clock time (seconds) at the end of the tick."""
    seconds: float
    """Length of the tick(s) in seconds (a multiple of ``tick_seconds``)."""
    process_cpu_seconds: float
    """CPU seconds this process used."""
    machine_busy_cpu_seconds: float
    """Non-idle CPU seconds of the whole machine, all cores (this process included)."""
    interface_bytes: tuple[int, int]
    """``(sent, received)`` bytes counted on the watched interface(s)."""
    own_bytes: tuple[int, int]
    """``(sent, received)`` governed bytes of our own."""
    machine_idle: bool
    """Whether the machine is idle after this tick (:class:`IdleRule`)."""


@attrs.frozen
class MeterReadings:
    """A snapshot of the smoothed measurements (see the module table for units)."""

    now: float
    interfaces: tuple[str, ...]
    cpu_count: int
    process_cpu: float
    process_cpu_10s: float
    machine_cpu: float
    other_cpu: float
    machine_idle: bool
    link_up: float
    link_down: float
    own_up: float
    own_down: float
    other_up: float
    other_down: float
    capacity_up: float
    capacity_down: float


class RepeatedFaultLog:
    """Logs the faults of something done every tick without flooding the log.

    The first fault is logged at once with its traceback; while faults go on,
    at most one line per ``interval`` seconds (on ``clock``), counting the
    failures since the last line; the first success after faults is logged
    once. ``what`` names the thing that failed, e.g. "a meter tick".
    """

    def __init__(self, clock: ReactorClock, what: str,
                 interval: float = FAULT_LOG_SECONDS) -> None:
        self._clock = clock
        self._what = what
        self._interval = interval
        self._logged_at: float | None = None
        self._since_logged = 0
        self.failures = 0
        """Failures in a row, up to now (0 while all goes well)."""
        self.reports = 0
        """Lines logged about failures so far."""

    def failed(self, failure: Failure) -> None:
        """Record one failure (with the exception being handled)."""
        now = self._clock.seconds()
        self.failures += 1
        self._since_logged += 1
        if self._logged_at is None or now - self._logged_at >= self._interval:
            log.failure("{what} failed ({n} failures since the last report); it goes on "
                        "every tick, reported at most every {interval:.0f} s",
                        failure, what=self._what, n=self._since_logged,
                        interval=self._interval)
            self.reports += 1
            self._logged_at = now
            self._since_logged = 0

    def succeeded(self) -> None:
        """Record a success: after failures, say once that it works again."""
        if self.failures:
            log.info("{what} works again after {n} failures in a row",
                     what=self._what, n=self.failures)
        self.failures = 0
        self._since_logged = 0
        self._logged_at = None


def _split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` whole numbers that differ by at most one."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class Meters:
    """Samples ``counters`` on ``clock`` and keeps the smoothed readings.

    ``interfaces`` are the interface names whose counters are summed into the
    link (see :func:`~tahoe_governor.throttle.counters.choose_interfaces`).
    ``own_bytes`` returns our governed ``(sent, received)`` byte totals so far.
    ``capacity`` and ``other_traffic`` may be given pre-configured (for
    instance a capacity restored from the state database); they must use the
    same ``tick_seconds``.
    """

    def __init__(
        self,
        clock: ReactorClock,
        counters: SystemCounters,
        interfaces: Sequence[str],
        *,
        own_bytes: Callable[[], tuple[int, int]] | None = None,
        tick_seconds: float = DEFAULT_TICK_SECONDS,
        idle_rule: IdleRule = IdleRule(),
        capacity: LinkCapacityEstimate | None = None,
        other_traffic: OtherTrafficEstimate | None = None,
        half_life_seconds: float = 1.0,
    ) -> None:
        if not 0 < tick_seconds <= MAX_TICK_SECONDS:
            raise ValueError(
                f"tick_seconds must be within (0, {MAX_TICK_SECONDS}] (at least 4 Hz), "
                f"got {tick_seconds!r}"
            )
        self._clock = clock
        self._counters = counters
        self._own_bytes = own_bytes or (lambda: (0, 0))
        self.tick_seconds = float(tick_seconds)
        self.idle_rule = idle_rule
        self.capacity = capacity or LinkCapacityEstimate(tick_seconds)
        self.other_traffic = other_traffic or OtherTrafficEstimate(tick_seconds)
        for name, part in (("capacity", self.capacity), ("other_traffic", self.other_traffic)):
            if part.tick_seconds != self.tick_seconds:
                raise ValueError(
                    f"{name} uses ticks of {part.tick_seconds} s, the meters {tick_seconds} s"
                )
            if part.channels != 2:
                raise ValueError(f"{name} must have 2 channels (up, down), has {part.channels}")
        self._cpu_count = max(1, int(counters.cpu_count()))
        self._cpu_ewma = EwmaRate(tick_seconds, half_life_seconds, channels=3)
        self._cpu_10s = WindowRate(tick_seconds, max(1, round(10.0 / tick_seconds)), channels=1)
        self._other_cpu_1s = WindowRate(tick_seconds, max(1, round(1.0 / tick_seconds)))
        self._link_ewma = EwmaRate(tick_seconds, half_life_seconds, channels=4)
        self._subscribers: list[Callable[[MeterTick], None]] = []
        self.tick_faults = RepeatedFaultLog(clock, "a meter tick")
        """Faults of the ticks (counted and logged without flooding)."""
        self._loop: LoopingCall | None = None
        self._interfaces = tuple(interfaces)
        self._last_interface: dict[str, tuple[int, int]] = {}
        self._last_process = 0.0
        self._last_busy = 0.0
        self._last_own = (0, 0)
        self._started_at = 0.0
        self._busy_at = 0.0
        self._idle = False
        self._now = 0.0

    # Lifecycle

    def start(self) -> None:
        """Read the counters as a baseline and start sampling every tick."""
        if self._loop is not None:
            raise RuntimeError("the meters are already running")
        self._now = self._started_at = self._busy_at = self._clock.seconds()
        self._last_process = self._counters.process_cpu_seconds()
        self._last_busy = self._counters.machine_busy_cpu_seconds()
        self._last_own = self._own_bytes()
        self._last_interface = {name: self._read_interface(name) for name in self._interfaces}
        # Not LoopingCall.withCount: after the wall clock steps back it calls nothing until
        # the clock is back at its last tick. The ticks elapsed are counted here instead.
        loop = LoopingCall(self._tick_elapsed)
        loop.clock = cast(IReactorTime, self._clock)
        self._loop = loop
        loop.start(self.tick_seconds, now=False)

    def stop(self) -> None:
        """Stop sampling (the readings keep their last values)."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    @property
    def running(self) -> bool:
        return self._loop is not None

    def subscribe(self, callback: Callable[[MeterTick], None]) -> None:
        """Call ``callback(tick)`` after every tick."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[MeterTick], None]) -> None:
        self._subscribers.remove(callback)

    @property
    def interfaces(self) -> tuple[str, ...]:
        return self._interfaces

    def set_interfaces(self, interfaces: Sequence[str]) -> None:
        """Watch other interface(s) from now on (their counters start from now)."""
        self._interfaces = tuple(interfaces)
        self._last_interface = {name: self._read_interface(name) for name in self._interfaces}

    # Readings

    def readings(self) -> MeterReadings:
        """The current smoothed measurements."""
        cpu = self._cpu_ewma.rates(3)
        link = self._link_ewma.rates(4)
        other = self.other_traffic.rates()
        capacity = self.capacity.capacities()
        return MeterReadings(
            now=self._now,
            interfaces=self._interfaces,
            cpu_count=self._cpu_count,
            process_cpu=float(cpu[0]),
            process_cpu_10s=self._cpu_10s.rate(0) / _US,
            machine_cpu=float(cpu[1]) / self._cpu_count,
            other_cpu=self._other_cpu_fraction(),
            machine_idle=self._idle,
            link_up=float(link[0]),
            link_down=float(link[1]),
            own_up=float(link[2]),
            own_down=float(link[3]),
            other_up=float(other[0]),
            other_down=float(other[1]),
            capacity_up=float(capacity[0]),
            capacity_down=float(capacity[1]),
        )

    def _other_cpu_fraction(self) -> float:
        return self._other_cpu_1s.rate(0) / _US / self._cpu_count

    # Sampling

    def _read_interface(self, name: str) -> tuple[int, int]:
        try:
            return self._counters.interface_bytes(name)
        except ValueError:
            # The interface has gone (a VPN went down): it carries nothing now.
            return self._last_interface.get(name, (0, 0))

    def _tick_elapsed(self) -> None:
        elapsed = self._clock.seconds() - self._now
        self._tick(max(1, round(elapsed / self.tick_seconds)))

    def _tick(self, count: int) -> None:
        # Whatever fails here, the LoopingCall must not see it: it would stop.
        try:
            tick = self._sample(count)
        except Exception:
            self.tick_faults.failed(Failure())
            return
        ok = True
        for callback in list(self._subscribers):
            try:
                callback(tick)
            except Exception:  # one subscriber's fault stops neither the others nor the loop
                ok = False
                self.tick_faults.failed(Failure())
        if ok:
            self.tick_faults.succeeded()

    def _sample(self, count: int) -> MeterTick:
        """Read the counters, update the estimators; the tick's raw amounts."""
        now = self._clock.seconds()
        self._now = now
        process = self._counters.process_cpu_seconds()
        busy = self._counters.machine_busy_cpu_seconds()
        process_delta = max(0.0, process - self._last_process)
        busy_delta = max(process_delta, busy - self._last_busy)
        self._last_process, self._last_busy = process, busy

        sent = received = 0
        for name in self._interfaces:
            now_sent, now_received = self._read_interface(name)
            last_sent, last_received = self._last_interface.get(name, (now_sent, now_received))
            sent += max(0, now_sent - last_sent)
            received += max(0, now_received - last_received)
            self._last_interface[name] = (now_sent, now_received)
        own = self._own_bytes()
        own_sent = max(0, own[0] - self._last_own[0])
        own_received = max(0, own[1] - self._last_own[1])
        self._last_own = own

        steps = max(1, min(count, MAX_CATCHUP_TICKS))
        cpu_step = np.array([process_delta, busy_delta, busy_delta - process_delta]) / steps
        cpu_us = _split(round(process_delta * _US), steps)
        other_us = _split(round((busy_delta - process_delta) * _US), steps)
        link_steps = [_split(total, steps) for total in (sent, received, own_sent, own_received)]
        for i in range(steps):
            self._cpu_ewma.update(cpu_step)
            self._cpu_10s.update([cpu_us[i]])
            self._other_cpu_1s.update([other_us[i]])
            link = [link_steps[0][i], link_steps[1][i]]
            ours = [link_steps[2][i], link_steps[3][i]]
            self._link_ewma.update(link + ours)
            self.other_traffic.update(link, ours)
            self.capacity.update(link)

        if self._other_cpu_fraction() >= self.idle_rule.threshold:
            self._busy_at = now
        self._idle = now - self._busy_at >= self.idle_rule.hold_seconds

        return MeterTick(
            now=now,
            seconds=max(1, count) * self.tick_seconds,
            process_cpu_seconds=process_delta,
            machine_busy_cpu_seconds=busy_delta,
            interface_bytes=(sent, received),
            own_bytes=(own_sent, own_received),
            machine_idle=self._idle,
        )
