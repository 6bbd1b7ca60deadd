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

    sudo python benchmarks/bench_dsl_line.py [--seconds 60] [--line-kbit 1000] [--buffer-kb 256]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' harness

from tests.node.dsl_line import (  # noqa: E402
    emulation_unavailable,
    inside_namespace,
    run_scenarios,
)

SCENARIOS = {
    "no cap": "",
    "fixed cap 800kbps": "peer.{tubid}.up = 800kbps",
    "auto": "peer.{tubid}.up = auto",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--settle", type=float, default=45.0,
                        help="seconds of upload before measuring (an auto cap's ramp)")
    parser.add_argument("--line-kbit", type=int, default=1000)
    parser.add_argument("--buffer-kb", type=int, default=256)
    parser.add_argument("--tree-mb", type=int, default=40)
    parser.add_argument("--only", choices=list(SCENARIOS), action="append",
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
    scenarios = {name: SCENARIOS[name] for name in (args.only or SCENARIOS)}
    with tempfile.TemporaryDirectory(prefix="bench-dsl-") as root:
        results = run_scenarios(Path(root), scenarios, args.seconds, args.line_kbit,
                                args.buffer_kb, args.tree_mb, args.settle)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
