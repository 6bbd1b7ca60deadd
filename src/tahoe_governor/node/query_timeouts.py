"""Tahoe's 15 s server-selection timeout, lengthened by the time a query waits behind capped bytes.

Tahoe's uploader gives each storage server 15 s to answer its server-selection
queries (``ask_about_existing_shares``, ``allocate_buckets``) and counts a
server that takes longer as broken. A query travels on the same connection as
the shares already sent, so under a cap it waits for the bytes queued before
it: one block of a 1 MiB segment is 349,526 bytes at 3-of-10, 35 s at a
10 kB/s share of a node cap. The next file's upload then failed with
``UploadUnhappinessError`` (measured: ``limit.up = auto`` on a 1 Mbit/s line).

:func:`install` makes those timeouts 15 s plus the longest time the shaper's
capped upload queues take to drain at their caps now (at most the storage
servers' idle window), so a slow answer that is only waiting its turn is not
taken for a dead server, and an uncapped node keeps Tahoe's 15 s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from allmydata.immutable import upload
from allmydata.util.deferredutil import timeout_call

from tahoe_governor.policy.upload_floor import IDLE_WINDOW_SECONDS
from tahoe_governor.throttle.backlog_gate import QueueSource


def queue_wait_seconds(backlog: Iterable[tuple[int, float | None]]) -> float:
    """The longest time a capped upload queue takes to drain at its cap: ``backlog``
    is ``(queued bytes, cap in bytes/s or None)`` per queue; at most the idle window."""
    longest = 0.0
    for queued, limit in backlog:
        if limit is None or queued <= 0:
            continue
        wait = queued / limit if limit > 0 else math.inf
        longest = max(longest, wait)
    return min(longest, IDLE_WINDOW_SECONDS)


def install(shaper: QueueSource) -> None:
    """Lengthen the timeouts of Tahoe's server-selection queries in this process by
    ``shaper``'s queue wait (the node's shaper: one per process)."""

    def governed_timeout_call(reactor: Any, d: Any, timeout: float) -> Any:
        return timeout_call(reactor, d, timeout + queue_wait_seconds(shaper.outbound_backlog()))

    upload.timeout_call = governed_timeout_call
