"""``restore --bandwidth``: one token bucket shared by every thread of a restore.

The restore's threads pay for the bytes they read from the node; a thread
that finds the bucket empty sleeps until its bytes are due, so together they
read at most ``rate`` bytes/s plus one burst (the bucket's model is
:class:`tahoe_governor.throttle.TokenBucket`'s). Reading slower makes TCP
slow the node's web server, whose download then fetches segments from the
storage servers only as fast as they are read: the limit reaches the wire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tahoe_governor.throttle.token_bucket import TokenBucket

MAX_READ_BYTES = 64 * 1024
MIN_WAIT_SECONDS = 0.001


class SharedRate:
    """A thread-safe bucket of ``bytes_per_second`` (None: unlimited) over ``clock``."""

    def __init__(self, bytes_per_second: float | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._bucket = None if bytes_per_second is None else \
            TokenBucket(bytes_per_second, now=clock())

    @property
    def read_size(self) -> int:
        """How many bytes to read at a time: at most a burst, so shaping stays smooth."""
        if self._bucket is None:
            return MAX_READ_BYTES
        return max(1024, min(MAX_READ_BYTES, self._bucket.burst))

    def pay(self, n: int, sleep: Callable[[float], object]) -> None:
        """Take ``n`` bytes from the bucket, calling ``sleep(seconds)`` while it is empty.

        ``sleep`` may return True to give up (the restore is stopping)."""
        if self._bucket is None:
            return
        while n > 0:
            with self._lock:
                now = self._clock()
                n -= self._bucket.take(n, now)
                if n <= 0:
                    return
                # at least MIN_WAIT: whole tokens accrue even where float rounding
                # leaves the bucket a hair short of the byte it waits for
                wait = max(self._bucket.delay(n, now), MIN_WAIT_SECONDS)
            if sleep(wait) is True:
                return
