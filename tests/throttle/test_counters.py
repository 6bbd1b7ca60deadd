"""Choosing the link's interface, and the psutil reader on the running system."""

from __future__ import annotations

import pytest

from tahoe_governor.throttle.counters import PsutilCounters, choose_interfaces
from tahoe_governor.throttle.testing import FakeCounters


def fake() -> FakeCounters:
    return FakeCounters(
        interfaces={"lo": ["127.0.0.1", "::1"], "eth0": ["192.0.2.10"], "wg0": ["198.51.100.7"]},
        routes={"203.0.113.5": "192.0.2.10", "203.0.113.9": "198.51.100.7"},
    )


@pytest.mark.parametrize(
    "interface, peers, expected, reason",
    [
        ("eth0", (), ("eth0",), "a named interface wins"),
        ("wg0", ("127.0.0.1",), ("wg0",), "a named interface wins over peers"),
        (None, ("127.0.0.1",), ("lo",), "loopback peer: the loopback interface"),
        (None, ("127.0.0.5",), ("lo",), "any 127/8 address goes through lo"),
        (None, ("::1",), ("lo",), "IPv6 loopback too"),
        (None, ("203.0.113.5",), ("eth0",), "the interface holding the route's source address"),
        (None, ("203.0.113.5", "203.0.113.9"), ("eth0", "wg0"), "two routes: both, summed"),
        (None, ("203.0.113.5", "203.0.113.5"), ("eth0",), "no duplicates"),
    ],
)
def test_choose_interfaces(interface, peers, expected, reason):
    """The interface is the named one, else the ones the routes to the peers use."""
    assert choose_interfaces(fake(), interface, peers) == expected, reason


@pytest.mark.parametrize(
    "interface, peers, message",
    [
        ("eth9", (), "no network interface 'eth9'"),
        (None, (), "name one"),
        (None, ("storage.example.org",), "IPv4 or IPv6 literal"),
        (None, ("203.0.113.77",), "no route"),
    ],
)
def test_choose_interfaces_errors(interface, peers, message):
    """Unknown interfaces, no input, host names and unroutable peers are clear errors."""
    with pytest.raises(ValueError, match=message):
        choose_interfaces(fake(), interface, peers)


def test_psutil_counters_on_this_machine():
    """The real reader: counters are sane and a loopback peer picks the loopback interface."""
    counters = PsutilCounters()
    assert counters.process_cpu_seconds() >= 0
    assert counters.machine_busy_cpu_seconds() > 0
    assert counters.cpu_count() >= 1
    (loopback,) = choose_interfaces(counters, peers=["127.0.0.1"])
    assert "127.0.0.1" in counters.interface_addresses()[loopback]
    sent, received = counters.interface_bytes(loopback)
    assert sent >= 0 and received >= 0
    with pytest.raises(ValueError, match="no network interface"):
        counters.interface_bytes("no-such-interface0")
