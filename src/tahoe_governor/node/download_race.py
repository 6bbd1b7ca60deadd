"""A fix for a race in Tahoe-LAFS 1.20's downloader: shares found after a segment's fetcher stopped.

``_Node.got_shares`` keeps every share the share finder found and hands the new
ones to the active segment fetcher. A fetcher that has stopped (its segment
fetched or failed) stays the node's active one until the segment is delivered,
and ``SegmentFetcher.stop`` deletes its share lists; a share found in that
moment makes ``add_shares`` raise ``AttributeError`` in an eventual-send, which
is logged as an unhandled error. It happens under load, to downloads that find
shares late (verification by the maintenance tasks, restores).

Nothing is lost by ignoring those shares: the node kept them, and gives them
to the next segment's fetcher. :func:`install` makes a stopped fetcher ignore
them.
"""

from __future__ import annotations

from typing import Any

from allmydata.immutable.downloader import fetcher


def _add_shares_while_running(original: Any) -> Any:
    def add_shares(self: Any, shares: Any) -> None:
        if not self._running:
            return  # stopped: the node keeps the shares for the next segment
        original(self, shares)

    add_shares.__wrapped__ = original  # type: ignore[attr-defined]
    return add_shares


def install() -> None:
    """Make a stopped segment fetcher ignore late shares (once per process)."""
    current = fetcher.SegmentFetcher.add_shares
    if getattr(current, "__wrapped__", None) is None:
        fetcher.SegmentFetcher.add_shares = _add_shares_while_running(current)
