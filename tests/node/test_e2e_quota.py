"""End to end: a tiny quota stops a real backup job on the real local grid, and
``tahoe-governor status`` says why.

The governed node runs in this process (shaped Tubs, policy, scheduler, walker,
state database, pages); the storage servers are the session's real ``tahoe run``
processes on loopback.
"""

from __future__ import annotations

import io

import pytest
from twisted.internet import defer, reactor, task
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tahoe_governor.cli.status import run_status
from tests.grid import LocalGrid
from tests.node.governed_grid import (  # noqa: F401 (grid_on_class is a fixture)
    grid_on_class,
    make_tree,
    start_governed_node,
    stop_node,
    wait_for,
)
from tests.node.recording_shaper import temp_dir


@pytest.mark.e2e
@pytest.mark.usefixtures("grid_on_class")
class QuotaOnGridTests(TestCase):
    """A job's quota on the real grid."""

    grid: LocalGrid
    timeout = 90

    def test_a_tiny_quota_stops_a_real_job_with_the_reason_in_status(self) -> defer.Deferred[None]:
        """100 kB/day of share data: the job (paced at 50 kB/s so the quota is reached
        mid-run) is suspended, sends nothing more, and ``status`` shows the reason."""
        return defer.ensureDeferred(self._tiny_quota())

    async def _tiny_quota(self) -> None:
        base = temp_dir(self)
        source = base / "source"
        make_tree(source, files=8, size=40_000)
        nodedir = self.grid.make_client_dir(base / "client", extra_cfg=(
            "[backups]\n"
            f"b1.source = {source}\n"
            "b1.target = backup:photos\n"
            "b1.frequency = 1week\n"
            "b1.bandwidth = 400kbps\n"
            "b1.quota = 100kB/day\n"))
        client, governor = await start_governed_node(nodedir)
        try:
            runner = governor.scheduler.runners["b1"]
            await wait_for(lambda: runner.lifecycle.state == "suspended", 60,
                           "the job held by its quota", lambda: runner.lifecycle.state)
            granted = runner.throttle.granted_wire_bytes
            self.assertGreaterEqual(granted, 100_000)
            await task.deferLater(reactor, 1.0, lambda: None)
            self.assertEqual(runner.throttle.granted_wire_bytes, granted)  # nothing more
            await client.getServiceNamed("webish")._started
            out, err = io.StringIO(), io.StringIO()
            code = await deferToThread(run_status, str(nodedir), out, err)
            self.assertEqual((code, err.getvalue()), (0, ""))
            report = out.getvalue()
            self.assertIn("b1: held: b1.quota = 100kB/day used up", report)
            quota_line = next(line for line in report.splitlines()
                              if line.startswith("b1.quota"))
            self.assertIn("(used up)", quota_line)
            self.assertIn("per day", quota_line)
        finally:
            await stop_node(client)
        self.assertEqual(
            [(key.directive, usage.used_bytes >= 100_000)
             for key, usage in governor.database.quota_usage().items()],
            [("b1.quota", True)])
