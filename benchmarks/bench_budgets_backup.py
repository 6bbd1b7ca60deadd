"""Benchmark: the CPU budget on a real backup (a governed node uploading to a local grid).

For each budget (10 %, 25 %, 50 % of one core) a fresh governed client node,
in this process, backs up a tree of random files to the local grid (an
introducer and three storage servers as ``tahoe run`` processes on
127.0.0.1) with ``b1.cpu = N%``; once the run is under way this process's
CPU share is measured over a fixed window with psutil and reported as a
ratio to the budget (target 0.9-1.05). The storage servers' CPU is theirs,
not the node's, and is not counted. The baseline, in the same run, is the
same backup with no budget: the share of a core the unbudgeted backup takes.

    python benchmarks/bench_budgets_backup.py [--seconds 12] [--megabytes 160]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
from twisted.internet import defer, task

from tahoe_governor.app import start_governor
from tahoe_governor.demo.local_grid import LocalGrid

WARM_UP_SECONDS = 3.0


def make_tree(root: Path, megabytes: int) -> None:
    """``megabytes`` of random data in 1 MB files (random: nothing dedups)."""
    root.mkdir(parents=True)
    for i in range(megabytes):
        (root / f"f{i:04d}.bin").write_bytes(os.urandom(1_000_000))


async def measure(reactor: Any, grid: LocalGrid, base: Path, name: str, budget: str | None,
                  seconds: float, megabytes: int) -> float:
    """One governed node backing up its own tree; its CPU share over ``seconds``."""
    source = base / f"tree-{name}"
    make_tree(source, megabytes)
    cpu_line = f"b1.cpu = {budget}\n" if budget else ""
    nodedir = grid.make_client_dir(
        base / f"client-{name}",
        extra_cfg=(f"[backups]\nb1.source = {source}\nb1.target = bench:b\n"
                   f"b1.frequency = 1week\n{cpu_line}"),
    )
    (nodedir / "private" / "aliases").write_text(f"bench: {grid.create_directory()}\n")
    governor = await start_governor(reactor, str(nodedir), ZoneInfo("UTC"))
    try:
        runner = governor.scheduler.runners["b1"]
        while runner.walker is None:
            await task.deferLater(reactor, 0.1, lambda: None)
        await task.deferLater(reactor, WARM_UP_SECONDS, lambda: None)
        process = psutil.Process()
        before, started = process.cpu_times(), reactor.seconds()
        # The window ends after ``seconds``, or earlier when the run ends.
        while reactor.seconds() - started < seconds and runner.walker is not None:
            await task.deferLater(reactor, 0.25, lambda: None)
        after, ended = process.cpu_times(), reactor.seconds()
        if ended - started < 2.0:
            raise RuntimeError(f"the run ended too soon to measure: give more --megabytes ({name})")
        used = (after.user + after.system) - (before.user + before.system)
        return used / (ended - started)
    finally:
        await governor.stop()
        shutil.rmtree(source, ignore_errors=True)


async def main(reactor: Any, seconds: float, megabytes: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="bench-budgets-backup-"))
    grid = LocalGrid(base / "grid")
    grid.start()
    try:
        baseline = await measure(reactor, grid, base, "none", None, seconds, megabytes)
        figures = {}
        for percent in (10, 25, 50):
            share = await measure(reactor, grid, base, f"{percent}", f"{percent}%", seconds,
                                  megabytes)
            figures[f"{percent}%"] = {
                "cpu_share": round(share, 3),
                "share_over_budget": round(share / (percent / 100), 3),
            }
        print(json.dumps({
            "window_seconds": seconds,
            "tree_megabytes": megabytes,
            "baseline_unbudgeted_cpu_share": round(baseline, 3),
            "budgets": figures,
            "target_share_over_budget": "0.9-1.05",
        }, indent=2))
    finally:
        grid.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--megabytes", type=int, default=160)
    args = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, args.seconds, args.megabytes)))
