"""The shaper's core: node-wide and per-peer bandwidth caps on real connections.

A :class:`ConnectionShaper` holds, for each direction ("up": bytes we send, "down":
bytes we receive), one node-wide token bucket and one bucket per peer (keyed
by the remote TubID, a base32 string). Every connection it shapes
(:class:`~.shaped_protocol.ShapedProtocol`) passes its bytes through the node
bucket and, once the peer is known, that peer's bucket; several connections
to one peer share the peer's buckets. See :mod:`.release_scheduler` for how
held bytes are released (round robin between peers: max-min fair).

Limits are in bytes per second; ``None`` means unlimited and ``0`` lets
nothing pass. A limit may be set before or after connections exist: a
change takes effect at once, releasing queued bytes at the new rate. Each
bucket's burst is :func:`~.token_bucket.default_burst` of its rate (the larger
of 4 KiB and 50 ms of the rate), so no one-second window carries more than
rate + burst and no 250 ms window more than a quarter second's rate + burst.

Statistics are kept per peer and for the node: bytes each way, bytes queued,
time spent waiting for tokens, and rates smoothed over ticks of
:data:`TICK_SECONDS` on the injected reactor (EWMA with a 2 s half-life and
the mean over the last 10 s). The tick runs only while connections exist.

It knows nothing of Foolscap: connections reach it as :class:`ShapedConnection`
objects. The Foolscap application's ``Shaper`` (a subclass with ``install``
and ``listen_on``) is in :mod:`.foolscap_shaping`; see ``docs/shaping.md``.
The modules import one way only: token_bucket, release_scheduler,
receive_window, shaper, read_pacer, shaped_protocol, foolscap_shaping (each
imports only those before it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final, Protocol, cast

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from tahoe_governor.throttle.estimators import ChannelCounts, EwmaRate, WindowRate
from tahoe_governor.throttle.reactor_clock import ReactorClock
from tahoe_governor.throttle.receive_window import ReceiveBuffer, transport_socket
from tahoe_governor.throttle.release_scheduler import (
    ByteObserver,
    HeldBytes,
    PeerChannel,
    ReleaseScheduler,
)
from tahoe_governor.throttle.token_bucket import UNLIMITED, TokenBucket, check_rate

TICK_SECONDS = 0.25
"""How often the smoothed rates are updated (seconds)."""

EWMA_HALF_LIFE_SECONDS = 2.0
MEAN_WINDOW_TICKS = 40  # 10 s at 4 ticks per second

DEFAULT_HIGH_WATER_BYTES = 65536
"""Outbound bytes queued on one connection above which its producer is paused."""

TUBID_RE: Final = re.compile(r"^[a-z2-7]{32}$")


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final[Any] = _Keep()
"""Default of the limit setters' arguments: leave that direction's limit as it is."""

_NODE = None  # the node's own channel key in the rate estimators (TubIDs are str)


class ShapedConnection(Protocol):
    """One connection as the shaper sees it (:class:`~.shaped_protocol.ShapedProtocol` is one).

    The shaper puts the connection's two queues on its channels (when the
    connection calls ``attach``, ``identified`` and ``detach``) and reads how
    much they hold; it needs nothing else of a connection.
    """

    @property
    def tubid(self) -> str | None:
        """The remote peer's TubID once known, else ``None``."""

    @property
    def outbound(self) -> HeldBytes:
        """What the connection's protocol wrote that may not leave yet."""

    @property
    def inbound(self) -> HeldBytes:
        """What was read from the socket that may not be delivered yet."""

    @property
    def transport(self) -> Any:
        """The real transport (the Governor reads ``getPeer().host`` from it)."""

    def receive_cap_changed(self, cap: float | None) -> None:
        """The download cap in force for the connection is now ``cap`` (bytes/s or ``None``)."""


def check_tubid(tubid: object) -> str:
    """Return ``tubid`` if it is a Foolscap TubID (32 base32 characters)."""
    if not isinstance(tubid, str) or not TUBID_RE.match(tubid):
        raise ValueError(
            f"tubid must be a Foolscap TubID (32 characters of lower-case base32), got {tubid!r}"
        )
    return tubid


def _rate_from_limit(what: str, limit: float | None) -> float:
    if limit is None:
        return UNLIMITED
    try:
        return check_rate(limit)
    except ValueError:
        raise ValueError(
            f"{what} must be a number of bytes per second >= 0, or None for unlimited; "
            f"got {limit!r}"
        ) from None


def _limit_from_rate(rate: float) -> float | None:
    return None if rate == UNLIMITED else rate


@attrs.frozen
class PeerStats:
    """A snapshot of one peer's traffic through the shaper.

    Bytes are counted where the limits apply: plaintext as the Foolscap
    connection writes and reads it. Rates are bytes/s; limits are bytes/s or
    ``None`` (unlimited).
    """

    tubid: str
    sent_bytes: int
    received_bytes: int
    queued_up: int  # written by us, waiting for tokens to leave
    queued_down: int  # read from the socket, waiting for tokens to be delivered
    rate_up: float  # EWMA, 2 s half-life
    rate_down: float
    mean_rate_up: float  # mean over the last 10 s
    mean_rate_down: float
    limit_up: float | None
    limit_down: float | None
    waited_up_seconds: float  # total time bytes to this peer were held back
    waited_down_seconds: float
    connections: int

    @property
    def queued_bytes(self) -> int:
        """Bytes held back in both directions."""
        return self.queued_up + self.queued_down


@attrs.frozen
class NodeStats:
    """A snapshot of all shaped traffic of the node (every peer, and
    connections whose peer is not yet known)."""

    sent_bytes: int
    received_bytes: int
    queued_up: int
    queued_down: int
    rate_up: float
    rate_down: float
    mean_rate_up: float
    mean_rate_down: float
    limit_up: float | None
    limit_down: float | None
    connections: int

    @property
    def queued_bytes(self) -> int:
        """Bytes held back in both directions."""
        return self.queued_up + self.queued_down


class _Peer:
    """One remote Tub: its buckets (one channel per direction) and connections."""

    __slots__ = ("tubid", "up", "down", "connections", "_ticked_up", "_ticked_down")

    def __init__(self, tubid: str, now: float) -> None:
        self.tubid = tubid
        self.up = PeerChannel(tubid, TokenBucket(UNLIMITED, now=now))
        self.down = PeerChannel(tubid, TokenBucket(UNLIMITED, now=now))
        self.connections: set[ShapedConnection] = set()
        self._ticked_up = 0
        self._ticked_down = 0

    def tick_deltas(self) -> tuple[int, int]:
        up, down = self.up.passed_bytes, self.down.passed_bytes
        deltas = (up - self._ticked_up, down - self._ticked_down)
        self._ticked_up, self._ticked_down = up, down
        return deltas


class ConnectionShaper:
    """Node-wide and per-peer caps for every connection it shapes.

    ``reactor`` provides ``IReactorTime`` (a :class:`~.reactor_clock.ReactorClock`):
    all timing (release timers, the statistics tick) uses it, never the wall
    clock. ``high_water_bytes`` is the outbound backlog of one connection
    above which a producer registered on it is paused.
    """

    def __init__(
        self, reactor: ReactorClock, *, high_water_bytes: int = DEFAULT_HIGH_WATER_BYTES
    ) -> None:
        if not IReactorTime.providedBy(reactor) and not hasattr(reactor, "callLater"):
            raise TypeError(f"reactor must provide IReactorTime, got {reactor!r}")
        if isinstance(high_water_bytes, bool) or not isinstance(high_water_bytes, int) or (
            high_water_bytes < 1
        ):
            raise ValueError(
                f"high_water_bytes must be a whole number >= 1, got {high_water_bytes!r}")
        self.reactor = reactor
        self.high_water_bytes = high_water_bytes
        now = self.reactor.seconds()
        self.up = ReleaseScheduler(reactor, TokenBucket(UNLIMITED, now=now), "up")
        self.down = ReleaseScheduler(reactor, TokenBucket(UNLIMITED, now=now), "down")
        self._peers: dict[str, _Peer] = {}
        self._connections: set[ShapedConnection] = set()
        self._identified_listeners: list[Callable[[str], object]] = []
        self._unshaped_down = 0
        self._counts = {
            direction: ChannelCounts(
                [EwmaRate(TICK_SECONDS, EWMA_HALF_LIFE_SECONDS),
                 WindowRate(TICK_SECONDS, MEAN_WINDOW_TICKS)]
            )
            for direction in ("up", "down")
        }
        self._ticked_node = (0, 0)
        self._listening: list[tuple[Any, ReceiveBuffer]] = []
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = cast(IReactorTime, reactor)  # a zope interface: mypy cannot see it

    # -- limits --------------------------------------------------------------

    def set_node_limit(self, up: float | None = KEEP, down: float | None = KEEP) -> None:
        """Cap all shaped traffic of the node (bytes/s; ``None`` = unlimited).

        An argument left out keeps that direction's current limit.
        """
        now = self.reactor.seconds()
        down_before = self.down.node_bucket.rate
        if up is not KEEP:
            self.up.node_bucket.set_rate(_rate_from_limit("node up limit", up), now)
        if down is not KEEP:
            self.down.node_bucket.set_rate(_rate_from_limit("node down limit", down), now)
        self._kick(up is not KEEP, down is not KEEP)
        if self.down.node_bucket.rate != down_before:  # limits are re-applied every tick
            self._size_listening_sockets()
            for conn in list(self._connections):
                conn.receive_cap_changed(self.down_cap(conn))

    def set_peer_limit(
        self, tubid: str, up: float | None = KEEP, down: float | None = KEEP
    ) -> None:
        """Cap the traffic with one peer (bytes/s; ``None`` = unlimited), over
        all its connections. The peer need not be connected yet.

        An argument left out keeps that direction's current limit.
        """
        peer = self._peer(check_tubid(tubid))
        now = self.reactor.seconds()
        down_before = peer.down.bucket.rate
        if up is not KEEP:
            peer.up.bucket.set_rate(_rate_from_limit(f"up limit of peer {tubid}", up), now)
            peer.up.rate_changed()
        if down is not KEEP:
            peer.down.bucket.set_rate(_rate_from_limit(f"down limit of peer {tubid}", down), now)
            peer.down.rate_changed()
        self._kick(up is not KEEP, down is not KEEP)
        if peer.down.bucket.rate != down_before:
            for conn in list(peer.connections):
                conn.receive_cap_changed(self.down_cap(conn))

    def node_limit(self) -> tuple[float | None, float | None]:
        """The node-wide ``(up, down)`` limits in force (bytes/s or ``None``)."""
        return (_limit_from_rate(self.up.node_bucket.rate),
                _limit_from_rate(self.down.node_bucket.rate))

    def peer_limit(self, tubid: str) -> tuple[float | None, float | None]:
        """The ``(up, down)`` limits in force for a peer (bytes/s or ``None``)."""
        peer = self._peers.get(check_tubid(tubid))
        if peer is None:
            return (None, None)
        return (_limit_from_rate(peer.up.bucket.rate), _limit_from_rate(peer.down.bucket.rate))

    def down_cap(self, conn: ShapedConnection) -> float | None:
        """The download cap in force for ``conn`` (bytes/s, ``None`` for none): the
        lower of the node's and, once known, its peer's."""
        rate = self.down.node_bucket.rate
        peer = self._peers.get(conn.tubid) if conn.tubid is not None else None
        if peer is not None:
            rate = min(rate, peer.down.bucket.rate)
        return _limit_from_rate(rate)

    def add_listening_port(self, port: Any) -> None:
        """Size the receive buffer of ``port``'s listening socket (a Twisted listening
        port, or anything with a ``socket``) from the node's download cap, now and each
        time it changes: the connections it accepts inherit it before their handshake."""
        self._listening.append((port, ReceiveBuffer(transport_socket(port))))
        self._size_listening_sockets()

    def _size_listening_sockets(self) -> None:
        cap = self.node_limit()[1]
        # a port that stopped listening (Twisted sets connected false) is forgotten
        self._listening = [(port, buffer) for port, buffer in self._listening
                           if getattr(port, "connected", True)]
        for _port, buffer in self._listening:
            buffer.apply(cap)

    def _kick(self, up: bool, down: bool) -> None:
        if up:
            self.up.kick()
        if down:
            self.down.kick()

    # -- statistics ----------------------------------------------------------

    def peers(self) -> list[str]:
        """Every TubID the shaper knows: connected now or before, or given a limit."""
        return list(self._peers)

    def peer_stats(self, tubid: str) -> PeerStats:
        """A snapshot of one peer's traffic (zeros for a peer never seen)."""
        peer = self._peers.get(check_tubid(tubid))
        if peer is None:
            return PeerStats(tubid, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, None, None, 0.0, 0.0, 0)
        now = self.reactor.seconds()
        return PeerStats(
            tubid=tubid,
            sent_bytes=peer.up.passed_bytes,
            received_bytes=peer.down.passed_bytes,
            queued_up=peer.up.queued(),
            queued_down=peer.down.queued(),
            rate_up=self._rate("up", tubid, 0),
            rate_down=self._rate("down", tubid, 0),
            mean_rate_up=self._rate("up", tubid, 1),
            mean_rate_down=self._rate("down", tubid, 1),
            limit_up=_limit_from_rate(peer.up.bucket.rate),
            limit_down=_limit_from_rate(peer.down.bucket.rate),
            waited_up_seconds=peer.up.waited(now),
            waited_down_seconds=peer.down.waited(now),
            connections=len(peer.connections),
        )

    def outbound_backlog(self) -> list[tuple[int, float | None]]:
        """``(queued bytes, limit)`` of the node's upload queue and of every peer's
        with an upload limit (bytes/s): what :class:`~.backlog_gate.BacklogGate` reads."""
        out = [(self._queued_up(), _limit_from_rate(self.up.node_bucket.rate))]
        for peer in self._peers.values():
            if peer.up.bucket.rate != UNLIMITED:
                out.append((peer.up.queued(), peer.up.bucket.rate))
        return out

    def outbound_backlog_to(self, tubid: str) -> list[tuple[int, float | None]]:
        """``(queued bytes, limit)`` of the queues a message to ``tubid`` waits behind
        now: the node's upload queue and that peer's own, if it has an upload limit."""
        out = [(self._queued_up(), _limit_from_rate(self.up.node_bucket.rate))]
        peer = self._peers.get(check_tubid(tubid))
        if peer is not None and peer.up.bucket.rate != UNLIMITED:
            out.append((peer.up.queued(), peer.up.bucket.rate))
        return out

    def _queued_up(self) -> int:
        """Outbound bytes held back over every connection (the node's upload queue)."""
        return sum(c.outbound.queued for c in self._connections)

    def node_stats(self) -> NodeStats:
        """A snapshot of the node's shaped traffic, over every connection."""
        up_limit, down_limit = self.node_limit()
        return NodeStats(
            sent_bytes=self.up.passed_bytes,
            received_bytes=self.down.passed_bytes + self._unshaped_down,
            queued_up=self._queued_up(),
            queued_down=sum(c.inbound.queued for c in self._connections),
            rate_up=self._rate("up", _NODE, 0),
            rate_down=self._rate("down", _NODE, 0),
            mean_rate_up=self._rate("up", _NODE, 1),
            mean_rate_down=self._rate("down", _NODE, 1),
            limit_up=up_limit,
            limit_down=down_limit,
            connections=len(self._connections),
        )

    def add_identified_listener(self, listener: Callable[[str], object]) -> None:
        """Call ``listener(tubid)`` each time a connection's peer becomes known,
        before its bytes pass that peer's buckets: the moment to set the peer's
        limits so that they hold from its first byte (outbound connections know
        their peer before sending anything, inbound ones once negotiation has
        named it)."""
        self._identified_listeners.append(listener)

    def add_observer(self, observer: ByteObserver) -> None:
        """Call ``observer(direction, tubid, nbytes)`` whenever bytes pass.

        ``direction`` is "up" or "down"; ``tubid`` is ``None`` while a
        connection's peer is not yet known. Called on the hot path: keep it
        cheap (for totals, :meth:`node_stats` costs nothing per byte).
        """
        self.up.observers.append(observer)
        self.down.observers.append(observer)

    def remove_observer(self, observer: ByteObserver) -> None:
        """Stop calling an observer added with :meth:`add_observer`."""
        self.up.observers.remove(observer)
        self.down.observers.remove(observer)

    def _rate(self, direction: str, key: str | None, estimator: int) -> float:
        counts = self._counts[direction]
        return counts.estimators[estimator].rate(counts.channel(key))

    def _tick(self) -> None:
        for peer in self._peers.values():
            up, down = peer.tick_deltas()
            if up:
                self._counts["up"].add(peer.tubid, up)
            if down:
                self._counts["down"].add(peer.tubid, down)
        node_up = self.up.passed_bytes
        node_down = self.down.passed_bytes + self._unshaped_down
        self._counts["up"].add(_NODE, node_up - self._ticked_node[0])
        self._counts["down"].add(_NODE, node_down - self._ticked_node[1])
        self._ticked_node = (node_up, node_down)
        for counts in self._counts.values():
            counts.tick()

    # -- connections (called by each ShapedConnection) -----------------------

    def attach(self, conn: ShapedConnection) -> None:
        """A shaped connection was made: it passes the node buckets only,
        until :meth:`identified` tells its peer."""
        now = self.reactor.seconds()
        for held in (conn.outbound, conn.inbound):
            # the connection's own unlimited channel: counts its bytes until identified
            PeerChannel(None, TokenBucket(UNLIMITED, now=now)).add_lane(held)
        self._connections.add(conn)
        conn.receive_cap_changed(self.down_cap(conn))
        if not self._ticker.running:
            self._ticker.start(TICK_SECONDS, now=False)

    def identified(self, conn: ShapedConnection, tubid: str) -> None:
        """``conn``'s peer is now known: move it onto that peer's buckets.

        The identification listeners run first, so a limit they set for this
        peer is in force before any byte of ``conn`` passes its buckets.
        """
        for listener in list(self._identified_listeners):
            listener(tubid)
        peer = self._peer(tubid)
        peer.connections.add(conn)
        self.up.move(conn.outbound, peer.up)
        self.down.move(conn.inbound, peer.down)
        conn.receive_cap_changed(self.down_cap(conn))

    def detach(self, conn: ShapedConnection, delivered_unshaped: int = 0) -> None:
        """``conn`` was lost; ``delivered_unshaped`` held inbound bytes were
        handed over without waiting for tokens (it is closing)."""
        self.up.remove(conn.outbound)
        self.down.remove(conn.inbound)
        if delivered_unshaped:
            conn.inbound.channel.passed_bytes += delivered_unshaped
            self._unshaped_down += delivered_unshaped
            for observer in list(self.down.observers):
                observer("down", conn.tubid, delivered_unshaped)
        if conn.tubid is not None:
            self._peers[conn.tubid].connections.discard(conn)
        self._connections.discard(conn)
        if not self._connections and self._ticker.running:
            self._ticker.stop()
            self._tick()  # count the last partial tick, then rest at zero
            for counts in self._counts.values():
                ewma = counts.estimators[0]
                assert isinstance(ewma, EwmaRate)
                for key in counts.keys():
                    ewma.reset(counts.channel(key))

    def connections(self) -> list[ShapedConnection]:
        """The shaped connections open now."""
        return list(self._connections)

    def _peer(self, tubid: str) -> _Peer:
        peer = self._peers.get(tubid)
        if peer is None:
            peer = self._peers[tubid] = _Peer(tubid, self.reactor.seconds())
        return peer
