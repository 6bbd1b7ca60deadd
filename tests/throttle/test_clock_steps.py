"""Steps of the wall clock are found against the monotonic clock, and timers keep their lengths."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tahoe_governor.throttle import Shaper
from tahoe_governor.throttle.clock_steps import ClockStepDetector, ClockStepWatch, move_timers
from tests.throttle.shaping_fakes import TUBID_A, connect


@pytest.mark.parametrize(
    ("readings", "steps", "why"),
    [
        ([(100.0, 0.0), (101.0, 1.0), (102.0, 2.0)], [0.0, 0.0], "clocks move together"),
        ([(100.0, 0.0), (100.5, 0.0)], [0.0], "half a second of drift is not a step"),
        ([(100.0, 0.0), (7300.0, 100.0)], [7100.0], "a sleep: wall ran on, monotonic stood"),
        ([(100.0, 0.0), (-3400.0, 100.0)], [-3600.0], "set back an hour"),
        ([(100.0, 0.0), (7300.0, 100.0), (7301.0, 101.0)], [7100.0, 0.0],
         "after a step, the new offset is the baseline"),
        ([(100.0, 0.0), (100.6, 0.0), (101.2, 0.0)], [0.0, 1.2],
         "slow drift adds up to a step against the last baseline"),
    ],
)
def test_detector_table(readings: list[tuple[float, float]], steps: list[float],
                        why: str) -> None:
    """Each row: (wall, monotonic) readings; the step each reading after the first reports."""
    detector = ClockStepDetector(tolerance=1.0)
    detector.observe(*readings[0])
    assert [detector.observe(*r) for r in readings[1:]] == pytest.approx(steps), why


def test_moved_timers_keep_their_lengths() -> None:
    """After a step back of an hour, a timer asked for 50 s fires 50 s after it was asked
    for, not an hour and 50 s later."""
    clock = Clock()
    clock.advance(1_000_000.0)
    fired: list[float] = []
    clock.callLater(50.0, lambda: fired.append(clock.seconds()))
    clock.advance(10.0)
    clock.rightNow -= 3600.0  # the step itself: no timer runs
    assert move_timers(clock, -3600.0) == 1
    clock.advance(39.0)
    assert fired == []
    clock.advance(1.0)
    assert fired == [1_000_050.0 - 3600.0]


def test_a_step_forward_leaves_timers_alone_and_still_tells_listeners() -> None:
    """A step forward (or a sleep) moves no timer: one set from the new time before the
    watch looked keeps its length; the listeners hear of the step."""
    clock = Clock()
    clock.advance(1_000_000.0)
    watch = ClockStepWatch(clock, monotonic=lambda: 0.0)
    heard: list[float] = []
    watch.add_listener(heard.append)
    clock.rightNow += 7200.0
    call = clock.callLater(0.25, lambda: None)  # set by an overdue timer, from the new time
    assert watch.check() == pytest.approx(7200.0)
    assert call.getTime() == pytest.approx(clock.seconds() + 0.25)
    assert heard == [pytest.approx(7200.0)]


def test_watch_moves_timers_and_tells_listeners_once_per_step() -> None:
    """The watch notices a step on its next check, moves the timers first and then calls
    its listeners with the step; checks without a step do nothing."""
    clock = Clock()
    clock.advance(5_000.0)
    monotonic = [0.0]
    watch = ClockStepWatch(clock, monotonic=lambda: monotonic[0])
    seen: list[tuple[float, float]] = []
    call = clock.callLater(30.0, lambda: None)
    watch.add_listener(lambda step: seen.append((step, call.getTime())))
    clock.advance(5.0)
    monotonic[0] += 5.0
    assert watch.check() == 0.0
    clock.rightNow -= 3600.0
    assert watch.check() == pytest.approx(-3600.0)
    assert seen == [(pytest.approx(-3600.0), pytest.approx(5_030.0 - 3600.0))]
    assert watch.check() == 0.0
    assert watch.steps == [pytest.approx(-3600.0)]


def test_a_capped_peer_gets_no_burst_from_a_sleep_and_keeps_sending_after_a_step_back() -> None:
    """Under a 25 kB/s cap with bytes queued: after two hours asleep, the next second
    carries no more than the cap and its burst; after the clock is set back an hour, the
    queue keeps moving at the cap instead of stalling for the hour."""
    clock = Clock()
    clock.advance(1_000_000.0)
    monotonic = [0.0]
    watch = ClockStepWatch(clock, monotonic=lambda: monotonic[0])
    shaper = Shaper(clock)
    shaper.set_peer_limit(TUBID_A, up=25_000)
    shaped, _, transport = connect(shaper, clock)
    shaped.write(b"x" * 1_000_000)

    def run(seconds: float) -> int:
        before = len(transport.value())
        for _ in range(int(seconds * 20)):
            clock.advance(0.05)
            monotonic[0] += 0.05
            watch.check()
        return len(transport.value()) - before

    run(2.0)
    clock.rightNow += 7200.0  # asleep for two hours
    burst = shaper.peer_limit(TUBID_A)[0] * 0.05 + 4096
    assert run(1.0) <= 25_000 + burst
    assert watch.steps == [pytest.approx(7200.0)]
    clock.rightNow -= 3600.0  # set back an hour
    sent = run(4.0)
    assert 4 * 25_000 * 0.9 <= sent <= 4 * 25_000 + burst
