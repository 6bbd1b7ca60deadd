"""Test doubles and harnesses for the meters and budgets (used by tests and benchmarks).

- :class:`FakeCounters`: synthetic :class:`~tahoe_governor.throttle.counters.SystemCounters`
  whose counters advance only when told.
- :func:`simulate_yield`: the yield loop closed in a deterministic simulation
  on a ``task.Clock``: a fake interface whose traffic is our governed flow
  plus a competing flow, the real :class:`~tahoe_governor.throttle.meters.Meters`
  and :class:`~tahoe_governor.throttle.other_traffic.OtherTrafficEstimate`,
  a limit rule, and our flow following the limit with a lag.
- :func:`run_gated_hashing`: a real CPU-bound loop (hashing) under a CPU
  budget on a real reactor, measuring the process's CPU share.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock

from tahoe_governor.throttle.counters import PsutilCounters, SystemCounters
from tahoe_governor.throttle.cpu_budget import JobCpuBudgets
from tahoe_governor.throttle.link_capacity import LinkCapacityEstimate
from tahoe_governor.throttle.meters import Meters, MeterTick
from tahoe_governor.throttle.other_traffic import OtherTrafficEstimate
from tahoe_governor.throttle.reactor_clock import ReactorClock


class FakeCounters:
    """Synthetic system counters: nothing moves unless a test moves it.

    ``interfaces`` maps names to their addresses; ``routes`` maps a peer
    address to the local address used to reach it (loopback peers need no
    route: they go from ``127.0.0.1`` / ``::1``).
    """

    def __init__(
        self,
        cpu_count: int = 2,
        interfaces: Mapping[str, Sequence[str]] | None = None,
        routes: Mapping[str, str] | None = None,
    ) -> None:
        self._cpu_count = cpu_count
        self._addresses = dict(
            interfaces
            if interfaces is not None
            else {"lo": ["127.0.0.1", "::1"], "eth0": ["192.0.2.10"]}
        )
        self._routes = dict(routes or {})
        self.process = 0.0
        self.machine_busy = 0.0
        self.nic: dict[str, list[int]] = {name: [0, 0] for name in self._addresses}

    def run_process(self, cpu_seconds: float) -> None:
        """This process uses ``cpu_seconds`` (the machine's busy time grows too)."""
        self.process += cpu_seconds
        self.machine_busy += cpu_seconds

    def run_others(self, cpu_seconds: float) -> None:
        """Other processes use ``cpu_seconds``."""
        self.machine_busy += cpu_seconds

    def transfer(self, name: str, sent: int = 0, received: int = 0) -> None:
        """Interface ``name`` counts ``sent`` and ``received`` more bytes."""
        self.nic[name][0] += sent
        self.nic[name][1] += received

    def process_cpu_seconds(self) -> float:
        return self.process

    def machine_busy_cpu_seconds(self) -> float:
        return self.machine_busy

    def cpu_count(self) -> int:
        return self._cpu_count

    def interface_bytes(self, name: str) -> tuple[int, int]:
        if name not in self.nic:
            raise ValueError(f"no network interface {name!r}")
        sent, received = self.nic[name]
        return sent, received

    def interface_addresses(self) -> Mapping[str, Sequence[str]]:
        return self._addresses

    def source_address(self, peer: str) -> str:
        address = ipaddress.ip_address(peer)
        if address.is_loopback:
            return "::1" if address.version == 6 else "127.0.0.1"
        try:
            return self._routes[peer]
        except KeyError:
            raise ValueError(f"no route to {peer!r}") from None


# The yield loop, simulated


@attrs.frozen
class YieldScenario:
    """A link, a busy threshold, and a competing flow that starts and stops (bytes/s, s)."""

    capacity: float = 125_000.0
    """The link's capacity: 1 Mbit/s."""
    busy_fraction: float = 0.8
    floor: float = 6_250.0
    """The governed traffic's floor (5 % of the capacity)."""
    competing: float = 50_000.0
    """Mean rate of the competing flow while it runs."""
    competing_noise: float = 0.2
    """The competing flow's rate varies by up to this fraction, drawn anew every tick."""
    starts_at: float = 20.0
    stops_at: float = 40.0
    duration: float = 60.0
    tick_seconds: float = 0.25
    step_seconds: float = 0.03125
    """The simulation's time step (finer than the meters' tick)."""
    follow_seconds: float = 0.25
    """Time constant with which our flow follows its limit (TCP ramp, shaper)."""
    interface_delay: float = 0.1
    """Seconds between our counting a byte and the interface counting it."""
    seed: int = 1


@attrs.frozen
class YieldTrace:
    """Per-tick series of a simulation (bytes/s), and the figures drawn from it."""

    scenario: YieldScenario
    times: np.ndarray
    governed: np.ndarray
    """Our governed rate during each tick."""
    limit: np.ndarray
    """The limit in force after each tick."""
    other: np.ndarray
    """The smoothed estimate of the other traffic after each tick."""
    link: np.ndarray
    """What the interface counted during each tick."""

    def target(self, competing: bool) -> float:
        """The governed rate the rule aims at, with or without the competing flow."""
        s = self.scenario
        other = s.competing if competing else 0.0
        return max(s.floor, s.busy_fraction * s.capacity - other)

    def per_second(self, series: np.ndarray) -> np.ndarray:
        """``series`` as trailing one-second means (the first ticks average what exists)."""
        width = max(1, round(1.0 / self.scenario.tick_seconds))
        sums = np.cumsum(np.concatenate([[0.0], series]))
        ends = np.arange(1, len(series) + 1)
        begins = np.maximum(ends - width, 0)
        return (sums[ends] - sums[begins]) / (ends - begins)

    def _settle(self, begin: float, end: float, ok: Callable[[np.ndarray], np.ndarray]) -> float:
        """Seconds after ``begin`` from which ``ok`` holds for the governed 1 s mean until ``end``.

        ``inf`` if it never settles. A tick's time is the end of the tick.
        """
        phase = (self.times > begin) & (self.times <= end)
        times, good = self.times[phase], ok(self.per_second(self.governed)[phase])
        bad = np.nonzero(~good)[0]
        if bad.size == 0:
            return 0.0
        if bad[-1] == len(times) - 1:
            return math.inf
        return float(times[bad[-1]] - begin)

    def figures(self) -> dict[str, Any]:
        """Reaction times, steady-state wobble and the link's load while both flows run.

        - ``down_seconds``: from the competing flow's start until the governed
          rate's one-second mean stays at or below 110 % of its new target;
        - ``up_seconds``: from its stop until that mean stays at or above 90 %
          of the target without competition;
        - ``steady_*``: the governed rate's mean (and its ratio to the target)
          and its largest deviation from that mean, as a fraction of it, over
          one-second means and over single ticks (0.25 s), in the 5 s before
          the competing flow starts and from 5 s after it starts until it stops;
        - ``link_total_over_busy_threshold_*``: the interface's rate over the
          busy threshold from 2 s after the competing flow starts until it
          stops: mean, and the largest one-second mean.
        """
        s = self.scenario
        busy_rate = s.busy_fraction * s.capacity
        down_target, up_target = self.target(True), self.target(False)
        down = self._settle(s.starts_at, s.stops_at, lambda g: g <= 1.1 * down_target)
        up = self._settle(s.stops_at, s.duration, lambda g: g >= 0.9 * up_target)
        governed_1s = self.per_second(self.governed)

        def wobble(begin: float, end: float, target: float) -> dict[str, float]:
            phase = (self.times > begin) & (self.times <= end)
            ticks, seconds = self.governed[phase], governed_1s[phase]
            mean = float(ticks.mean())
            return {
                "mean_bytes_per_second": round(mean, 1),
                "mean_over_target": round(mean / target, 4),
                "max_deviation_1s": round(float(np.abs(seconds - mean).max()) / mean, 4),
                "max_deviation_per_tick": round(float(np.abs(ticks - mean).max()) / mean, 4),
            }

        both = (self.times > s.starts_at + 2.0) & (self.times <= s.stops_at)
        link_1s = self.per_second(self.link)[both]
        return {
            "down_seconds": round(down, 3),
            "up_seconds": round(up, 3),
            "steady_alone": wobble(s.starts_at - 5.0, s.starts_at, up_target),
            "steady_competing": wobble(s.starts_at + 5.0, s.stops_at, down_target),
            "link_total_over_busy_threshold_mean": round(
                float(self.link[both].mean()) / busy_rate, 4
            ),
            "link_total_over_busy_threshold_max_1s": round(float(link_1s.max()) / busy_rate, 4),
        }


def simulate_yield(
    rule: Callable[[float, float, float, float], float],
    scenario: YieldScenario = YieldScenario(),
    other_traffic: OtherTrafficEstimate | None = None,
) -> YieldTrace:
    """Run ``scenario`` with the real meters on a ``task.Clock``; return the trace.

    ``rule(capacity, busy_fraction, other, floor)`` gives the governed limit
    (bytes/s) after every tick from the meters' smoothed ``other_up``.
    """
    s = scenario
    clock = Clock()
    counters = FakeCounters(interfaces={"eth0": ["192.0.2.10"]})
    own = [0]
    meters = Meters(
        clock,
        counters,
        ["eth0"],
        own_bytes=lambda: (own[0], 0),
        tick_seconds=s.tick_seconds,
        capacity=LinkCapacityEstimate(s.tick_seconds, (s.capacity, s.capacity)),
        other_traffic=other_traffic or OtherTrafficEstimate(s.tick_seconds),
    )
    rng = random.Random(s.seed)
    limit = [rule(s.capacity, s.busy_fraction, 0.0, s.floor)]
    rows: list[tuple[float, float, float, float, float]] = []

    def on_tick(tick: MeterTick) -> None:
        other = meters.readings().other_up
        limit[0] = rule(s.capacity, s.busy_fraction, other, s.floor)
        rows.append(
            (
                tick.now,
                tick.own_bytes[0] / tick.seconds,
                limit[0],
                other,
                tick.interface_bytes[0] / tick.seconds,
            )
        )

    meters.subscribe(on_tick)
    meters.start()
    rate = limit[0]
    in_flight: deque[tuple[float, float]] = deque()  # (time the interface counts it, bytes)
    carry = 0.0  # fractions of a byte not yet counted by the interface
    competing = 0.0
    steps_per_tick = round(s.tick_seconds / s.step_seconds)
    follow = 1.0 - math.exp(-s.step_seconds / s.follow_seconds)
    for step in range(round(s.duration / s.step_seconds)):
        now = step * s.step_seconds
        if step % steps_per_tick == 0:
            noise = 1.0 + s.competing_noise * rng.uniform(-1.0, 1.0)
            competing = s.competing * noise if s.starts_at <= now < s.stops_at else 0.0
        rate += (min(limit[0], s.capacity) - rate) * follow
        ours = rate * s.step_seconds
        own[0] += round(ours)
        in_flight.append((now + s.interface_delay, ours))
        link = competing * s.step_seconds
        while in_flight and in_flight[0][0] <= now + 1e-9:
            link += in_flight.popleft()[1]
        carry += link
        whole = int(carry)
        counters.transfer("eth0", sent=whole)
        carry -= whole
        clock.advance(s.step_seconds)
    meters.stop()
    table = np.array(rows)
    return YieldTrace(
        scenario=s,
        times=table[:, 0],
        governed=table[:, 1],
        limit=table[:, 2],
        other=table[:, 3],
        link=table[:, 4],
    )


# A real CPU-bound loop under a budget


@inlineCallbacks
def run_gated_hashing(
    reactor: ReactorClock,
    budget: float,
    seconds: float,
    counters: SystemCounters | None = None,
    chunk_bytes: int = 64 * 1024,
) -> Any:
    """Hash data in a loop gated at ``budget`` (share of one core) for ``seconds``.

    Returns (through a Deferred) a dict: ``cpu_share`` (the process's CPU
    seconds over the clock's seconds during the run), ``cpu_seconds``,
    ``seconds``, ``hashed_bytes`` and ``charged_share`` (the job's 10 s mean
    as the budgets saw it at the end).
    """
    counters = counters or PsutilCounters()
    meters = Meters(reactor, counters, [])
    budgets = JobCpuBudgets(reactor, meters.tick_seconds)
    gate = budgets.add_job("hashing", budget)

    def charge(tick: MeterTick) -> None:
        budgets.charge_tick(tick.process_cpu_seconds, tick.machine_idle)

    meters.subscribe(charge)
    data = os.urandom(chunk_bytes)
    digest = hashlib.sha256()
    hashed = 0
    meters.start()
    start, start_cpu = reactor.seconds(), counters.process_cpu_seconds()
    try:
        while reactor.seconds() - start < seconds:
            yield gate.gate()
            digest.update(data)
            hashed += chunk_bytes
            budgets.record_work("hashing", chunk_bytes)
    finally:
        meters.stop()
    elapsed = reactor.seconds() - start
    cpu = counters.process_cpu_seconds() - start_cpu
    return {
        "budget": budget,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "cpu_share": cpu / elapsed,
        "hashed_bytes": hashed,
        "charged_share": budgets.usage("hashing"),
    }
