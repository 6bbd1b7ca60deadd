"""Tahoe's server-selection timeout, lengthened by the wait behind capped bytes (injected clock)."""

from __future__ import annotations

from typing import Any

import pytest
from allmydata.immutable import upload
from allmydata.util.deferredutil import TimeoutError as TahoeTimeout
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from tahoe_governor.node import query_timeouts
from tahoe_governor.node.query_timeouts import queue_wait_seconds
from tahoe_governor.policy.upload_floor import IDLE_WINDOW_SECONDS


@pytest.mark.parametrize(("backlog", "seconds"), [
    ([], 0.0),
    ([(0, 10_000.0)], 0.0),
    ([(500_000, None)], 0.0),  # an uncapped queue is not waited for: it is not held
    ([(349_526, 10_000.0), (100_000, 100_000.0)], 34.9526),  # the longest queue
    ([(1, 0.0)], IDLE_WINDOW_SECONDS),  # a cap of 0 (a used-up quota): the idle window
    ([(10**9, 1.0)], IDLE_WINDOW_SECONDS),
])
def test_queue_wait(backlog: list[tuple[int, float | None]], seconds: float) -> None:
    """The longest queued/cap among capped queues, at most the servers' idle window."""
    assert queue_wait_seconds(backlog) == pytest.approx(seconds)


class Backlog:
    def __init__(self) -> None:
        self.queues: list[tuple[int, float | None]] = []

    def outbound_backlog(self) -> list[tuple[int, float | None]]:
        return self.queues


@pytest.fixture
def backlog(monkeypatch: Any) -> Backlog:
    monkeypatch.setattr(upload, "timeout_call", upload.timeout_call)  # undone after the test
    shaper = Backlog()
    query_timeouts.install(shaper)  # type: ignore[arg-type]
    return shaper


def test_a_query_behind_30_s_of_queue_gets_45_s(backlog: Backlog) -> None:
    """With 300 kB queued at 10 kB/s Tahoe's 15 s becomes 45 s: an answer at 40 s is an
    answer, none by 45 s is a timeout."""
    backlog.queues = [(300_000, 10_000.0)]
    clock = Clock()
    answered: Deferred[str] = Deferred()
    results: list[Any] = []
    upload.timeout_call(clock, answered, 15).addBoth(results.append)
    clock.advance(40)
    answered.callback("buckets")
    assert results == ["buckets"]
    silent: Deferred[str] = Deferred()
    upload.timeout_call(clock, silent, 15).addBoth(results.append)
    clock.advance(44.9)
    assert len(results) == 1
    clock.advance(0.2)
    assert results[1].check(TahoeTimeout)


def test_with_nothing_queued_tahoes_15_s_holds(backlog: Backlog) -> None:
    """An idle or uncapped node finds a dead server as fast as Tahoe does."""
    clock = Clock()
    results: list[Any] = []
    upload.timeout_call(clock, Deferred(), 15).addBoth(results.append)
    clock.advance(15.1)
    assert results and results[0].check(TahoeTimeout)
