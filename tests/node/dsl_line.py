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
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tahoe_governor.demo.local_grid import STARTUP_BUDGET, LocalGrid, poll
from tests.node.crash_harness import spawn_node, stop_node, uploading
from tests.socket_counters import bytes_received_on_port

PING_INTERVAL = 0.1


def shape_parents_line(ports: list[int], line_kbit: int, buffer_kb: int) -> None:
    """Packets to ``ports`` on loopback pass a modem: ``line_kbit`` kbit/s, ``buffer_kb`` KB.

    An HTB class at the line's rate with a byte FIFO of the modem's buffer under it;
    every other packet passes a class as fast as loopback.
    """
    def run(*args: str) -> None:
        subprocess.run(list(args), check=True, capture_output=True)

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

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
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


def run_scenarios(root: Path, scenarios: dict[str, str], seconds: float, line_kbit: int,
                  buffer_kb: int, tree_mb: int, settle: float) -> dict[str, Any]:
    """Every scenario (name -> the parents' ``[bandwidth]`` lines, ``{tubid}`` filled in)."""
    grid = LocalGrid(root / "grid", nicknames=("parents", "friend1", "friend2"))
    results: dict[str, Any] = {"line_bytes_per_second": line_kbit * 1000 / 8,
                               "buffer_kb": buffer_kb}
    try:
        grid.start()
        parents = grid.server("parents")
        echo = EchoServer()
        shape_parents_line([parents.tub_port, echo.port], line_kbit, buffer_kb)
        results["idle"] = _summary(echo_round_trips(echo.port, 3.0))
        for name, bandwidth in scenarios.items():
            results[name] = _scenario(grid, root / name, parents.tub_port, echo.port,
                                      bandwidth.format(tubid=parents.tubid), seconds, tree_mb,
                                      settle)
    finally:
        grid.close()
    return results


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
        before, started = bytes_received_on_port(parents_port), time.monotonic()
        trips = echo_round_trips(echo_port, seconds)
        received = bytes_received_on_port(parents_port) - before
        elapsed = time.monotonic() - started
    finally:
        stop_node(node)
    return {**_summary(trips), "parents_bytes_per_second": round(received / elapsed),
            "bandwidth": bandwidth}


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
