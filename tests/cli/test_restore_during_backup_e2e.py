"""``tahoe-governor restore`` while the same node runs a backup: both finish, both correct.

A governed node process of its own on the shared local grid makes a first
archive; then a second run of the job starts, held slow by a job upload cap
(``tahoe-governor limit job b1 up``), and the first archive is restored
through that node while the run uploads. The restore must give the first
archive's tree back byte for byte with its modification times, the job's
cap must hold meanwhile (the node's upload wire bytes, from its
``/metrics``), and once the cap is cleared the run must complete with an
archive that restores to the changed tree.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tahoe_governor.demo.local_grid import STARTUP_BUDGET, LocalGrid, poll
from tests.cli.test_restore_e2e import (
    archive_names,
    get_json,
    governor,
    last_success,
    metric_total,
    node_after_first_run,
    tree_state,
)
from tests.node.crash_harness import make_tree, servers_connected, stop_node, uploading

RUN_BUDGET = 60.0
JOB_CAP = 100_000
"""The second run's upload cap (wire bytes/s): its new bytes need about 20 s under it."""
BURST_AND_REQUESTS = 64 * 1024
"""What may pass beyond the cap's pace: a burst, and the restore's own small requests."""


def job_state(nodedir: Path) -> str:
    """The job's state as the running node says (``running`` during a run)."""
    url = (nodedir / "node.url").read_text().strip()
    jobs = get_json(url + "governor?t=json")["jobs"]
    return str(next(job["state"] for job in jobs if job["name"] == "b1"))


@pytest.mark.e2e
def test_a_restore_while_a_backup_runs(local_grid: LocalGrid, tmp_path: Path) -> None:
    """With a run of the job uploading under a cap, a restore of the first archive through
    the same node is byte-identical with mtimes, starts and ends while the run still
    uploads, leaves the job's cap held; the run then completes and its archive restores
    to the changed tree."""
    source = tmp_path / "source"
    make_tree(source, 12, 50_000, seed=31)
    nodedir, node = node_after_first_run(local_grid, tmp_path, source)
    try:
        poll("the node to connect to every server",
             lambda: servers_connected(nodedir) == len(local_grid.servers),
             time.monotonic() + STARTUP_BUDGET)
        node_url = (nodedir / "node.url").read_text().strip()
        (first_archive,) = archive_names(node_url, nodedir)
        first_tree = tmp_path / "first"
        shutil.copytree(source, first_tree)  # copy2: mtimes kept
        for i in range(4):
            (source / "d0" / f"big{i}.bin").write_bytes(os.urandom(400_000))
        (source / "d1" / "f1.bin").unlink()
        poll("the first archive's second to pass",
             lambda: time.strftime("%Y-%m-%d_%H:%M:%SZ", time.gmtime()) > first_archive,
             time.monotonic() + 5)
        first_success = last_success(nodedir)
        nd = str(nodedir)
        capped = governor("limit", nd, "job", "b1", "up", f"{JOB_CAP}B/s", timeout=30)
        assert capped.returncode == 0, capped.stderr
        started = governor("start", nd, "b1", "--force", timeout=30)
        assert started.returncode == 0, started.stderr
        poll("the second run to upload", lambda: uploading(nodedir),
             time.monotonic() + RUN_BUDGET)

        sent_before, began = metric_total(node_url, "up"), time.monotonic()
        restored = governor("restore", nd, "b1", str(tmp_path / "restored"),
                            "--archive", first_archive)
        seconds = time.monotonic() - began
        sent = metric_total(node_url, "up") - sent_before
        state_after = job_state(nodedir)
        assert restored.returncode == 0, restored.stderr
        assert tree_state(tmp_path / "restored") == tree_state(first_tree)
        assert state_after == "running", "the run ended before the restore: no overlap"
        assert 0 < sent <= JOB_CAP * seconds + BURST_AND_REQUESTS, (sent, seconds)

        cleared = governor("limit", nd, "job", "b1", "up", "clear", timeout=30)
        assert cleared.returncode == 0, cleared.stderr
        poll("the second run", lambda: last_success(nodedir) != first_success,
             time.monotonic() + RUN_BUDGET)
        latest = governor("restore", nd, "b1", str(tmp_path / "latest"))
        assert latest.returncode == 0, latest.stderr
        assert tree_state(tmp_path / "latest") == tree_state(source)
    finally:
        stop_node(node)
