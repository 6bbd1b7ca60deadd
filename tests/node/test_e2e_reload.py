"""End to end: a running ``tahoe-governor run`` reloads its tahoe.cfg on SIGHUP and on command.

The node runs in a process of its own on the shared local grid; the test edits
its tahoe.cfg as a user would, and reads the effect from the node's public JSON.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tahoe_governor.demo.local_grid import STARTUP_BUDGET, poll
from tests.grid import LocalGrid
from tests.node.crash_harness import REPO, _get_json, spawn_node, stop_node


def _status(nodedir: Path) -> dict[str, Any] | None:
    try:
        url = (nodedir / "node.url").read_text().strip()
        status: dict[str, Any] = _get_json(url + "governor?t=json")
        return status
    except (OSError, ValueError):
        return None


def _node_limit_up(nodedir: Path) -> float | None:
    status = _status(nodedir)
    return None if status is None else status["link"]["node_limit_up"]


@pytest.mark.e2e
def test_sighup_and_reload_change_the_running_node(local_grid: LocalGrid, tmp_path: Path) -> None:
    """SIGHUP applies a new node cap; an invalid file is refused by ``reload`` with check's
    words and changes nothing; a file without the job removes it from the running node."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.txt").write_text("a")
    backups = ("[backups]\n"
               f"b1.source = {source}\n"
               "b1.target = backup:photos\n"
               "b1.frequency = 1week\n")
    nodedir = local_grid.make_client_dir(
        tmp_path / "client", extra_cfg=backups + "[bandwidth]\nlimit.up = 1MB/s\n")
    (nodedir / "private" / "aliases").write_text(f"backup: {local_grid.create_directory()}\n")
    cfg = nodedir / "tahoe.cfg"
    node = spawn_node(nodedir, tmp_path / "node.log")
    try:
        poll("the node's governor page", lambda: _node_limit_up(nodedir) == 1_000_000,
             time.monotonic() + STARTUP_BUDGET)

        cfg.write_text(cfg.read_text().replace("limit.up = 1MB/s", "limit.up = 500kB/s"))
        os.kill(node.pid, signal.SIGHUP)
        poll("the new cap after SIGHUP", lambda: _node_limit_up(nodedir) == 500_000,
             time.monotonic() + 10)

        def reload() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "tahoe_governor.cli.main", "reload", str(nodedir)],
                cwd=REPO, capture_output=True, text=True, timeout=60)

        cfg.write_text(cfg.read_text().replace("limit.up = 500kB/s", "limit.up = fast"))
        refused = reload()
        check = subprocess.run(
            [sys.executable, "-m", "tahoe_governor.cli.main", "check", str(nodedir)],
            cwd=REPO, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1, refused.stdout
        assert check.returncode == 1
        assert check.stderr.strip() + "; nothing was changed" in refused.stderr
        assert _node_limit_up(nodedir) == 500_000

        cfg.write_text(cfg.read_text().replace(backups, "").replace("fast", "500kB/s"))
        removed = reload()
        assert removed.returncode == 0, removed.stderr
        assert "job b1 removed" in removed.stdout
        status = _status(nodedir)
        assert status is not None and status["jobs"] == []
    finally:
        stop_node(node)
    assert node.returncode == 0
    assert "Reloaded tahoe.cfg: [bandwidth] changed." in (tmp_path / "node.log").read_text()
