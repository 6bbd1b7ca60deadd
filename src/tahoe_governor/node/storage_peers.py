"""Which storage servers the node knows, told to the policy and the meters as the node meets them.

A cap written by nickname or server id (``peer.parents.up``) names a remote
Tub only once the storage broker has heard of the server: :class:`StoragePeerWatch`
re-reads the broker's known servers every :data:`PEER_REFRESH_SECONDS` and
hands them to the live policy, which re-resolves its selectors. It also keeps
the meters on the interface that carries the grid's traffic: the configured
``interface``, or the route(s) to the addresses the shaped connections use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from allmydata.util import base32
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from tahoe_governor.policy.peers import KnownPeer
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.status.display_names import clean_text
from tahoe_governor.throttle.counters import SystemCounters, choose_interfaces
from tahoe_governor.throttle.meters import Meters
from tahoe_governor.throttle.reactor_clock import ReactorClock

log = Logger()

PEER_REFRESH_SECONDS = 2.0
"""How often the known storage servers are re-read from the storage broker."""


def text(value: Any) -> str:
    """A nickname, server id or cap as text, whether Tahoe gave bytes, str or None.

    A server chooses its nickname: bytes that are not UTF-8 and lone surrogates
    (a JSON announcement may carry them) arrive as ``\\xNN`` escapes, so every
    snapshot encodes; displays escape control characters on top
    (:func:`~tahoe_governor.status.display_names.display_name`).
    """
    return clean_text(value)


def tubid_text(server: Any) -> str:
    """A storage server's TubID as the shaper keys it (base32 text)."""
    tubid = server.get_tubid()
    return base32.b2a(tubid).decode("ascii") if isinstance(tubid, bytes) else str(tubid)


class StoragePeerWatch:
    """Keeps the policy's known peers and the meters' interfaces current; see the module doc.

    :param broker: Tahoe's ``StorageFarmBroker`` (``get_known_servers()``), or
        ``None`` for a node without one.
    :param peer_addresses: the remote addresses of the shaped connections open now.
    """

    def __init__(
        self,
        reactor: ReactorClock,
        broker: Any,
        live: LivePolicy,
        meters: Meters,
        counters: SystemCounters,
        peer_addresses: Callable[[], Iterable[str]],
    ) -> None:
        self._broker = broker
        self._live = live
        self._meters = meters
        self._counters = counters
        self._peer_addresses = peer_addresses
        self._known: tuple[KnownPeer, ...] = ()
        self._addresses: frozenset[str] = frozenset()
        self._nicknames: dict[str, str] = {}
        self._loop = LoopingCall(self.refresh)
        self._loop.clock = reactor

    def start(self) -> None:
        """Refresh now and every :data:`PEER_REFRESH_SECONDS`."""
        self._loop.start(PEER_REFRESH_SECONDS, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def nickname(self, tubid: str) -> str:
        """The nickname the server with ``tubid`` announced ("" if never heard of)."""
        return self._nicknames.get(tubid, "")

    def refresh(self) -> None:
        """Tell the policy which storage servers are known; watch the interfaces to them."""
        servers = list(self._broker.get_known_servers()) if self._broker is not None else []
        known = []
        for server in servers:
            tubid = tubid_text(server)
            nickname = text(server.get_nickname())
            self._nicknames[tubid] = nickname
            known.append(KnownPeer(tubid, text(server.get_serverid()), nickname))
        if tuple(known) != self._known:
            self._known = tuple(known)
            self._live.set_known_peers(known)
        configured = self._live.policy.interface
        addresses = frozenset(self._peer_addresses())
        if (addresses or configured) and addresses != self._addresses:
            self._addresses = addresses
            try:
                self._meters.set_interfaces(
                    choose_interfaces(self._counters, configured, addresses))
            except (ValueError, OSError) as e:
                log.warn("cannot tell which interface carries the grid traffic: {e}", e=e)


def shaped_peer_addresses(shaper: Any) -> list[str]:
    """The remote host of every connection ``shaper`` shapes now."""
    out = []
    for conn in shaper.connections():
        transport = getattr(conn, "transport", None)
        peer = transport.getPeer() if transport is not None else None
        host = getattr(peer, "host", None)
        if host:
            out.append(host)
    return out
