"""The Foolscap integration: hint handlers, endpoints, install(), and real Tubs."""

from __future__ import annotations

import hashlib

import pytest
from foolscap.api import Referenceable, Tub
from foolscap.connections.tcp import DefaultTCP
from foolscap.eventual import flushEventualQueue
from foolscap.ipb import IConnectionHintHandler, InvalidHintError
from foolscap.referenceable import TubRef
from foolscap.util import allocate_tcp_port
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial import unittest
from zope.interface import implementer

from tahoe_governor.throttle import (
    ShapedClientEndpoint,
    ShapedHintHandler,
    ShapedProtocol,
    ShapedServerEndpoint,
    Shaper,
)
from tahoe_governor.throttle.foolscap_shaping import remote_tubid, shaped_server_endpoint

from .shaping_fakes import TUBID_A, RecordingProtocol

# Tub certificates are made with pyOpenSSL APIs it now deprecates: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class _ClientNegotiation:
    isClient = True
    target = TubRef(TUBID_A)


class _ServerNegotiation:
    isClient = False


def test_remote_tubid_client_and_server_sides():
    """A client Negotiation names its target before any byte; a server one
    only once negotiation has set theirTubRef."""
    assert remote_tubid(_ClientNegotiation()) == TUBID_A
    server = _ServerNegotiation()
    assert remote_tubid(server) is None
    server.theirTubRef = TubRef(TUBID_A)  # type: ignore[attr-defined]
    assert remote_tubid(server) == TUBID_A


@implementer(IStreamClientEndpoint)
class _MemoryEndpoint:
    """Connects the factory's protocol to a StringTransport at once."""

    def __init__(self) -> None:
        self.transport = StringTransport()
        self.connected: object = None

    def connect(self, factory):
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(self.transport)
        self.connected = protocol
        return defer.succeed(protocol)


def test_connect_fires_with_the_wrapped_protocol():
    """ShapedClientEndpoint.connect fires with the protocol the caller's
    factory built, not the shaping wrapper (Foolscap's TubConnector would
    otherwise close the winning connection), while the transport's protocol
    is the wrapper."""
    inner = _MemoryEndpoint()
    built = RecordingProtocol(None)
    d = ShapedClientEndpoint(Shaper(Clock()), inner).connect(Factory.forProtocol(lambda: built))
    result = []
    d.addCallback(result.append)
    assert result == [built]
    assert isinstance(inner.connected, ShapedProtocol)
    assert built.transport is inner.connected


def test_hint_handler_wraps_endpoints_and_keeps_errors():
    """A wrapped handler returns shaped endpoints with the same hostname,
    raises the handler's own InvalidHintError, and describes itself as before."""
    handler = ShapedHintHandler(Shaper(Clock()), DefaultTCP())
    assert IConnectionHintHandler.providedBy(handler)
    endpoint, host = handler.hint_to_endpoint("tcp:127.0.0.1:1234", reactor, lambda s: None)
    assert isinstance(endpoint, ShapedClientEndpoint) and host == "127.0.0.1"
    with pytest.raises(InvalidHintError):
        handler.hint_to_endpoint("tcp:nonsense", reactor, lambda s: None)
    assert handler.describe() == "tcp"


def test_hint_handler_accepts_deferred_results():
    """Handlers that answer with a Deferred (tor, i2p) are wrapped too."""

    @implementer(IConnectionHintHandler)
    class Slow:
        def hint_to_endpoint(self, hint, reactor, update_status):
            return defer.succeed((_MemoryEndpoint(), "somewhere"))

    result = []
    ShapedHintHandler(Shaper(Clock()), Slow()).hint_to_endpoint(
        "tor:x:1", reactor, lambda s: None
    ).addCallback(result.append)
    assert isinstance(result[0][0], ShapedClientEndpoint) and result[0][1] == "somewhere"


def test_bad_wrapped_objects_are_named():
    """Wrapping something that is not a handler or endpoint says what was expected."""
    shaper = Shaper(Clock())
    with pytest.raises(TypeError, match="IConnectionHintHandler"):
        ShapedHintHandler(shaper, object())
    with pytest.raises(TypeError, match="IStreamClientEndpoint"):
        ShapedClientEndpoint(shaper, object())
    with pytest.raises(TypeError, match="IStreamServerEndpoint"):
        shaper.listen_on(Tub(), 12.5)


def test_install_wraps_handlers_now_and_later_and_listeners():
    """install() wraps registered handlers, handlers added afterwards (as
    Tahoe's create_tub adds them), listeners created before it, and later
    listenOn calls; installing again with the same shaper changes nothing."""
    shaper = Shaper(MemoryReactorClock())  # parses "tcp:..." strings: needs IReactorTCP
    tub = Tub()
    early = tub.listenOn(TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"))
    shaper.install(tub)
    assert isinstance(tub._connectionHandlers["tcp"], ShapedHintHandler)
    tub.removeAllConnectionHintHandlers()
    tub.addConnectionHintHandler("tcp", DefaultTCP())
    assert isinstance(tub._connectionHandlers["tcp"], ShapedHintHandler)
    late = tub.listenOn("tcp:0:interface=127.0.0.1")
    assert isinstance(early._ep, ShapedServerEndpoint)
    assert isinstance(late._ep, ShapedServerEndpoint)
    assert shaper.install(tub) is tub
    assert not isinstance(tub._connectionHandlers["tcp"].handler, ShapedHintHandler)
    with pytest.raises(ValueError, match="another Shaper"):
        Shaper(Clock()).install(tub)


def test_description_strings_listen_with_the_shapers_reactor():
    """A description string (or bare port number) becomes an endpoint on the
    shaper's own reactor, not the global one."""
    memory = MemoryReactorClock()
    shaper = Shaper(memory)
    for what in ("tcp:4567:interface=127.0.0.1", b"4568"):
        endpoint = shaped_server_endpoint(shaper, what)
        assert isinstance(endpoint, ShapedServerEndpoint)
        endpoint.listen(Factory.forProtocol(RecordingProtocol))
    assert [(port, interface) for port, _, _, interface in memory.tcpServers] == [
        (4567, "127.0.0.1"),
        (4568, ""),
    ]


class _Echo(Referenceable):
    def remote_digest(self, data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def remote_reversed(self, data: bytes) -> bytes:
        return data[::-1]


@pytest.mark.e2e
class RealTubsTests(unittest.TestCase):
    """Two real Tubs on loopback, TLS on, talking through shapers."""

    timeout = 30

    def setUp(self) -> None:
        self.tubs: list[Tub] = []

    @defer.inlineCallbacks
    def tearDown(self):
        for tub in self.tubs:
            yield tub.stopService()
        yield flushEventualQueue()

    def _server(self, shaper: Shaper | None, how: str) -> tuple[Tub, str]:
        tub = Tub()
        port = allocate_tcp_port()
        where = f"tcp:{port}:interface=127.0.0.1"
        if how == "install":
            shaper.install(tub)
            tub.listenOn(where)
        elif how == "listen_on":
            shaper.listen_on(tub, where)
        else:
            tub.listenOn(where)
        tub.setLocation(f"tcp:127.0.0.1:{port}")
        tub.startService()
        self.tubs.append(tub)
        return tub, tub.registerReference(_Echo())

    def _client(self, shaper: Shaper | None) -> Tub:
        tub = Tub()
        if shaper is not None:
            shaper.install(tub)
        tub.startService()
        self.tubs.append(tub)
        return tub

    @defer.inlineCallbacks
    def test_large_calls_both_ways_counted_per_tubid(self):
        """callRemote with 1.5 MB arguments and results through shapers on both
        sides (the client capped up, the server capped down): data intact,
        statistics keyed by the other side's TubID on each side."""
        client_shaper, server_shaper = Shaper(reactor), Shaper(reactor)
        server, furl = self._server(server_shaper, "install")
        client = self._client(client_shaper)
        client_shaper.set_peer_limit(server.getTubID(), up=4_000_000)
        server_shaper.set_node_limit(down=3_000_000)
        blob = bytes(range(256)) * 6000
        rref = yield client.getReference(furl)
        digest = yield rref.callRemote("digest", blob)
        back = yield rref.callRemote("reversed", blob)
        self.assertEqual(digest, hashlib.sha256(blob).hexdigest())
        self.assertEqual(back, blob[::-1])
        self.assertEqual(client_shaper.peers(), [server.getTubID()])
        self.assertEqual(server_shaper.peers(), [client.getTubID()])
        sent = client_shaper.peer_stats(server.getTubID())
        received = server_shaper.peer_stats(client.getTubID())
        self.assertGreater(sent.sent_bytes, 2 * len(blob))
        self.assertGreater(sent.received_bytes, len(blob))
        self.assertEqual(sent.sent_bytes, received.received_bytes)  # plaintext, both ends
        self.assertEqual(received.sent_bytes, sent.received_bytes)
        self.assertGreater(sent.waited_up_seconds, 0.0)
        self.assertGreater(server_shaper.node_stats().received_bytes, 2 * len(blob))
        self.assertEqual(sent.limit_up, 4_000_000.0)

    @defer.inlineCallbacks
    def test_inbound_only_server_via_listen_on(self):
        """A server that only listens through the shaper (listen_on, no
        install) shapes what it receives and keys it by the client's TubID,
        learnt during negotiation: 800 kB at 2 MB/s take at least 0.3 s (its
        reads are paced at the peer's cap, below TLS)."""
        server_shaper = Shaper(reactor)
        server, furl = self._server(server_shaper, "listen_on")
        client = self._client(None)
        server_shaper.set_peer_limit(client.getTubID(), down=2_000_000)
        blob = b"\x00\xff" * 400_000
        rref = yield client.getReference(furl)
        started = reactor.seconds()
        digest = yield rref.callRemote("digest", blob)
        self.assertGreater(reactor.seconds() - started, 0.3)
        self.assertEqual(digest, hashlib.sha256(blob).hexdigest())
        stats = server_shaper.peer_stats(client.getTubID())
        self.assertGreater(stats.received_bytes, len(blob))
        self.assertEqual(stats.connections, 1)

    def test_install_after_listening_is_refused(self):
        """install() on a Tub already listening raises, naming the fix."""
        tub = Tub()
        tub.listenOn(f"tcp:{allocate_tcp_port()}:interface=127.0.0.1")
        tub.startService()
        self.tubs.append(tub)
        with pytest.raises(RuntimeError, match="before the Tub starts listening"):
            Shaper(reactor).install(tub)
