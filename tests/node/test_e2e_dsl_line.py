"""End to end: caps keep an emulated DSL line responsive while using it.

Runs ``benchmarks/bench_dsl_line.py`` for the ``auto`` scenario (the uploader
yields by itself) and for the parents' own node governed by ``limit.down``
(the receiver holds an uncapped uploader back): in a private
network namespace, the parents' storage server behind an emulated 1 Mbit/s
modem with a 256 KB buffer, and the parents' interactive traffic (an echo every
100 ms) through the same modem (``tests/node/dsl_line.py``). Needs root and
``unshare``, ``ip`` and ``tc`` (Debian's util-linux and iproute2), which CI has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.node.crash_harness import REPO
from tests.node.dsl_line import emulation_unavailable
from tests.socket_counters import SS
from tests.system_programs import require_programs


def _run_bench(*args: str) -> dict:
    """``bench_dsl_line.py`` with ``args``: its JSON (skips, or fails in CI, when the
    machine cannot emulate the line)."""
    require_programs(("/usr/bin/unshare", "/usr/sbin/ip", "/usr/sbin/tc", SS),
                     ("util-linux", "iproute2"))
    reason = ("needs root for a private network namespace with traffic control"
              if os.geteuid() != 0 else emulation_unavailable())
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to emulate the line: {reason}")
        pytest.skip(reason)
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_dsl_line.py"), *args],
        cwd=REPO, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    results: dict = json.loads(done.stdout)
    print(results)
    return results


@pytest.mark.e2e
def test_an_automatic_cap_uses_the_line_and_keeps_it_responsive() -> None:
    """With ``peer.<parents>.up = auto``: the echo's 95th percentile round trip stays under
    150 ms (an uncapped backup fills the modem: about 2 s), and the parents' server
    receives at least 60 % of the line's rate."""
    results = _run_bench("--only", "auto", "--seconds", "30", "--settle", "45",
                         "--tree-mb", "30")
    auto, line = results["auto"], results["line_bytes_per_second"]
    assert auto["p95_ms"] < 150, auto
    assert auto["parents_bytes_per_second"] >= 0.6 * line, auto


@pytest.mark.e2e
def test_the_parents_node_holds_an_uncapped_upload_back_with_its_window() -> None:
    """The parents' own node, governed by ``limit.down = 800kbps``, receives an uncapped
    upload: the echo's 95th percentile round trip stays under 120 ms (pausing reads
    alone left it at 1.5 s, the modem's queue full) and the parents' server reads at
    least 85 % of the cap."""
    scenario = "parents limit.down 800kbps"
    results = _run_bench("--receiver", "--only", scenario, "--seconds", "15",
                         "--settle", "5", "--tree-mb", "12")
    governed = results[scenario]
    assert governed["p95_ms"] < 120, governed
    assert governed["parents_read_bytes_per_second"] >= 0.85 * 100_000, governed
