"""Tahoe's server-selection timeout, lengthened by the wait behind capped bytes (injected clock)."""

from __future__ import annotations

from typing import Any

import pytest
from allmydata.immutable import upload
from allmydata.util import base32
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
        self.node: tuple[int, float | None] = (0, None)
        self.peers: dict[str, tuple[int, float | None]] = {}

    def outbound_backlog(self) -> list[tuple[int, float | None]]:
        return self.queues

    def outbound_backlog_to(self, tubid: str) -> list[tuple[int, float | None]]:
        return [self.node, *([self.peers[tubid]] if tubid in self.peers else [])]


@pytest.fixture
def backlog(monkeypatch: Any) -> Backlog:
    # Each is undone after the test.
    monkeypatch.setattr(upload, "timeout_call", upload.timeout_call)
    monkeypatch.setattr(upload.ServerTracker, "query", upload.ServerTracker.query)
    monkeypatch.setattr(upload.ServerTracker, "ask_about_existing_shares",
                        upload.ServerTracker.ask_about_existing_shares)
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


class StorageServer:
    """A storage server's remote reference whose answers the test gives."""

    def __init__(self) -> None:
        self.answers: list[Deferred[Any]] = []

    def get_buckets(self, storage_index: bytes) -> Deferred[Any]:
        self.answers.append(Deferred())
        return self.answers[-1]

    def allocate_buckets(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
        return self.get_buckets(b"")


class Server:
    def __init__(self, tubid: bytes) -> None:
        self.tubid = tubid
        self.storage_server = StorageServer()

    def get_tubid(self) -> bytes:
        return self.tubid

    def get_storage_server(self) -> StorageServer:
        return self.storage_server


def tracker(server: Server) -> upload.ServerTracker:
    return upload.ServerTracker(server, sharesize=1000, blocksize=100, num_segments=1,
                                num_share_hashes=1, storage_index=b"s" * 16,
                                bucket_renewal_secret=b"r" * 32,
                                bucket_cancel_secret=b"c" * 32, uri_extension_size=100)


def test_a_held_peer_does_not_slow_finding_a_dead_one(backlog: Backlog) -> None:
    """A peer whose quota is used up (cap 0, bytes queued) waits its idle window for its
    answers; a query to another, silent server still times out at Tahoe's 15 s, and one
    to a peer behind 30 s of its own queue at 45 s."""
    held, dead, slow = Server(b"h" * 20), Server(b"d" * 20), Server(b"w" * 20)
    tubid = {server: base32.b2a(server.tubid).decode("ascii") for server in (held, dead, slow)}
    backlog.queues = [(1, 0.0)]  # what the longest queue alone would give every query
    backlog.peers = {tubid[held]: (1, 0.0), tubid[slow]: (300_000, 10_000.0)}
    clock = Clock()
    results: dict[Server, list[Any]] = {held: [], dead: [], slow: []}
    for server in (held, dead):
        d = upload.timeout_call(clock, tracker(server).ask_about_existing_shares(), 15)
        d.addBoth(results[server].append)
    d = upload.timeout_call(clock, tracker(slow).query({0}), 15)
    d.addBoth(results[slow].append)
    clock.advance(15.1)
    assert results[dead] and results[dead][0].check(TahoeTimeout)
    assert results[held] == [] and results[slow] == []
    clock.advance(30)
    assert results[slow] and results[slow][0].check(TahoeTimeout)
    clock.advance(15 + IDLE_WINDOW_SECONDS - 45.1 - 0.1)
    assert results[held] == []
    clock.advance(0.2)
    assert results[held] and results[held][0].check(TahoeTimeout)
