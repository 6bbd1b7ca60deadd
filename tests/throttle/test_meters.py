"""Meters on a task.Clock with synthetic counters: CPU shares, idleness, link rates."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tahoe_governor.throttle.meters import IdleRule, Meters, MeterTick
from tahoe_governor.throttle.testing import FakeCounters

TICK = 0.25


def started(counters: FakeCounters, **kwargs) -> tuple[Clock, Meters]:
    clock = Clock()
    meters = Meters(clock, counters, kwargs.pop("interfaces", ["eth0"]), **kwargs)
    meters.start()
    return clock, meters


def run(clock: Clock, seconds: float, each_tick) -> None:
    """Advance ``seconds`` tick by tick, calling ``each_tick()`` before each tick ends."""
    for _ in range(round(seconds / TICK)):
        each_tick()
        clock.advance(TICK)


def test_cpu_shares_from_synthetic_counters():
    """0.1 s of our CPU and 0.2 s of others' per 0.25 s tick on 2 cores read as expected."""
    counters = FakeCounters(cpu_count=2)
    clock, meters = started(counters)

    def work():
        counters.run_process(0.1)
        counters.run_others(0.2)

    run(clock, 20.0, work)
    r = meters.readings()
    assert r.process_cpu == pytest.approx(0.4, rel=1e-6)  # share of one core
    assert r.process_cpu_10s == pytest.approx(0.4, rel=1e-6)
    assert r.machine_cpu == pytest.approx(0.6, rel=1e-6)  # 1.2 cores of 2
    assert r.other_cpu == pytest.approx(0.4, rel=1e-6)  # 0.8 cores of 2
    assert r.now == 20.0


def test_ten_second_mean_is_exact_after_a_step():
    """5 s at one core after 10 s idle: the 10 s mean is exactly 0.5."""
    counters = FakeCounters()
    clock, meters = started(counters)
    run(clock, 10.0, lambda: None)
    run(clock, 5.0, lambda: counters.run_process(TICK))
    assert meters.readings().process_cpu_10s == pytest.approx(0.5)


def test_link_rates_sum_interfaces_and_subtract_our_bytes():
    """Two watched interfaces are summed; our own bytes give own_* and other_*."""
    counters = FakeCounters(interfaces={"eth0": ["192.0.2.1"], "wg0": ["198.51.100.1"]})
    own = [0, 0]
    clock, meters = started(counters, interfaces=["eth0", "wg0"], own_bytes=lambda: tuple(own))

    def traffic():
        counters.transfer("eth0", sent=10_000, received=2_500)
        counters.transfer("wg0", sent=5_000)
        own[0] += 12_000

    run(clock, 30.0, traffic)
    r = meters.readings()
    assert r.interfaces == ("eth0", "wg0")
    assert r.link_up == pytest.approx(60_000, rel=1e-6)
    assert r.link_down == pytest.approx(10_000, rel=1e-6)
    assert r.own_up == pytest.approx(48_000, rel=1e-6)
    assert r.other_up == pytest.approx(12_000, rel=1e-6)
    assert r.other_down == pytest.approx(10_000, rel=1e-6)


def test_counter_going_backwards_counts_as_zero():
    """A re-created interface (counter reset) is not a huge negative or positive rate."""
    counters = FakeCounters()
    clock, meters = started(counters)
    ticks: list[MeterTick] = []
    meters.subscribe(ticks.append)
    counters.transfer("eth0", sent=1000)
    clock.advance(TICK)
    counters.nic["eth0"] = [10, 0]
    clock.advance(TICK)
    counters.transfer("eth0", sent=90)
    clock.advance(TICK)
    assert [t.interface_bytes for t in ticks] == [(1000, 0), (0, 0), (90, 0)]


def test_vanished_interface_carries_nothing():
    """An interface that disappears reads as idle instead of stopping the meters."""
    counters = FakeCounters()
    clock, meters = started(counters)
    ticks: list[MeterTick] = []
    meters.subscribe(ticks.append)
    del counters.nic["eth0"]
    clock.advance(TICK)
    assert meters.running and ticks[-1].interface_bytes == (0, 0)


def test_late_tick_is_spread_over_the_missed_ticks():
    """A tick 1 s late hands one MeterTick of 1 s to subscribers and smooth estimators."""
    counters = FakeCounters()
    clock, meters = started(counters)
    ticks: list[MeterTick] = []
    meters.subscribe(ticks.append)
    run(clock, 10.0, lambda: counters.run_process(TICK / 2))
    counters.run_process(0.5)
    clock.advance(1.0)  # four ticks' worth at once
    assert ticks[-1].seconds == 1.0
    assert ticks[-1].process_cpu_seconds == pytest.approx(0.5)
    assert meters.readings().process_cpu_10s == pytest.approx(0.5)


def test_idle_rule():
    """Idle after the hold time below the threshold; one busy second ends it at once."""
    counters = FakeCounters(cpu_count=4)
    rule = IdleRule(threshold=0.10, hold_seconds=30.0)
    clock, meters = started(counters, idle_rule=rule)
    ticks: list[MeterTick] = []
    meters.subscribe(ticks.append)
    light = 0.09 * 4 * TICK  # others use 9 % of the machine
    run(clock, 29.75, lambda: counters.run_others(light))
    assert not meters.readings().machine_idle, "not before hold_seconds of data"
    run(clock, 0.25, lambda: counters.run_others(light))
    assert meters.readings().machine_idle and ticks[-1].machine_idle
    run(clock, 0.25, lambda: counters.run_others(0.5 * 4 * TICK))  # a 0.25 s burst
    assert meters.readings().other_cpu >= 0.10
    assert not meters.readings().machine_idle
    run(clock, 29.0, lambda: counters.run_others(light))
    assert not meters.readings().machine_idle
    run(clock, 2.0, lambda: counters.run_others(light))
    assert meters.readings().machine_idle


def test_our_own_cpu_does_not_make_the_machine_busy():
    """A process using two full cores still lets the machine count as idle."""
    counters = FakeCounters(cpu_count=2)
    clock, meters = started(counters, idle_rule=IdleRule(hold_seconds=5.0))
    run(clock, 6.0, lambda: counters.run_process(2 * TICK))
    assert meters.readings().machine_cpu == pytest.approx(1.0, rel=0.02)  # EWMA after 6 half-lives
    assert meters.readings().machine_idle


@pytest.mark.parametrize("tick_seconds", [0.5, 0, -0.25])
def test_tick_slower_than_4_hz_is_refused(tick_seconds):
    """A tick slower than 4 Hz (or not positive) is refused with an error saying so."""
    with pytest.raises(ValueError, match="at least 4 Hz"):
        Meters(Clock(), FakeCounters(), ["eth0"], tick_seconds=tick_seconds)


def test_idle_rule_rejects_bad_values():
    """The idle threshold is a fraction of the machine; the hold time is positive."""
    with pytest.raises(ValueError, match="threshold"):
        IdleRule(threshold=0.0)
    with pytest.raises(ValueError, match="hold_seconds"):
        IdleRule(hold_seconds=-1)


def test_stop_stops_sampling():
    """After stop() no more ticks are taken; start() twice is an error."""
    counters = FakeCounters()
    clock, meters = started(counters)
    with pytest.raises(RuntimeError):
        meters.start()
    ticks: list[MeterTick] = []
    meters.subscribe(ticks.append)
    clock.advance(TICK)
    meters.stop()
    clock.advance(10.0)
    assert len(ticks) == 1 and not meters.running


class FailingCounters(FakeCounters):
    """Synthetic counters whose CPU counter raises while :attr:`broken` is set."""

    broken = False

    def process_cpu_seconds(self) -> float:
        if self.broken:
            raise OSError("cannot read /proc/self/stat")
        return super().process_cpu_seconds()


def test_a_failing_tick_is_logged_sparingly_and_sampling_goes_on():
    """A counter that raises every tick for 5 minutes neither stops the meters'
    loop nor floods the log (one report at once, then one a minute); a
    subscriber that raises does not starve the others; once the counter works
    the readings move again."""
    from twisted.logger import globalLogPublisher

    from tahoe_governor.throttle.meters import FAULT_LOG_SECONDS

    counters = FailingCounters(cpu_count=1)
    clock, meters = started(counters)
    ticks: list[MeterTick] = []

    def broken_subscriber(tick: MeterTick) -> None:
        raise RuntimeError("a subscriber's fault")

    meters.subscribe(broken_subscriber)
    meters.subscribe(ticks.append)
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        run(clock, 1.0, lambda: None)
        assert len(ticks) == 4, "the subscriber after the faulty one gets every tick"
        meters.unsubscribe(broken_subscriber)
        counters.broken = True
        run(clock, 5 * FAULT_LOG_SECONDS, lambda: counters.run_process(0.25))
        # in a row: the subscriber's 4, then the counter's 4 a second for 300 s
        assert meters.running and meters.tick_faults.failures == 4 + 5 * 4 * 60
        counters.broken = False
        run(clock, 2.0, lambda: counters.run_process(0.25))
    finally:
        globalLogPublisher.removeObserver(events.append)
    reports = [e for e in events if "log_failure" in e]
    assert len(reports) == 1 + 5, "the subscriber's fault, then one per minute of the counter's"
    assert meters.tick_faults.failures == 0
    assert meters.readings().process_cpu > 0.5, "sampling resumed after the fault"
