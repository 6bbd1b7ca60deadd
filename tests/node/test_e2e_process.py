"""End to end as processes: the pidfile keeps a second run out, SIGTERM stops the node cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.grid import STARTUP_BUDGET, LocalGrid, poll
from tests.signals import restore_default_sigint

#: Seconds a governed node may take to stop (its stop hooks may take 30 s each).
STOP_BUDGET = 45.0

REPO = Path(__file__).resolve().parents[2]


def spawn(*argv: str, log: Path) -> subprocess.Popen[bytes]:
    """Start ``python argv...`` from the repository root, output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, *argv], cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            preexec_fn=restore_default_sigint,
        )


@pytest.mark.e2e
def test_pidfile_and_sigterm(local_grid: LocalGrid, tmp_path: Path) -> None:
    """While a governed node runs, neither ``tahoe run`` nor a second governed run can start
    on its directory; SIGTERM then runs the stop hooks, exits 0 and removes the pidfile."""
    nodedir = local_grid.make_client_dir(tmp_path / "client")
    report = tmp_path / "report"
    report.mkdir()
    harness = ("-m", "tests.node.governed_node_process", str(nodedir), str(report))
    node = spawn(*harness, log=tmp_path / "node.log")
    try:
        deadline = time.monotonic() + STARTUP_BUDGET
        poll("the governed node to start", (report / "started").exists, deadline)
        pidfile = nodedir / "running.process"
        assert pidfile.read_text().split()[0] == str(node.pid)

        tahoe_run = spawn(
            "-m", "allmydata.scripts.runner", "run", str(nodedir), log=tmp_path / "tahoe-run.log"
        )
        second = spawn(*harness, log=tmp_path / "second.log")
        assert tahoe_run.wait(STARTUP_BUDGET) == 1
        assert "already running" in (tmp_path / "tahoe-run.log").read_text()
        assert second.wait(STARTUP_BUDGET) == 1
        assert f"running as PID {node.pid}" in (tmp_path / "second.log").read_text()

        # Let the node meet the grid so the stop hook has connections to see.
        poll(
            "the node to list 3 storage servers",
            lambda: (nodedir / "node.url").exists() and _servers_connected(nodedir) == 3,
            deadline,
        )
        node.send_signal(signal.SIGTERM)
        assert node.wait(STARTUP_BUDGET) == 0, (tmp_path / "node.log").read_text()[-3000:]
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    stopped = json.loads((report / "stopped.json").read_text())
    assert stopped == {"tubs_shaped": 4, "servers_connected": 3}
    assert not pidfile.exists()
    assert "stop hook 'report' done" in (tmp_path / "node.log").read_text()


def _servers_connected(nodedir: Path) -> int:
    """How many storage servers the running node's web API says it is connected to."""
    import urllib.request

    url = (nodedir / "node.url").read_text().strip() + "?t=json"
    with urllib.request.urlopen(url, timeout=2) as response:  # loopback only
        servers = json.load(response)["servers"]
    return sum(1 for s in servers if s["connection_status"].startswith("Connected"))


@pytest.mark.e2e
def test_tahoe_governor_run_until_sigint(local_grid: LocalGrid, tmp_path: Path) -> None:
    """The command itself, with the real shaper: the node meets all 3 servers, SIGINT exits 0."""
    import tahoe_governor.throttle as throttle

    if not hasattr(throttle, "Shaper"):
        pytest.skip("tahoe_governor.throttle.Shaper is not on this branch yet")
    nodedir = local_grid.make_client_dir(tmp_path / "client")
    node = spawn("-m", "tahoe_governor.cli.main", "run", str(nodedir), log=tmp_path / "node.log")
    try:
        poll(
            "the node to list 3 storage servers",
            lambda: (nodedir / "node.url").exists() and _servers_connected(nodedir) == 3,
            time.monotonic() + STARTUP_BUDGET,
        )
        node.send_signal(signal.SIGINT)
        try:
            status = node.wait(STOP_BUDGET)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                "no exit after SIGINT:\n" + (tmp_path / "node.log").read_text()[-3000:]
            ) from None
        assert status == 0, (tmp_path / "node.log").read_text()[-3000:]
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    assert not (nodedir / "running.process").exists()
