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
        (0.0075, 50_000.0, 51_250.0, "half the setpoint (60% of the target): half the growth"),
        (0.015, 50_000.0, 50_000.0, "exactly at the setpoint: no change"),
        (0.040, 50_000.0, 37_500.0, "one target over the setpoint: -25% in one second"),
        (0.065, 50_000.0, 25_000.0, "two targets over: -50%"),
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


@pytest.mark.parametrize(
    ("rate_after_back_off", "expected_growth", "why"),
    [
        (40_000.0, 2_000.0, "far below the knee (50,000): the usual +5%"),
        (46_000.0, 460.0, "within 10 % below the knee: a fifth of it"),
        (52_000.0, 2_600.0, "above the knee (the line got faster): the usual again"),
    ],
)
def test_growth_slows_near_the_rate_where_the_last_back_off_began(
        rate_after_back_off: float, expected_growth: float, why: str) -> None:
    """A queue over the target at 50,000 bytes/s makes that rate the knee; one second
    without queue later, the rate grows by the row's amount from where it stands."""
    c = controller(start=50_000.0)
    c.observe(t0 - 60, 0.020)
    c.observe(t0, 0.070)
    c.observe(t0 + 0.1, 0.070)
    assert c.update(t0 + 0.5, 50_000.0) < 50_000.0  # backing off: the knee is 50,000
    c.set_limits(floor=rate_after_back_off, ceiling=rate_after_back_off)
    c.set_limits(floor=FLOOR, ceiling=float("inf"))  # the rate now stands at the row's
    for i in range(2):
        c.observe(t0 + 1 + 0.1 * i, 0.020)
    assert c.update(t0 + 1.5, 1e9) - rate_after_back_off == pytest.approx(expected_growth), why


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
