"""Where a governed node makes its Foolscap Tubs, and the moment each is handed to the shaper.

A Tahoe-LAFS 1.20 client node has three kinds of Tub:

- the main Tub (introducer connection, storage server, helper), made by
  ``allmydata.node.create_main_tub``;
- one Tub per storage server it connects to, made by the ``tub_maker`` that
  ``allmydata.client.create_storage_farm_broker`` hands to the
  ``StorageFarmBroker`` (which passes it to each ``NativeStorageServer``);
- the log Tub, for ``flogtool``, made in ``allmydata.node.Node.create_log_tub``.

The shaper gets the first two, each at the same moment: after Tahoe has set
its connection-hint handlers (so the shaper can wrap them: outbound), before
any ``listenOn`` (so the shaper can wrap the listener: inbound) and before the
Tub starts (so no connection exists unshaped). The log Tub carries only local
``flogtool`` traffic: it is kept on loopback instead (Tahoe 1.20 binds it to
every interface) and is not shaped.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, Protocol

from allmydata import node as tahoe_node
from allmydata.util import iputil
from foolscap.api import Tub
from twisted.internet.endpoints import AdoptedStreamServerEndpoint
from twisted.internet.interfaces import IReactorSocket

from tahoe_governor.node.logs import node_log

LOOPBACK = "127.0.0.1"


class TubShaper(Protocol):
    """What the node needs of a shaper: ``tahoe_governor.throttle.Shaper`` provides it
    (its ``install`` is ``foolscap_shaping.install``). The node layer decides when
    each Tub is shaped; the shaper's core knows nothing of Foolscap."""

    def install(self, tub: Tub) -> None:
        """Shape every connection ``tub`` makes or accepts from now on."""


TubMaker = Callable[..., Tub]


def shaped_tub_maker(tub_maker: TubMaker, shaper: TubShaper) -> TubMaker:
    """Wrap a ``StorageFarmBroker`` tub maker so each Tub it makes is shaped.

    ``NativeStorageServer.start_connecting`` calls the maker, then parents and
    connects the Tub it got: installing before returning it is before any
    connection.
    """

    def make_shaped_tub(*args: Any, **kwargs: Any) -> Tub:
        tub = tub_maker(*args, **kwargs)
        shaper.install(tub)
        return tub

    return make_shaped_tub


def create_shaped_main_tub(
    config: tahoe_node._Config,
    tub_options: dict[str, Any],
    default_connection_handlers: dict[str, str | None],
    foolscap_connection_handlers: dict[str, Any],
    i2p_provider: Any,
    tor_provider: Any,
    shaper: TubShaper,
) -> Tub:
    """The node's main Tub, as ``allmydata.node.create_main_tub`` makes it, but shaped.

    Same steps as Tahoe 1.20's ``create_main_tub`` (port and location from the
    config, certificate from ``private/node.pem``), with two differences: the
    Tub is plain Foolscap (no HTTPS storage on the same port), and the shaper
    is installed between making the Tub and ``listenOn``.
    """
    portlocation = tahoe_node._tub_portlocation(
        config, iputil.get_local_addresses_sync, iputil.allocate_tcp_port
    )
    tub = tahoe_node.create_tub(
        tub_options,
        default_connection_handlers,
        foolscap_connection_handlers,
        force_foolscap=True,
        certFile=config.get_private_path("node.pem"),
    )
    shaper.install(tub)
    if portlocation is None:
        node_log("main Tub is not listening (tub.port = disabled)")
    else:
        tubport, location = portlocation
        tahoe_node.tub_listen_on(i2p_provider, tor_provider, tub, tubport, location)
        hints = location.decode() if isinstance(location, bytes) else location
        node_log(f"main Tub listening on {tubport} (location {hints}), shaped")
    return tub


def listen_on_loopback(tub: Tub, reactor: IReactorSocket) -> int:
    """Make ``tub`` listen on a free port of 127.0.0.1 only; return the port number.

    The socket is bound here and adopted by the Tub's listener when the Tub
    starts, so no other process can take the port in between (Tahoe's
    ``iputil.listenOnUnused`` does the same, but on every interface).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((LOOPBACK, 0))
        sock.listen(socket.SOMAXCONN)
        portnum: int = sock.getsockname()[1]
        # Tahoe's own wrapper closes the descriptor if the Tub never starts.
        iputil.fileDescriptorResource.allocate()
        fd = sock.detach()
    finally:
        sock.close()
    endpoint = AdoptedStreamServerEndpoint(reactor, fd, socket.AF_INET)
    tub.listenOn(iputil.CleanupEndpoint(endpoint, fd))
    tub.setLocation(f"{LOOPBACK}:{portnum}")
    return portnum
