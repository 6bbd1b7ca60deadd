"""Tahoe's 15 s server-selection timeout, lengthened by the time a query waits behind capped bytes.

Tahoe's uploader gives each storage server 15 s to answer its server-selection
queries (``ask_about_existing_shares``, ``allocate_buckets``) and counts a
server that takes longer as broken. A query travels on the same connection as
the shares already sent, so under a cap it waits for the bytes queued before
it: one block of a 1 MiB segment is 349,526 bytes at 3-of-10, 35 s at a
10 kB/s share of a node cap. The next file's upload then failed with
``UploadUnhappinessError`` (measured: ``limit.up = auto`` on a 1 Mbit/s line).

:func:`install` makes each of those timeouts 15 s plus the time the queues
that query waits behind take to drain at their caps now (the node's and the
asked server's own; at most the storage servers' idle window), so a slow
answer that is only waiting its turn is not taken for a dead server, a server
held back by its own cap (or a used-up quota) does not slow the finding of a
dead one elsewhere, and an uncapped node keeps Tahoe's 15 s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

from allmydata.immutable import upload
from allmydata.util import base32
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


class PeerQueueSource(QueueSource, Protocol):
    """What the timeouts read of a shaper (``ConnectionShaper`` provides it)."""

    def outbound_backlog_to(self, tubid: str) -> list[tuple[int, float | None]]:
        """``(queued bytes, limit in bytes/s or None)`` of the queues a message to
        ``tubid`` waits behind: the node's and that peer's."""


# Each query's Deferred, by id, to the TubID of the server it asks: Tahoe passes it
# to timeout_call straight away, which takes it out again.
_asked: dict[int, str] = {}
_QUERY = upload.ServerTracker.query
_ASK_ABOUT_EXISTING_SHARES = upload.ServerTracker.ask_about_existing_shares


def _remembering_the_server(ask: Any) -> Any:
    def asking(tracker: Any, *args: Any) -> Any:
        d = ask(tracker, *args)
        tubid = getattr(tracker.get_server(), "get_tubid", lambda: None)()
        if isinstance(tubid, bytes):
            _asked[id(d)] = base32.b2a(tubid).decode("ascii")
        return d
    return asking


def install(shaper: PeerQueueSource) -> None:
    """Lengthen the timeouts of Tahoe's server-selection queries in this process by
    the wait in ``shaper``'s queues (the node's shaper: one per process) before the
    asked server's turn."""

    def governed_timeout_call(reactor: Any, d: Any, timeout: float) -> Any:
        tubid = _asked.pop(id(d), None)
        backlog = (shaper.outbound_backlog() if tubid is None
                   else shaper.outbound_backlog_to(tubid))
        return timeout_call(reactor, d, timeout + queue_wait_seconds(backlog))

    upload.ServerTracker.query = _remembering_the_server(_QUERY)
    upload.ServerTracker.ask_about_existing_shares = _remembering_the_server(
        _ASK_ABOUT_EXISTING_SHARES)
    upload.timeout_call = governed_timeout_call
