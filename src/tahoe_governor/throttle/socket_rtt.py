"""The kernel's own estimates of a TCP connection's round-trip time (Linux ``TCP_INFO``).

Linux keeps a smoothed round-trip time per TCP connection (``tcpi_rtt``, in
microseconds), updated from the acknowledgements of the data in flight: it
includes the time the connection's bytes waited in queues along the way, such
as a DSL modem's buffer. Reading it costs one ``getsockopt`` and no traffic.
A connection that mostly receives has little of its own in flight to time; its
receiving side keeps another estimate (``tcpi_rcv_rtt``): how long a window of
data takes to arrive, which grows with the queue in front of the receiver's line.

:func:`tcp_rtt_seconds` reads either from a socket; :func:`transport_rtt_seconds`
and :func:`transport_receive_rtt_seconds` from a Twisted TCP transport (TLS
included: its ``socket`` is the one under it). They answer ``None`` where there
is no such estimate (another system, a closed socket, a transport without a
socket, nothing received yet).

macOS keeps the sender's smoothed estimate too, in its own structure
(``TCP_CONNECTION_INFO``, ``tcpi_srtt`` in milliseconds), and no receiver's
one. FreeBSD's ``TCP_INFO`` has Linux's layout for ``tcpi_rtt`` and leaves the
receiver's at zero. Elsewhere (Windows) there is no estimate.
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import Any

TCP_INFO_BYTES = 104
"""Enough of ``struct tcp_info`` for ``tcpi_rtt`` and ``tcpi_rcv_rtt`` (every Linux since 2.6)."""
RTT_OFFSET = 68
"""Byte offset of ``tcpi_rtt`` (u32, microseconds): 8 one-byte fields, then 15 u32 before it."""
RECEIVE_RTT_OFFSET = 92
"""Byte offset of ``tcpi_rcv_rtt`` (u32, microseconds): six u32 after ``tcpi_rtt``."""


DARWIN_TCP_CONNECTION_INFO = 0x106
"""macOS's ``getsockopt`` option for ``struct tcp_connection_info`` (netinet/tcp.h)."""
DARWIN_SRTT_OFFSET = 44
"""Byte offset of its ``tcpi_srtt`` (u32, milliseconds): 4 one-byte fields, then 10 u32."""


def tcp_rtt_seconds(sock: socket.socket, offset: int = RTT_OFFSET,
                    platform: str = sys.platform) -> float | None:
    """The kernel's round-trip estimate of ``sock`` at ``offset`` of ``struct tcp_info``
    (the sender's smoothed one by default), or ``None`` if it has none. On macOS only
    the sender's is kept (``offset`` must be :data:`RTT_OFFSET`)."""
    option, where, unit = getattr(socket, "TCP_INFO", None), offset, 1e-6
    if platform == "darwin":
        if offset != RTT_OFFSET:
            return None  # macOS keeps no receiver's estimate
        option, where, unit = DARWIN_TCP_CONNECTION_INFO, DARWIN_SRTT_OFFSET, 1e-3
    if option is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, option, TCP_INFO_BYTES)
    except OSError:
        return None
    if len(info) < where + 4:
        return None
    (value,) = struct.unpack_from("I", info, where)
    return value * unit if value > 0 else None


def transport_rtt_seconds(transport: Any, offset: int = RTT_OFFSET) -> float | None:
    """:func:`tcp_rtt_seconds` of a Twisted transport's socket, if it has one.

    A TCP transport keeps its socket in ``socket``; once TLS has started its
    ``getHandle()`` answers the TLS connection instead, so ``socket`` comes first.
    """
    handle = getattr(transport, "socket", None)
    if not isinstance(handle, socket.socket):
        try:
            handle = transport.getHandle()
        except Exception:  # no handle, or a transport already closed
            return None
    return tcp_rtt_seconds(handle, offset) if isinstance(handle, socket.socket) else None


def transport_receive_rtt_seconds(transport: Any) -> float | None:
    """The receiving side's round-trip estimate (``tcpi_rcv_rtt``) of a Twisted transport."""
    return transport_rtt_seconds(transport, RECEIVE_RTT_OFFSET)
