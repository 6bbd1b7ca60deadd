"""Auto capacity: start value, percentile of sustained rates, floor, save and restore."""

from __future__ import annotations

import numpy as np
import pytest

from tahoe_governor.throttle.estimators import PercentileRate
from tahoe_governor.throttle.link_capacity import (
    DEFAULT_START_DOWN,
    DEFAULT_START_UP,
    LinkCapacityEstimate,
)

TICK = 0.25


def feed(estimate: LinkCapacityEstimate, seconds: float, up: float, down: float = 0.0) -> None:
    """``seconds`` of traffic at ``up``/``down`` bytes/s, tick by tick."""
    for _ in range(round(seconds / TICK)):
        estimate.update([up * TICK, down * TICK])


def test_start_value_until_enough_samples():
    """Before 10 minutes of samples the start value holds, unless the link showed more."""
    estimate = LinkCapacityEstimate(TICK)
    assert list(estimate.capacities()) == [DEFAULT_START_UP, DEFAULT_START_DOWN]
    feed(estimate, 300.0, up=50_000, down=40_000)
    assert list(estimate.capacities()) == [DEFAULT_START_UP, DEFAULT_START_DOWN]
    feed(estimate, 60.0, up=400_000)
    assert estimate.capacity(0) == pytest.approx(400_000)
    assert estimate.samples == 36


def test_learns_a_sustained_rate_and_ignores_a_burst():
    """A rate held for 1 % of the window counts; a 10 s burst at 10x does not."""
    estimate = LinkCapacityEstimate(
        TICK, (1_000, 1_000), window_seconds=3_600, min_samples=10
    )  # 360 samples; the 99th percentile needs 4 of them
    feed(estimate, 3_000, up=20_000)  # light traffic most of the hour
    feed(estimate, 60, up=250_000)  # a minute at the link's full rate
    feed(estimate, 10, up=2_500_000)  # a 10 s burst to the LAN
    feed(estimate, 530, up=20_000)
    assert estimate.capacity(0) == pytest.approx(250_000, rel=0.01)


def test_ticks_are_averaged_into_samples():
    """Sub-second bursts above the link rate are averaged over the 10 s sample."""
    estimate = LinkCapacityEstimate(TICK, (1_000, 1_000), min_samples=1)
    for _ in range(40 * 12):  # 2 minutes: one tick in four carries 4x the mean
        for burst in (4, 0, 0, 0):
            estimate.update([burst * 100_000 * TICK, 0])
    assert estimate.capacity(0) == pytest.approx(100_000)


def test_floor_after_warm_up():
    """After warm-up the estimate follows the data down, but not below the floor."""
    estimate = LinkCapacityEstimate(
        TICK, (125_000, 125_000), floor=(10_000, 10_000), window_seconds=600, min_samples=6
    )
    feed(estimate, 600, up=40_000, down=2_000)
    assert list(estimate.capacities()) == pytest.approx([40_000, 10_000])


def test_window_forgets_old_samples():
    """A rate older than the window no longer counts."""
    estimate = LinkCapacityEstimate(TICK, (1_000, 1_000), window_seconds=600, min_samples=1)
    feed(estimate, 600, up=300_000)
    feed(estimate, 600, up=30_000)
    assert estimate.capacity(0) == pytest.approx(30_000)


def test_state_round_trip():
    """A restored estimator gives the same capacities and keeps learning the same way."""
    estimate = LinkCapacityEstimate(TICK, window_seconds=1_800, min_samples=5)
    rng = np.random.default_rng(7)
    for _ in range(300):  # longer than the window: the ring has wrapped
        estimate.update(list(rng.integers(0, 100_000, size=2)))
        feed(estimate, 9.75, up=float(rng.integers(0, 300_000)), down=50_000)
    state = estimate.state()
    restored = LinkCapacityEstimate(TICK, window_seconds=1_800, min_samples=5)
    restored.restore(state)
    assert restored.samples == estimate.samples == 180
    assert restored.capacities() == pytest.approx(estimate.capacities(), rel=1e-6)
    for e in (estimate, restored):
        feed(e, 100, up=700_000)
    assert restored.capacities() == pytest.approx(estimate.capacities(), rel=1e-6)


def test_restore_into_a_shorter_window_keeps_the_newest_samples():
    """Restoring more samples than the window holds keeps the newest ones."""
    long = LinkCapacityEstimate(TICK, window_seconds=200, min_samples=1)
    feed(long, 100, up=500_000)
    feed(long, 100, up=5_000)
    short = LinkCapacityEstimate(TICK, (1_000, 1_000), window_seconds=100, min_samples=1)
    short.restore(long.state())
    assert short.samples == 10 and short.capacity(0) == pytest.approx(5_000)


@pytest.mark.parametrize(
    "state, message",
    [
        ({}, "version"),
        ({"version": 1, "sample_seconds": 5.0, "channels": 2, "samples": ""}, "5.0 s"),
        ({"version": 1, "sample_seconds": 10.0, "channels": 3, "samples": ""}, "channels"),
        ({"version": 1, "sample_seconds": 10.0, "channels": 2, "samples": "%%"}, "not valid"),
        ({"version": 1, "sample_seconds": 10.0, "channels": 2, "samples": "AAAA"}, "not valid"),
    ],
)
def test_bad_state(state, message):
    """A state that does not fit is refused with an error saying why."""
    with pytest.raises(ValueError, match=message):
        LinkCapacityEstimate(TICK).restore(state)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"start": (0, 1)}, "start rates must be finite and > 0"),
        ({"start": ()}, "start must be a sequence"),
        ({"floor": (1.0,)}, "one rate per channel"),
        ({"sample_seconds": 0.1}, "at least one tick"),
        ({"window_seconds": 1.0}, "at least one sample"),
        ({"min_samples": 0}, "min_samples"),
    ],
)
def test_bad_parameters(kwargs, message):
    """Each bad parameter is named in its error."""
    with pytest.raises(ValueError, match=message):
        LinkCapacityEstimate(TICK, **kwargs)


def test_percentile_rate_history_is_chronological():
    """PercentileRate.history gives the window oldest first, before and after wrapping."""
    rate = PercentileRate(1.0, 3)
    rate.update([1])
    rate.update([2])
    assert rate.history(1)[:, 0].tolist() == [1.0, 2.0]
    rate.update([3])
    rate.update([4])
    assert rate.history(1)[:, 0].tolist() == [2.0, 3.0, 4.0]
