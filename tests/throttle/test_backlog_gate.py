"""The backlog gate: new work waits while a capped peer's queue is over a few seconds of its cap."""

from __future__ import annotations

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from tahoe_governor.throttle import ConnectionShaper
from tahoe_governor.throttle.backlog_gate import (
    MIN_BACKLOG_BYTES,
    TAHOE_QUERY_TIMEOUT_SECONDS,
    BacklogGate,
    first_share_bytes,
)
from tests.throttle.shaping_fakes import TUBID_A, TUBID_B, connect


def test_unlimited_peers_never_hold_work() -> None:
    """Bytes queued nowhere (no cap): the gate is open and a wait fires at once."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    wrapper, _, _ = connect(shaper, clock, TUBID_A)
    wrapper.write(b"x" * 1_000_000)
    gate = BacklogGate(shaper, clock)
    assert gate.open()
    assert gate.wait().called


def test_a_capped_peers_long_queue_holds_new_work_until_it_drains() -> None:
    """2 s of a 100 kB/s cap is 200 kB: with 500 kB queued the wait holds, and fires
    once the queue has drained to the bound (about 3 s later), not before."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    shaper.set_peer_limit(TUBID_A, up=100_000)
    wrapper, _, _ = connect(shaper, clock, TUBID_A)
    wrapper.write(b"x" * 500_000)
    gate = BacklogGate(shaper, clock, seconds=2.0)
    assert not gate.open()
    waiting = gate.wait()
    clock.pump([0.05] * 50)  # 2.5 s: 250 kB left, still over
    assert not waiting.called
    clock.pump([0.05] * 20)  # 3.5 s: under 200 kB
    assert waiting.called


def test_another_peers_queue_does_not_hold_for_an_uncapped_one() -> None:
    """Only capped queues count: a long queue to an uncapped peer holds nothing."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    shaper.set_peer_limit(TUBID_A, up=100_000)
    capped, _, _ = connect(shaper, clock, TUBID_A)
    free, _, _ = connect(shaper, clock, TUBID_B)
    free.write(b"y" * 1_000_000)
    capped.write(b"x" * 10_000)
    assert BacklogGate(shaper, clock).open()


def test_a_very_slow_cap_still_admits_a_small_queue() -> None:
    """At 1 kB/s, 1 s is 1 kB: the floor of MIN_BACKLOG_BYTES still lets a file start."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    shaper.set_peer_limit(TUBID_A, up=1_000)
    wrapper, _, _ = connect(shaper, clock, TUBID_A)
    wrapper.write(b"x" * (MIN_BACKLOG_BYTES - 10_000))
    assert BacklogGate(shaper, clock).open()


@pytest.mark.parametrize("kbps", [100, 300, 800, 8_000, 100_000])
def test_a_cap_cut_tenfold_drains_what_the_gate_let_queue_within_tahoes_timeout(
    kbps: int,
) -> None:
    """The most the default gate lets queue for a cap of 100 kbit/s or more, and one
    more file's share on top, leaves within Tahoe's 15 s query timeout at a tenth of
    the cap: a query queued behind it when the cap falls is answered in time."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    rate = kbps * 1000 / 8
    shaper.set_peer_limit(TUBID_A, up=rate)
    wrapper, _, _ = connect(shaper, clock, TUBID_A)
    gate = BacklogGate(shaper, clock)
    while gate.open():  # files admitted one by one, each adding a tenth of a second
        wrapper.write(b"x" * max(1, int(rate / 10)))
    admitted = shaper.peer_stats(TUBID_A).queued_up
    assert admitted / (rate / 10) < TAHOE_QUERY_TIMEOUT_SECONDS


def test_a_held_wait_can_be_cancelled_and_leaves_no_timer() -> None:
    """Cancelling a held wait fails it with CancelledError and stops its polling."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    shaper.set_peer_limit(TUBID_A, up=10_000)
    wrapper, _, _ = connect(shaper, clock, TUBID_A)
    wrapper.write(b"x" * 500_000)
    waiting = BacklogGate(shaper, clock).wait()
    waiting.cancel()
    failures = []
    waiting.addErrback(failures.append)
    assert failures[0].check(CancelledError)
    assert [c for c in clock.getDelayedCalls() if "look" in repr(c.func)] == []


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf")])
def test_bad_bounds_are_refused(seconds: float) -> None:
    """A bound that is not a positive number of seconds is a ValueError naming it."""
    with pytest.raises(ValueError, match="seconds must be a positive number"):
        BacklogGate(ConnectionShaper(Clock()), Clock(), seconds=seconds)


def test_admitted_uploads_reserve_their_first_share_until_their_bytes_are_queued() -> None:
    """Behind an empty queue capped at 100 kB/s (bound 100 kB), uploads of 80 kB each
    reserve 40 kB until their bytes are on their way: two are admitted, not every upload
    slot at once; the first of a queue needs no room, so a file over the bound starts."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    shaper.set_peer_limit(TUBID_A, up=100_000)
    connect(shaper, clock, TUBID_A)
    gate = BacklogGate(shaper, clock)
    first, second = gate.admit(80_000), gate.admit(80_000)
    assert first is not None and second is not None
    assert gate.admit(80_000) is None and not gate.open(80_000)
    first()
    first()  # said twice: frees its reservation once
    assert gate.reserved == first_share_bytes(80_000)
    second()
    assert gate.admit(10_000_000) is not None  # alone: a big file still starts
    assert gate.admit(80_000) is None  # its first share and this one's would not fit


def test_without_a_capped_queue_uploads_are_not_held_one_by_one() -> None:
    """Unlimited peers: every upload is admitted at once, as before."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    connect(shaper, clock, TUBID_A)
    gate = BacklogGate(shaper, clock)
    assert all(gate.admit() is not None for _ in range(32))


def test_a_message_to_one_peer_waits_behind_its_own_queue_and_the_nodes() -> None:
    """``outbound_backlog_to``: the node's queue and the asked peer's, not another
    capped peer's (what a server-selection query to that peer waits behind)."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    shaper.set_peer_limit(TUBID_A, up=1_000)
    shaper.set_node_limit(up=50_000)
    held, _, _ = connect(shaper, clock, TUBID_A)
    other, _, _ = connect(shaper, clock, TUBID_B)
    held.write(b"x" * 300_000)
    assert shaper.outbound_backlog_to(TUBID_B) == [(shaper.node_stats().queued_up, 50_000)]
    assert shaper.outbound_backlog_to(TUBID_A)[1][1] == 1_000
    assert shaper.outbound_backlog_to(TUBID_A)[1][0] > 290_000
    assert len(shaper.outbound_backlog()) == 2  # the node's and every capped peer's
