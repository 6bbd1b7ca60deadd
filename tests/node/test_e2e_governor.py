"""End to end: a governed node backs up a tree on the real local grid, capped towards one peer.

The whole product path in one process: the governed client node (shaped
Tubs), the policy from its tahoe.cfg, the backup scheduler and walker, the
state database and the backupdb. The storage servers are real ``tahoe run``
processes on loopback.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import treq
from foolscap.eventual import flushEventualQueue
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from tahoe_governor.app import govern
from tahoe_governor.node import create_governed_client, read_governed_config
from tahoe_governor.throttle import Shaper
from tests.grid import LocalGrid
from tests.node.recording_shaper import temp_dir

CAP_BYTES_PER_SECOND = 100_000  # "800kbps" below
TIMEOUT = 120


@pytest.fixture(scope="class")
def grid_on_class(request: pytest.FixtureRequest, local_grid: LocalGrid) -> None:
    """Give a trial TestCase class the session's grid as ``self.grid``."""
    request.cls.grid = local_grid


def make_tree(root: Path, files: int, size: int) -> None:
    """``files`` files of ``size`` random bytes in a few directories."""
    for i in range(files):
        folder = root / f"d{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.bin").write_bytes(os.urandom(size))


async def get_body(url: str) -> bytes:
    """GET ``url`` on a connection that is not kept (the reactor stays clean)."""
    response = await treq.get(url, persistent=False)
    body: bytes = await treq.content(response)
    return body


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` on the reactor every 0.1 s until true, or fail after ``timeout``."""
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await task.deferLater(reactor, 0.1, lambda: None)
        waited += 0.1


@pytest.mark.e2e
@pytest.mark.usefixtures("grid_on_class")
class GovernorOnGridTests(TestCase):
    """A scheduled job on the real grid: run, cap, reuse on the next run, records kept."""

    grid: LocalGrid
    timeout = TIMEOUT

    async def get(self, url: str) -> bytes:
        return await get_body(url)

    def test_backup_job_runs_capped_and_reuses(self) -> defer.Deferred[None]:
        """The job uploads the tree under the DSL peer's cap; a second run reuses every file."""
        return defer.ensureDeferred(self._backup_job_runs_capped_and_reuses())

    async def _backup_job_runs_capped_and_reuses(self) -> None:
        base = temp_dir(self)
        source = base / "source"
        make_tree(source, files=12, size=40_000)
        dsl = self.grid.servers[0]
        nodedir = self.grid.make_client_dir(
            base / "client",
            extra_cfg=(
                "[backups]\n"
                f"b1.source = {source}\n"
                "b1.target = backup:photos\n"
                "b1.frequency = 1week\n"
                "[bandwidth]\n"
                f"peer.{dsl.nickname}.up = 800kbps\n"
            ),
        )
        client = await create_governed_client(
            read_governed_config(str(nodedir)), Shaper(reactor), reactor
        )
        client.startService()
        try:
            connected = client.storage_broker.when_connected_enough(3)
            connected.addTimeout(30, reactor)
            await connected
            # The target alias: a fresh directory on the grid, as `tahoe create-alias` makes.
            root = await client.create_dirnode()
            (nodedir / "private" / "aliases").write_text(
                f"backup: {root.get_uri().decode()}\n"
            )
            governor = govern(reactor, client, ZoneInfo("UTC"))
            runner = governor.scheduler.runners["b1"]
            await wait_for(lambda: runner.lifecycle.state == "done", 90, "the first run")
            first = runner.last_result
            assert first is not None
            self.assertEqual(first.progress.files_uploaded, 12)
            self.assertEqual(governor.database.last_completed().keys(), {"b1"})

            status = governor.status()
            (peer,) = [p for p in status.peers if p.tubid == dsl.tubid]
            self.assertEqual(peer.nickname, dsl.nickname)
            self.assertEqual(peer.limit_up, CAP_BYTES_PER_SECOND)
            elapsed = first.progress.elapsed_seconds
            # At most the burst above rate x time reached the capped peer.
            self.assertLessEqual(
                peer.sent_bytes, CAP_BYTES_PER_SECOND * elapsed * 1.03 + 8192
            )
            self.assertGreater(peer.sent_bytes, 0)

            governor.run_now("b1")
            await wait_for(lambda: len(governor.database.runs("b1")) == 2
                           and runner.lifecycle.state == "done", 60, "the second run")
            second = runner.last_result
            assert second is not None
            self.assertEqual(second.progress.files_uploaded, 0)
            self.assertEqual(second.progress.files_reused, 12)
            job_status = governor.status().job("b1")
            self.assertEqual(job_status.files_total["uploaded"], 12)
            self.assertEqual(job_status.files_total["reused"], 12)
            self.assertIsNotNone(job_status.latest_snapshot_cap)

            # The pages and /metrics of the running node: public facts, no secrets.
            await client.getServiceNamed("webish")._started
            public = await self.get(governor.web_url + "governor?t=json")
            metrics = await self.get(governor.web_url + "metrics")
            private = await self.get(governor.private_url + "?t=json")
            secrets = [str(source).encode(), root.get_uri(),
                       job_status.latest_snapshot_cap.encode(), governor.token.encode()]
            for secret in secrets:
                self.assertNotIn(secret, public)
                self.assertNotIn(secret, metrics)
            self.assertIn(b'"state": "done"', public)
            self.assertIn(f'peer="{dsl.tubid}"'.encode(), metrics)
            self.assertIn(b"tahoe_governor_job_files_total", metrics)
            self.assertIn(job_status.latest_snapshot_cap.encode(), private)
        finally:
            await client.stopService()
            await flushEventualQueue()
        with sqlite3.connect(nodedir / "private" / "governor.sqlite") as db:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            outcomes = [r[0] for r in db.execute("SELECT outcome FROM runs ORDER BY id")]
        self.assertEqual(outcomes, ["completed", "completed"])
