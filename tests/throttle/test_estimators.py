"""Rate estimators: EWMA convergence, exact windows, percentiles, channel counting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tahoe_governor.throttle import ChannelCounts, EwmaRate, PercentileRate, WindowRate


def test_ewma_half_life():
    """After one half-life of a step from 0 to R, the estimate is R/2."""
    ewma = EwmaRate(tick_seconds=0.25, half_life_seconds=2.0)
    for _ in range(8):  # 2 s
        ewma.update([250])  # 1000 B/s
    assert ewma.rate(0) == pytest.approx(500.0)


@settings(max_examples=50, deadline=None)
@given(rate=st.integers(0, 10**8), half_life=st.floats(0.1, 30.0))
def test_ewma_converges_to_a_constant_stream(rate, half_life):
    """A constant stream of R bytes/s is estimated as R after 20 half-lives."""
    tick = 0.25
    ewma = EwmaRate(tick, half_life)
    per_tick = rate * tick
    for _ in range(int(20 * half_life / tick) + 1):
        ewma.update([per_tick])
    assert ewma.rate(0) == pytest.approx(rate, rel=1e-5, abs=1e-3)


def test_ewma_vectorised_channels_are_independent():
    """One update moves every channel by its own count."""
    ewma = EwmaRate(1.0, 1.0, channels=3)
    ewma.update([100, 0, 50])
    assert list(ewma.rates(3)) == pytest.approx([50.0, 0.0, 25.0])


def test_window_rate_is_exact_on_synthetic_input():
    """The window mean equals the arithmetic mean of the last N ticks' counts."""
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 10**9, size=(500, 4))
    window = WindowRate(tick_seconds=0.25, window_ticks=40, channels=4)
    for i, row in enumerate(counts):
        window.update(row)
        seen = counts[max(0, i - 39) : i + 1]
        expected = seen.sum(axis=0) / (len(seen) * 0.25)
        np.testing.assert_array_equal(window.rates(4), expected)
    assert window.peak(2) == counts[-40:, 2].max()


def test_window_partial_fill_averages_ticks_seen():
    """Before the window fills, the mean is over the ticks seen."""
    window = WindowRate(1.0, 10)
    window.update([100])
    assert window.rate(0) == 100.0
    window.update([0])
    assert window.rate(0) == 50.0


def test_percentile_rate():
    """The 95th percentile of a ramp 0..99 per tick (1 s ticks) is about 94."""
    pct = PercentileRate(tick_seconds=1.0, window_ticks=100, percentile=95)
    for value in range(100):
        pct.update([value, 2 * value])
    assert pct.rate(0) == pytest.approx(np.percentile(np.arange(100), 95))
    assert list(pct.rates(2)) == pytest.approx([94.05, 188.1])
    assert pct.samples == 100


def test_percentile_window_forgets_old_ticks():
    """Ticks older than the window no longer count."""
    pct = PercentileRate(1.0, 10, percentile=100)
    pct.update([10**6])
    for _ in range(10):
        pct.update([5])
    assert pct.rate(0) == 5.0


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: EwmaRate(0, 1), "tick_seconds"),
        (lambda: EwmaRate(1, -1), "half_life_seconds"),
        (lambda: WindowRate(1, 0), "window_ticks"),
        (lambda: PercentileRate(1, 10, percentile=101), "percentile"),
    ],
)
def test_invalid_parameters_rejected(factory, match):
    """Bad estimator parameters raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=match):
        factory()


def test_channel_counts_feed_every_estimator_and_grow():
    """Keyed counts reach every estimator once per tick; channels are added on the fly."""
    ewma = EwmaRate(1.0, 1.0)
    window = WindowRate(1.0, 4)
    counts = ChannelCounts([ewma, window])
    counts.add("peer-a", 100)
    counts.tick()
    for i in range(40):
        counts.add(f"peer-{i}", 8)
    counts.tick()
    a = counts.channel("peer-a")
    assert window.rate(a) == pytest.approx(100 / 2)
    assert counts.total("peer-a") == 100
    assert counts.total("peer-39") == 8
    assert counts.total("unknown") == 0
    assert len(counts.keys()) == 41
    assert window.rate(counts.channel("peer-39")) == pytest.approx(4.0)
