"""Benchmark: what the parents feel during a backup, on an emulated DSL line, per kind of cap.

In a private network namespace (``unshare --net``, as root), a local grid with
one storage server, ``parents``, behind an emulated modem (Linux ``tc tbf``:
``--line-kbit`` kbit/s, a ``--buffer-kb`` KB queue) and an echo server behind
the same modem standing for the parents' interactive traffic
(``tests/node/dsl_line.py``). A governed node backs up a fresh tree three
times: with no cap for the parents, with a fixed cap below the line, and with
``peer.<tubid>.up = auto``. Prints JSON: the echo round trip idle and during
each backup (median, 95th percentile, max), and the rate the parents' server
received against the line's.

With ``--receiver`` the parents protect their own line instead: an uncapped
upload (CUBIC, as most uploaders) to the parents' node, first a plain storage
server, then ``tahoe-governor run`` with ``limit.down = 800kbps``; the JSON
adds what the parents' server read, the modem's backlog and both ends' sockets
(``ss -tmi``), and a table of them goes to stderr.

    sudo python benchmarks/bench_dsl_line.py [--receiver] [--seconds 60] [--line-kbit 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' harness

from tests.node.dsl_line import (  # noqa: E402
    Scenario,
    emulation_unavailable,
    inside_namespace,
    run_scenarios,
)

SCENARIOS: dict[str, str | Scenario] = {
    "no cap": "",
    "fixed cap 800kbps": "peer.{tubid}.up = 800kbps",
    "auto": "peer.{tubid}.up = auto",
}
RECEIVER_SCENARIOS: dict[str, str | Scenario] = {
    "parents ungoverned": Scenario(),
    "parents limit.down 800kbps": Scenario(parents="limit.down = 800kbps"),
    "parents limit.down auto": Scenario(parents="limit.down = auto"),
}


def receiver_table(results: dict[str, Any]) -> str:
    """The echo's round trips and what the parents' server read, per scenario, as a table."""
    cap = 100_000  # limit.down = 800kbps, in bytes/s
    rows = [f"{'scenario':28} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'read/cap':>8}"
            f" {'modem backlog mean/max KB':>26}"]
    for name, row in results.items():
        if not isinstance(row, dict) or "p95_ms" not in row:
            continue
        read = row.get("parents_read_bytes_per_second")
        backlog = row.get("line", {}).get("modem_backlog")
        rows.append(f"{name:28} {row['p50_ms']:7} {row['p95_ms']:7} {row['max_ms']:7} "
                    + (f"{read / cap:8.2f}" if read is not None else f"{'':8}")
                    + (f" {backlog['mean'] / 1000:12.1f} / {backlog['max'] / 1000:.1f}"
                       if backlog else ""))
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--settle", type=float, default=45.0,
                        help="seconds of upload before measuring (an auto cap's ramp)")
    parser.add_argument("--line-kbit", type=int, default=1000)
    parser.add_argument("--buffer-kb", type=int, default=256)
    parser.add_argument("--tree-mb", type=int, default=40)
    parser.add_argument("--receiver", action="store_true",
                        help="the parents protect their own line: an uncapped upload to the "
                             "parents' node, plain or governed by limit.down (CUBIC senders)")
    parser.add_argument("--only", choices=[*SCENARIOS, *RECEIVER_SCENARIOS], action="append",
                        help="run only this scenario (repeatable)")
    args = parser.parse_args()
    if not inside_namespace():
        if (reason := emulation_unavailable()) is not None:
            print(f"bench_dsl_line: {reason} (run as root, on a kernel with sch_htb)",
                  file=sys.stderr)
            return 2
        inner = shlex.join([sys.executable, __file__, *sys.argv[1:]])
        done = subprocess.run(
            ["unshare", "--net", "sh", "-c", f"ip link set lo up && exec {inner}"],
            env={**os.environ, "TAHOE_GOVERNOR_DSL_NAMESPACE": "1"})
        return done.returncode
    chosen = RECEIVER_SCENARIOS if args.receiver else SCENARIOS
    scenarios = {name: chosen[name] for name in (args.only or chosen)}
    with tempfile.TemporaryDirectory(prefix="bench-dsl-") as root:
        results = run_scenarios(Path(root), scenarios, args.seconds, args.line_kbit,
                                args.buffer_kb, args.tree_mb, args.settle,
                                congestion_control="cubic" if args.receiver else None)
    print(json.dumps(results, indent=1))
    if args.receiver:
        print(receiver_table(results), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
