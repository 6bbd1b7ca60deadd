"""Max-min fairness between peers sharing a node-wide cap (deterministic)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock, LoopingCall

from tahoe_governor.throttle import ConnectionShaper, default_burst
from tahoe_governor.throttle.release_scheduler import (
    LATE_CREDIT_SECONDS,
    LATE_IS_A_JUMP_SECONDS,
)

from .shaping_fakes import TUBID_A, TUBID_B, TUBID_C, connect, run

NODE_RATE = 300_000


def shares(demand_a: float | None, cap_a: float | None, seconds: float = 10.0):
    """Bytes/s each of three peers gets over ``seconds`` under the node cap.

    Peer A writes ``demand_a`` bytes/s (``None``: unlimited demand) and may
    have its own cap; peers B and C always have more queued than they can send.
    """
    clock = Clock()
    shaper = ConnectionShaper(clock)
    shaper.set_node_limit(up=NODE_RATE)
    if cap_a is not None:
        shaper.set_peer_limit(TUBID_A, up=cap_a)
    conns = {tubid: connect(shaper, clock, peer=tubid) for tubid in (TUBID_A, TUBID_B, TUBID_C)}
    for tubid in (TUBID_B, TUBID_C):
        conns[tubid][0].write(b"x" * NODE_RATE * int(seconds + 3))
    if demand_a is None:
        conns[TUBID_A][0].write(b"x" * NODE_RATE * int(seconds + 3))
    else:
        feeder = LoopingCall(conns[TUBID_A][0].write, b"a" * int(demand_a / 10))
        feeder.clock = clock
        feeder.start(0.1)
    run(clock, 2.0)  # settle past the initial bursts
    start = {t: len(c[2].value()) for t, c in conns.items()}
    run(clock, seconds)
    return {t: (len(c[2].value()) - start[t]) / seconds for t, c in conns.items()}


def test_light_peer_gets_its_demand_others_split_the_rest():
    """A peer wanting less than an equal share gets all it wants; the two
    heavy peers split the remainder evenly, and the cap is used fully."""
    got = shares(demand_a=50_000, cap_a=None)
    assert got[TUBID_A] == pytest.approx(50_000, rel=0.02)
    assert got[TUBID_B] == pytest.approx(125_000, rel=0.03)
    assert got[TUBID_C] == pytest.approx(125_000, rel=0.03)
    assert sum(got.values()) == pytest.approx(NODE_RATE, rel=0.01)


def test_equal_demand_splits_equally():
    """Three peers with unlimited demand each get a third of the node cap."""
    got = shares(demand_a=None, cap_a=None)
    for tubid in (TUBID_A, TUBID_B, TUBID_C):
        assert got[tubid] == pytest.approx(NODE_RATE / 3, rel=0.03)


def test_peer_cap_below_share_frees_the_rest_for_others():
    """A peer capped below its share gets its cap; the others split the rest."""
    got = shares(demand_a=None, cap_a=30_000)
    assert got[TUBID_A] == pytest.approx(30_000, rel=0.02)
    assert got[TUBID_B] == pytest.approx(135_000, rel=0.03)
    assert got[TUBID_C] == pytest.approx(135_000, rel=0.03)


def test_connections_of_one_peer_share_its_bucket():
    """Two connections to one capped peer together stay within the peer's cap,
    and share it evenly."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    shaper.set_peer_limit(TUBID_A, up=20_000)
    first = connect(shaper, clock, peer=TUBID_A)
    second = connect(shaper, clock, peer=TUBID_A)
    first[0].write(b"1" * 200_000)
    second[0].write(b"2" * 200_000)
    run(clock, 1.0)
    marks = [len(first[2].value()), len(second[2].value())]
    run(clock, 5.0)
    sent = [len(first[2].value()) - marks[0], len(second[2].value()) - marks[1]]
    assert sum(sent) <= 20_000 * 5 + 4096
    assert sent[0] == pytest.approx(sent[1], rel=0.2)
    assert shaper.peer_stats(TUBID_A).connections == 2


def _sent_with_reactor_held(held_seconds: float, seconds: float = 10.0) -> float:
    """Bytes/s a peer capped at 100 kB/s got while the reactor ran only every
    ``held_seconds`` (each ``clock.advance`` fires the release timer that late)."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    shaper.set_peer_limit(TUBID_A, up=100_000)
    wrapper, _inner, transport = connect(shaper, clock, peer=TUBID_A)
    wrapper.write(b"x" * 100_000 * int(seconds + 5))
    run(clock, 1.0)
    start = len(transport.value())
    run(clock, seconds, step=held_seconds)
    return (len(transport.value()) - start) / seconds


def test_a_busy_reactor_delays_bytes_but_the_cap_is_still_reached():
    """Release timers 300 ms late (a reactor busy serving pages) lose no tokens
    to the 50 ms burst: the capped peer still gets its whole rate, never more."""
    assert _sent_with_reactor_held(0.001) == pytest.approx(100_000, rel=0.01)
    assert _sent_with_reactor_held(0.3) == pytest.approx(100_000, rel=0.01)
    assert _sent_with_reactor_held(0.3) <= 100_000 * 1.001


def test_lateness_is_made_up_for_only_up_to_the_late_credit():
    """A reactor held 1.5 s at a time gets LATE_CREDIT_SECONDS of the rate (plus the
    burst) per stall, not the whole 1.5 s: a long stall does not send a flood; held
    longer than LATE_IS_A_JUMP_SECONDS (a sleep, a clock set forward), only the burst."""
    got = _sent_with_reactor_held(1.5, seconds=15.0)
    per_stall = 100_000 * LATE_CREDIT_SECONDS + default_burst(100_000)
    assert got == pytest.approx(per_stall / 1.5, rel=0.05)
    jumped = _sent_with_reactor_held(LATE_IS_A_JUMP_SECONDS + 1, seconds=15.0)
    assert jumped == pytest.approx(default_burst(100_000) / (LATE_IS_A_JUMP_SECONDS + 1),
                                   rel=0.05)


def test_a_peer_that_starts_waiting_after_a_late_timer_gets_no_credit():
    """Only peers waiting when the release was due are owed its lateness: one
    whose bytes arrive during the stall (before the late timer ran) gets its
    burst, as on time, while the peer that was waiting gets 300 ms of its rate."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    for tubid in (TUBID_A, TUBID_B):
        shaper.set_peer_limit(tubid, up=100_000)
    waiting = connect(shaper, clock, peer=TUBID_A)
    newcomer = connect(shaper, clock, peer=TUBID_B)
    waiting[0].write(b"a" * 1_000_000)
    run(clock, 1.0)
    mark = len(waiting[2].value())
    clock.rightNow += 0.3  # the reactor is held: time passes, no timer runs...
    newcomer[0].write(b"b" * 1_000_000)  # ...and B's bytes arrive within the stall
    assert len(newcomer[2].value()) <= default_burst(100_000)
    assert len(waiting[2].value()) - mark >= 100_000 * 0.3
