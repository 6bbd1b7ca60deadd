"""Token bucket and bucket chain: fixed-instant tables and hypothesis properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tahoe_governor.throttle import (
    UNLIMITED,
    BucketChain,
    TokenBucket,
    default_burst,
)
from tahoe_governor.throttle.token_bucket import MIN_WAIT_SECONDS

# Fixed instants, as in golang.org/x/time/rate's tests.
t0, t1, t2, t3, t4, t5 = 0.0, 0.25, 0.5, 1.0, 2.0, 10.0


@pytest.mark.parametrize(
    ("rate", "burst", "steps", "why"),
    [
        (1000, 1000, [(t0, 1000, 1000)], "starts full"),
        (1000, 1000, [(t0, 1500, 1000)], "a request above the burst gets the burst"),
        (1000, 1000, [(t0, 1000, 1000), (t0, 1, 0)], "empty after the burst"),
        (1000, 1000, [(t0, 1000, 1000), (t1, 1000, 250)], "refills at the rate"),
        (1000, 1000, [(t0, 1000, 1000), (t5, 5000, 1000)], "never saves beyond the burst"),
        (1000, 1000, [(t2, 600, 600), (t0, 1000, 400)], "time backwards earns nothing"),
        (1000, 1000, [(t4, 1000, 1000), (t0, 1, 0), (t1, 1000, 250)],
         "after time went backwards, refills from the new time (not from the old instant)"),
        (0, 1000, [(t0, 10, 0), (t5, 10, 0)], "zero rate: nothing passes"),
        (UNLIMITED, None, [(t0, 10**9, 10**9), (t0, 10**9, 10**9)], "unlimited passes all"),
        (1000, 10, [(t0, 0, 0), (t0, -5, 0)], "nothing asked, nothing granted"),
    ],
)
def test_take_table(rate, burst, steps, why):
    """Each row: (instant, bytes asked, bytes granted) in order, with a reason."""
    bucket = TokenBucket(rate, burst, now=t0)
    for now, asked, granted in steps:
        assert bucket.take(asked, now) == granted, why


@pytest.mark.parametrize(
    ("rate", "burst", "taken_at_t0", "ask", "at", "expected", "why"),
    [
        (1000, 1000, 1000, 500, t0, 0.5, "wait for the missing tokens"),
        (1000, 1000, 1000, 500, t1, 0.25, "less wait later"),
        (1000, 1000, 0, 500, t0, 0.0, "available now"),
        (1000, 1000, 1000, 5000, t0, 1.0, "a large request waits for one burst"),
        (0, 1000, 1000, 1, t5, math.inf, "zero rate waits forever"),
        (0, 1000, 0, 1, t5, math.inf, "zero rate: saved tokens do not pass"),
        (UNLIMITED, None, 0, 10**12, t0, 0.0, "unlimited never waits"),
    ],
)
def test_delay_table(rate, burst, taken_at_t0, ask, at, expected, why):
    """delay(n, now) says how long until min(n, burst) bytes may pass."""
    bucket = TokenBucket(rate, burst, now=t0)
    if rate:
        bucket.take(taken_at_t0, t0)
    assert bucket.delay(ask, at) == pytest.approx(expected), why


def test_default_burst():
    """The default burst is the larger of 4 KiB and 50 ms of the rate."""
    assert default_burst(1000) == 4096
    assert default_burst(1_000_000) == 50_000
    assert default_burst(UNLIMITED) == 4096
    assert TokenBucket(1_000_000).burst == 50_000


def test_auto_burst_follows_rate_but_explicit_burst_stays():
    """A bucket without a configured burst keeps 50 ms of whatever rate it has."""
    auto = TokenBucket(1_000_000, now=t0)
    auto.set_rate(2_000_000, t0)
    assert auto.burst == 100_000
    fixed = TokenBucket(1_000_000, burst=8192, now=t0)
    fixed.set_rate(2_000_000, t0)
    assert fixed.burst == 8192


def test_rate_change_applies_at_once_without_saved_burst():
    """Lowering the rate caps saved tokens at the new burst; refill uses the new rate."""
    bucket = TokenBucket(1_000_000, now=t0)  # burst 50 000
    bucket.set_rate(10_000, t0)  # burst becomes 4096
    assert bucket.take(10**6, t0) == 4096
    assert bucket.take(10**6, t3) == 4096  # capped at the burst
    bucket.take(10**6, t4)
    assert bucket.take(10**6, t4 + 0.1) == 1000


def test_tokens_accrue_at_old_rate_until_change():
    """Tokens earned before a change are earned at the old rate."""
    bucket = TokenBucket(1000, burst=1000, now=t0)
    bucket.take(1000, t0)
    bucket.set_rate(100, t2)  # 500 tokens earned at 1000/s
    assert bucket.take(1000, t2) == 500


def test_unlimited_to_limited_starts_full():
    """Leaving unlimited starts with a full bucket, not an unbounded one."""
    bucket = TokenBucket(UNLIMITED, now=t0)
    bucket.take(10**9, t0)
    bucket.set_rate(1000, t1, burst=1000)
    assert bucket.take(10**9, t1) == 1000


def test_zero_rate_freezes_tokens():
    """A zero rate passes nothing; the tokens saved count again when it rises."""
    bucket = TokenBucket(1000, burst=1000, now=t0)
    bucket.take(400, t0)
    bucket.set_rate(0, t0)
    assert bucket.take(1, t5) == 0
    bucket.set_rate(1000, t5)
    assert bucket.take(10**6, t5) == 600


@pytest.mark.parametrize("bad", [-1, math.nan, "10", None, True])
def test_invalid_rate_rejected(bad):
    """Rates must be numbers >= 0 (or UNLIMITED); the error says what was expected."""
    with pytest.raises(ValueError, match="bytes per second"):
        TokenBucket(bad)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "4096"])
def test_invalid_burst_rejected(bad):
    """Bursts must be whole numbers of bytes >= 1."""
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1000, burst=bad)


def test_chain_takes_the_least_of_all_buckets():
    """A chain grants what every bucket allows and takes it from each."""
    node = TokenBucket(10_000, burst=10_000)
    peer = TokenBucket(1000, burst=1000)
    chain = BucketChain([node, peer])
    assert chain.take(5000, t0) == 1000
    assert node.tokens(t0) == 9000
    assert chain.delay(500, t0) == pytest.approx(0.5)
    assert chain.take(5000, t3) == 1000


def test_chain_shared_bucket():
    """Two chains sharing a node bucket split what it holds."""
    node = TokenBucket(1000, burst=1000)
    a = BucketChain([node, TokenBucket(UNLIMITED)])
    b = BucketChain([node, TokenBucket(UNLIMITED)])
    assert a.take(600, t0) == 600
    assert b.take(600, t0) == 400


def test_empty_and_unlimited_chains():
    """A chain of no or only unlimited buckets grants everything."""
    assert BucketChain().take(123, t0) == 123
    assert BucketChain([TokenBucket(UNLIMITED)]).take(123, t0) == 123
    assert BucketChain([TokenBucket(0)]).take(123, t0) == 0
    assert BucketChain([TokenBucket(0)]).delay(1, t0) == math.inf


# -- properties ---------------------------------------------------------------

rates = st.one_of(st.integers(0, 2_000_000).map(float), st.just(UNLIMITED))
events = st.lists(
    st.tuples(
        st.floats(0.0, 2.0),  # time step
        st.one_of(
            st.tuples(st.just("take"), st.integers(0, 300_000)),
            st.tuples(st.just("rate"), rates),
        ),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(initial=st.integers(1, 2_000_000).map(float), burst=st.integers(1, 100_000), evs=events)
def test_grants_never_exceed_burst_plus_rate_times_interval(initial, burst, evs):
    """Over any interval [ti, tj] with one rate in force, grants <= burst + rate*(tj-ti)."""
    bucket = TokenBucket(initial, burst=burst, now=0.0)
    now = 0.0
    segment: list[tuple[float, int]] = []  # grants since the last rate change
    rate = initial
    for step, (kind, value) in evs:
        now += step
        if kind == "rate":
            bucket.set_rate(value, now)
            rate = value
            segment = []
            continue
        granted = bucket.take(value, now)
        assert 0 <= granted <= value
        segment.append((now, granted))
        if rate == UNLIMITED:
            continue
        # every interval ending at this grant
        total = 0
        for when, amount in reversed(segment):
            total += amount
            assert total <= burst + rate * (now - when) + 1e-6


@settings(max_examples=10, deadline=None)
@given(
    rate=st.integers(1000, 10_000_000).map(float),
    burst_seconds=st.floats(0.5, 2.0),
    jitter=st.floats(0.0, 0.01),
)
def test_steady_demand_is_served_at_the_rate_for_48_hours(rate, burst_seconds, jitter):
    """A sender that always wants more gets the rate over 48 hours: no starvation, no drift.

    The sender drains what is available, then sleeps until a whole burst is
    back (plus a little scheduling jitter), as the shaper does.
    """
    burst = max(1, int(rate * burst_seconds))
    bucket = TokenBucket(rate, burst=burst, now=0.0)
    now, sent = 0.0, 0
    horizon = 48 * 3600.0
    while now < horizon:
        sent += bucket.take(10**12, now)
        now += bucket.delay(burst, now) + jitter
    assert sent <= rate * now + burst + 1
    # each sleep wastes at most `jitter` seconds of refill
    wakes = now / (burst / rate)
    assert sent >= rate * now - rate * jitter * wakes - burst


def test_catch_up_owes_a_late_release_past_the_burst_for_that_instant_only():
    """What accrued since the release was due is not clipped at the burst at
    ``now``; the next refill clips it back, so nothing is banked for later."""
    bucket = TokenBucket(100_000, now=0.0)  # burst 5000 (50 ms)
    assert bucket.take(5000, 0.0) == 5000
    bucket.catch_up(0.01, 0.31)  # due at 10 ms, ran at 310 ms
    assert bucket.tokens(0.31) == pytest.approx(1000 + 30_000)
    assert bucket.tokens(0.32) == 5000
    plain = TokenBucket(100_000, now=0.0)
    plain.take(5000, 0.0)
    assert plain.tokens(0.31) == 5000  # without it, all but the burst is lost


def test_catch_up_from_before_the_last_instant_seen_counts_no_time_twice():
    """A release due before the bucket was last brought up to date is owed only the time
    since then: the earlier ``since`` is not a clock stepped back, and the interval the
    bucket has already counted is not counted again."""
    bucket = TokenBucket(1000, 100, now=0.0)
    bucket.take(100, 10.0)  # seen (and emptied) at 10.0
    bucket.catch_up(9.8, 10.3)  # a release due at 9.8 ran at 10.3
    assert bucket.tokens(10.3) == pytest.approx(300)


def test_a_bucket_short_by_float_dust_asks_for_a_real_wait():
    """At an epoch-sized time a bucket refilled to 99.999... tokens is short of 100 by
    less than a clock tick can show: the wait asked is a millisecond, not nanoseconds
    (a timer at the same instant found the same tokens and waited again, for ever)."""
    t0 = 1_795_651_200.0
    bucket = TokenBucket(10_000, 4096, now=t0)
    bucket.take(4096, t0)
    now = t0 + 0.01
    assert 99.0 < bucket.tokens(now) < 100.0
    wait = bucket.delay(100, now)
    assert wait >= MIN_WAIT_SECONDS
    assert now + wait > now
