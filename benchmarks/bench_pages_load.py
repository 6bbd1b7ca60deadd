"""Benchmark: 100 clients on the pages and /metrics during a capped upload; the cap holds.

A governed node (``tahoe-governor run``, a process of its own) backs up a tree
to a fresh local grid (introducer and three storage servers on 127.0.0.1),
one server capped at 800 kbit/s. Once the run uploads, ``--clients`` client
threads in a separate process fetch ``/governor``, ``/governor?t=json``, the
private page and ``/metrics`` in turn for ``--seconds`` (bounded in time and
count, loopback only). Every response is checked (status 200 and what the
page must hold). Meanwhile the bytes the capped server's own kernel received
(``ss``, iproute2) over the window give the rate it got, as a ratio to its
cap (issue 14's target: 0.97-1.02). Prints JSON: requests, failures, p50 and
p99 response times per page, the cap ratio, and the connections the kernel
refused for a full listen queue meanwhile (``TcpExt ListenOverflows``, all of
the machine's: each costs its client a 1 s SYN retransmission, which is what a
p99 near 1 s is). The clients open a connection per request, the harshest
case; ``--web-backlog`` sets the node's listen queue (``web.port``'s
``backlog=``, Twisted's default 50 otherwise).

    python benchmarks/bench_pages_load.py [--clients 100] [--seconds 30] [--web-backlog N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' harness

from tests.node.crash_harness import JOB, make_tree, spawn_node, stop_node, uploading  # noqa: E402
from tests.socket_counters import bytes_received_on_port  # noqa: E402

from tahoe_governor.demo.local_grid import (  # noqa: E402
    STARTUP_BUDGET,
    LocalGrid,
    poll,
    set_tahoe_cfg,
)

CAP_BYTES_PER_SECOND = 100_000  # 800kbps
MUST_HOLD = {
    "public": "<html",
    "public_json": '"jobs"',
    "private": "<html",
    "metrics": "tahoe_governor_peer_bytes_total",
}


def clients(urls: dict[str, str], count: int, seconds: float) -> dict[str, object]:
    """``count`` threads fetching every URL in turn for ``seconds``; timings and failures."""
    timings: dict[str, list[float]] = {name: [] for name in urls}
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        names = list(urls)
        i = offset
        while time.monotonic() < deadline:
            name = names[i % len(names)]
            i += 1
            started = time.monotonic()
            try:
                with urllib.request.urlopen(urls[name], timeout=30) as response:  # loopback
                    body = response.read().decode("utf-8", "replace")
                    ok = response.status == 200 and MUST_HOLD[name] in body
            except (OSError, urllib.error.URLError) as e:
                ok, body = False, repr(e)
            took = time.monotonic() - started
            with lock:
                timings[name].append(took)
                if not ok:
                    failures.append(f"{name}: {body[:120]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "requests": {name: len(t) for name, t in timings.items()},
        "p50_ms": {name: round(float(np.percentile(t, 50)) * 1000, 1)
                   for name, t in timings.items() if t},
        "p99_ms": {name: round(float(np.percentile(t, 99)) * 1000, 1)
                   for name, t in timings.items() if t},
        "failures": len(failures),
        "first_failures": failures[:5],
    }


def listen_overflows() -> int:
    """Connections the kernel dropped for a full listen queue, since boot (all sockets)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--web-backlog", type=int, default=None,
                        help="the node's web listen queue (default: Twisted's 50)")
    parser.add_argument("--client-process", metavar="URLS_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.clients <= 200 or not 0 < args.seconds <= 120:
        parser.error("at most 200 clients for at most 120 s")
    if args.client_process:
        print(json.dumps(clients(json.loads(args.client_process), args.clients, args.seconds)))
        return 0
    root = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    grid = LocalGrid(root / "grid")
    node = None
    try:
        grid.start()
        source = root / "source"
        # Enough for the whole window at the cap: the capped server gets half of it (2-of-3).
        megabytes = int(CAP_BYTES_PER_SECOND * (args.seconds + 30) * 2 / 1e6) + 1
        make_tree(source, files=megabytes * 10, size=100_000, seed=41)
        capped = grid.servers[0]
        nodedir = grid.make_client_dir(root / "client", extra_cfg=(
            f"[backups]\n{JOB}.source = {source}\n{JOB}.target = backup:photos\n"
            f"{JOB}.frequency = 1week\n[bandwidth]\npeer.{capped.tubid}.up = 800kbps\n"))
        if args.web_backlog is not None:
            set_tahoe_cfg(nodedir, {("node", "web.port"): f"tcp:0:interface=127.0.0.1:"
                                                          f"backlog={args.web_backlog}"})
        (nodedir / "private" / "aliases").write_text(f"backup: {grid.create_directory()}\n")
        node = spawn_node(nodedir, root / "node.log")
        poll("the run to upload", lambda: uploading(nodedir), time.monotonic() + STARTUP_BUDGET)
        time.sleep(3.0)  # past the first burst, at the cap's pace
        base = (nodedir / "node.url").read_text().strip()
        token = (nodedir / "private" / "governor.token").read_text().strip()
        urls = {"public": base + "governor", "public_json": base + "governor?t=json",
                "private": f"{base}governor/{token}/", "metrics": base + "metrics"}
        overflows = listen_overflows()
        before, started = bytes_received_on_port(capped.tub_port), time.monotonic()
        load = subprocess.run(
            [sys.executable, __file__, "--clients", str(args.clients),
             "--seconds", str(args.seconds), "--client-process", json.dumps(urls)],
            check=True, capture_output=True, text=True, timeout=args.seconds + 120,
        )
        received = bytes_received_on_port(capped.tub_port) - before
        window = time.monotonic() - started
        result = json.loads(load.stdout)
        still_running = uploading(nodedir)
        result.update({
            "clients": args.clients,
            "seconds": round(window, 1),
            "capped_server_received_bytes": received,
            "cap_ratio": round(received / window / CAP_BYTES_PER_SECOND, 3),
            "upload_ran_through_the_window": still_running,
            "web_backlog": args.web_backlog,
            "listen_overflows": listen_overflows() - overflows,
        })
        print(json.dumps(result, indent=1))
    finally:
        if node is not None:
            stop_node(node)
        grid.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
