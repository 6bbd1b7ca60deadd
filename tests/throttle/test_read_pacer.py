"""Deterministic tests of the read pacer: reads from a socket at the cap, a sip at a time."""

from __future__ import annotations

from twisted.internet.task import Clock

from tahoe_governor.throttle.read_pacer import ReadPacer


def make() -> tuple[Clock, ReadPacer, list[float]]:
    clock = Clock()
    woken: list[float] = []
    return clock, ReadPacer(clock, lambda: woken.append(clock.seconds())), woken


def test_no_rate_reads_freely():
    """Without a cap every read may go at once, whatever was read."""
    _clock, pacer, woken = make()
    pacer.took(10_000_000)
    assert pacer.may_read()
    assert woken == []


def test_a_sip_then_a_wait_of_a_sip_at_the_rate():
    """At 100 kB/s (sips of 4 KiB): the first read goes at once; after it, the next
    waits the 41 ms the rate takes to accrue a sip, and the pacer says when."""
    clock, pacer, woken = make()
    pacer.set_rate(100_000)
    assert pacer.sip == 4096
    assert pacer.may_read()
    pacer.took(4096)
    assert not pacer.may_read()
    assert not pacer.may_read()  # asking again sets no second timer
    clock.advance(0.040)
    assert woken == []
    clock.advance(0.001)
    assert woken == [0.041]
    assert pacer.may_read()


def test_reads_over_a_second_keep_the_rate():
    """Reading a sip whenever allowed for 10 s takes the rate's bytes, plus one sip."""
    clock, pacer, _woken = make()
    pacer.set_rate(100_000)
    read = 0
    for _ in range(10_000):
        if pacer.may_read():
            pacer.took(pacer.sip)
            read += pacer.sip
        clock.advance(0.001)
    assert 1_000_000 - pacer.sip <= read <= 1_000_000 + pacer.sip


def test_idle_credit_is_two_sips_at_most():
    """After a long idle spell two sips may be read, not a burst of the seconds idle."""
    clock, pacer, _woken = make()
    pacer.set_rate(100_000)
    clock.advance(60)
    pacer.took(pacer.sip)
    assert pacer.may_read()
    pacer.took(pacer.sip)
    assert not pacer.may_read()


def test_rate_change_wakes_a_waiting_read():
    """A read waiting at the old rate is woken when the rate changes, and a lifted cap
    lets it read at once; a cap of zero reads nothing and sets no timer."""
    clock, pacer, woken = make()
    pacer.set_rate(100_000)
    pacer.took(pacer.sip)
    assert not pacer.may_read()
    pacer.set_rate(None)
    assert woken == [0.0]
    assert pacer.may_read()
    pacer.set_rate(0)
    pacer.took(pacer.sip)
    assert not pacer.may_read()
    clock.advance(100)
    assert woken == [0.0]


def test_stop_cancels_the_timer():
    """A stopped pacer (its connection lost) calls nobody."""
    clock, pacer, woken = make()
    pacer.set_rate(100_000)
    pacer.took(pacer.sip)
    pacer.may_read()
    pacer.stop()
    clock.advance(1)
    assert woken == []
