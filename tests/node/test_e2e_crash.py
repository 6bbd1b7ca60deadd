"""End to end: a governed node SIGKILLed mid-run, three times, loses nothing.

The node runs as ``tahoe-governor run`` in a process of its own; each kill
comes at a seeded random moment while the run uploads. Every restart must
succeed over the pidfile the kill left, the run must complete exactly once,
``Latest`` must come back byte-identical, and both databases must be sound
(see ``tests/node/crash_harness.py``; ``benchmarks/bench_crash.py`` runs the
long form with 20 kills).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.grid import LocalGrid
from tests.node.crash_harness import crash_and_recover


@pytest.mark.e2e
def test_three_sigkills_mid_run_lose_nothing(local_grid: LocalGrid, tmp_path: Path) -> None:
    """Three SIGKILLs while uploading, then a restart: one completed run, no share stored
    twice, Latest equal to the source, both databases intact."""
    report = crash_and_recover(local_grid, tmp_path, kills=3, seed=1018)
    print(report)
    assert report.outcomes.count("completed") == 1
    assert report.outcomes[-1] == "completed"
    assert report.kills == 3, "the run completed before the third kill: make the tree larger"
    # Every kill before the completion left an interrupted run; the last kill may land in
    # the moment after the run completed (it was uploading when the wait began), which
    # must lose nothing either.
    assert set(report.outcomes[:-1]) == {"interrupted"}
    assert len(report.outcomes) - 1 >= report.kills - 1
    assert report.restored_equal
    assert report.integrity == {"governor.sqlite": "ok", "backupdb.sqlite": "ok"}
    assert report.shares_stored_twice == 0, "a share finished before a kill was placed again"
