"""Other traffic for yielding: the estimate itself, and the closed loop's step response."""

from __future__ import annotations

import pytest

from tahoe_governor.policy.engine import busy_limit
from tahoe_governor.throttle.other_traffic import OtherTrafficEstimate
from tahoe_governor.throttle.testing import YieldScenario, simulate_yield

TICK = 0.25


def test_other_is_interface_minus_ours_never_negative():
    """Raw other traffic is the interface's bytes minus ours, clamped at zero."""
    estimate = OtherTrafficEstimate(TICK)
    estimate.update([30_000, 1_000], [20_000, 2_000])
    assert list(estimate.raw_rates()) == [40_000, 0]


def test_fast_attack_slow_release():
    """A rise is half absorbed after 0.25 s, a fall only after 1 s."""
    estimate = OtherTrafficEstimate(TICK)
    estimate.update([25_000, 0], [0, 0])
    assert estimate.rate(0) == pytest.approx(50_000)
    for _ in range(40):
        estimate.update([25_000, 0], [0, 0])
    assert estimate.rate(0) == pytest.approx(100_000)
    for _ in range(4):
        estimate.update([0, 0], [0, 0])
    assert estimate.rate(0) == pytest.approx(50_000)


def test_overhead_counts_our_headers_as_ours():
    """With overhead=0.05, our 100 000 bytes stand for 105 000 on the interface."""
    estimate = OtherTrafficEstimate(1.0, overhead=0.05)
    estimate.update([105_000, 0], [100_000, 0])
    assert estimate.raw_rates()[0] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"attack_half_life": 0}, "attack_half_life"),
        ({"release_half_life": -1}, "release_half_life"),
        ({"overhead": 1.0}, "overhead"),
        ({"channels": 0}, "channels"),
    ],
)
def test_bad_parameters(kwargs, message):
    """Each bad parameter is named in its error."""
    with pytest.raises(ValueError, match=message):
        OtherTrafficEstimate(TICK, **kwargs)


def test_counts_must_match_channels():
    """One count per channel, for both the interface and our own bytes."""
    with pytest.raises(ValueError, match="2 interface and own byte counts"):
        OtherTrafficEstimate(TICK).update([1, 2, 3], [1, 2])


def test_busy_limit_rule():
    """The simulation's copy of the rule: busy share minus other traffic, floored."""
    assert busy_limit(125_000, 0.8, 30_000, 6_250) == 70_000
    assert busy_limit(125_000, 0.8, 120_000, 6_250) == 6_250


def test_step_response_meets_the_targets():
    """Closed loop: down within 2 s, back up within 5 s, steady wobble within ±10 %."""
    figures = simulate_yield(busy_limit, YieldScenario(competing_noise=0.2)).figures()
    assert figures["down_seconds"] <= 2.0
    assert figures["up_seconds"] <= 5.0
    for phase in ("steady_alone", "steady_competing"):
        assert figures[phase]["max_deviation_1s"] <= 0.10, phase
        assert figures[phase]["mean_over_target"] == pytest.approx(1.0, abs=0.05), phase
    assert figures["link_total_over_busy_threshold_mean"] <= 1.0


def test_loop_is_stable_with_a_steady_competitor():
    """With a constant competing flow the loop settles with no oscillation of its own."""
    figures = simulate_yield(busy_limit, YieldScenario(competing_noise=0.0)).figures()
    assert figures["steady_competing"]["max_deviation_per_tick"] <= 0.02
    assert figures["steady_competing"]["mean_over_target"] == pytest.approx(1.0, abs=0.01)
    assert figures["link_total_over_busy_threshold_max_1s"] <= 1.01


def test_competitor_above_the_busy_share_leaves_the_floor():
    """A competing flow above 80 % of the link pushes the governed flow to its floor."""
    scenario = YieldScenario(competing=110_000, competing_noise=0.0)
    trace = simulate_yield(busy_limit, scenario)
    during = (trace.times > scenario.starts_at + 3) & (trace.times <= scenario.stops_at)
    assert trace.limit[during] == pytest.approx(scenario.floor)
    assert trace.governed[during] == pytest.approx(scenario.floor, rel=0.01)
