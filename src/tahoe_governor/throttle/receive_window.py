"""A connection's TCP receive window under a download cap: sized from the cap, read in sips.

A download cap is kept by not reading: bytes beyond the cap must wait in the
*sender's* queue, held back by the TCP window, not in the line's. Two things
decide whether they do:

The receive buffer
    Linux grows a connection's receive buffer by itself (autotuning, up to
    ``net.ipv4.tcp_rmem``'s maximum: 32 MiB here) while the reader keeps up,
    and the window it advertises is the free part of that buffer. A capped
    reader that keeps up in bursts lets the buffer grow to hundreds of KB, so
    the sender may put that much in flight: a slow line's modem queue fills,
    and the cap holds only on average. :class:`ReceiveBuffer` sizes it from the
    cap instead (:func:`receive_window_bytes`): ``SO_RCVBUF``, which also turns
    autotuning off, and ``TCP_WINDOW_CLAMP`` to the same size. Measured on
    Linux 6.18 over loopback: the buffer is what binds (a buffer of ``B`` holds
    up to about 1.8 ``B`` of payload, and a sender that was idle may send about
    that much at once when it resumes); the clamp alone did not keep the window
    under it. Set on a listening socket, every connection it accepts inherits
    the size before its handshake, so even the first window the sender sees is
    small (Linux also picks the connection's window scale from it then: a cap
    raised later can grow the window of connections accepted before up to
    64 KiB times that scale, the new ones fully).
The read size
    Twisted reads up to 64 KiB per read; after a pause the window reopens by
    as much at once and the sender sends it as one burst into the line.
    :func:`read_size_bytes` is 40 ms of the cap (at least 4 KiB: a read must
    free a few segments before Linux reopens the window; with 2 KiB reads in an
    8 KiB buffer the sender waited for its window probes, and the line carried
    a fifth of the cap), so the window reopens in sips, as the cap allows.

No cap: the kernel's own sizing, and Twisted's read size. A socket once sized
cannot be handed back to autotuning (Linux keeps ``SO_RCVBUF`` locked), so a
cap lifted later sizes it at :data:`MAX_WINDOW_BYTES`.
"""

from __future__ import annotations

import socket
from typing import Any

WINDOW_SECONDS = 0.08
"""The receive buffer is this many seconds of the cap: room for the round trip of
a slow line (40 ms) and a read's sip, so the cap is reached, and so little that a
modem's queue holds a resuming sender's burst for about a tenth of a second."""
MIN_WINDOW_BYTES = 8192
"""Never smaller: two of the smallest reads."""
MAX_WINDOW_BYTES = 4 * 1024 * 1024
"""Never larger (``SO_RCVBUF`` is also capped by ``net.core.rmem_max``)."""

READ_SECONDS = 0.04
"""One read takes at most this many seconds of the cap from the socket..."""
MIN_READ_BYTES = 4096
"""...but never less than this (a read frees a few segments, so the window reopens)..."""
MAX_READ_BYTES = 65536
"""...nor more than Twisted's own read size."""


def _within(value: float, low: int, high: int) -> int:
    return int(min(max(value, low), high))


def receive_window_bytes(cap: float | None) -> int | None:
    """The receive buffer and window (bytes) of a connection whose download is capped
    at ``cap`` bytes/s; ``None`` with no cap (the kernel sizes them)."""
    if cap is None:
        return None
    return _within(cap * WINDOW_SECONDS, MIN_WINDOW_BYTES, MAX_WINDOW_BYTES)


def read_size_bytes(cap: float | None) -> int | None:
    """How many bytes one read may take from the socket under ``cap`` bytes/s;
    ``None`` with no cap (the transport's own size)."""
    if cap is None:
        return None
    return _within(cap * READ_SECONDS, MIN_READ_BYTES, MAX_READ_BYTES)


def transport_socket(transport: Any) -> Any:
    """The socket under a Twisted TCP transport or listening port (TLS included:
    ``getHandle()`` answers the TLS connection once TLS has started, ``socket``
    stays the socket), or ``None`` for a transport without one."""
    sock = getattr(transport, "socket", None)
    return sock if hasattr(sock, "setsockopt") else None


class ReceiveBuffer:
    """Keeps one socket's receive buffer sized from the download cap in force.

    ``sock`` needs only ``setsockopt`` (``None``: nothing to size, every call is
    a no-op). A socket that refuses an option (not TCP, already closed) is left
    as it is: the cap still holds, by not reading, only less smoothly.
    """

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.window: int | None = None
        """The size set on the socket, ``None`` while the kernel sizes it."""

    def apply(self, cap: float | None) -> None:
        """Size the buffer and window for ``cap`` bytes/s (``None``: no cap)."""
        if self.sock is None:
            return
        window = receive_window_bytes(cap)
        if window is None:
            if self.window is None:
                return  # never sized: autotuning is still the kernel's
            window = MAX_WINDOW_BYTES  # SO_RCVBUF cannot be unlocked
        if window == self.window:
            return
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, window)
            clamp = getattr(socket, "TCP_WINDOW_CLAMP", None)  # Linux only
            if clamp is not None:
                self.sock.setsockopt(socket.IPPROTO_TCP, clamp, window)
        except OSError:
            return
        self.window = window


def apply_read_size(transport: Any, cap: float | None) -> None:
    """Make ``transport`` (a Twisted TCP connection) read at most
    :func:`read_size_bytes` of ``cap`` per read; Twisted's default with no cap.

    Twisted's ``Connection.doRead`` reads ``self.bufferSize`` bytes: an instance
    attribute overrides the class's. (``bufferSize`` is also the send buffer
    above which a producer registered on the transport is paused; the shaped
    connection registers none of its own, Foolscap neither.)
    """
    size = read_size_bytes(cap)
    if size is None:
        transport.__dict__.pop("bufferSize", None)
    else:
        transport.bufferSize = size
