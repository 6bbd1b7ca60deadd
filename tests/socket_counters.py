"""Bytes counted by the receiving side's kernel: what a storage server's sockets have read.

``ss -tin`` (Debian's iproute2) prints, for each established TCP socket, the
kernel's ``bytes_received``: read at the server's listening port, it counts
what really reached the storage server, TLS and all, whatever the sender's own
counters say.
"""

from __future__ import annotations

import re
import subprocess

SS = "/usr/bin/ss"
_RECEIVED = re.compile(r"bytes_received:(\d+)")


def bytes_received_on_port(port: int) -> int:
    """The bytes every established TCP socket bound to local ``port`` has received."""
    out = subprocess.run(
        [SS, "-tinH", "state", "established", f"( sport = :{port} )"],
        check=True, capture_output=True, text=True, timeout=10,
    ).stdout
    return sum(int(n) for n in _RECEIVED.findall(out))
