"""Bytes a storage server's kernel counts: what its sockets read, or sent and saw acknowledged.

``ss -tin`` (Debian's iproute2) prints, for each established TCP socket, the
kernel's ``bytes_received``: read at the server's listening port, it counts
what really reached the storage server, TLS and all, whatever the sender's own
counters say; its ``bytes_acked`` counts what the server sent that the other side's
kernel acknowledged (for downloads: the sending side's count).
"""

from __future__ import annotations

import re
import subprocess

SS = "/usr/bin/ss"
_RECEIVED = re.compile(r"bytes_received:(\d+)")
_ACKED = re.compile(r"bytes_acked:(\d+)")


def _socket_info(port: int, netns: str | None) -> str:
    return subprocess.run(
        [*(("ip", "netns", "exec", netns) if netns else ()), SS, "-tinH", "state",
         "established", f"( sport = :{port} )"],
        check=True, capture_output=True, text=True, timeout=10,
    ).stdout


def bytes_received_on_port(port: int, netns: str | None = None) -> int:
    """The bytes every established TCP socket bound to local ``port`` (in network
    namespace ``netns``, if given) has received."""
    return sum(int(n) for n in _RECEIVED.findall(_socket_info(port, netns)))


def bytes_sent_on_port(port: int) -> int:
    """The bytes every established TCP socket bound to local ``port`` has sent and had
    acknowledged (a closed socket's bytes no longer count)."""
    return sum(int(n) for n in _ACKED.findall(_socket_info(port, None)))
