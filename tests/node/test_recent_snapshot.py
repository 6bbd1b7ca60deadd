"""One status snapshot per meter tick for all readers; a control renews it at once."""

from __future__ import annotations

import attrs
import pytest
from twisted.internet.task import Clock

from tahoe_governor.node.recent_snapshot import RecentSnapshot
from tahoe_governor.status import GovernorStatus
from tests.web.controls_double import InMemoryControls


def counted(clock: Clock) -> tuple[list[float], RecentSnapshot]:
    """A RecentSnapshot of 0.25 s over a source that records when it was asked."""
    taken: list[float] = []
    double = InMemoryControls()

    def take() -> GovernorStatus:
        taken.append(clock.seconds())
        return attrs.evolve(double.status(), at=clock.seconds())

    return taken, RecentSnapshot(take, clock, 0.25)


def test_readers_within_a_tick_share_one_snapshot_and_the_next_tick_takes_another() -> None:
    """Many reads within 0.25 s cost one snapshot (the very same object); after it, a new one."""
    clock = Clock()
    taken, snapshots = counted(clock)
    first = snapshots.status()
    clock.advance(0.2)
    assert all(snapshots.status() is first for _ in range(100))
    clock.advance(0.05)
    assert snapshots.status().at == 0.25
    assert taken == [0.0, 0.25]


def test_invalidate_takes_a_new_snapshot_without_time_passing() -> None:
    """After invalidate() the next reader gets a new snapshot, at the same instant."""
    clock = Clock()
    taken, snapshots = counted(clock)
    first = snapshots.status()
    snapshots.invalidate()
    assert snapshots.status() is not first
    assert taken == [0.0, 0.0]


def test_a_clock_that_went_backwards_takes_a_new_snapshot() -> None:
    """A snapshot 'from the future' is not kept: the clock stepped back."""
    clock = Clock()
    clock.advance(10)
    taken, snapshots = counted(clock)
    snapshots.status()
    clock.rightNow = 5.0
    snapshots.status()
    assert taken == [10.0, 5.0]


def test_a_negative_age_is_refused() -> None:
    """max_age_seconds below zero is a programming error, named."""
    with pytest.raises(ValueError, match="max_age_seconds must be >= 0"):
        RecentSnapshot(InMemoryControls().status, Clock(), -1)
