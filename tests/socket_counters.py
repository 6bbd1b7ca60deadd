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

import psutil

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


def bytes_received_by_peer(port: int) -> dict[str, int]:
    """For each established TCP socket bound to local ``port``: the other end's
    ``address:port`` and the bytes the socket has received from it.

    A server's port also carries the grid's own connections (the other servers'
    client sides, a node that has just stopped): a test that measures one client
    takes the peers present before it starts as someone else's.
    """
    received: dict[str, int] = {}
    peer = None
    for line in _socket_info(port, None).splitlines():
        if not line[:1].isspace():  # "Recv-Q Send-Q local peer", then an indented info line
            fields = line.split()
            peer = fields[3] if len(fields) >= 4 else None
        elif peer is not None and (found := _RECEIVED.search(line)):
            received[peer] = int(found.group(1))
    return received


def bytes_sent_on_port(port: int) -> int:
    """The bytes every established TCP socket bound to local ``port`` has sent and had
    acknowledged (a closed socket's bytes no longer count)."""
    return sum(int(n) for n in _ACKED.findall(_socket_info(port, None)))


def bytes_received_from_this_process(port: int) -> int:
    """The bytes the sockets bound to local ``port`` have received from this
    process's own connections to it (the governed node under test runs here)."""
    ours = {
        f"{c.laddr.ip}:{c.laddr.port}"
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    }
    return sum(n for peer, n in bytes_received_by_peer(port).items() if peer in ours)
