"""The network lab's delay element: frames through it are held 20 ms each way, and only there.

A short smoke test of ``tests/node/netns_lab.py`` (which ``benchmarks/bench_dsl.py``
builds on): a lab with one site behind the delay element and one beside it,
a TCP echo in each, round trips timed from the client's namespace. Needs root,
network namespaces, and ``ip``, ``tc`` and ``ethtool`` (Debian's iproute2 and
ethtool); skips, saying why, where namespaces cannot be made.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess

import pytest

from tests.node.dsl_line import EchoServer
from tests.node.netns_lab import PACKAGES, PROGRAMS, Lab, Site, round_trip, unavailable
from tests.system_programs import require_programs


def round_trips(host: str, port: int, count: int) -> list[float]:
    """Seconds of ``count`` 100-byte request/responses on one TCP_NODELAY connection."""
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return [round_trip(conn, 100) for _ in range(count)]


@pytest.mark.e2e
def test_the_delay_element_holds_frames_20_ms_each_way_and_the_lab_goes_away() -> None:
    """Through the delay element no round trip is under 40 ms and the median is near it;
    the site beside it answers in a few ms; afterwards none of the lab's namespaces is left."""
    require_programs(PROGRAMS, PACKAGES)
    if (reason := unavailable()) is not None:
        pytest.skip(reason)
    tag = f"sm{os.getpid() % 0x1000000:x}"  # its own names: a benchmark's lab may run beside it
    lab = Lab(tag, [Site("far", delay_ms=20), Site("near")])
    with lab:
        ports = {}
        for site in ("far", "near"):
            with lab.entered(lab.namespace(site)):  # the echo's socket lives there
                ports[site] = EchoServer(lab.address(site)).port
        with lab.entered(lab.client):
            far = round_trips(lab.address("far"), ports["far"], 20)[2:]  # ARP out of the way
            near = round_trips(lab.address("near"), ports["near"], 20)[2:]
    assert min(far) >= 0.040, far
    assert statistics.median(far) < 0.060, far
    assert statistics.median(near) < 0.005, near
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{tag}-" not in left, left
