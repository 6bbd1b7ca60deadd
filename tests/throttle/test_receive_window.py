"""Deterministic tests of the receive window under a download cap: its size, the socket
options that set it, its re-sizing when the cap changes, and small reads."""

from __future__ import annotations

import errno
import socket

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock

from tahoe_governor.throttle import ConnectionShaper, ShapingFactory
from tahoe_governor.throttle.receive_window import (
    MAX_READ_BYTES,
    MAX_WINDOW_BYTES,
    MIN_READ_BYTES,
    MIN_WINDOW_BYTES,
    ReceiveBuffer,
    apply_read_size,
    read_size_bytes,
    receive_window_bytes,
)

from .shaping_fakes import (
    TUBID_A,
    RecordingProtocol,
    TimedTransport,
    connect,
    max_in_window,
    run,
)

CLAMP = socket.TCP_WINDOW_CLAMP  # type: ignore[attr-defined]  # Linux, as CI


@pytest.mark.parametrize(("cap", "window"), [
    (None, None),                       # no cap: the kernel's autotuning
    (1_000, MIN_WINDOW_BYTES),          # 8 kbit/s: two reads' worth all the same
    (100_000, MIN_WINDOW_BYTES),        # 800 kbit/s: 80 ms is 8 000 bytes, under the floor
    (200_000, 16_000),                  # 80 ms of it
    (1_000_000, 80_000),
    (60_000_000, MAX_WINDOW_BYTES),     # 480 Mbit/s: 4.8 MB, over the ceiling
    (0, MIN_WINDOW_BYTES),              # a cap of 0 reads nothing; the size stays sane
])
def test_window_is_eighty_milliseconds_of_the_cap_within_bounds(cap, window):
    """The buffer and window are 80 ms of the cap, 8 KiB to 4 MiB; no cap, no size."""
    assert receive_window_bytes(cap) == window


@pytest.mark.parametrize(("cap", "size"), [
    (None, None),
    (10_000, MIN_READ_BYTES),
    (100_000, MIN_READ_BYTES),          # 40 ms is 4000 bytes: the 4 KiB floor
    (1_000_000, 40_000),
    (10_000_000, MAX_READ_BYTES),       # Twisted's own 64 KiB
])
def test_read_size_is_forty_milliseconds_of_the_cap_within_bounds(cap, size):
    """One read takes 40 ms of the cap, at least 4 KiB, at most Twisted's 64 KiB."""
    assert read_size_bytes(cap) == size


class RecordingSocket:
    """Records every ``setsockopt``; ``refuse`` makes each one fail as a closed socket's."""

    def __init__(self, refuse: bool = False) -> None:
        self.options: list[tuple[int, int, int]] = []
        self.refuse = refuse

    def setsockopt(self, level: int, option: int, value: int) -> None:
        if self.refuse:
            raise OSError(errno.EBADF, "Bad file descriptor")
        self.options.append((level, option, value))


def sized(cap: float) -> list[tuple[int, int, int]]:
    """The options a socket gets for ``cap``: its buffer, then its window, one size."""
    window = receive_window_bytes(cap)
    return [(socket.SOL_SOCKET, socket.SO_RCVBUF, window),
            (socket.IPPROTO_TCP, CLAMP, window)]


def test_buffer_sets_rcvbuf_then_the_clamp_once_per_size():
    """A cap sets SO_RCVBUF and TCP_WINDOW_CLAMP; the same size again sets nothing;
    a new cap sets both again."""
    sock = RecordingSocket()
    buffer = ReceiveBuffer(sock)
    buffer.apply(100_000)
    buffer.apply(100_000)
    buffer.apply(1_000_000)
    assert sock.options == sized(100_000) + sized(1_000_000)
    assert buffer.window == 80_000


def test_no_cap_leaves_autotuning_until_the_socket_was_sized():
    """Without a cap a socket is left to the kernel; once sized, lifting the cap cannot
    unlock SO_RCVBUF, so the buffer goes to the ceiling instead."""
    sock = RecordingSocket()
    buffer = ReceiveBuffer(sock)
    buffer.apply(None)
    assert sock.options == []
    buffer.apply(100_000)
    buffer.apply(None)
    assert sock.options == sized(100_000) + sized(1e12)


def test_a_socket_that_refuses_is_left_as_it_is():
    """A closed or non-TCP socket refuses the options: nothing is raised, nothing recorded
    as set (so a later cap tries again), and no socket at all is a no-op."""
    buffer = ReceiveBuffer(RecordingSocket(refuse=True))
    buffer.apply(100_000)
    assert buffer.window is None
    ReceiveBuffer(None).apply(100_000)


def test_read_size_override_and_restore():
    """Under a cap the transport reads small; with none its class's read size is back."""
    transport = TimedTransport(Clock())
    apply_read_size(transport, 100_000)
    assert transport.bufferSize == MIN_READ_BYTES
    apply_read_size(transport, None)
    assert "bufferSize" not in vars(transport)


class Port:
    """A listening port as Twisted's: a socket, and ``connected`` while it listens."""

    def __init__(self) -> None:
        self.socket = RecordingSocket()
        self.connected = True


def test_listening_socket_sized_from_the_node_cap_and_resized_when_it_changes():
    """The listening socket gets the node's download cap's window when it is added and
    whenever the node cap changes (a reload); a peer's cap does not touch it (no peer is
    known before the handshake); a port no longer listening is forgotten."""
    shaper = ConnectionShaper(Clock())
    shaper.set_node_limit(down=100_000)
    port = Port()
    shaper.add_listening_port(port)
    assert port.socket.options == sized(100_000)
    shaper.set_peer_limit(TUBID_A, down=10_000)
    shaper.set_node_limit(up=5_000)  # the download cap is kept: nothing to do
    assert port.socket.options == sized(100_000)
    shaper.set_node_limit(down=1_000_000)
    assert port.socket.options == sized(100_000) + sized(1_000_000)
    port.connected = False
    shaper.set_node_limit(down=100_000)
    assert port.socket.options == sized(100_000) + sized(1_000_000)


def test_listening_socket_untouched_without_a_node_cap():
    """No node download cap: the listening socket keeps the kernel's sizing."""
    shaper = ConnectionShaper(Clock())
    port = Port()
    shaper.add_listening_port(port)
    shaper.set_peer_limit(TUBID_A, down=10_000)
    assert port.socket.options == []


def test_connection_resized_as_its_cap_changes():
    """A connection is sized from the node cap when made, from the lower of the node's
    and its peer's cap once the peer is known, and again when either changes; its reads
    follow the same cap."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    shaper.set_node_limit(down=1_000_000)
    shaper.set_peer_limit(TUBID_A, down=100_000)
    transport = TimedTransport(clock)
    transport.socket = RecordingSocket()  # type: ignore[attr-defined]
    inner = RecordingProtocol(TUBID_A)
    wrapper = ShapingFactory(shaper, Factory.forProtocol(lambda: inner),
                             identify=lambda p: None).buildProtocol(None)
    assert wrapper is not None
    wrapper.makeConnection(transport)
    assert transport.socket.options == sized(1_000_000)
    assert transport.bufferSize == 40_000
    wrapper.tubid = TUBID_A
    shaper.identified(wrapper, TUBID_A)
    assert transport.socket.options == sized(1_000_000) + sized(100_000)
    assert transport.bufferSize == MIN_READ_BYTES
    shaper.set_peer_limit(TUBID_A, down=None)
    shaper.set_node_limit(down=None)
    assert transport.socket.options == (sized(1_000_000) + sized(100_000) + sized(1_000_000)
                                        + sized(1e12))
    assert "bufferSize" not in vars(transport)


def test_connection_lost_is_not_resized():
    """A cap changed after a connection was lost touches its socket no more."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    wrapper, _inner, transport = connect(shaper, clock)
    transport.socket = RecordingSocket(refuse=True)  # type: ignore[attr-defined]
    wrapper.connectionLost(None)
    wrapper.receive_cap_changed(100_000)
    assert "bufferSize" not in vars(transport)


class ReadingSocket:
    """A socket with ``incoming`` bytes waiting: records the size of each ``recv``,
    and when (on ``clock``) it was made."""

    def __init__(self, incoming: int, clock: Clock) -> None:
        self.waiting = incoming
        self.reads: list[int] = []
        self.read_at: list[tuple[float, int]] = []
        self.clock = clock

    def setblocking(self, flag: bool) -> None:
        pass

    def fileno(self) -> int:
        return -1

    def setsockopt(self, level: int, option: int, value: int) -> None:
        pass

    def recv(self, size: int) -> bytes:
        if not self.waiting:
            raise BlockingIOError(errno.EWOULDBLOCK, "would block")
        self.reads.append(size)
        got = min(size, self.waiting)
        self.read_at.append((self.clock.seconds(), got))
        self.waiting -= got
        return b"x" * got


class Readers:
    """The reactor's side of reading: which descriptors it would read from now."""

    def __init__(self) -> None:
        self.reading: set[object] = set()

    def addReader(self, reader: object) -> None:
        self.reading.add(reader)

    def removeReader(self, reader: object) -> None:
        self.reading.discard(reader)


class RecordLumps(Protocol):
    """Stands for TLS under the shaped connection: hands ``wrapper`` what it is fed a
    16 KiB record at a time, as ``TLSMemoryBIOProtocol`` hands over plaintext."""

    def __init__(self, wrapper: Protocol) -> None:
        self.wrapper = wrapper
        self.pending = b""

    def dataReceived(self, data: bytes) -> None:
        self.pending += data
        while len(self.pending) >= 16384:
            record, self.pending = self.pending[:16384], self.pending[16384:]
            self.wrapper.dataReceived(record)


def read_for(cap: float | None, seconds: float,
             tls: bool = False) -> tuple[ReadingSocket, RecordingProtocol]:
    """A real Twisted TCP connection over a socket with 1 MB waiting, shaped at ``cap``
    bytes/s down (under a stand-in for TLS if ``tls``); the reactor's loop played by
    hand for ``seconds`` of the clock."""
    clock = Clock()
    shaper = ConnectionShaper(clock)
    shaper.set_node_limit(down=cap)
    sock = ReadingSocket(1_000_000, clock)
    readers = Readers()
    inner = RecordingProtocol(None)
    wrapper = ShapingFactory(shaper, Factory.forProtocol(lambda: inner)).buildProtocol(None)
    assert wrapper is not None
    connection = tcp.Connection(sock, wrapper, reactor=readers)  # type: ignore[arg-type]
    connection.connected = True  # as tcp.Server sets it once accepted
    wrapper.makeConnection(connection)
    if tls:
        connection.protocol = RecordLumps(wrapper)  # as startTLS puts TLS under it
    connection.startReading()
    for _ in range(int(seconds * 1000)):
        while connection in readers.reading and sock.waiting:
            connection.doRead()
        run(clock, 0.001)
    return sock, inner


def test_reads_are_small_under_a_cap_and_whole_without():
    """Under an 800 kbit/s cap every read takes at most 4 KiB from the socket (so the
    window reopens in sips) and what is delivered keeps the cap; without a cap Twisted
    reads 64 KiB at a time."""
    sock, inner = read_for(100_000, 1.0)
    assert max(sock.reads) == MIN_READ_BYTES
    delivered = len(inner.data())
    assert 90_000 <= delivered <= 100_000 + 5_000
    assert sum(sock.reads) - delivered <= MIN_READ_BYTES  # read but held: one read at most
    sock, inner = read_for(None, 0.01)
    assert set(sock.reads) == {MAX_READ_BYTES}


def test_reads_keep_their_pace_under_tls_records():
    """Under TLS, plaintext comes a 16 KiB record at a time after several reads; the
    reads still follow the cap a sip at a time (no 50 ms takes more than 50 ms of the
    cap and a sip), so the window never reopens by a whole record at once; the cap
    holds over 2 s."""
    sock, inner = read_for(100_000, 2.0, tls=True)
    assert max_in_window(sock.read_at, 0.05) <= 100_000 * 0.05 + MIN_READ_BYTES
    assert 180_000 <= len(inner.data()) <= 200_000 + 16_384
