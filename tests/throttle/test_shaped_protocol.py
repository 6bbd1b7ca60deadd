"""Deterministic tests of one shaped connection: timing, order, closing, reading."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from zope.interface import implementer

from tahoe_governor.throttle import ConnectionShaper, default_burst

from .shaping_fakes import TUBID_A, connect, max_in_window, run


def make(rate_up: float | None = None, rate_down: float | None = None, **kw):
    clock = Clock()
    shaper = ConnectionShaper(clock, **kw)
    shaper.set_peer_limit(TUBID_A, up=rate_up, down=rate_down)
    return clock, shaper


@settings(max_examples=25, deadline=None)
@given(
    rate=st.sampled_from([5_000, 64 * 1024, 1_000_000, 8 * 1024 * 1024]),
    sizes=st.lists(st.floats(0.0, 0.6), min_size=1, max_size=8),  # seconds of the rate
    gaps=st.lists(st.floats(0.0, 0.3), min_size=8, max_size=8),
)
def test_release_never_exceeds_burst_plus_rate(rate, sizes, gaps):
    """Over any interval, the bytes handed to the socket are at most
    burst + rate * interval (checked for 250 ms and 1 s windows and between
    every pair of writes), and every byte eventually leaves, in order."""
    clock, shaper = make(rate_up=rate)
    wrapper, inner, transport = connect(shaper, clock)
    sent = b""
    for i, (seconds, gap) in enumerate(zip(sizes, gaps, strict=False)):
        chunk = bytes([i % 251]) * max(1, int(seconds * rate))
        wrapper.write(chunk)
        sent += chunk
        run(clock, gap, step=0.002)
    run(clock, len(sent) / rate + 1.0, step=0.002)
    assert transport.value() == sent
    burst = default_burst(rate)
    events = transport.writes
    for window in (0.25, 1.0):
        assert max_in_window(events, window) <= burst + rate * window + 1
    # every interval between two writes, the exact bucket bound
    for i in range(len(events)):
        total = 0
        for j in range(i, len(events)):
            total += events[j][1]
            assert total <= burst + rate * (events[j][0] - events[i][0]) + 1


def test_long_run_rate_is_the_cap():
    """Under steady demand the achieved rate over 10 s is the cap (less than
    1 % off): a late timer loses no tokens to a full bucket."""
    rate = 64 * 1024
    clock, shaper = make(rate_up=rate)
    wrapper, _, transport = connect(shaper, clock)
    wrapper.write(b"x" * (rate * 12))
    run(clock, 1.0, step=0.004)  # past the initial burst
    start = len(transport.value())
    run(clock, 10.0, step=0.004)
    achieved = (len(transport.value()) - start) / 10.0
    # at most the tokens saved at the start (< burst) on top of the rate
    assert 0.99 * rate <= achieved <= rate + default_burst(rate) / 10.0


def test_write_order_and_write_sequence():
    """Bytes leave in the order written, across write and writeSequence, when
    some pass at once and later ones queue."""
    clock, shaper = make(rate_up=10_000)
    wrapper, _, transport = connect(shaper, clock)
    wrapper.write(b"a" * 3000)  # passes at once (burst 4096)
    wrapper.writeSequence([b"b" * 3000, b"c" * 10])  # queues behind nothing but tokens
    wrapper.write(b"d" * 5)
    assert transport.value() == b"a" * 3000 + b"b" * 1096  # what the burst allows now
    run(clock, 1.0)
    assert transport.value() == b"a" * 3000 + b"b" * 3000 + b"c" * 10 + b"d" * 5


def test_lose_connection_after_drain():
    """loseConnection with bytes queued closes only after the last one has left."""
    clock, shaper = make(rate_up=10_000)
    wrapper, _, transport = connect(shaper, clock)
    wrapper.write(b"z" * 20_000)
    wrapper.loseConnection()
    assert not transport.disconnecting
    wrapper.write(b"late")  # after loseConnection: dropped, as by a real transport
    run(clock, 1.0)
    assert not transport.disconnecting
    run(clock, 1.0)
    assert transport.value() == b"z" * 20_000
    assert transport.disconnecting


def test_abort_drops_queue_and_timers():
    """abortConnection drops what is queued, closes at once and leaves no timer."""
    clock, shaper = make(rate_up=10_000)
    wrapper, _, transport = connect(shaper, clock)
    wrapper.write(b"z" * 20_000)
    assert shaper.up.has_timer()
    wrapper.abortConnection()
    assert transport.disconnected  # StringTransport's mark of abortConnection
    assert not shaper.up.has_timer()
    written = len(transport.value())
    run(clock, 3.0)
    assert len(transport.value()) == written == 4096


def test_timers_cancelled_on_connection_lost():
    """Losing a connection with bytes queued both ways cancels every timer
    (release timers and the statistics tick)."""
    clock, shaper = make(rate_up=10_000, rate_down=10_000)
    wrapper, inner, transport = connect(shaper, clock)
    wrapper.write(b"z" * 50_000)
    wrapper.dataReceived(b"y" * 50_000)
    assert clock.getDelayedCalls()
    wrapper.connectionLost(None)
    assert clock.getDelayedCalls() == []
    assert inner.lost
    assert shaper.node_stats().connections == 0


def test_inbound_pause_and_resume():
    """Inbound bytes beyond the down bucket are held, reading is paused while
    any are held, they are delivered at the cap, and reading resumes after."""
    rate = 10_000
    clock, shaper = make(rate_down=rate)
    wrapper, inner, transport = connect(shaper, clock)
    wrapper.dataReceived(b"q" * 30_000)
    assert transport.producerState == "paused"
    assert len(inner.data()) == default_burst(rate)
    run(clock, 1.0)
    assert transport.producerState == "paused"
    assert len(inner.data()) <= default_burst(rate) + rate * 1.0 + 1
    run(clock, 2.5)
    assert inner.data() == b"q" * 30_000
    assert transport.producerState == "producing"
    deliveries = [(t, len(d)) for t, d in inner.received]
    assert max_in_window(deliveries, 0.25) <= default_burst(rate) + rate * 0.25 + 1


def test_inbound_respects_the_protocols_own_pause():
    """When the wrapped protocol paused reading itself, draining the held
    bytes does not resume reading behind its back."""
    clock, shaper = make(rate_down=10_000)
    wrapper, inner, transport = connect(shaper, clock)
    wrapper.dataReceived(b"q" * 20_000)
    wrapper.pauseProducing()
    run(clock, 3.0)
    assert inner.data() == b"q" * 20_000
    assert transport.producerState == "paused"
    wrapper.resumeProducing()
    assert transport.producerState == "producing"


def test_held_inbound_bytes_delivered_before_connection_lost():
    """Bytes read but held when the connection drops reach the protocol before
    connectionLost, and are counted."""
    clock, shaper = make(rate_down=5_000)
    wrapper, inner, _ = connect(shaper, clock)
    wrapper.dataReceived(b"r" * 12_000)
    wrapper.connectionLost(None)
    assert inner.received_before_lost == 12_000
    assert shaper.peer_stats(TUBID_A).received_bytes == 12_000


def test_live_rate_change_applies_at_once():
    """Raising a peer's limit releases queued bytes at the new rate from the
    moment of the change; lowering it slows them from then on."""
    clock, shaper = make(rate_up=5_000)
    wrapper, _, transport = connect(shaper, clock)
    wrapper.write(b"m" * 400_000)
    run(clock, 1.0)
    before = len(transport.value())
    assert before <= 4096 + 5_000 + 1
    shaper.set_peer_limit(TUBID_A, up=200_000)
    run(clock, 0.05)  # a fifth of a statistics tick
    assert len(transport.value()) - before >= 0.04 * 200_000
    run(clock, 0.95)
    fast = len(transport.value()) - before
    assert 190_000 <= fast <= 200_000 + 10_000
    shaper.set_peer_limit(TUBID_A, up=5_000)
    mark = len(transport.value())
    run(clock, 1.0)
    assert len(transport.value()) - mark <= 10_000 + 5_000 + 1  # new burst + rate


def test_zero_rate_holds_until_changed():
    """A limit of 0 lets nothing pass and sets no timer; setting a rate again
    releases the queue."""
    clock, shaper = make(rate_up=0)
    wrapper, _, transport = connect(shaper, clock)
    wrapper.write(b"h" * 1000)
    run(clock, 5.0, step=0.1)
    assert transport.value() == b""
    assert not shaper.up.has_timer()
    shaper.set_peer_limit(TUBID_A, up=None)
    assert transport.value() == b"h" * 1000


def test_node_limit_applies_before_peer_is_known():
    """A connection whose peer is not yet identified passes the node bucket
    only; once identified, its peer's bucket applies too."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    shaper.set_node_limit(up=10_000)
    wrapper, inner, transport = connect(shaper, clock, peer=None)
    wrapper.write(b"n" * 30_000)
    assert len(transport.value()) == 4096
    assert shaper.peers() == []
    shaper.set_peer_limit(TUBID_A, up=2_000)
    inner.peer = TUBID_A
    wrapper.dataReceived(b"hello")  # the protocol learns its peer while reading
    assert wrapper.tubid == TUBID_A
    mark = len(transport.value())
    run(clock, 2.0)
    assert len(transport.value()) - mark <= 4096 + 2 * 2_000 + 1
    assert shaper.peer_stats(TUBID_A).sent_bytes == len(transport.value())


def test_start_tls_waits_for_queued_bytes():
    """startTLS on the wrapper starts TLS on the real transport only after the
    bytes written before it have left (else they would be encrypted)."""
    clock, shaper = make(rate_up=5_000)
    wrapper, _, transport = connect(shaper, clock)
    wrapper.write(b"p" * 9_000)  # plaintext, mostly queued
    wrapper.startTLS(object())
    wrapper.write(b"e" * 100)  # meant to go encrypted
    assert transport.tls_started_at is None
    run(clock, 2.0)
    assert transport.tls_started_at == 9_000
    assert transport.value() == b"p" * 9_000 + b"e" * 100


def test_start_tls_with_nothing_queued_is_immediate():
    """With nothing queued, startTLS reaches the real transport at once."""
    clock, shaper = make(rate_up=5_000)
    wrapper, _, transport = connect(shaper, clock)
    wrapper.write(b"p" * 100)
    wrapper.startTLS(object())
    assert transport.tls_started_at == 100


@implementer(IPushProducer)
class CountingProducer:
    def __init__(self) -> None:
        self.state = "producing"

    def pauseProducing(self) -> None:
        self.state = "paused"

    def resumeProducing(self) -> None:
        self.state = "producing"

    def stopProducing(self) -> None:
        self.state = "stopped"


def test_producer_paused_above_high_water():
    """A streaming producer registered on the wrapper is paused while the
    outbound queue is above the high-water mark and resumed below half of it;
    a pause from the real transport is relayed too."""
    clock, shaper = make(rate_up=10_000, high_water_bytes=20_000)
    wrapper, _, transport = connect(shaper, clock)
    producer = CountingProducer()
    wrapper.registerProducer(producer, True)
    wrapper.write(b"w" * 15_000)
    assert producer.state == "producing"
    wrapper.write(b"w" * 15_000)  # queue now ~26 KB > 20 KB
    assert producer.state == "paused"
    run(clock, 1.0)  # queue ~16 KB: above half
    assert producer.state == "paused"
    run(clock, 1.0)  # queue ~6 KB: below half
    assert producer.state == "producing"
    transport.producer.pauseProducing()  # the socket buffer is full
    assert producer.state == "paused"
    transport.producer.resumeProducing()
    assert producer.state == "producing"
    wrapper.unregisterProducer()
    assert transport.producer is None


def test_statistics_per_peer_and_node():
    """peer_stats and node_stats report bytes, queue, limits, wait time and
    smoothed rates (after statistics ticks on the injected clock)."""
    clock, shaper = make(rate_up=10_000)
    wrapper, _, _ = connect(shaper, clock)
    wrapper.write(b"s" * 30_000)
    wrapper.dataReceived(b"t" * 700)
    stats = shaper.peer_stats(TUBID_A)
    assert (stats.sent_bytes, stats.received_bytes) == (4096, 700)
    assert stats.queued_up == 30_000 - 4096 and stats.queued_bytes == stats.queued_up
    assert (stats.limit_up, stats.limit_down) == (10_000.0, None)
    assert stats.connections == 1
    run(clock, 1.0)
    stats = shaper.peer_stats(TUBID_A)
    assert stats.waited_up_seconds == pytest.approx(1.0)
    assert 0 < stats.rate_up < 14_096 and stats.mean_rate_up > 10_000
    node = shaper.node_stats()
    assert node.sent_bytes == stats.sent_bytes and node.received_bytes == 700
    assert node.queued_up == stats.queued_up and node.limit_up is None
    assert shaper.peers() == [TUBID_A]


def test_observer_sees_every_byte():
    """An observer is told of every byte that passes, with direction and TubID."""
    clock, shaper = make(rate_up=10_000)
    seen: dict[tuple[str, str | None], int] = {}
    shaper.add_observer(lambda d, t, n: seen.__setitem__((d, t), seen.get((d, t), 0) + n))
    wrapper, _, _ = connect(shaper, clock)
    wrapper.write(b"o" * 12_000)
    wrapper.dataReceived(b"i" * 50)
    run(clock, 2.0)
    assert seen == {("up", TUBID_A): 12_000, ("down", TUBID_A): 50}


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: s.set_peer_limit("not-a-tubid", up=1), "tubid must be a Foolscap TubID"),
        (lambda s: s.set_peer_limit(TUBID_A, up=-5), "up limit of peer"),
        (lambda s: s.set_node_limit(down="fast"), "node down limit must be a number"),
        (lambda s: s.set_node_limit(up=float("nan")), "node up limit"),
        (lambda s: s.peer_stats(42), "tubid must be"),
    ],
)
def test_bad_input_is_named(call, message):
    """Bad limits and TubIDs raise ValueError naming what was wrong."""
    shaper = ConnectionShaper(Clock())
    with pytest.raises(ValueError, match=message):
        call(shaper)


def test_limits_read_back_and_keep():
    """A direction left out of a setter keeps its limit; None is unlimited."""
    shaper = ConnectionShaper(Clock())
    shaper.set_node_limit(up=1_000_000, down=None)
    shaper.set_node_limit(down=500)
    assert shaper.node_limit() == (1_000_000.0, 500.0)
    shaper.set_peer_limit(TUBID_A, up=25_000)
    assert shaper.peer_limit(TUBID_A) == (25_000.0, None)
    assert shaper.peer_limit("b" * 32) == (None, None)


class PullProducer:
    def __init__(self) -> None:
        self.asked = 0

    def resumeProducing(self) -> None:
        self.asked += 1

    def stopProducing(self) -> None:
        pass


def test_pull_producer_asked_only_below_high_water():
    """A pull producer's request for more, relayed from the real transport,
    waits while the outbound queue is above the high-water mark and is passed
    on once the queue has drained to half of it."""
    clock, shaper = make(rate_up=10_000, high_water_bytes=20_000)
    wrapper, _, transport = connect(shaper, clock)
    producer = PullProducer()
    wrapper.registerProducer(producer, False)
    transport.producer.resumeProducing()
    assert producer.asked == 1
    wrapper.write(b"w" * 30_000)
    transport.producer.resumeProducing()
    assert producer.asked == 1  # held back: 26 KB queued
    run(clock, 1.0)
    assert producer.asked == 1  # 16 KB: still above half
    run(clock, 1.0)
    assert producer.asked == 2


def test_rates_rest_at_zero_after_last_connection():
    """Smoothed rates follow traffic on the statistics tick; when the last
    connection closes the tick stops and the rates read zero."""
    clock, shaper = make()
    wrapper, _, _ = connect(shaper, clock)
    for _ in range(60):  # 15 s: 7.5 half-lives of the EWMA
        wrapper.write(b"r" * 2_500)
        clock.advance(0.25)
    assert shaper.peer_stats(TUBID_A).rate_up == pytest.approx(10_000, rel=0.01)
    assert shaper.peer_stats(TUBID_A).mean_rate_up == pytest.approx(10_000, rel=0.001)
    assert shaper.node_stats().rate_up == pytest.approx(10_000, rel=0.01)
    wrapper.connectionLost(None)
    assert shaper.peer_stats(TUBID_A).rate_up == 0.0
    assert shaper.peer_stats(TUBID_A).sent_bytes == 150_000
    assert clock.getDelayedCalls() == []
