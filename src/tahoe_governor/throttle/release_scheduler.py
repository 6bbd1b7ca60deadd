"""Release of held-back bytes through shared token buckets, fairly across peers.

One :class:`ReleaseScheduler` exists per direction (upload, download). It
owns the node-wide bucket of that direction; each peer has a
:class:`PeerChannel` per direction holding that peer's bucket. A *lane* is one
connection's queue in one direction (a :class:`HeldBytes`): bytes the
protocol wrote that may not leave yet, or bytes read from the socket that may
not be delivered yet. A lane joins a channel with :meth:`PeerChannel.add_lane`
and moves or leaves with :meth:`ReleaseScheduler.move` and
:meth:`ReleaseScheduler.remove`.

A byte passes only when both the node bucket and its peer's bucket hold a
token for it (the pair is a :class:`~.token_bucket.BucketChain` in effect).
When a lane has nothing queued and both buckets have tokens for a whole
write, the bytes pass at once (:meth:`ReleaseScheduler.try_pass`); otherwise
they queue and the scheduler releases them as tokens accrue.

Fairness
--------
Waiting peers are served in pieces of at most :data:`QUANTUM_BYTES` by
start-time fair queuing over bytes: the next piece goes to the waiting peer
that has been served the fewest bytes since it (last) began to wait, among
those whose own bucket is not empty. A peer gets no credit for time spent
idle or blocked on its own cap. Under a node-wide cap this is max-min fair
between peers: a peer that wants less than an equal share gets all it wants,
the others split the rest evenly. Within a peer, its connections are served
round robin.

Timing
------
After each release the scheduler sets one timer on the injected clock for the
moment the first waiting peer can send a useful piece (:func:`wake_piece`
bytes: about 10 ms of the rate, at least 1460 bytes, at most half the burst,
so a timer a little late loses no tokens to a full bucket). No one-second
windows: the granularity is the bucket's. A rate change calls
:meth:`ReleaseScheduler.kick`, which releases at the new rate at once.

A release that runs later than it was due (the reactor was busy: a web page
rendering, a burst of requests) is owed what the buckets accrued meanwhile:
the node bucket and those of peers waiting since before that instant catch up
(:meth:`~.token_bucket.TokenBucket.catch_up`) for at most
:data:`LATE_CREDIT_SECONDS`, so the bytes go out late but the rate holds,
where a bucket clipped at its 50 ms burst would have lost the rest. The price
is a larger burst right after a stall: any window of ``t`` seconds carries at
most ``rate * (t + LATE_CREDIT_SECONDS) + burst``, and only after the
reactor was held that long. A release more than :data:`LATE_IS_A_JUMP_SECONDS`
late is a sleep or a clock set forward, not a busy reactor: nothing is made up.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Protocol

from tahoe_governor.throttle.reactor_clock import DelayedCall, ReactorClock
from tahoe_governor.throttle.token_bucket import UNLIMITED, TokenBucket

QUANTUM_BYTES = 16384
"""The most one lane is given per turn: one TLS record's worth of plaintext."""

WAKE_SECONDS = 0.01
"""A timer is set for about this many seconds of the rate (see :func:`wake_piece`)."""

MIN_WAKE_BYTES = 1460
"""The smallest piece worth a timer: one Ethernet TCP segment."""

LATE_CREDIT_SECONDS = 0.5
"""The most lateness of a release that is made up for (see the module documentation)."""

LATE_IS_A_JUMP_SECONDS = 2.0
"""A release later than this is not made up for at all: the machine slept or the
clock was set forward, and the line was not waiting for a busy reactor."""


class Lane(Protocol):
    """One connection's queue in one direction, as the scheduler sees it."""

    channel: PeerChannel
    queued: int

    def release(self, n: int) -> None:
        """Let the next ``n`` queued bytes pass (``n <= queued``)."""


class HeldBytes:
    """Bytes held back in one direction of one connection, in order: a :class:`Lane`.

    Items are ``bytes`` or zero-byte actions (callables) run once every byte
    queued before them has been released. Released bytes go to ``emit`` (the
    real transport's ``write``, or the wrapped protocol's ``dataReceived``);
    ``released()`` is called after each release, so the connection can react
    to the smaller backlog.
    """

    __slots__ = ("channel", "queued", "_items", "_offset", "_emit", "_released")

    def __init__(self, emit: Callable[[bytes], None], released: Callable[[], None]) -> None:
        self.channel: PeerChannel  # set by PeerChannel.add_lane
        self.queued = 0
        self._items: deque[bytes | Callable[[], None]] = deque()
        self._offset = 0
        self._emit = emit
        self._released = released

    def append(self, data: bytes) -> None:
        self._items.append(data)
        self.queued += len(data)

    def append_action(self, action: Callable[[], None]) -> None:
        """Run ``action`` once everything queued so far has been released."""
        self._items.append(action)

    def clear(self) -> None:
        self._items.clear()
        self._offset = 0
        self.queued = 0

    def take_all(self) -> bytes:
        """Every queued byte at once (actions are dropped)."""
        data = b"".join(item for item in self._items if isinstance(item, bytes))[self._offset:]
        self.clear()
        return data

    def release(self, n: int) -> None:
        """Let the next ``n`` queued bytes through, running actions in order."""
        items = self._items
        pieces: list[bytes] = []
        need = n
        self.queued -= n
        while items:
            head = items[0]
            if not isinstance(head, bytes):
                if pieces:  # bytes before the action go first
                    self._emit_pieces(pieces)
                    pieces = []
                items.popleft()
                head()
                continue
            if need == 0:
                break
            size = len(head) - self._offset
            if size <= need:
                pieces.append(head[self._offset:] if self._offset else head)
                items.popleft()
                self._offset = 0
                need -= size
            else:
                pieces.append(head[self._offset:self._offset + need])
                self._offset += need
                need = 0
        if pieces:
            self._emit_pieces(pieces)
        self._released()

    def _emit_pieces(self, pieces: list[bytes]) -> None:
        self._emit(pieces[0] if len(pieces) == 1 else b"".join(pieces))


def available(bucket: TokenBucket, now: float) -> float:
    """Bytes ``bucket`` lets pass at ``now``: ``inf`` if unlimited, 0 at rate 0."""
    rate = bucket.rate
    if rate == UNLIMITED:
        return math.inf
    if rate == 0.0:
        return 0.0
    return bucket.tokens(now)


def wake_piece(bucket: TokenBucket) -> float:
    """How many bytes a limited ``bucket`` should hold before a timer fires."""
    rate = bucket.rate
    if rate == UNLIMITED:
        return math.inf
    return max(1.0, min(bucket.burst / 2, max(MIN_WAKE_BYTES, rate * WAKE_SECONDS)))


class PeerChannel:
    """One peer's bucket in one direction, and the lanes waiting on it.

    ``passed_bytes`` counts every byte that has passed this channel;
    ``waited_seconds`` is the total time during which at least one of its
    lanes held bytes back (``held_since`` is when the current wait began).
    """

    __slots__ = ("key", "bucket", "unlimited", "lanes", "waiting", "passed_bytes",
                 "waited_seconds", "held_since", "virtual_bytes")

    def __init__(self, key: str | None, bucket: TokenBucket) -> None:
        self.key = key
        self.bucket = bucket
        self.unlimited = bucket.rate == UNLIMITED  # see rate_changed()
        self.lanes: set[Lane] = set()
        self.waiting: dict[Lane, None] = {}  # insertion-ordered round robin
        self.passed_bytes = 0
        self.waited_seconds = 0.0
        self.held_since: float | None = None
        self.virtual_bytes = 0  # fair-queuing finish tag (see ReleaseScheduler)

    def add_lane(self, lane: Lane) -> None:
        """Make ``lane`` one of this channel's: its bytes pass this channel's bucket.

        For a lane on no channel yet; :meth:`ReleaseScheduler.move` moves one.
        """
        lane.channel = self
        self.lanes.add(lane)

    def rate_changed(self) -> None:
        """Call after changing the bucket's rate (keeps the fast path right)."""
        self.unlimited = self.bucket.rate == UNLIMITED

    def queued(self) -> int:
        """Bytes held back on this channel now, over all its lanes."""
        return sum(lane.queued for lane in self.lanes)

    def waited(self, now: float) -> float:
        """Total seconds this channel has held bytes back, up to ``now``."""
        if self.held_since is None:
            return self.waited_seconds
        return self.waited_seconds + max(0.0, now - self.held_since)


ByteObserver = Callable[[str, "str | None", int], None]
"""``observer(direction, tubid, nbytes)``: bytes passed the shaper."""


class ReleaseScheduler:
    """Releases the queued bytes of one direction as the buckets allow.

    ``node_bucket`` is the node-wide bucket of the direction; ``clock`` the
    injected clock (the reactor, or ``task.Clock`` in tests). ``direction``
    ("up" or "down") only names the direction for observers.
    """

    def __init__(self, clock: ReactorClock, node_bucket: TokenBucket, direction: str) -> None:
        self._clock = clock
        self.node_bucket = node_bucket
        self.node_unlimited = node_bucket.rate == UNLIMITED  # see kick()
        self.direction = direction
        self.passed_bytes = 0
        self.observers: list[ByteObserver] = []
        self._waiting: dict[PeerChannel, None] = {}
        self._virtual_clock = 0  # start tag of the piece served last
        self._timer: DelayedCall | None = None
        self._due: float | None = None  # when the pending timer should fire
        self._releasing = False

    # -- lanes ---------------------------------------------------------------

    def try_pass(self, channel: PeerChannel, n: int) -> bool:
        """Let ``n`` bytes of an empty lane pass now if nothing stands in front
        of them and both buckets hold enough tokens; count them if so."""
        if not (channel.unlimited and self.node_unlimited):
            if channel.waiting or (self._waiting and not self.node_unlimited):
                return False  # others of this peer, or of this node, are in front
            node, peer = self.node_bucket, channel.bucket
            now = self._clock.seconds()
            if available(node, now) < n or available(peer, now) < n:
                return False
            node.consume(n, now)
            peer.consume(n, now)
        channel.passed_bytes += n
        self.passed_bytes += n
        if self.observers:
            self._notify(channel, n)
        return True

    def enqueue(self, lane: Lane) -> None:
        """``lane`` now holds bytes: wait for tokens (release what can go now)."""
        channel = lane.channel
        if lane in channel.waiting:
            return
        if not channel.waiting and channel.held_since is None:
            channel.held_since = self._clock.seconds()
        channel.waiting[lane] = None
        self._waiting[channel] = None
        self._release()

    def forget(self, lane: Lane) -> None:
        """Stop serving ``lane`` (its queue was dropped); it stays on its channel."""
        channel = lane.channel
        if lane not in channel.waiting:
            return
        del channel.waiting[lane]
        if not channel.waiting:
            self._stop_waiting(channel)
            self._waiting.pop(channel, None)
            if not self._waiting:
                self._cancel_timer()

    def move(self, lane: Lane, channel: PeerChannel) -> None:
        """Move ``lane`` onto ``channel`` (its connection's peer became known).

        The lane's old channel is its connection's own: the bytes it passed
        (negotiation, before the peer was known) are counted on ``channel``.
        Bytes still held wait on ``channel`` from now on.
        """
        old = lane.channel
        if old is channel:
            return
        self.forget(lane)
        old.lanes.discard(lane)
        channel.passed_bytes += old.passed_bytes
        channel.add_lane(lane)
        if lane.queued:
            self.enqueue(lane)

    def remove(self, lane: Lane) -> None:
        """``lane`` is gone (connection lost): stop serving it and leave its channel."""
        self.forget(lane)
        lane.channel.lanes.discard(lane)

    def kick(self) -> None:
        """A rate changed (or lanes moved): release at the new rates now.

        Call it after every change of a bucket's rate in this direction (and
        :meth:`PeerChannel.rate_changed` for a peer's bucket).
        """
        self.node_unlimited = self.node_bucket.rate == UNLIMITED
        self._release()

    def has_timer(self) -> bool:
        """Whether a release is scheduled (for tests and diagnostics)."""
        return self._timer is not None

    # -- releasing -----------------------------------------------------------

    def _release(self) -> None:
        if self._releasing:
            return  # re-entered from a lane's release: the loop below continues
        self._releasing = True
        try:
            due = self._due
            self._cancel_timer()
            now = self._clock.seconds()
            if due is not None and due < now <= due + LATE_IS_A_JUMP_SECONDS:
                self._catch_up(due, now)
            self._release_fair(now)
            self._schedule(now)
        finally:
            self._releasing = False

    def _catch_up(self, due: float, now: float) -> None:
        """Make up for a release that runs late: tokens of the buckets that
        would have released bytes since ``due`` are not lost to the burst."""
        since = max(due, now - LATE_CREDIT_SECONDS)
        owed = [channel for channel in self._waiting
                if channel.held_since is not None and channel.held_since <= due]
        if not owed:
            return  # bytes that arrived since then were not due at ``due``
        self.node_bucket.catch_up(since, now)
        for channel in owed:
            channel.bucket.catch_up(since, now)

    def _release_fair(self, now: float) -> None:
        node = self.node_bucket
        waiting = self._waiting
        while waiting:
            node_avail = available(node, now)
            if node_avail < 1:
                return
            # the eligible peer (own bucket not empty) that has been served least
            best: PeerChannel | None = None
            best_avail = 0.0
            for channel in waiting:
                if best is not None and channel.virtual_bytes >= best.virtual_bytes:
                    continue
                avail = available(channel.bucket, now)
                if avail >= 1:
                    best, best_avail = channel, avail
            if best is None:
                return  # every waiting peer's own bucket is empty
            channel = best
            lane = next(iter(channel.waiting))
            n = min(lane.queued, QUANTUM_BYTES)
            avail = min(node_avail, best_avail)
            if avail < n:
                n = int(avail)
            node.consume(n, now)
            channel.bucket.consume(n, now)
            channel.passed_bytes += n
            self.passed_bytes += n
            # start-time fair queuing: no credit for time spent idle or blocked
            start = max(channel.virtual_bytes, self._virtual_clock)
            self._virtual_clock = start
            channel.virtual_bytes = start + n
            del channel.waiting[lane]  # rotate this peer's lanes
            lane.release(n)
            if lane.queued > 0 and lane in channel.lanes:
                channel.waiting[lane] = None
            if not channel.waiting:
                waiting.pop(channel, None)
                self._stop_waiting(channel)
            if self.observers:
                self._notify(channel, n)

    def _schedule(self, now: float) -> None:
        if not self._waiting:
            return
        node = self.node_bucket
        node_piece = wake_piece(node)
        soonest = math.inf
        for channel in self._waiting:
            lane = next(iter(channel.waiting))
            piece = min(lane.queued, node_piece, wake_piece(channel.bucket))
            piece_bytes = max(1, int(piece))
            delay = max(node.delay(piece_bytes, now), channel.bucket.delay(piece_bytes, now))
            soonest = min(soonest, delay)
        if soonest != math.inf:
            self._timer = self._clock.callLater(soonest, self._on_timer)
            self._due = now + soonest

    def _on_timer(self) -> None:
        self._timer = None
        self._release()

    def _cancel_timer(self) -> None:
        self._due = None
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _stop_waiting(self, channel: PeerChannel) -> None:
        if channel.held_since is not None:
            channel.waited_seconds += max(0.0, self._clock.seconds() - channel.held_since)
            channel.held_since = None

    def _notify(self, channel: PeerChannel, n: int) -> None:
        for observer in list(self.observers):
            observer(self.direction, channel.key, n)
