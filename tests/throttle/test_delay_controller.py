"""The delay-based controller over fixed instants: samples in, the rate out."""

from __future__ import annotations

import pytest

from tahoe_governor.throttle.delay_controller import (
    BASE_MINUTES,
    DelayController,
    DelaySettings,
)

FLOOR = 1_000.0
t0 = 1_000_000.0


def controller(start: float = 50_000.0, ceiling: float = float("inf"),
               target: float = 0.025) -> DelayController:
    return DelayController(DelaySettings(floor=FLOOR, ceiling=ceiling, target_seconds=target,
                                         start=start), now=t0)


@pytest.mark.parametrize(
    ("queued", "sent", "expected", "why"),
    [
        (None, 50_000.0, 50_000.0, "no samples: the rate stays"),
        (0.0, 50_000.0, 52_500.0, "no queue, rate in use: +5% in one second"),
        (0.0125, 50_000.0, 51_250.0, "half the target queued: half the growth"),
        (0.025, 50_000.0, 50_000.0, "exactly at the target: no change"),
        (0.050, 50_000.0, 37_500.0, "one target over: -25% in one second"),
        (0.075, 50_000.0, 25_000.0, "two targets over: -50%"),
        (0.5, 50_000.0, FLOOR, "far over (counted as 4 targets): down to the floor"),
        (0.0, 10_000.0, 50_000.0, "not using it: the rate does not grow"),
        (0.0, 25_500.0, 51_000.0, "grows only to twice what is sent"),
        (0.0, 1_000.0, 50_000.0, "...and never shrinks for it"),
    ],
)
def test_one_second_of_control(queued: float | None, sent: float, expected: float,
                               why: str) -> None:
    """Each row: the queueing delay seen during one second (over a 20 ms base) and the
    bytes/s sent; the rate after that second."""
    c = controller()
    if queued is not None:
        c.observe(t0 - 60, 0.020)
        for i in range(4):
            c.observe(t0 + 0.25 * i, 0.020 + queued)
    assert c.update(t0 + 1.0, sent) == pytest.approx(expected), why


def test_the_current_delay_is_the_minimum_of_the_last_two_samples() -> None:
    """One spike does not count as queueing; a queue that lasts two samples does."""
    c = controller()
    for i, rtt in enumerate([0.02, 0.02, 0.5, 0.02]):
        c.observe(t0 + i, rtt)
    assert c.queueing_delay == pytest.approx(0.0)
    for i, rtt in enumerate([0.06, 0.07, 0.065]):
        c.observe(t0 + 10 + i, rtt)
    assert (c.base_rtt, c.current_rtt) == (0.02, 0.065)  # the 0.06 is three samples old
    assert c.queueing_delay == pytest.approx(0.045)


def test_the_base_delay_forgets_minutes_older_than_the_window() -> None:
    """A line whose delay rose for good has its new base within BASE_MINUTES minutes."""
    c = controller()
    c.observe(t0, 0.010)
    for minute in range(1, BASE_MINUTES):
        c.observe(t0 + 60 * minute, 0.050)
    assert c.base_rtt == 0.010
    c.observe(t0 + 60 * BASE_MINUTES, 0.050)
    assert c.base_rtt == 0.050


@pytest.mark.parametrize("line", [125_000.0, 30_000.0])
@pytest.mark.parametrize("start", [10_000.0, 500_000.0])
def test_it_uses_a_simulated_modem_line_and_keeps_its_queue_short(
        line: float, start: float) -> None:
    """A 1 Mbit/s (or 240 kbit/s) modem line with a 256 KB buffer and a 20 ms base round
    trip, driven every 0.25 s for five minutes from below or far above the line's rate:
    over the last minute the line is at least 90 % used, the queue averages under the
    target and never reaches 150 ms (an ungoverned sender fills the buffer: 2 s, 8 s)."""
    buffer, base = 256_000.0, 0.020
    c = controller(start=start)
    queued, now, delivered, delays = 0.0, t0, [], []
    for _ in range(4 * 300):
        now += 0.25
        waiting = queued + c.rate * 0.25
        sent_on = min(waiting, line * 0.25)
        queued = min(buffer, waiting - sent_on)
        c.observe(now, base + queued / line)
        c.update(now, c.rate)
        delivered.append(sent_on / 0.25)
        delays.append(queued / line)
    last = slice(-4 * 60, None)
    assert sum(delivered[last]) / 240 >= 0.90 * line
    assert sum(delays[last]) / 240 < 0.025
    assert max(delays[last]) < 0.150


def test_floor_and_ceiling_bound_the_rate() -> None:
    """The ceiling (the node cap) and floor hold whatever the delay; moving them moves it."""
    c = controller(start=50_000.0, ceiling=60_000.0)
    for i in range(20):
        c.observe(t0 + i, 0.02)
        c.update(t0 + i + 1, 1e9)
    assert c.rate == 60_000.0
    c.set_limits(ceiling=30_000.0)
    assert c.rate == 30_000.0
    with pytest.raises(ValueError, match="ceiling must be at least the floor"):
        DelaySettings(floor=5_000.0, ceiling=1_000.0)
    with pytest.raises(ValueError, match="target delay"):
        DelaySettings(floor=5_000.0, target_seconds=0.0)
