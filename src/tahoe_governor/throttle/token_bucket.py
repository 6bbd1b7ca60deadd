"""Token buckets in bytes: the exact arithmetic behind every bandwidth cap.

The model
---------
A :class:`TokenBucket` holds up to ``burst`` tokens; one token is one byte.
It starts full and is refilled continuously at ``rate`` tokens per second,
never beyond ``burst``. Passing ``n`` bytes costs ``n`` tokens. Tokens never go
negative: what is not in the bucket does not pass, so over any interval
``[t0, t1]`` during which the rate ``r`` is in force the bytes granted are at
most ``burst + r * (t1 - t0)``.

A request larger than the burst is served in pieces: :meth:`TokenBucket.take`
grants what is available now (possibly less than asked), and
:meth:`TokenBucket.delay` says how long until a piece of ``min(n, burst)``
bytes may pass. Nothing is ever refused forever while the rate is above zero.

Special values
--------------
- ``rate = UNLIMITED`` (``math.inf``): every request passes at once, in full.
- ``rate = 0``: nothing passes, not even tokens saved earlier, until the rate
  changes; :meth:`TokenBucket.delay` answers ``math.inf``. Saved tokens are
  kept (frozen) and count again once the rate is above zero.
- A negative or NaN rate, or a burst below one byte, raises ``ValueError``.

A release that runs late (the reactor was busy past the instant it was due)
may call :meth:`TokenBucket.catch_up`: what accrued while it was late is not
clipped at the burst for that one instant, so a busy reactor delays bytes
without losing the rate (see :mod:`.release_scheduler`).

Changing the rate takes effect at the instant given: tokens are first
brought up to date at the old rate, then refill continues at the new one. No
more than ``burst`` tokens are ever saved up, so a change never releases more.
Going from unlimited to a limited rate starts with a full bucket.

Time
----
Every method that depends on time takes ``now`` (seconds, any monotonic
origin, usually ``reactor.seconds()``) as an argument; the bucket never reads
a clock. Time going backwards is clamped: an earlier ``now`` than the last one
seen is treated as the last one seen.

The bucket makes no promise of fairness between callers; the shaper that
shares one bucket among connections is responsible for that.
"""

from __future__ import annotations

import math

UNLIMITED: float = math.inf
"""A rate with no limit: every request passes in full, at once."""

MIN_BURST_BYTES = 4096
"""The smallest default burst: one small Foolscap frame passes whole."""

DEFAULT_BURST_SECONDS = 0.05
"""The default burst is this many seconds of the rate, if that exceeds 4 KiB."""


MIN_WAIT_SECONDS = 0.001
"""The shortest wait :meth:`TokenBucket.delay` answers. A bucket short of a whole
token by float dust (0.9999 tokens) asked for nanoseconds, which at an epoch-sized
time are no time at all: a timer fired at the same instant, found the same tokens
and waited again, for ever under a ``Clock`` (spinning on a real reactor)."""


def default_burst(rate: float) -> int:
    """The burst (bytes) used when none is configured for ``rate`` (bytes/s).

    The larger of 4 KiB and 50 ms of the rate. A small burst matters: on a
    1 Mbit/s line every 16 KiB sent at once queues 130 ms in the modem. For an
    unlimited rate the burst is irrelevant and ``MIN_BURST_BYTES`` is returned.
    """
    check_rate(rate)
    if math.isinf(rate):
        return MIN_BURST_BYTES
    return max(MIN_BURST_BYTES, int(rate * DEFAULT_BURST_SECONDS))


def check_rate(rate: float) -> float:
    """Return ``rate`` (bytes/s) if valid: a number >= 0 or ``UNLIMITED``."""
    if not isinstance(rate, int | float) or isinstance(rate, bool):
        raise ValueError(f"rate must be a number of bytes per second, got {rate!r}")
    if math.isnan(rate) or rate < 0:
        raise ValueError(f"rate must be >= 0 bytes per second or UNLIMITED, got {rate!r}")
    return float(rate)


class TokenBucket:
    """A bucket of ``burst`` byte tokens refilled at ``rate`` bytes/second.

    See the module documentation for the model. ``burst=None`` picks
    :func:`default_burst` of the rate, and keeps following the rate when it
    changes; an explicit burst stays fixed.
    """

    __slots__ = ("_rate", "_burst", "_auto_burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: int | None = None, now: float = 0.0) -> None:
        self._rate = check_rate(rate)
        self._auto_burst = burst is None
        self._burst = self._checked_burst(burst)
        self._tokens = float(self._burst)
        self._last = float(now)

    # -- reading -------------------------------------------------------------

    @property
    def rate(self) -> float:
        """Refill rate in bytes per second (``UNLIMITED`` or >= 0)."""
        return self._rate

    @property
    def burst(self) -> int:
        """Bucket size in bytes: the most that can pass at one instant."""
        return self._burst

    def tokens(self, now: float) -> float:
        """Tokens (bytes) in the bucket at ``now``; ``inf`` when unlimited."""
        if self._rate == UNLIMITED:
            return math.inf
        self._advance(now)
        return self._tokens

    def delay(self, n: int, now: float) -> float:
        """Seconds from ``now`` until a piece of ``min(n, burst)`` bytes may pass.

        0.0 if it may pass now; ``math.inf`` when the rate is zero (nothing
        passes then); else at least :data:`MIN_WAIT_SECONDS`. Asking does not
        take anything.
        """
        if n <= 0 or self._rate == UNLIMITED:
            return 0.0
        if self._rate == 0.0:
            return math.inf
        self._advance(now)
        missing = min(n, self._burst) - self._tokens
        if missing <= 0:
            return 0.0
        return max(missing / self._rate, MIN_WAIT_SECONDS)

    # -- taking --------------------------------------------------------------

    def take(self, n: int, now: float) -> int:
        """Take up to ``n`` bytes now; return how many were granted (0..n).

        Grants the whole bytes available, so a request larger than the burst
        is served over several calls.
        """
        if n <= 0:
            return 0
        if self._rate == UNLIMITED:
            return n
        self._advance(now)
        if self._rate == 0.0:
            return 0
        granted = min(n, int(self._tokens))
        self._tokens -= granted
        return granted

    def give_back(self, n: int, now: float) -> None:
        """Return ``n`` tokens taken but not used (never above the burst): a request
        that waits again must not keep a part it took for later."""
        if n <= 0 or self._rate == UNLIMITED:
            return
        self._advance(now)
        self._tokens = min(float(self._burst), self._tokens + n)

    def consume(self, n: int, now: float) -> None:
        """Remove exactly ``n`` tokens, which the caller knows are available.

        Used by :class:`BucketChain` after checking every bucket; raises
        ``ValueError`` if the tokens are not there (a caller bug).
        """
        if n <= 0 or self._rate == UNLIMITED:
            return
        self._advance(now)
        if n > self._tokens + 1e-6 or self._rate == 0.0:
            raise ValueError(f"consume({n}) with only {self._tokens:.1f} tokens available")
        self._tokens = max(0.0, self._tokens - n)

    def catch_up(self, since: float, now: float) -> None:
        """Owe a late release what accrued from ``since`` to ``now``, past the burst.

        The bucket is brought up to ``since`` as usual (clipped at the burst),
        then refilled for ``now - since`` without the clip: tokens a release
        due at ``since`` would have spent, had it run on time, instead of
        overflowing a full bucket. The excess lasts for the instant ``now``
        only: the next refill clips it back to the burst.
        """
        if self._rate == UNLIMITED or self._rate == 0.0 or now <= since:
            self._advance(now)
            return
        if since > self._last:
            self._advance(since)  # an earlier ``since`` is not a clock stepped back
        if now > self._last:  # from what the bucket has seen, if that is later
            self._tokens += (now - self._last) * self._rate
            self._last = now

    # -- changing ------------------------------------------------------------

    def set_rate(self, rate: float, now: float, burst: int | None = None) -> None:
        """Change the rate (and optionally the burst) from ``now`` on.

        Tokens are brought up to date at the old rate first; saved tokens are
        capped at the (new) burst. ``burst=None`` keeps an explicit burst, or
        follows the new rate when the burst was never configured.
        """
        rate = check_rate(rate)
        was_unlimited = self._rate == UNLIMITED
        self._advance(now)
        self._rate = rate
        if burst is not None:
            self._auto_burst = False
        self._burst = self._checked_burst(burst if burst is not None else (
            None if self._auto_burst else self._burst))
        if was_unlimited:
            self._tokens = float(self._burst)
        self._tokens = min(self._tokens, float(self._burst))

    # -- internals -----------------------------------------------------------

    def _checked_burst(self, burst: int | None) -> int:
        if burst is None:
            return default_burst(self._rate)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be a whole number of bytes >= 1, got {burst!r}")
        return burst

    def _advance(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed < 0.0:
            # The wall clock stepped back: refill from the new time, earning nothing for
            # the gap (waiting for the old instant would starve the bucket that long).
            self._last = now
            return
        if elapsed == 0.0:
            return
        self._last = now
        if self._rate != UNLIMITED and self._rate > 0.0:
            tokens = self._tokens + elapsed * self._rate
            self._tokens = tokens if tokens < self._burst else float(self._burst)

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self._rate!r}, burst={self._burst!r})"


class BucketChain:
    """All the buckets one byte stream must pass, e.g. node-wide and per-peer.

    A byte passes only when every bucket in the chain has a token for it, and
    passing takes the token from each. The chain itself holds no state beyond
    the list; buckets may be shared by several chains (one node bucket under
    every peer's chain).
    """

    __slots__ = ("buckets",)

    def __init__(self, buckets: list[TokenBucket] | tuple[TokenBucket, ...] = ()) -> None:
        self.buckets: tuple[TokenBucket, ...] = tuple(buckets)

    def delay(self, n: int, now: float) -> float:
        """Seconds until every bucket allows a piece of ``n`` bytes (capped
        per bucket at its burst); the latest of the buckets' delays."""
        longest = 0.0
        for bucket in self.buckets:
            d = bucket.delay(n, now)
            if d > longest:
                longest = d
        return longest

    def available(self, now: float) -> float:
        """Bytes every bucket allows now (``inf`` if all are unlimited)."""
        least = math.inf
        for bucket in self.buckets:
            if bucket.rate == 0.0:
                return 0.0
            t = bucket.tokens(now)
            if t < least:
                least = t
        return least

    def take(self, n: int, now: float) -> int:
        """Take up to ``n`` bytes from every bucket at once; return the grant."""
        if n <= 0:
            return 0
        granted = min(n, self.available(now))
        granted_bytes = int(granted) if granted != math.inf else n
        if granted_bytes <= 0:
            return 0
        for bucket in self.buckets:
            bucket.consume(granted_bytes, now)
        return granted_bytes

    def __repr__(self) -> str:
        return f"BucketChain({list(self.buckets)!r})"
