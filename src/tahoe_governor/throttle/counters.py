"""The system's raw counters (CPU times, interface bytes), and which interface to watch.

:class:`PsutilCounters` is the one place that asks the operating system, through
psutil. Everything above it takes any object with the same methods
(:class:`SystemCounters`), so tests feed synthetic counters
(:class:`tahoe_governor.throttle.testing.FakeCounters`).

Every counter is cumulative (seconds or bytes since some origin); the meters
take differences between ticks.

Choosing the interface
----------------------
:func:`choose_interfaces` picks the interface(s) whose byte counters stand for
"the link":

1. a named interface (``[bandwidth] interface = eth0``), checked to exist;
2. otherwise the interfaces that carry the traffic to the given peer
   addresses: for each peer, the kernel is asked which local address it would
   send from (a UDP socket is *connected* to the peer and its local address
   read; connecting a UDP socket sends no packet), and the interface that
   holds that address is chosen. A loopback peer (``127.0.0.1``, ``::1``)
   therefore gives ``lo``. Peers reached through different interfaces give
   all of them, and their counters are summed.

Peers must be IP address literals: resolving host names is the caller's job
(it may block), so a name is rejected with an error saying so.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import psutil


class SystemCounters(Protocol):
    """What the meters read: cumulative CPU times and interface byte counters."""

    def process_cpu_seconds(self) -> float:
        """CPU seconds (user + system, all threads) this process has used so far."""

    def machine_busy_cpu_seconds(self) -> float:
        """Non-idle CPU seconds of the whole machine so far, summed over all cores."""

    def cpu_count(self) -> int:
        """How many logical cores the machine has (>= 1)."""

    def interface_bytes(self, name: str) -> tuple[int, int]:
        """``(sent, received)`` bytes counted so far on interface ``name``.

        Raises ``ValueError`` naming the known interfaces if there is no such one.
        """

    def interface_addresses(self) -> Mapping[str, Sequence[str]]:
        """Every interface's IP addresses (IPv4 and IPv6, without scope)."""

    def source_address(self, peer: str) -> str:
        """The local IP address the kernel would send from to reach ``peer``."""


class PsutilCounters:
    """:class:`SystemCounters` read from the running system through psutil.

    ``pid`` is the process whose CPU time is measured (default: this one).
    Children are not counted: a governed node does its work in one process.
    """

    def __init__(self, pid: int | None = None) -> None:
        self._process = psutil.Process(pid)

    def process_cpu_seconds(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def machine_busy_cpu_seconds(self) -> float:
        times = psutil.cpu_times()
        # Same accounting as psutil.cpu_percent: guest time is already inside
        # user time on Linux, and idle/iowait are not busy.
        total = sum(times)
        total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
        return float(total - times.idle - getattr(times, "iowait", 0.0))

    def cpu_count(self) -> int:
        return psutil.cpu_count(logical=True) or 1

    def interface_bytes(self, name: str) -> tuple[int, int]:
        counters = psutil.net_io_counters(pernic=True)
        try:
            nic = counters[name]
        except KeyError:
            raise ValueError(
                f"no network interface {name!r}; the interfaces are: "
                f"{', '.join(sorted(counters)) or '(none)'}"
            ) from None
        return int(nic.bytes_sent), int(nic.bytes_recv)

    def interface_addresses(self) -> Mapping[str, Sequence[str]]:
        families = (socket.AF_INET, socket.AF_INET6)
        return {
            name: [a.address.split("%")[0] for a in addrs if a.family in families]
            for name, addrs in psutil.net_if_addrs().items()
        }

    def source_address(self, peer: str) -> str:
        address = parse_peer_address(peer)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            # connect() on a UDP socket only asks the routing table; nothing is sent.
            probe.connect((str(address), 9))
            return str(probe.getsockname()[0]).split("%")[0]


def parse_peer_address(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``peer`` as an IP address, or a ``ValueError`` saying a literal is expected."""
    try:
        return ipaddress.ip_address(peer.strip("[]"))
    except ValueError:
        raise ValueError(
            f"peer address must be an IPv4 or IPv6 literal (resolve host names first), got {peer!r}"
        ) from None


def interface_for_address(counters: SystemCounters, address: str) -> str:
    """The interface holding local ``address``; loopback addresses map to the loopback one."""
    wanted = ipaddress.ip_address(address)
    interfaces = counters.interface_addresses()
    for name, addresses in interfaces.items():
        if any(ipaddress.ip_address(a) == wanted for a in addresses):
            return name
    if wanted.is_loopback:
        # 127.0.0.0/8 is routed through the loopback interface, which holds
        # only 127.0.0.1 (and ::1).
        for name, addresses in interfaces.items():
            if any(ipaddress.ip_address(a).is_loopback for a in addresses):
                return name
    raise ValueError(f"no network interface holds the local address {address!r}")


def choose_interfaces(
    counters: SystemCounters, interface: str | None = None, peers: Iterable[str] = ()
) -> tuple[str, ...]:
    """The interface(s) whose counters stand for the link (see the module documentation).

    ``interface`` names one explicitly; otherwise the routes to ``peers`` (IP
    literals) decide. Returns the names sorted, without duplicates.
    """
    if interface is not None:
        known = counters.interface_addresses()
        if interface not in known:
            raise ValueError(
                f"[bandwidth] interface: no network interface {interface!r}; "
                f"the interfaces are: {', '.join(sorted(known)) or '(none)'}"
            )
        return (interface,)
    names = {
        interface_for_address(counters, counters.source_address(str(parse_peer_address(p))))
        for p in peers
    }
    if not names:
        raise ValueError(
            "cannot choose a network interface: name one ([bandwidth] interface = ...) "
            "or give at least one peer address"
        )
    return tuple(sorted(names))
