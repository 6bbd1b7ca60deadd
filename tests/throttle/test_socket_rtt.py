"""The kernel's round-trip estimate, read from real loopback sockets."""

from __future__ import annotations

import socket
import struct
import sys

import pytest

from tahoe_governor.throttle.socket_rtt import (
    RECEIVE_RTT_OFFSET,
    tcp_rtt_seconds,
    transport_receive_rtt_seconds,
    transport_rtt_seconds,
)


@pytest.mark.skipif(sys.platform != "linux", reason="TCP_INFO is Linux's")
def test_a_connection_that_carried_data_has_a_round_trip_time() -> None:
    """After bytes went both ways on loopback, the estimate is positive and small."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        with client, peer:
            client.sendall(b"x" * 100_000)
            received = 0
            while received < 100_000:
                received += len(peer.recv(65536))
            rtt = tcp_rtt_seconds(client)
            assert rtt is not None and 0 < rtt < 0.5
            assert transport_rtt_seconds(type("T", (), {"getHandle": lambda self: client})()) \
                == pytest.approx(rtt, abs=0.01)
            tls = type("TLS", (), {"socket": client, "getHandle": lambda self: object()})()
            assert transport_rtt_seconds(tls) == pytest.approx(rtt, abs=0.01), \
                "under TLS the socket is found, not the TLS connection getHandle() answers"
            receiving = transport_receive_rtt_seconds(type("T", (), {"socket": peer})())
            assert receiving is not None and 0 < receiving < 0.05, \
                "the receiving side has timed the windows it received (not another field)"


def test_no_socket_no_estimate() -> None:
    """A closed socket, a UDP socket and a transport without a socket answer None."""
    closed = socket.socket()
    closed.close()
    assert tcp_rtt_seconds(closed) is None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert tcp_rtt_seconds(udp) is None
    assert transport_rtt_seconds(object()) is None


class RecordedInfo:
    """A socket whose ``getsockopt`` answers a fixed ``struct`` and records what was asked."""

    def __init__(self, info: bytes) -> None:
        self.info = info
        self.asked: list[tuple[int, int, int]] = []

    def getsockopt(self, level: int, option: int, size: int) -> bytes:
        self.asked.append((level, option, size))
        return self.info[:size]


def test_macos_reads_the_smoothed_round_trip_of_tcp_connection_info() -> None:
    """On macOS the estimate is ``tcpi_srtt`` (milliseconds) of ``TCP_CONNECTION_INFO``
    (0x106): 4 one-byte fields, then ``options`` ... ``rttcur``, ``srtt``; no receiver's."""
    info = struct.pack("4B12I", 4, 6, 6, 0, 0, 0, 200, 1448, 0, 0, 0, 0, 0, 37, 42, 5)
    sock = RecordedInfo(info)
    assert tcp_rtt_seconds(sock, platform="darwin") == pytest.approx(0.042)  # type: ignore[arg-type]
    assert sock.asked == [(socket.IPPROTO_TCP, 0x106, 104)]
    assert tcp_rtt_seconds(sock, RECEIVE_RTT_OFFSET, platform="darwin") is None  # type: ignore[arg-type]
