"""An emulated DSL line in front of one storage server, and what its owners feel during a backup.

Runs inside a private network namespace (the caller starts it with ``unshare
--net``): a local grid of three storage servers on 127.0.0.1, one of them,
``parents``, behind a modem emulated with Linux traffic control on the
namespace's loopback: an HTB class of ``line_kbit`` kbit/s with a
``buffer_kb`` KB queue (a DSL modem's) on every packet sent to the parents'
server port. An echo server behind the same modem stands for the parents'
interactive traffic: a small message every 100 ms, its round trip timed.

For each scenario a governed node (``tahoe-governor run``) backs up a fresh
tree with the given ``[bandwidth]`` line for the parents' server; once it has
uploaded for ``settle`` seconds, for ``seconds`` the echo round trips are recorded and the bytes the
parents' server received are counted by its kernel (``ss``). The result, as a
dict per scenario: the echo round trip's median and 95th percentile, and the
parents' upload rate against the line's.

A scenario may also govern the parents' own node (the receiving side): the
parents' storage server is then restarted as ``tahoe-governor run`` with the
scenario's ``[bandwidth]`` lines for its own node (``limit.down = 800kbps``),
and back as plain ``tahoe run`` after it. While it is measured, the modem's
backlog (``tc -s qdisc``) and both ends' sockets (``ss -tmi``: the receive
buffer, the window the sender sees, what waits unread) are sampled twice a second.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from tahoe_governor.demo.local_grid import STARTUP_BUDGET, LocalGrid, poll
from tests.node.crash_harness import spawn_node, stop_node, uploading
from tests.socket_counters import SS, bytes_received_on_port

PING_INTERVAL = 0.1
SAMPLE_INTERVAL = 0.5


@attrs.frozen
class Scenario:
    """What one run governs: the uploading client's ``[bandwidth]`` lines (``{tubid}`` is
    the parents' TubID), and the parents' own node's (``None``: a plain storage server)."""

    client: str = ""
    parents: str | None = None


def _run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True)


def use_congestion_control(name: str) -> None:
    """Every connection on the namespace's loopback uses ``name`` (``cubic``: what most
    uploaders run; a namespace cannot set the sysctl here, a route can)."""
    _run("ip", "route", "replace", "local", "127.0.0.1", "dev", "lo", "proto", "kernel",
         "scope", "host", "src", "127.0.0.1", "table", "local", "congctl", name)


def shape_parents_line(ports: list[int], line_kbit: int, buffer_kb: int) -> None:
    """Packets to ``ports`` on loopback pass a modem: ``line_kbit`` kbit/s, ``buffer_kb`` KB.

    An HTB class at the line's rate with a byte FIFO of the modem's buffer under it;
    every other packet passes a class as fast as loopback.
    """
    run = _run
    run("ip", "link", "set", "lo", "mtu", "1500")
    run("tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10",
        "r2q", "1000000")
    run("tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb",
        "rate", "10gbit")
    run("tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:30", "htb",
        "rate", f"{line_kbit}kbit", "burst", "4kb", "cburst", "4kb")
    run("tc", "qdisc", "add", "dev", "lo", "parent", "1:30", "handle", "30:", "bfifo",
        "limit", f"{buffer_kb}kb")
    for port in ports:
        run("tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1",
            "u32", "match", "ip", "dport", str(port), "0xffff", "flowid", "1:30")


class EchoServer:
    """Echoes every byte back: the parents' interactive traffic's far end."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)


def echo_round_trips(port: int, seconds: float) -> list[float]:
    """Round trips (seconds) of a 64-byte message every 100 ms for ``seconds``."""
    trips = []
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.monotonic()
            conn.sendall(b"p" * 64)
            got = 0
            while got < 64:
                got += len(conn.recv(64 - got))
            trips.append(time.monotonic() - start)
            time.sleep(max(0.0, PING_INTERVAL - (time.monotonic() - start)))
    return trips


def _summary(trips: list[float]) -> dict[str, float]:
    ordered = sorted(trips)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1), "samples": len(ordered)}


def run_scenarios(root: Path, scenarios: dict[str, str | Scenario], seconds: float,
                  line_kbit: int, buffer_kb: int, tree_mb: int, settle: float,
                  congestion_control: str | None = None) -> dict[str, Any]:
    """Every scenario (name -> the client's ``[bandwidth]`` lines, ``{tubid}`` filled in, or a
    :class:`Scenario`); ``congestion_control`` names the one every connection uses."""
    grid = LocalGrid(root / "grid", nicknames=("parents", "friend1", "friend2"))
    results: dict[str, Any] = {"line_bytes_per_second": line_kbit * 1000 / 8,
                               "buffer_kb": buffer_kb}
    if congestion_control is not None:
        use_congestion_control(congestion_control)
        results["congestion_control"] = congestion_control
    try:
        grid.start()
        parents = grid.server("parents")
        echo = EchoServer()
        shape_parents_line([parents.tub_port, echo.port], line_kbit, buffer_kb)
        results["idle"] = _summary(echo_round_trips(echo.port, 3.0))
        for name, scenario in scenarios.items():
            if isinstance(scenario, str):
                scenario = Scenario(client=scenario)
            with _parents_governed(grid, root / name, scenario.parents):
                results[name] = _scenario(grid, root / name, parents.tub_port, echo.port,
                                          scenario.client.format(tubid=parents.tubid),
                                          seconds, tree_mb, settle)
            if scenario.parents is not None:
                results[name]["parents_bandwidth"] = scenario.parents
    finally:
        grid.close()
    return results


@contextlib.contextmanager
def _parents_governed(grid: LocalGrid, work: Path, bandwidth: str | None) -> Iterator[None]:
    """With ``bandwidth``: the parents' storage server runs as ``tahoe-governor run`` with
    those ``[bandwidth]`` lines (same node directory: same port, same identity), then as
    plain ``tahoe run`` again. Without: nothing changes."""
    if bandwidth is None:
        yield
        return
    index = [server.name for server in grid.servers].index("parents")
    parents = grid.stop_server(index)
    cfg = parents.nodedir / "tahoe.cfg"
    plain = cfg.read_text()
    cfg.write_text(plain + f"\n[bandwidth]\n{bandwidth}\n")
    work.mkdir(parents=True, exist_ok=True)
    node = spawn_node(parents.nodedir, work / "parents-node.log")
    try:
        parents.wait_listening(time.monotonic() + STARTUP_BUDGET)
        yield
    finally:
        stop_node(node)
        cfg.write_text(plain)
        grid.start_server(index)


def _scenario(grid: LocalGrid, work: Path, parents_port: int, echo_port: int,
              bandwidth: str, seconds: float, tree_mb: int, settle: float) -> dict[str, Any]:
    source = work / "source"
    source.mkdir(parents=True)
    rng = random.Random(work.name)  # each scenario its own content: nothing is found uploaded
    for i in range(tree_mb):
        (source / f"f{i}.bin").write_bytes(rng.randbytes(1_000_000))
    nodedir = grid.make_client_dir(
        work / "client",
        extra_cfg=("[backups]\n"
                   f"b1.source = {source}\nb1.target = backup:photos\nb1.frequency = 1week\n"
                   f"[bandwidth]\n{bandwidth}\n"),
    )
    (nodedir / "private" / "aliases").write_text(f"backup: {grid.create_directory()}\n")
    node = spawn_node(nodedir, work / "node.log")
    try:
        poll("the run to upload", lambda: uploading(nodedir), time.monotonic() + STARTUP_BUDGET)
        time.sleep(settle)  # an automatic cap finds the line from 64 kbit/s first
        sampler = LineSampler(parents_port)
        before, started = bytes_received_on_port(parents_port), time.monotonic()
        unread_before = sampler.unread()
        with sampler:
            trips = echo_round_trips(echo_port, seconds)
        received = bytes_received_on_port(parents_port) - before
        read = received - (sampler.unread() - unread_before)
        elapsed = time.monotonic() - started
    finally:
        stop_node(node)
    return {**_summary(trips), "parents_bytes_per_second": round(received / elapsed),
            "parents_read_bytes_per_second": round(read / elapsed),
            "bandwidth": bandwidth, "line": sampler.summary()}


_SKMEM_RCVBUF = re.compile(r"skmem:\(r\d+,rb(\d+),")
_FIELDS = {name: re.compile(rf"\b{name}:(\d+)") for name in
           ("rcv_space", "rcv_ssthresh", "snd_wnd", "bytes_received")}
_MILLISECONDS = {"rcv_rtt_ms": re.compile(r"\brcv_rtt:([\d.]+)"),
                 "rtt_ms": re.compile(r"\brtt:([\d.]+)/")}
_BACKLOG = re.compile(r"qdisc bfifo 30:.*?backlog (\d+)b", re.S)


class LineSampler:
    """Twice a second while in use: the modem's backlog and the parents' connection as
    both ends' kernels see it (``ss -tmi``): the receiver's buffer (``rb``), its
    ``rcv_space``, bytes waiting unread (Recv-Q) and its round-trip estimate
    (``rcv_rtt``, ms); the window the sender was offered (``snd_wnd``) and its
    smoothed round trip (``rtt``, ms). :meth:`summary` gives the mean and maximum of each."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.samples: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def __enter__(self) -> LineSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self.samples.append(self.sample())

    def sample(self) -> dict[str, int]:
        """One sample: the modem's backlog and the busiest connection's two ends."""
        qdisc = subprocess.run(["tc", "-s", "qdisc", "show", "dev", "lo"], capture_output=True,
                               text=True, check=True).stdout
        backlog = _BACKLOG.search(qdisc)
        sample = {"modem_backlog": int(backlog.group(1)) if backlog else 0}
        receiver = _busiest(self._ss("sport"))
        sender = _busiest(self._ss("dport"))
        if receiver is not None:
            sample["recv_q"] = receiver["queue"]
            sample["rcvbuf"] = receiver.get("rcvbuf", 0)
            sample["rcv_space"] = receiver.get("rcv_space", 0)
            if "rcv_rtt_ms" in receiver:
                sample["receiver_rcv_rtt_ms"] = receiver["rcv_rtt_ms"]
        if sender is not None:
            sample["snd_wnd"] = sender.get("snd_wnd", 0)
            if "rtt_ms" in sender:
                sample["sender_rtt_ms"] = sender["rtt_ms"]
        return sample

    def unread(self) -> int:
        """Bytes the parents' server's kernel holds that the server has not read (Recv-Q)."""
        lines = self._ss("sport").splitlines()
        return sum(int(header.split()[0]) for header in lines[::2])

    def _ss(self, end: str) -> str:
        return subprocess.run(
            [SS, "-tmiH", "state", "established", f"( {end} = :{self.port} )"],
            capture_output=True, text=True, check=True).stdout

    def summary(self) -> dict[str, Any]:
        """Mean and maximum of every sampled figure (bytes, or ms where named so)."""
        keys = sorted({key for sample in self.samples for key in sample})
        out: dict[str, Any] = {"samples": len(self.samples)}
        for key in keys:
            values = [sample[key] for sample in self.samples if key in sample]
            out[key] = {"mean": round(statistics.fmean(values)), "max": max(values)}
        return out


def _busiest(ss_output: str) -> dict[str, int] | None:
    """The socket of ``ss -tmiH`` output that has received the most bytes."""
    sockets = []
    lines = ss_output.splitlines()
    for header, detail in zip(lines[::2], lines[1::2], strict=False):
        fields: dict[str, int] = {"queue": int(header.split()[0])}
        if (rcvbuf := _SKMEM_RCVBUF.search(detail)) is not None:
            fields["rcvbuf"] = int(rcvbuf.group(1))
        for name, pattern in _FIELDS.items():
            if (match := pattern.search(detail)) is not None:
                fields[name] = int(match.group(1))
        for name, pattern in _MILLISECONDS.items():
            if (match := pattern.search(detail)) is not None:
                fields[name] = round(float(match.group(1)))
        sockets.append(fields)
    return max(sockets, key=lambda f: f.get("bytes_received", 0), default=None)


PROBE = ("ip link set lo up && tc qdisc add dev lo root handle 1: htb default 10 && "
         "tc class add dev lo parent 1: classid 1:30 htb rate 1000kbit && "
         "tc qdisc add dev lo parent 1:30 handle 30: bfifo limit 256kb && "
         "tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip dport 1 0xffff "
         "flowid 1:30")


def emulation_unavailable() -> str | None:
    """Why this machine cannot emulate the line (no private network namespace, or no HTB,
    FIFO or u32 filter in its kernel), or ``None`` when it can."""
    try:
        probe = subprocess.run(["unshare", "--net", "sh", "-c", PROBE],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"cannot run unshare: {e}"
    if probe.returncode != 0:
        return ("cannot emulate a modem in a private network namespace: "
                + (probe.stderr.strip().splitlines() or ["unshare or tc failed"])[-1])
    return None


def inside_namespace() -> bool:
    """Whether this process may shape its own loopback (a private namespace, as root)."""
    return os.geteuid() == 0 and os.environ.get("TAHOE_GOVERNOR_DSL_NAMESPACE") == "1"
