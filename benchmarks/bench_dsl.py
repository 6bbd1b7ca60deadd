"""Benchmark: the parents' DSL line, 20 ms away behind a 1 Mbit/s modem, during each kind of backup.

Builds its own network namespaces (``tests/node/netns_lab.py``; root, iproute2,
ethtool) and always removes them, even on Ctrl-C or an error; the whole sitting
is bounded (``--budget``). Only the lab's own addresses (10.77.0.0/16) are used:

- ``client``: the client node (a plain ``tahoe run`` for ``tahoe backup``, or
  ``tahoe-governor run``) and the parents' interactive probe: a 100-byte
  request/response every 200 ms on one TCP_NODELAY connection, plus ``ping``
  (every 200 ms) if the machine has it;
- ``parents``: 20 ms away each way (a user-space delay element) behind the
  modem (a ``tbf`` of ``--line-kbit`` with a ``--buffer-kb`` queue on the
  router's egress toward them): the parents' storage server, and beside it a
  host answering the probe and sinking a competing bulk flow;
- ``grid``: the introducer and two fast storage servers, reached without the
  modem. Shares are 2-of-3, so every file sends a share to the parents.

Every route uses CUBIC. Scenarios, in one sitting: idle; an ungoverned
``tahoe backup`` (the real CLI against a plain client node); the governed node
with ``peer.<parents>.up = 800kbps``; with ``auto``; the line halved
(``tc change`` to half the rate) under ``auto``: how long until the probe's
p95 is back under idle p95 + 25 ms; a competing bulk flow from the client to
the parents' host beside the ``auto`` upload: the share of the line it gets.
For each: the probe's p50/p95/max, ping's p50/p95, the rate the parents'
server received (its kernel's count, ``ss`` in its namespace) and the modem's
queue backlog (``tc -s qdisc``). Prints a table, the targets met or not, and
the JSON.

    sudo python benchmarks/bench_dsl.py [--seconds 40] [--auto-settle 45] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' harness
sys.path.insert(0, str(REPO / "benchmarks"))

from tests.node.crash_harness import servers_connected, spawn_node, stop_node  # noqa: E402
from tests.node.dsl_line import EchoServer  # noqa: E402
from tests.node.netns_lab import PACKAGES, PROGRAMS, Lab, Site, round_trip  # noqa: E402
from tests.socket_counters import bytes_received_on_port  # noqa: E402

from bench_backup import end_process, tahoe_command  # noqa: E402
from tahoe_governor.demo.local_grid import (  # noqa: E402
    STARTUP_BUDGET,
    LocalGrid,
    Placement,
    poll,
    set_tahoe_cfg,
)

PROBE_BYTES = 100
PROBE_INTERVAL = 0.2
RECOVERY_SECONDS = 10.0
"""After the line slows down, the share of it the upload takes back is also given from
this many seconds on (the controller's back-off and climb out of the way)."""
TARGET_MS = 25.0
"""The automatic cap's target queueing delay: what its p95 may add to idle."""
RECOVERY_WINDOW = 5.0
"""Seconds of probe samples one p95 is taken over when timing the recovery."""


# -- the parents' side: the probe's echo and a discard sink (run in their namespace) -----


def serve(host: str) -> None:
    """Echo the probe and discard the competing flow on ``host``; print both ports, run until
    stdin closes."""
    echo = EchoServer(host)
    sink = socket.create_server((host, 0))
    threading.Thread(target=_discard, args=(sink,), daemon=True).start()
    print(echo.port, sink.getsockname()[1], flush=True)
    sys.stdin.read()


def _discard(server: socket.socket) -> None:
    while True:
        conn, _ = server.accept()
        threading.Thread(target=lambda c=conn: _drain(c), daemon=True).start()


def _drain(conn: socket.socket) -> None:
    with conn:
        while conn.recv(65536):
            pass


def blast(host: str, port: int) -> None:
    """Send to ``host:port`` as fast as TCP lets us, until killed (the competing bulk flow)."""
    block = b"\0" * 65536
    with socket.create_connection((host, port)) as conn:
        while True:
            conn.sendall(block)


# -- the client's side: probes -------------------------------------------------------------


class Probe:
    """A 100-byte request/response every 200 ms on one TCP_NODELAY connection, in a thread;
    every round trip kept with the time it ended."""

    def __init__(self, host: str, port: int) -> None:
        self.samples: list[tuple[float, float]] = []
        self._conn = socket.create_connection((host, port), timeout=30)
        self._conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                rtt = round_trip(self._conn, PROBE_BYTES)
            except OSError:
                return  # stopped: the connection closed under it
            self.samples.append((time.monotonic(), rtt))
            self._stop.wait(max(0.0, PROBE_INTERVAL - rtt))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()


class Ping:
    """``ping`` every 200 ms, its round trips kept with the time each was read."""

    def __init__(self, host: str) -> None:
        self.samples: list[tuple[float, float]] = []
        self._process = subprocess.Popen(["ping", "-n", "-i", str(PROBE_INTERVAL), host],
                                         stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if found := re.search(r"time=([\d.]+) ms", line):
                self.samples.append((time.monotonic(), float(found.group(1)) / 1000))

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(5)


def between(samples: list[tuple[float, float]], start: float, end: float) -> list[float]:
    """The round trips (seconds) of ``samples`` that ended in ``[start, end)``."""
    return [rtt for t, rtt in samples if start <= t < end]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1))]


def summary(values: list[float]) -> dict[str, float | int | None]:
    """p50/p95/max in ms of round trips in seconds (``None`` with no sample)."""
    if not values:
        return {"p50_ms": None, "p95_ms": None, "max_ms": None, "samples": 0}
    return {"p50_ms": round(statistics.median(values) * 1000, 1),
            "p95_ms": round(percentile(values, 0.95) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1), "samples": len(values)}


def recovery_seconds(samples: list[tuple[float, float]], start: float, end: float,
                     threshold: float) -> float | None:
    """Seconds from ``start`` until every later ``RECOVERY_WINDOW`` of samples (up to ``end``)
    has its p95 under ``threshold``; ``None`` if that never happened."""
    times = [t for t, _ in samples if start <= t and t + RECOVERY_WINDOW <= end]
    recovered: float | None = None
    for t in times:
        window = between(samples, t, t + RECOVERY_WINDOW)
        if percentile(window, 0.95) <= threshold:
            recovered = t if recovered is None else recovered
        else:
            recovered = None
    return None if recovered is None else round(recovered - start, 1)


class Sampler:
    """``read()`` every ``interval`` seconds in a thread; each answer but ``None`` kept with
    the time it was read."""

    def __init__(self, read: Callable[[], Any], interval: float) -> None:
        self.samples: list[tuple[float, Any]] = []
        self._read = read
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            if (value := self._read()) is not None:
                self.samples.append((time.monotonic(), value))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def controller_reading(nodedir: Path, tubid: str) -> tuple[float, float | None] | None:
    """The automatic cap's rate and queueing delay for ``tubid``, from the node's
    ``/metrics`` (``None`` while it does not answer or the cap is not automatic)."""
    try:
        url = (nodedir / "node.url").read_text().strip() + "metrics"
        with urllib.request.urlopen(url, timeout=5) as response:  # the lab's own
            text = response.read().decode()
    except (OSError, ValueError):
        return None

    def metric(name: str) -> float | None:
        for line in text.splitlines():
            if (line.startswith(f"tahoe_governor_{name}{{") and tubid[:8] in line
                    and 'direction="up"' in line):
                return float(line.rsplit(" ", 1)[1])
        return None

    rate = metric("peer_auto_rate_bytes_per_second")
    return None if rate is None else (rate, metric("peer_queueing_delay_seconds"))


def timeline(samples: list[tuple[float, Any]], origin: float) -> list[list[float | None]]:
    """Controller readings as [seconds since ``origin``, kB/s, queueing ms]."""
    return [[round(t - origin), round(rate / 1000, 1),
             None if delay is None else round(delay * 1000, 1)]
            for t, (rate, delay) in samples]


# -- the sitting --------------------------------------------------------------------------


class Sitting:
    """The lab's grid, probes and scenarios, run from inside the client's namespace."""

    def __init__(self, lab: Lab, root: Path, args: argparse.Namespace) -> None:
        self.lab = lab
        self.root = root
        self.args = args
        self.line_bytes = args.line_kbit * 1000 / 8
        self.parents_ns = lab.namespace("parents")
        grid_host = Placement(lab.address("grid"), lab.launcher("grid"))
        self.grid = LocalGrid(root / "grid", nicknames=("friend1", "friend2", "parents"),
                              placements={
                                  "introducer": grid_host, "friend1": grid_host,
                                  "friend2": grid_host,
                                  "parents": Placement(lab.address("parents"),
                                                       lab.launcher("parents"))})
        self._stoppers: list[Callable[[], None]] = []
        self.started = time.monotonic()
        self.results: dict[str, Any] = {}

    def run(self) -> dict[str, Any]:
        try:
            self._run()
        finally:
            for stop in reversed(self._stoppers):
                try:
                    stop()
                except Exception as e:  # keep stopping the others
                    print(f"bench_dsl: while stopping: {e!r}", file=sys.stderr)
        return self.results

    def _run(self) -> None:
        a = self.args
        self.grid.start()
        self._stoppers.append(self.grid.close)
        self.parents = self.grid.server("parents")
        beside = self.lab.address("parents", 1)
        server = subprocess.Popen(
            [*self.lab.launcher("parents"), sys.executable, __file__, "--serve", beside],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._stoppers.append(lambda: end_process(server))
        assert server.stdout is not None
        echo_port, self.sink_port = (int(p) for p in server.stdout.readline().split())
        self.beside = beside
        self.probe = Probe(beside, echo_port)
        self._stoppers.append(self.probe.stop)
        self.ping = Ping(beside) if shutil.which("ping") else None
        if self.ping is not None:
            self._stoppers.append(self.ping.stop)
        self.backlog = Sampler(lambda: float(self.lab.backlog_bytes("parents")), 0.5)
        self._stoppers.append(self.backlog.stop)

        time.sleep(2.0)  # ARP and the first probe round trips out of the way
        self.results["idle"] = self.measure(a.idle_seconds)
        idle_p95 = self.results["idle"]["probe"]["p95_ms"] / 1000

        if "plain" in a.only:
            self.results["tahoe backup"] = self.ungoverned()
        if "fixed" in a.only:
            self.results["fixed 800kbps"] = self.governed(
                "fixed", "peer.{tubid}.up = 800kbps", a.settle, lambda: self.measure(a.seconds))
        if "auto" not in a.only:
            return

        def auto_phases() -> dict[str, Any]:
            phases = {"auto": self.measure(a.seconds)}
            phases["auto, line halved" if a.slower == 2 else f"auto, line at 1/{a.slower}"] = \
                self.halved(idle_p95)
            time.sleep(a.settle)  # back at the full rate, the controller finds it again
            phases["auto + competing flow"] = self.competing()
            return phases

        self.results.update(self.governed("auto", "peer.{tubid}.up = auto", a.auto_settle,
                                          auto_phases))

    # -- what is measured ----------------------------------------------------------------

    def parents_received(self) -> int:
        return bytes_received_on_port(self.parents.tub_port, self.parents_ns)

    def measure(self, seconds: float) -> dict[str, Any]:
        """The probes, the parents' rate and the modem's backlog over the next ``seconds``."""
        start, before = time.monotonic(), self.parents_received()
        time.sleep(seconds)
        end, received = time.monotonic(), self.parents_received() - before
        return self.window(start, end, received)

    def window(self, start: float, end: float, received: int) -> dict[str, Any]:
        backlog = between(self.backlog.samples, start, end)
        rate = received / (end - start)
        return {
            "seconds": round(end - start, 1),
            "probe": summary(between(self.probe.samples, start, end)),
            "ping": summary(between(self.ping.samples, start, end)) if self.ping else None,
            "parents_bytes_per_second": round(rate),
            "parents_share_of_line": round(rate / self.line_bytes, 3),
            "backlog_mean_kb": round(statistics.mean(backlog) / 1000, 1) if backlog else None,
            "backlog_max_kb": round(max(backlog) / 1000, 1) if backlog else None,
        }

    def wait_uploading(self, alive: Callable[[], bool]) -> None:
        """Until the parents' server has received 50 kB more than now."""
        first = self.parents_received()
        poll("the upload to reach the parents' server",
             lambda: _alive(alive) and self.parents_received() - first > 50_000,
             time.monotonic() + STARTUP_BUDGET)

    def wait_quiet(self) -> None:
        """Until the modem's queue is empty (the last scenario's bytes are through)."""
        deadline = time.monotonic() + 30
        while self.lab.backlog_bytes("parents") > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)

    # -- scenarios ------------------------------------------------------------------------

    def ungoverned(self) -> dict[str, Any]:
        """A real ``tahoe backup`` through a plain client node."""
        nodedir = self.grid.make_client_dir(self.root / "plain", nickname="plain")
        set_tahoe_cfg(nodedir, {("client", "force_foolscap"): "true"})
        (nodedir / "private" / "aliases").write_text(
            f"backup: {self.grid.create_directory()}\n")
        source = self.tree("plain", self.args.tree_mb)
        with open(self.root / "plain.log", "ab") as log:
            node = subprocess.Popen([*tahoe_command(), "run", str(nodedir)],
                                    stdin=subprocess.PIPE, stdout=log, stderr=log)
            backup: subprocess.Popen[bytes] | None = None
            try:
                poll("the plain client to connect to 3 servers",
                     lambda: servers_connected(nodedir) >= 3, time.monotonic() + STARTUP_BUDGET)
                backup = subprocess.Popen(
                    [*tahoe_command(), "-d", str(nodedir), "backup", str(source),
                     "backup:bench"], stdout=log, stderr=log)
                self.wait_uploading(lambda: backup.poll() is None)
                time.sleep(self.args.settle)
                result = self.measure(self.args.seconds)
                result["still_running"] = backup.poll() is None
            finally:
                if backup is not None:
                    end_process(backup)
                end_process(node)
        self.wait_quiet()
        return result

    def governed(self, name: str, bandwidth: str, settle: float,
                 phases: Callable[[], dict[str, Any]]) -> Any:
        """``phases`` measured while a governed node uploads with ``bandwidth``."""
        line = bandwidth.format(tubid=self.parents.tubid)
        source = self.tree(name, self.args.auto_tree_mb if name == "auto" else self.args.tree_mb)
        nodedir = self.grid.make_client_dir(
            self.root / name, nickname=name,
            extra_cfg=(f"[backups]\nb1.source = {source}\nb1.target = backup:photos\n"
                       f"b1.frequency = 1week\n[bandwidth]\n{line}\n"))
        (nodedir / "private" / "aliases").write_text(
            f"backup: {self.grid.create_directory()}\n")
        node = spawn_node(nodedir, self.root / f"{name}.log")
        controller = Sampler(lambda: controller_reading(nodedir, self.parents.tubid), 1.0)
        try:
            self.wait_uploading(lambda: node.poll() is None)
            time.sleep(settle)
            result = phases()
            if node.poll() is not None:
                raise RuntimeError(f"the {name} node exited: {_tail(self.root / f'{name}.log')}")
        finally:
            controller.stop()
            stop_node(node)
        if controller.samples:
            self.results[f"{name} controller (s, kB/s, queueing ms)"] = timeline(
                controller.samples, self.started)
        self.wait_quiet()
        return result

    def halved(self, idle_p95: float) -> dict[str, Any]:
        """The line's rate halved (``--slower``: divided) under the automatic cap: how long
        the probe suffers, and how much of the slower line the upload takes back."""
        a = self.args
        start, before = time.monotonic(), self.parents_received()
        self.lab.set_line("parents", a.line_kbit // a.slower)
        first = min(RECOVERY_SECONDS, a.halved_seconds)
        try:
            time.sleep(first)
            after_recovery, recovered_at = self.parents_received(), time.monotonic()
            time.sleep(a.halved_seconds - first)
        finally:
            self.lab.set_line("parents", a.line_kbit)
        end = time.monotonic()
        received = self.parents_received()
        result = self.window(start, end, received - before)
        slower_line = self.line_bytes / a.slower
        result["parents_share_of_line"] = round(
            result["parents_bytes_per_second"] / slower_line, 3)
        if end - recovered_at >= 1.0:  # a phase of --halved-seconds > RECOVERY_SECONDS
            result[f"parents_share_of_line_after_{RECOVERY_SECONDS:.0f}s"] = round(
                (received - after_recovery) / (end - recovered_at) / slower_line, 3)
        result["recovery_seconds"] = recovery_seconds(
            self.probe.samples, start, end, idle_p95 + TARGET_MS / 1000)
        return result

    def competing(self) -> dict[str, Any]:
        """A bulk TCP flow to the parents' host beside the automatic upload."""
        flow = subprocess.Popen([sys.executable, __file__, "--blast", self.beside,
                                 str(self.sink_port)])
        try:
            time.sleep(3.0)  # its slow start out of the way
            start, before = time.monotonic(), self.parents_received()
            sunk = bytes_received_on_port(self.sink_port, self.parents_ns)
            time.sleep(self.args.seconds)
            end = time.monotonic()
            sunk = bytes_received_on_port(self.sink_port, self.parents_ns) - sunk
            result = self.window(start, end, self.parents_received() - before)
        finally:
            end_process(flow)
        result["competing_share_of_line"] = round(sunk / (end - start) / self.line_bytes, 3)
        return result

    def tree(self, name: str, megabytes: int) -> Path:
        """A fresh tree of ``megabytes`` 1 MB files, its own content (nothing is found uploaded)."""
        source = self.root / f"{name}-source"
        source.mkdir()
        rng = random.Random(name)
        for i in range(megabytes):
            (source / f"f{i:03d}.bin").write_bytes(rng.randbytes(1_000_000))
        return source


def _alive(alive: Callable[[], bool]) -> bool:
    if not alive():
        raise RuntimeError("the uploader exited before it reached the parents' server")
    return True


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


# -- the report ------------------------------------------------------------------------------


def targets(results: dict[str, Any], line_kbit: int) -> list[tuple[str, bool | None, str]]:
    """Each of the issue's targets: what, met (``None``: not measured), the figures."""
    idle = results["idle"]["probe"]["p95_ms"]
    out: list[tuple[str, bool | None, str]] = []
    if fixed := results.get("fixed 800kbps"):
        p95, of_cap = fixed["probe"]["p95_ms"], fixed["parents_bytes_per_second"] / 100_000
        out.append(("fixed: p95 <= 1.5 x idle", p95 <= 1.5 * idle,
                    f"{p95} ms vs {idle} ms idle ({p95 / idle:.2f} x)"))
        out.append(("fixed: 0.95-1.02 of the 800 kbps cap", 0.95 <= of_cap <= 1.02,
                    f"{of_cap:.3f} of the cap"))
    if auto := results.get("auto"):
        p95 = auto["probe"]["p95_ms"]
        out.append(("auto: p95 <= idle + 25 ms", p95 <= idle + TARGET_MS,
                    f"{p95} ms vs {idle} ms idle (+{p95 - idle:.1f} ms)"))
        if plain := results.get("tahoe backup"):
            ratio = auto["parents_bytes_per_second"] / plain["parents_bytes_per_second"]
            out.append(("auto: >= 0.90 of the ungoverned rate", ratio >= 0.90,
                        f"{ratio:.3f} ({auto['parents_bytes_per_second']} vs "
                        f"{plain['parents_bytes_per_second']} B/s)"))
    if halved := results.get("auto, line halved"):
        recovery = halved["recovery_seconds"]
        out.append(("halved: p95 back under idle + 25 ms within 5 s",
                    recovery is not None and recovery <= 5.0,
                    f"{recovery} s" if recovery is not None else
                    f"not within {halved['seconds']} s"))
    if competing := results.get("auto + competing flow"):
        share = competing["competing_share_of_line"]
        out.append(("competing flow gets >= 0.6 of the line", share >= 0.6,
                    f"{share:.3f} of {line_kbit} kbit/s"))
    return out


def table(results: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = ["| scenario | probe p50 / p95 / max (ms) | ping p50 / p95 (ms) | parents kB/s "
            "(of line) | modem backlog mean / max (KB) | other |",
            "|---|---|---|---|---|---|"]
    for name, r in results.items():
        if not isinstance(r, dict) or "probe" not in r:
            continue
        p, g = r["probe"], r["ping"] or {}
        other = []
        if "recovery_seconds" in r:
            other.append(f"recovered in {r['recovery_seconds']} s" if r["recovery_seconds"]
                         is not None else "never recovered")
        if "competing_share_of_line" in r:
            other.append(f"competing flow {r['competing_share_of_line']:.2f} of line")
        rows.append(
            f"| {name} | {ms(p['p50_ms'])} / {ms(p['p95_ms'])} / {ms(p['max_ms'])} | "
            f"{ms(g.get('p50_ms'))} / {ms(g.get('p95_ms'))} | "
            f"{r['parents_bytes_per_second'] / 1000:.1f} ({r['parents_share_of_line']:.2f}) | "
            f"{ms(r['backlog_mean_kb'])} / {ms(r['backlog_max_kb'])} | {'; '.join(other)} |")
    return "\n".join(rows)


def unavailable() -> str | None:
    """Why this machine cannot run the lab, or ``None``."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, tc)"
    if missing := [p for p in PROGRAMS if not os.access(p, os.X_OK)]:
        return f"needs {', '.join(missing)} (apt-get install {' '.join(PACKAGES)})"
    return None


class BudgetExceeded(Exception):
    """The sitting took longer than ``--budget``."""


def _raise(error: BaseException) -> Callable[..., None]:
    def handler(*_: Any) -> None:
        raise error
    return handler


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="seconds each scenario "
                        "is measured")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds of upload before measuring (ungoverned, fixed)")
    parser.add_argument("--auto-settle", type=float, default=45.0,
                        help="seconds of upload before measuring auto (its ramp)")
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument("--halved-seconds", type=float, default=30.0)
    parser.add_argument("--slower", type=int, default=2,
                        help="the line's rate is divided by this for --halved-seconds")
    parser.add_argument("--line-kbit", type=int, default=1000)
    parser.add_argument("--buffer-kb", type=int, default=256)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="each way, to the parents")
    parser.add_argument("--tree-mb", type=int, default=30)
    parser.add_argument("--auto-tree-mb", type=int, default=80)
    parser.add_argument("--budget", type=float, default=1500.0,
                        help="seconds the whole sitting may take")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--only", default="plain,fixed,auto",
                        help="scenarios after idle, from plain,fixed,auto (auto includes the "
                             "halved line and the competing flow)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--blast", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.only = {name.strip() for name in args.only.split(",") if name.strip()}
    if unknown := args.only - {"plain", "fixed", "auto"}:
        parser.error(f"--only: unknown scenarios {sorted(unknown)}; expected plain, fixed, auto")
    if args.serve:
        serve(args.serve)
        return 0
    if args.blast:
        blast(args.blast[0], int(args.blast[1]))
        return 0
    if (reason := unavailable()) is not None:
        print(f"bench_dsl: {reason}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise(KeyboardInterrupt()))
    signal.signal(signal.SIGALRM, _raise(BudgetExceeded(f"over {args.budget:.0f} s")))
    signal.alarm(int(args.budget))
    load = os.getloadavg()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="bench-dsl-lab-"))
    lab = Lab("tgdsl", [Site("parents", hosts=2, delay_ms=args.delay_ms,
                             line_kbit=args.line_kbit, buffer_kb=args.buffer_kb),
                        Site("grid")])
    try:
        with lab, lab.entered(lab.client):
            results = Sitting(lab, root, args).run()
    finally:
        signal.alarm(0)
        if args.keep:
            print(f"bench_dsl: work directory kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    results["run"] = {"seconds": round(time.monotonic() - started),
                      "load_average_before": [round(x, 2) for x in load],
                      "line_kbit": args.line_kbit, "buffer_kb": args.buffer_kb,
                      "delay_ms_each_way": args.delay_ms, "cpus": os.cpu_count()}
    print(table(results))
    print()
    for what, met, figures in targets(results, args.line_kbit):
        print(f"{'MET ' if met else 'MISS'} {what}: {figures}")
    print()
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
