"""A protocol wrapper that shapes one Twisted stream connection, both ways.

:class:`ShapedProtocol` has the shape of
``twisted.protocols.policies.ProtocolWrapper``: it is the real transport's
protocol and the wrapped protocol's transport at once. Every byte passes the
:class:`~.release_scheduler.ReleaseScheduler` of its direction, which owns
the node-wide bucket and the peer's bucket; bytes that must wait are held in
the connection's two :class:`~.release_scheduler.HeldBytes` queues.

Outbound
    ``write``/``writeSequence`` pass at once when nothing is queued and the
    buckets allow the whole write; otherwise the bytes join the connection's
    outbound queue and leave in order, in pieces, as tokens accrue.
    ``loseConnection`` closes once the queue is empty; ``abortConnection``
    drops the queue and closes at once. ``startTLS`` waits behind the queue,
    so bytes written before it leave in the clear, as the caller meant.
Inbound
    Bytes read pass to the wrapped protocol at once when the buckets allow;
    otherwise they are held and the real transport stops reading
    (``pauseProducing``) until they have all been delivered, so TCP flow
    control slows the sender. Bytes held when the connection is lost are
    delivered before ``connectionLost``.
Under a download cap
    What the cap holds back must wait at the sender, not in a slow line's
    queue: the socket's receive window is sized from the cap
    (:mod:`.receive_window`) and, on a Twisted TCP transport, the reads from
    the socket are paced at the cap in small sips, counted below TLS
    (:mod:`.read_pacer`); plaintext held then pauses reading only beyond
    :data:`HELD_WHILE_PACED` (TLS hands over a record at a time). The shaper
    calls :meth:`ShapedProtocol.receive_cap_changed`.
Producers
    A producer registered on the wrapper is paused while the outbound queue
    holds more than the high-water mark, and resumed once it falls to half of
    it (as well as whenever the real transport pauses or resumes it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import interfaces
from twisted.internet.protocol import Protocol
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from tahoe_governor.throttle.read_pacer import ReadPacer
from tahoe_governor.throttle.receive_window import (
    ReceiveBuffer,
    apply_read_size,
    transport_socket,
)
from tahoe_governor.throttle.release_scheduler import HeldBytes
from tahoe_governor.throttle.shaper import ConnectionShaper

HELD_WHILE_PACED = 32768
"""While reads are paced, plaintext held back pauses reading only above this: two TLS
records (TLS delivers a whole record at once; the pace, not the record, sets the reads)."""

RemoteIdentifier = Callable[[Any], "str | None"]
"""Given the wrapped protocol, its remote peer's key (a TubID) once known."""


@implementer(interfaces.IPushProducer, interfaces.IPullProducer)
class ProducerRelay:
    """Stands in, at the real transport, for a producer registered on the wrapper.

    The producer is paused while the real transport asks for a pause *or*
    the wrapper's outbound queue is above the high-water mark.
    """

    def __init__(self, conn: ShapedProtocol, producer: Any, streaming: bool) -> None:
        self.conn = conn
        self.producer = producer
        self.streaming = bool(streaming)
        self._transport_paused = False
        self._backlog_paused = False
        self._producer_paused = False
        self._pull_pending = False

    def pauseProducing(self) -> None:
        self._transport_paused = True
        self._update()

    def resumeProducing(self) -> None:
        if self.streaming:
            self._transport_paused = False
            self._update()
        elif self._backlog_paused:
            self._pull_pending = True  # ask the producer once the queue drains
        else:
            self.producer.resumeProducing()

    def stopProducing(self) -> None:
        self.producer.stopProducing()

    def backlog_changed(self, queued: int, high_water: int) -> None:
        if self._backlog_paused:
            if queued <= high_water // 2:
                self._backlog_paused = False
                if self._pull_pending:
                    self._pull_pending = False
                    self.producer.resumeProducing()
                self._update()
        elif queued > high_water:
            self._backlog_paused = True
            self._update()

    def _update(self) -> None:
        if not self.streaming:
            return
        want_paused = self._transport_paused or self._backlog_paused
        if want_paused != self._producer_paused:
            self._producer_paused = want_paused
            if want_paused:
                self.producer.pauseProducing()
            else:
                self.producer.resumeProducing()


class ShapedProtocol(ProtocolWrapper):
    """One shaped connection: see the module documentation.

    ``tubid`` is the remote peer's key once known (``None`` before): until
    then the connection passes the node-wide buckets only.
    """

    factory: ShapingFactory
    transport: Any  # the real transport (ITransport, maybe ITLSTransport)
    wrappedProtocol: Any

    def __init__(self, factory: ShapingFactory, wrappedProtocol: Any) -> None:
        ProtocolWrapper.__init__(self, factory, wrappedProtocol)
        self.shaper: ConnectionShaper = factory.shaper
        self._up = self.shaper.up
        self._down = self.shaper.down
        self.tubid: str | None = None
        self.outbound = HeldBytes(self._send, self._outbound_released)
        self.inbound = HeldBytes(self._deliver, self._update_reading)
        self.lost = False
        self._writable = True  # neither lost nor closing
        self._close_when_drained = False
        self._paused_by_protocol = False
        self._reading_paused = False
        self._relay: ProducerRelay | None = None
        self.receive_buffer = ReceiveBuffer(None)
        self.read_pacer = ReadPacer(factory.shaper.reactor, self._update_reading)
        self._reads_counted = False

    # -- connection lifecycle ------------------------------------------------

    def makeConnection(self, transport: Any) -> None:
        directlyProvides(self, providedBy(transport))
        self.receive_buffer = ReceiveBuffer(transport_socket(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self.shaper.attach(self)
        self._identify()
        self.wrappedProtocol.makeConnection(self)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost = True
        self._writable = False
        self.outbound.clear()
        held = self.inbound.take_all()
        self.shaper.detach(self, delivered_unshaped=len(held))
        self._relay = None
        self.read_pacer.stop()
        if held:
            self.wrappedProtocol.dataReceived(held)
        ProtocolWrapper.connectionLost(self, reason)

    def receive_cap_changed(self, cap: float | None) -> None:
        """The download cap in force for this connection is now ``cap`` (bytes/s, ``None``
        for none): size the socket's receive window and the reads from it."""
        if self.lost:
            return
        self.receive_buffer.apply(cap)
        apply_read_size(self.transport, cap)
        if cap is not None:
            self._count_reads()
        if self._reads_counted:
            self.read_pacer.set_rate(cap)
            self._update_reading()

    def _count_reads(self) -> None:
        """Tell the read pacer of every read from the socket, before TLS sees it.

        Twisted's TCP ``Connection.doRead`` hands what ``recv`` returned to
        ``self._dataReceived``: an instance attribute wraps it. A transport
        without it (not TCP, or another reactor's) is not paced: held
        plaintext pauses its reading as before.
        """
        original = getattr(self.transport, "_dataReceived", None)
        if self._reads_counted or original is None:
            return
        self._reads_counted = True

        def counted(data: bytes) -> Any:
            self.read_pacer.took(len(data))
            result = original(data)
            self._update_reading()
            return result

        self.transport._dataReceived = counted

    def _identify(self) -> None:
        tubid = self.factory.identify(self.wrappedProtocol)
        if tubid is not None:
            self.tubid = tubid
            self.shaper.identified(self, tubid)

    # -- outbound (we are the wrapped protocol's transport) -------------------

    def write(self, data: bytes) -> None:
        out = self.outbound
        if not out.queued and self._writable and data.__class__ is bytes:
            if self._up.try_pass(out.channel, len(data)):  # the hot path: one check
                self.transport.write(data)
                return
        self._queue(data)

    def _queue(self, data: bytes) -> None:
        if not data or not self._writable:
            return  # after loseConnection, as a real transport does
        out = self.outbound
        out.append(bytes(data))
        self._up.enqueue(out)
        if self._relay is not None:
            self._relay.backlog_changed(out.queued, self.shaper.high_water_bytes)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if self.disconnecting or self.lost:
            return
        self.disconnecting = 1
        self._writable = False
        if self.outbound.queued == 0:
            self.transport.loseConnection()
        else:
            self._close_when_drained = True

    def abortConnection(self) -> None:
        if self.lost:
            return
        self.disconnecting = 1
        self._writable = False
        self._up.forget(self.outbound)
        self.outbound.clear()
        self.transport.abortConnection()

    def startTLS(self, contextFactory: Any, normal: bool = True) -> None:
        """Start TLS on the real transport once every byte queued so far has left."""
        def start() -> None:
            self.transport.startTLS(contextFactory, normal)
        if self.outbound.queued == 0:
            start()
        else:
            self.outbound.append_action(start)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._relay = ProducerRelay(self, producer, streaming)
        self.transport.registerProducer(self._relay, streaming)
        self._relay.backlog_changed(self.outbound.queued, self.shaper.high_water_bytes)

    def unregisterProducer(self) -> None:
        self._relay = None
        self.transport.unregisterProducer()

    def _send(self, data: bytes) -> None:
        self.transport.write(data)

    def _outbound_released(self) -> None:
        if self.lost:
            return
        if self._relay is not None:
            self._relay.backlog_changed(self.outbound.queued, self.shaper.high_water_bytes)
        if self._close_when_drained and self.outbound.queued == 0:
            self._close_when_drained = False
            self.transport.loseConnection()

    # -- reading (the wrapped protocol may pause us, so may the shaper) -------

    def pauseProducing(self) -> None:
        self._paused_by_protocol = True
        self._update_reading()

    def resumeProducing(self) -> None:
        self._paused_by_protocol = False
        self._update_reading()

    def stopProducing(self) -> None:
        self.transport.stopProducing()

    def _update_reading(self) -> None:
        if self.lost:
            return
        paced = self._reads_counted and self.read_pacer.rate is not None
        want_paused = (self._paused_by_protocol
                       or self.inbound.queued > (HELD_WHILE_PACED if paced else 0)
                       or (paced and not self.read_pacer.may_read()))
        if want_paused != self._reading_paused:
            self._reading_paused = want_paused
            if want_paused:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()

    # -- inbound (we are the real transport's protocol) ----------------------

    def dataReceived(self, data: bytes) -> None:
        held = self.inbound
        if not held.queued and self._down.try_pass(held.channel, len(data)):
            self._deliver(data)
            return
        held.append(data)
        self._update_reading()
        self._down.enqueue(held)

    def _deliver(self, data: bytes) -> None:
        self.wrappedProtocol.dataReceived(data)
        if self.tubid is None and not self.lost:
            self._identify()


class ShapingFactory(WrappingFactory[ShapedProtocol]):
    """Wraps a factory so that every protocol it builds is shaped by ``shaper``.

    ``identify(protocol)`` returns the remote peer's key (a TubID) once the
    wrapped protocol knows it, else ``None``; it is asked when the connection
    is made and after each delivery of inbound bytes until it answers.
    """

    protocol = ShapedProtocol

    def __init__(
        self,
        shaper: ConnectionShaper,
        wrappedFactory: Any,
        identify: RemoteIdentifier | None = None,
    ) -> None:
        WrappingFactory.__init__(self, wrappedFactory)  # type: ignore[arg-type]
        self.shaper = shaper
        self.identify: RemoteIdentifier = identify or (lambda protocol: None)

    def buildProtocol(self, addr: Any) -> ShapedProtocol | None:  # type: ignore[override]
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        return ShapedProtocol(self, wrapped)
