"""A private network of Linux namespaces with real line delays: client, router and sites behind it.

Used by ``benchmarks/bench_dsl.py`` (the parents behind an emulated DSL modem,
20 ms away) and ``benchmarks/bench_backup.py --remote-ms`` and
``benchmarks/bench_restore.py --remote-ms`` (every storage server 20 ms away),
and smoke-tested by ``tests/node/test_netns_lab.py``. Needs root,
``ip``, ``tc`` (iproute2) and ``ethtool``. Every address is this lab's own
(``10.77.0.0/16``, inside its own namespaces); nothing outside them is touched.

::

    client ns            router ns                 delay ns                site ns
    c0 10.77.0.1 ---- r0 10.77.0.2
                         r1 10.77.1.1 [tbf] ---- a1 ~ delay element ~ b1 ---- eth0 10.77.1.2, .3
                         r2 10.77.2.1 ------------------------------------- eth0 10.77.2.2

- The **router** forwards between the client and each site; a site with a
  ``line_kbit`` gets a ``tbf`` (the modem: its rate and a ``buffer_kb`` queue)
  on the router's egress toward it, so the queue builds where a modem's does,
  not on the sender's own interface (where TCP Small Queues would keep it short).
- The **delay element** (``netns_lab.py delay-element``, a process in its own
  namespace) forwards every Ethernet frame between two veth ends with raw
  ``AF_PACKET`` sockets, holding each ``delay_ms`` (each way): a wire, not a
  proxy, so TCP sees the real round trip and the modem's queue stays visible.
  The kernel here has no ``netem``; this is what stands in for it.
- Every route says ``congctl cubic``: namespaces cannot set the default
  congestion control, and CUBIC is what most uploaders run.
- Offloads are off on every veth (checksums, segmentation, GRO), so the
  frames the delay element reads are wire-sized and carry real checksums.

:class:`Lab` builds it and always removes it (``with Lab(...)``), killing
whatever still runs in its namespaces; ``Lab.entered`` moves the calling thread
into one of them for a while (what it starts meanwhile runs there too).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

import attrs

PREFIX = "10.77"
CLIENT_ADDRESS = f"{PREFIX}.0.1"
PROGRAMS = ("/usr/sbin/ip", "/usr/sbin/tc", "/usr/sbin/ethtool")
PACKAGES = ("iproute2", "ethtool")
COMMAND_BUDGET = 20.0
"""Seconds any one ``ip``/``tc``/``ethtool`` command may take."""
_CLONE_NEWNET = 0x40000000
_ETH_P_ALL = 0x0003


class LabError(Exception):
    """The lab could not be built (or a command in it failed): what ran and what it said."""


@attrs.frozen
class Site:
    """A namespace behind the router: ``hosts`` addresses, ``delay_ms`` away (each way),
    behind a ``line_kbit`` modem with a ``buffer_kb`` queue if given."""

    name: str
    hosts: int = 1
    delay_ms: float = 0.0
    line_kbit: int | None = None
    buffer_kb: int = 256


def run(*argv: str, netns: str | None = None) -> str:
    """Run a command (in namespace ``netns``); its output, or LabError with what it said."""
    command = [*(("ip", "netns", "exec", netns) if netns else ()), *argv]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_BUDGET)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"{' '.join(command)}: {e}") from e
    if done.returncode != 0:
        raise LabError(f"{' '.join(command)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


class Lab:
    """The namespaces ``<tag>-client``, ``<tag>-router``, ``<tag>-delay`` and one per site."""

    def __init__(self, tag: str, sites: Sequence[Site]) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", tag):
            raise LabError(f"a lab tag is 1-8 lowercase letters or digits, got {tag!r}")
        names = [site.name for site in sites]
        if not sites or len(set(names)) != len(names) or len(sites) > 200:
            raise LabError(f"a lab needs 1-200 sites with distinct names, got {names!r}")
        self.tag = tag
        self.sites = list(sites)
        self._delay: subprocess.Popen[bytes] | None = None
        self._created: list[str] = []

    # -- names and addresses --------------------------------------------------------

    @property
    def client(self) -> str:
        """The client's namespace."""
        return f"{self.tag}-client"

    @property
    def router(self) -> str:
        """The router's (and the modems') namespace."""
        return f"{self.tag}-router"

    @property
    def delay(self) -> str:
        """The delay element's namespace."""
        return f"{self.tag}-delay"

    def namespace(self, site: str) -> str:
        """The namespace of ``site``."""
        self._index(site)
        return f"{self.tag}-{site}"

    def address(self, site: str, host: int = 0) -> str:
        """The address of host ``host`` (from 0) of ``site``."""
        index = self._index(site)
        if not 0 <= host < self.sites[index - 1].hosts:
            raise LabError(f"{site} has {self.sites[index - 1].hosts} hosts, asked for #{host}")
        return f"{PREFIX}.{index}.{2 + host}"

    def launcher(self, site: str) -> tuple[str, ...]:
        """The command prefix that runs a program in ``site``'s namespace."""
        return ("ip", "netns", "exec", self.namespace(site))

    def modem_device(self, site: str) -> str:
        """The router's interface toward ``site`` (where its modem's tbf sits)."""
        return f"r{self._index(site)}"

    def _index(self, site: str) -> int:
        for index, known in enumerate(self.sites, start=1):
            if known.name == site:
                return index
        raise LabError(f"no site {site!r} in this lab (sites: {[s.name for s in self.sites]})")

    def _namespaces(self) -> list[str]:
        return [self.client, self.router, self.delay,
                *(f"{self.tag}-{site.name}" for site in self.sites)]

    # -- life cycle -------------------------------------------------------------------

    def __enter__(self) -> Lab:
        try:
            self.build()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.remove()

    def build(self) -> None:
        """Create the namespaces, links, addresses, routes, modems and delay element."""
        existing = set(run("ip", "netns", "list").split())
        if clash := [ns for ns in self._namespaces() if ns in existing]:
            raise LabError(f"namespaces {clash} exist already (another lab running? "
                           f"remove them with 'ip netns del')")
        for ns in self._namespaces():
            run("ip", "netns", "add", ns)
            self._created.append(ns)
            run("ip", "link", "set", "lo", "up", netns=ns)
        run("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=self.router)
        self._link("c0", self.client, "r0", self.router)
        self._up(self.client, "c0", f"{CLIENT_ADDRESS}/24")
        self._up(self.router, "r0", f"{PREFIX}.0.2/24")
        run("ip", "route", "add", "default", "via", f"{PREFIX}.0.2", "dev", "c0",
            "congctl", "cubic", netns=self.client)
        pairs: list[str] = []
        for index, site in enumerate(self.sites, start=1):
            ns, router_end = self.namespace(site.name), f"r{index}"
            if site.delay_ms > 0:
                self._link(router_end, self.router, f"a{index}", self.delay)
                self._link(f"b{index}", self.delay, "eth0", ns)
                self._up(self.delay, f"a{index}")
                self._up(self.delay, f"b{index}")
                pairs += ["--pair", f"a{index}", f"b{index}", str(site.delay_ms)]
            else:
                self._link(router_end, self.router, "eth0", ns)
            self._up(self.router, router_end, f"{PREFIX}.{index}.1/24")
            self._up(ns, "eth0", *(f"{self.address(site.name, h)}/24" for h in range(site.hosts)))
            run("ip", "route", "add", "default", "via", f"{PREFIX}.{index}.1", "dev", "eth0",
                "congctl", "cubic", netns=ns)
            if site.line_kbit is not None:
                self.set_line(site.name, site.line_kbit, change=False)
        if pairs:
            self._start_delay_element(pairs)

    def remove(self) -> None:
        """Stop the delay element, kill what still runs in the namespaces this lab made,
        delete them."""
        if self._delay is not None:
            _stop(self._delay)
            self._delay = None
        errors = []
        while self._created:
            ns = self._created.pop()
            try:
                for pid in run("ip", "netns", "pids", ns).split():
                    try:  # a process this lab's caller started there and left behind
                        os.kill(int(pid), 9)
                    except ProcessLookupError:
                        pass
                run("ip", "netns", "del", ns)
            except LabError as e:  # remove the others all the same
                errors.append(str(e))
        if errors:
            raise LabError("could not remove the whole lab: " + "; ".join(errors))

    @contextlib.contextmanager
    def entered(self, ns: str) -> Iterator[None]:
        """Run this thread (and the threads and processes it starts) in namespace ``ns``;
        back in its own afterwards."""
        with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{ns}") as there:
            _setns(there.fileno(), ns)
            try:
                yield
            finally:
                _setns(home.fileno(), "the caller's own namespace")

    # -- the modem ----------------------------------------------------------------------

    def set_line(self, site: str, kbit: int, change: bool = True) -> None:
        """Set (``tc change``) the rate of the modem in front of ``site``."""
        buffer_kb = self.sites[self._index(site) - 1].buffer_kb
        run("tc", "qdisc", "change" if change else "add", "dev", self.modem_device(site),
            "root", "tbf", "rate", f"{kbit}kbit", "burst", "4kb", "limit", f"{buffer_kb}kb",
            netns=self.router)

    def backlog_bytes(self, site: str) -> int:
        """Bytes waiting in the modem's queue in front of ``site`` now (``tc -s qdisc``)."""
        shown = run("tc", "-s", "qdisc", "show", "dev", self.modem_device(site),
                    netns=self.router)
        found = re.search(r"backlog (\d+)([KMG]?)b ", shown)  # tc says 252Kb for 252 KiB
        if found is None:
            raise LabError(f"no backlog in tc's answer: {shown!r}")
        return int(found.group(1)) * 1024 ** " KMG".index(found.group(2) or " ")

    # -- internals ------------------------------------------------------------------------

    @staticmethod
    def _link(name: str, ns: str, peer: str, peer_ns: str) -> None:
        run("ip", "link", "add", name, "netns", ns, "type", "veth", "peer", "name", peer,
            "netns", peer_ns)

    @staticmethod
    def _up(ns: str, device: str, *addresses: str) -> None:
        # wire-sized frames with real checksums, for the delay element and the modem
        run("ethtool", "-K", device, "tx", "off", "sg", "off", "tso", "off", "gso", "off",
            "gro", "off", netns=ns)
        for address in addresses:
            run("ip", "addr", "add", address, "dev", device, netns=ns)
        run("ip", "link", "set", device, "up", netns=ns)

    def _start_delay_element(self, pairs: list[str]) -> None:
        self._delay = subprocess.Popen(
            ["ip", "netns", "exec", self.delay, sys.executable, str(Path(__file__).resolve()),
             "delay-element", *pairs],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self._delay.stdout is not None
        ready = self._delay.stdout.readline()  # it says "ready" once its sockets are bound
        if ready.strip() != b"ready":
            _, err = self._delay.communicate(timeout=COMMAND_BUDGET)
            raise LabError(f"the delay element did not start: {err.decode(errors='replace')}")


def round_trip(conn: socket.socket, size: int) -> float:
    """Seconds for ``size`` bytes sent on ``conn`` to come back from an echo."""
    start = time.monotonic()
    conn.sendall(b"p" * size)
    got = 0
    while got < size:
        chunk = conn.recv(size - got)
        if not chunk:
            raise ConnectionError("the echo closed the connection")
        got += len(chunk)
    return time.monotonic() - start


def unavailable() -> str | None:
    """Why this machine cannot build a lab (not root, no network namespaces), or ``None``."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    probe = f"tgprobe{os.getpid() % 10_000}"
    try:
        run("ip", "netns", "add", probe)
    except LabError as e:
        return f"cannot make a network namespace: {e}"
    run("ip", "netns", "del", probe)
    return None


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        process.stdin.close()  # the delay element exits when its stdin closes
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _setns(handle: int, what: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(handle, _CLONE_NEWNET) != 0:
        raise LabError(f"setns into {what}: {os.strerror(ctypes.get_errno())}")


# -- the delay element (a process of its own, in the delay namespace) ----------------------


_Queue = collections.deque[tuple[float, bytes]]
"""Frames on their way: when each is due out, and the frame."""


def delay_element(pairs: Sequence[tuple[str, str, float]]) -> None:
    """Forward every frame between each pair of interfaces, ``delay_ms`` later; exits when
    stdin closes."""
    poller = select.epoll()
    routes: dict[int, tuple[socket.socket, socket.socket, _Queue, float]] = {}
    queues: list[tuple[socket.socket, _Queue]] = []
    for a, b, delay_ms in pairs:
        ends = []
        for name in (a, b):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.bind((name, 0))
            s.setblocking(False)
            ends.append(s)
        for source, sink in ((ends[0], ends[1]), (ends[1], ends[0])):
            queue: _Queue = collections.deque()
            routes[source.fileno()] = (source, sink, queue, delay_ms / 1000)
            queues.append((sink, queue))
            poller.register(source.fileno(), select.EPOLLIN)
    poller.register(sys.stdin.fileno(), select.EPOLLIN)
    print("ready", flush=True)
    while True:
        heads = [queue[0][0] for _, queue in queues if queue]
        timeout = max(0.0, min(heads) - time.monotonic()) if heads else 1.0
        for fd, _ in poller.poll(timeout):
            if fd == sys.stdin.fileno():
                if not os.read(fd, 4096):
                    return
                continue
            source, _, queue, delay = routes[fd]
            while True:
                try:
                    frame, where = source.recvfrom(65536)
                except BlockingIOError:
                    break
                if where[2] != socket.PACKET_OUTGOING:  # not our own sends seen again
                    queue.append((time.monotonic() + delay, frame))
        now = time.monotonic()
        for sink, queue in queues:
            while queue and queue[0][0] <= now:
                try:
                    sink.send(queue.popleft()[1])
                except OSError:
                    pass  # a frame lost, as on a wire; TCP resends it


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    element = commands.add_parser("delay-element", help="forward frames between veth pairs")
    element.add_argument("--pair", nargs=3, action="append", required=True,
                         metavar=("IFACE_A", "IFACE_B", "DELAY_MS"))
    args = parser.parse_args(argv)
    delay_element([(a, b, float(ms)) for a, b, ms in args.pair])


if __name__ == "__main__":
    main(sys.argv[1:])
