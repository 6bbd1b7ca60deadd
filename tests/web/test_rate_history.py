"""The bounded rate history behind the charts, and the chart's scale."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tahoe_governor.web.rate_chart import ChartLine, rate_chart, round_ceiling
from tahoe_governor.web.rate_history import RateHistory
from tests.web.controls_double import FRIEND_TUBID, NOW, PARENTS_TUBID, InMemoryControls


class RateHistoryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.controls = InMemoryControls()
        self.history = RateHistory(self.controls.status, self.clock, interval_seconds=5,
                                   span_seconds=60)

    def test_samples_on_the_injected_clock_while_running(self) -> None:
        """A sample at start and every interval; none after stop."""
        self.history.startService()
        self.assertEqual(len(list(self.history.samples(self.clock.seconds()))), 1)
        self.clock.advance(5)
        self.clock.advance(5)
        samples = list(self.history.samples(self.clock.seconds()))
        self.assertEqual([s.at - NOW for s in samples], [0, 5, 10])
        self.assertEqual(samples[0].peers_up, {PARENTS_TUBID: 24_500.0, FRIEND_TUBID: 40_000.0})
        self.assertEqual(samples[0].peer_labels, {PARENTS_TUBID: "parents",
                                                  FRIEND_TUBID: "friend"})
        self.assertEqual(samples[0].jobs, {"photos": 24_000.0, "mail": 0.0})
        self.history.stopService()
        self.clock.advance(50)
        self.assertEqual(len(list(self.history.samples(NOW + 10))), 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_keeps_only_the_span(self) -> None:
        """After an hour of samples only the last minute is kept, bounded in memory."""
        self.history.startService()
        self.addCleanup(self.history.stopService)
        for _ in range(720):
            self.clock.advance(5)
        now = self.clock.seconds()
        samples = list(self.history.samples(now))
        self.assertEqual(len(samples), 13)
        self.assertEqual(samples[0].at, now - 60)
        self.assertLessEqual(len(self.history._samples), 13)

    def test_a_failing_status_read_is_skipped(self) -> None:
        """If the status cannot be read, the sample is skipped and sampling goes on."""
        calls = []

        def flaky():  # type: ignore[no-untyped-def]
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("boom")
            return self.controls.status()

        history = RateHistory(flaky, self.clock, interval_seconds=5, span_seconds=60)
        history.startService()
        self.addCleanup(history.stopService)
        self.clock.advance(5)
        self.clock.advance(5)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual([s.at - NOW for s in history.samples(self.clock.seconds())], [0, 10])

    def test_rejects_nonsense_intervals(self) -> None:
        """A zero interval or a span shorter than the interval is a clear error."""
        with self.assertRaises(ValueError):
            RateHistory(self.controls.status, self.clock, interval_seconds=0)
        with self.assertRaises(ValueError):
            RateHistory(self.controls.status, self.clock, interval_seconds=10, span_seconds=5)


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 1), (-3, 1), (0.7, 1), (1, 1), (1.01, 2), (24_500, 50_000), (40_000, 50_000),
     (100_000, 100_000), (150_000, 200_000), (float("inf"), 1)],
)
def test_round_ceiling(value: float, ceiling: float) -> None:
    """The chart's top: the next 1, 2 or 5 times a power of ten."""
    assert round_ceiling(value) == ceiling


def test_chart_points_stay_inside_the_frame() -> None:
    """Points outside the time span or above the top are clamped into the plot."""
    from twisted.web.template import flattenString

    line = ChartLine("a", [(0, 10.0), (50, 1e9), (200, 5.0)])
    out: list[bytes] = []
    flattenString(None, rate_chart("c", [line], 100, 160)).addCallback(out.append)
    svg = out[0].decode()
    points = svg.split('points="')[1].split('"')[0].split()
    xs = [float(p.split(",")[0]) for p in points]
    ys = [float(p.split(",")[1]) for p in points]
    assert min(xs) >= 64 and max(xs) <= 592
    assert min(ys) >= 8 and max(ys) <= 148
