"""A laptop that sleeps, a clock set forward or back: the governor follows the new time.

The real Governor on an injected clock (as in the two-day test), with a fake
monotonic clock beside it. A step is made the worst way round: the wall clock
moves without any timer running, the watch looks first (as its thread may,
before the reactor runs its overdue timers), then time goes on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.task import Clock

from tahoe_governor.app import build_governor
from tahoe_governor.node.governor import Governor
from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.policy.state_db import StateDatabase
from tahoe_governor.throttle.testing import FakeCounters
from tests.node.test_governor import PARENTS, UTC, FakeClient, FakeServer
from tests.node.test_two_days import CONFIG, HOUR, THURSDAY_NOON, TimedWalkers

FRIDAY_0530 = THURSDAY_NOON + 17.5 * HOUR
"""Inside b1's window (2200-0600 UTC), which ends at 06:00."""
WINDOW_END = THURSDAY_NOON + 18 * HOUR


class SteppedClocks:
    """The reactor's wall clock and a monotonic clock; time passes on both, steps on one."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.monotonic = 0.0

    def run(self, seconds: float, governor: Governor, tick: float = 0.25) -> None:
        for _ in range(round(seconds / tick)):
            self.clock.advance(tick)
            self.monotonic += tick
            governor.clock_steps.check()

    def step(self, seconds: float, governor: Governor) -> None:
        self.clock.rightNow += seconds  # no timer runs at the step itself
        governor.clock_steps.check()
        self.clock.advance(0)  # then the overdue timers


@pytest.fixture
def running(tmp_path: Path) -> tuple[Governor, SteppedClocks]:
    """b1 running at 05:30, half an hour before its window ends."""
    clock = Clock()
    clock.advance(FRIDAY_0530)
    clocks = SteppedClocks(clock)
    client = FakeClient(clock)
    client.storage_broker.servers = [FakeServer(PARENTS, "parents")]
    governor = build_governor(
        clock, client, str(tmp_path), parse_policy_text(CONFIG, UTC),
        StateDatabase(str(tmp_path / "governor.sqlite")), counters=FakeCounters(),
        walkers=TimedWalkers(clock, client, str(tmp_path)),
        monotonic=lambda: clocks.monotonic,
    )
    governor.start()
    client.storage_broker.connected_enough.callback(None)
    assert state(governor) == "running"
    return governor, clocks


def state(governor: Governor) -> str:
    return governor.scheduler.runners["b1"].lifecycle.state


def test_a_sleep_past_the_window_end_suspends_at_once(
        running: tuple[Governor, SteppedClocks]) -> None:
    """Asleep from 05:30 to 07:30: on waking the job is suspended within a second, and
    its next start is the next window, not two hours after the window's old end."""
    governor, clocks = running
    clocks.step(2 * HOUR, governor)
    clocks.run(1.0, governor)
    assert state(governor) == "suspended"
    assert governor.clock_steps.steps == [pytest.approx(2 * HOUR)]
    assert governor.live.current.next_change is not None
    assert governor.live.current.next_change <= WINDOW_END + 16 * HOUR  # 22:00


def test_a_clock_set_back_keeps_the_job_working_and_ends_it_at_the_new_06_00(
        running: tuple[Governor, SteppedClocks]) -> None:
    """Set back an hour at 05:30 (to 04:30): the run keeps advancing and the meters keep
    ticking through the next 90 minutes of the new time; the job is suspended at the new
    06:00 to the second, not an hour late or early."""
    governor, clocks = running
    walker = governor.scheduler.runners["b1"].walker
    ticks: list[float] = []
    governor.meters.subscribe(lambda tick: ticks.append(tick.now))
    clocks.step(-HOUR, governor)
    clocks.run(60.0, governor)
    # the run's one-second steps go on (the last within a second of now)
    assert 0.0 <= clocks.clock.seconds() - walker.last <= 1.0, "the run stalled"
    assert len(ticks) >= 4 * 59, "the meters stalled after the step back"
    until_a_second_before = WINDOW_END - 1.0 - clocks.clock.seconds()
    clocks.run(until_a_second_before, governor, tick=until_a_second_before / 200)
    assert state(governor) == "running"
    clocks.run(2.0, governor)
    assert state(governor) == "suspended"
