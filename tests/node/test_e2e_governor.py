"""End to end: a governed node backs up a tree on the real local grid.

The whole product path in one process: the governed client node (shaped
Tubs), the policy from its tahoe.cfg, the backup scheduler and walker, the
state database and the backupdb, the pages and /metrics. The storage servers
are real ``tahoe run`` processes on loopback.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from foolscap.ipb import DeadReferenceError
from twisted.internet import defer, reactor, task
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tahoe_governor.app import start_governor
from tests.grid import LocalGrid
from tests.node.governed_grid import (  # noqa: F401 (grid_on_class is a fixture)
    get_body,
    grid_on_class,
    integrity,
    make_tree,
    start_governed_node,
    stop_node,
    wait_for,
)
from tests.node.recording_shaper import temp_dir
from tests.socket_counters import SS, bytes_received_by_peer
from tests.system_programs import require_programs

CAP_BYTES_PER_SECOND = 100_000  # "800kbps" below

# A run cut short mid-way needs more files than a job keeps in flight (32 upload
# slots): with fewer, every file is in flight at once and they all finish
# together, so the run can be over before the cut.
MID_RUN_FILES = 48
MID_RUN_SIZE = 20_000


def job_config(source: Any, extra: str = "") -> str:
    return (
        "[backups]\n"
        f"b1.source = {source}\n"
        "b1.target = backup:photos\n"
        "b1.frequency = 1week\n"
        f"{extra}"
    )


def done_runs(governor: Any, job: str = "b1") -> list[str]:
    return [run.outcome for run in governor.database.runs(job)][::-1]


@pytest.mark.e2e
@pytest.mark.usefixtures("grid_on_class")
class GovernorOnGridTests(TestCase):
    """Scheduled jobs on the real grid: cap, reuse, retry after a server loss, restart."""

    grid: LocalGrid
    timeout = 150

    def capped_node_dir(self, files: int, size: int, capped: int) -> tuple[Any, Any]:
        """A client node dir whose job backs up a fresh tree of ``files`` files of
        ``size`` bytes, with storage server ``capped`` capped at 800 kbit/s up."""
        base = temp_dir(self)
        source = base / "source"
        make_tree(source, files=files, size=size)
        server = self.grid.servers[capped]
        nodedir = self.grid.make_client_dir(
            base / "client",
            extra_cfg=job_config(source, f"[bandwidth]\npeer.{server.nickname}.up = 800kbps\n"),
        )
        return source, nodedir

    def test_backup_job_runs_capped_and_reuses(self) -> defer.Deferred[None]:
        """The job uploads the tree under the DSL peer's cap; a second run reuses every file."""
        return defer.ensureDeferred(self._backup_job_runs_capped_and_reuses())

    async def _backup_job_runs_capped_and_reuses(self) -> None:
        source, nodedir = self.capped_node_dir(files=12, size=40_000, capped=0)
        dsl = self.grid.servers[0]
        client, governor = await start_governed_node(nodedir)
        try:
            runner = governor.scheduler.runners["b1"]
            await wait_for(lambda: done_runs(governor) == ["completed"], 90, "the first run")
            first = runner.last_result
            assert first is not None
            self.assertEqual(first.progress.files_uploaded, 12)
            self.assertEqual(governor.database.last_completed().keys(), {"b1"})

            status = governor.controls.status()
            (peer,) = [p for p in status.peers if p.tubid == dsl.tubid]
            self.assertEqual(peer.nickname, dsl.nickname)
            self.assertEqual(peer.limit_up, CAP_BYTES_PER_SECOND)
            elapsed = first.progress.elapsed_seconds
            # At most one burst above rate x time reached the capped peer.
            self.assertLessEqual(peer.sent_bytes, CAP_BYTES_PER_SECOND * elapsed * 1.03 + 8192)
            self.assertGreater(peer.sent_bytes, 0)

            (source / "new.bin").write_bytes(b"n" * 1000)
            governor.controls.run_now("b1")
            await wait_for(lambda: done_runs(governor) == ["completed", "completed"]
                           and runner.lifecycle.state == "done", 60, "the second run")
            second = runner.last_result
            assert second is not None
            self.assertEqual(second.progress.files_uploaded, 1)
            self.assertEqual(second.progress.files_reused, 12)
            # Its ETA worked from the first run's figures, not from a second walk.
            self.assertEqual(second.progress.estimated_files, 12)
            job_status = governor.controls.status().job("b1")
            self.assertEqual(job_status.files_total["uploaded"], 13)
            self.assertEqual(job_status.files_total["reused"], 12)
            assert job_status.latest_snapshot_cap is not None

            # The pages and /metrics of the running node: public facts, no secrets.
            await client.getServiceNamed("webish")._started
            public = await get_body(governor.web_url + "governor?t=json")
            metrics = await get_body(governor.web_url + "metrics")
            private = await get_body(governor.private_url + "?t=json")
            aliases = (nodedir / "private" / "aliases").read_text().split(": ")[1].strip()
            secrets = [str(source), aliases, job_status.latest_snapshot_cap, governor.token]
            for secret in secrets:
                self.assertNotIn(secret.encode(), public)
                self.assertNotIn(secret.encode(), metrics)
            self.assertIn(b'"state": "done"', public)
            self.assertIn(f'peer="{dsl.tubid}"'.encode(), metrics)
            self.assertIn(b"tahoe_governor_job_files_total", metrics)
            self.assertIn(job_status.latest_snapshot_cap.encode(), private)
        finally:
            await stop_node(client)
        self.assertEqual(integrity(nodedir / "private" / "governor.sqlite"), "ok")

    def test_storage_server_lost_mid_run_is_retried(self) -> defer.Deferred[None]:
        """A server stopped mid-run fails the run; after it returns a retry completes it."""
        return defer.ensureDeferred(self._storage_server_lost_mid_run_is_retried())

    async def _storage_server_lost_mid_run_is_retried(self) -> None:
        _, nodedir = self.capped_node_dir(files=MID_RUN_FILES, size=MID_RUN_SIZE, capped=1)
        client, governor = await start_governed_node(nodedir)
        stopped = False
        try:
            runner = governor.scheduler.runners["b1"]
            runner.retry_first_seconds = 1.0  # retry at once, not after a minute
            await wait_for(
                lambda: (runner.progress() is not None
                         and runner.progress().files_uploaded >= 2), 60, "two files uploaded",
            )
            self.grid.stop_server(1)
            stopped = True
            await wait_for(lambda: runner.lifecycle.state == "failed", 60, "the run to fail")
            self.assertIsNotNone(governor.controls.status().job("b1").last_failure)
            self.grid.start_server(1)
            stopped = False
            await wait_for(lambda: done_runs(governor)[-1:] == ["completed"], 120,
                           "a retry to complete")
            outcomes = done_runs(governor)
            self.assertEqual(outcomes[0], "failed")
            self.assertEqual(outcomes[-1], "completed")
            result = runner.last_result
            assert result is not None
            # What finished before the loss was not uploaded again.
            self.assertGreaterEqual(result.progress.files_reused, 2)
            self.assertEqual(result.progress.files_uploaded + result.progress.files_reused,
                             MID_RUN_FILES)
        finally:
            if stopped:
                self.grid.start_server(1)
            await stop_node(client)
            # Tahoe logs the aborts of the uploads the lost server cut short.
            self.flushLoggedErrors(DeadReferenceError)

    def test_cap_lowered_tenfold_mid_run_fails_no_upload(self) -> defer.Deferred[None]:
        """A peer's cap cut from 800 to 80 kbit/s while dozens of uploads are under way:
        the queue to it, already seconds long, would hold Tahoe's next server-selection
        queries past their 15 s timeout; held new uploads keep it short, and the run
        completes with every file uploaded and none failed."""
        return defer.ensureDeferred(self._cap_lowered_tenfold_mid_run_fails_no_upload())

    async def _cap_lowered_tenfold_mid_run_fails_no_upload(self) -> None:
        files = 40
        _, nodedir = self.capped_node_dir(files=files, size=16_000, capped=2)
        server = self.grid.servers[2]
        client, governor = await start_governed_node(nodedir)
        try:
            runner = governor.scheduler.runners["b1"]
            await wait_for(lambda: governor.shaper.peer_stats(server.tubid).sent_bytes > 60_000,
                           60, "the capped server to receive 60 kB")
            governor.controls.set_limit("peer", server.nickname, "up", "80kbps")
            await wait_for(lambda: runner.lifecycle.state != "running", 120,
                           "the run to end", state=lambda: runner.progress())
            result = runner.last_result
            self.assertEqual(done_runs(governor), ["completed"], runner.progress())
            assert result is not None
            self.assertEqual(result.progress.files_failed, 0)
            self.assertEqual(result.progress.files_uploaded, files)
        finally:
            await stop_node(client)

    def test_node_stopped_mid_run_and_restarted_completes(self) -> defer.Deferred[None]:
        """Stopping the node mid-run loses nothing: the restart completes, reusing the
        files finished before, and both databases are intact."""
        return defer.ensureDeferred(self._node_stopped_mid_run_and_restarted_completes())

    async def _node_stopped_mid_run_and_restarted_completes(self) -> None:
        _, nodedir = self.capped_node_dir(files=MID_RUN_FILES, size=MID_RUN_SIZE, capped=0)
        client, governor = await start_governed_node(nodedir)
        try:
            runner = governor.scheduler.runners["b1"]
            await wait_for(
                lambda: (runner.progress() is not None
                         and runner.progress().files_uploaded >= 3), 60, "three files uploaded",
            )
        finally:
            await stop_node(client)
            # Tahoe logs the aborts of the uploads the stop cut short.
            self.flushLoggedErrors(DeadReferenceError)
        self.assertEqual(done_runs(governor), ["interrupted"])
        for db in ("governor.sqlite", "backupdb.sqlite"):
            self.assertEqual(integrity(nodedir / "private" / db), "ok")

        client, governor = await start_governed_node(nodedir, aliases=())
        try:
            runner = governor.scheduler.runners["b1"]
            await wait_for(lambda: done_runs(governor) == ["interrupted", "completed"], 90,
                           "the resumed run")
            result = runner.last_result
            assert result is not None
            self.assertGreaterEqual(result.progress.files_reused, 3)
            self.assertEqual(result.progress.files_uploaded + result.progress.files_reused,
                             MID_RUN_FILES)
            self.assertEqual(done_runs(governor), ["interrupted", "completed"])
        finally:
            await stop_node(client)
        for db in ("governor.sqlite", "backupdb.sqlite"):
            self.assertEqual(integrity(nodedir / "private" / db), "ok")

    def test_nickname_cap_holds_at_the_server_from_the_first_byte(self) -> defer.Deferred[None]:
        """A job due at start-up, its server capped by nickname: counted by the capped
        server's own kernel, no moment of the run carried more than the cap's pace
        since the first byte plus one burst and the TLS handshake."""
        require_programs((SS,), ("iproute2",))
        return defer.ensureDeferred(self._nickname_cap_holds_at_the_server())

    async def _nickname_cap_holds_at_the_server(self) -> None:
        _, nodedir = self.capped_node_dir(files=12, size=40_000, capped=0)
        # The job's target directory, made by another node that has no job.
        maker_dir = self.grid.make_client_dir(temp_dir(self) / "maker")
        maker, _ = await start_governed_node(maker_dir)
        await stop_node(maker)
        (nodedir / "private" / "aliases").write_text(
            (maker_dir / "private" / "aliases").read_text())

        port = self.grid.servers[0].tub_port
        samples: list[tuple[float, float, int]] = []  # (asked at, answered at, bytes)
        # The other servers' client sides and the maker's closing connection reach
        # this port too: only the connections that appear from here on are the node's.
        others = set(await deferToThread(bytes_received_by_peer, port))
        started = reactor.seconds()
        sampling = True

        async def sample() -> None:
            while sampling:
                asked = reactor.seconds() - started
                by_peer = await deferToThread(bytes_received_by_peer, port)
                received = sum(n for peer, n in by_peer.items() if peer not in others)
                samples.append((asked, reactor.seconds() - started, received))
                await task.deferLater(reactor, 0.05, lambda: None)

        sampler = defer.ensureDeferred(sample())
        governor = await start_governor(reactor, str(nodedir), ZoneInfo("UTC"))
        try:
            await wait_for(lambda: done_runs(governor) == ["completed"], 90, "the run")
        finally:
            sampling = False
            await sampler
            await stop_node(governor.client)
        # The first byte came after the last sample that saw none was asked for.
        first = max((asked for asked, _, n in samples if n == 0), default=0.0)
        allowance = 4096 + 12_288  # one burst; TLS handshake and record overhead
        over = [
            (round(answered - first, 2), n)
            for _, answered, n in samples
            if answered > first and n > CAP_BYTES_PER_SECOND * 1.03 * (answered - first) + allowance
        ]
        self.assertEqual(over, [], "bytes received above the cap's pace (seconds, bytes)")
        self.assertGreater(samples[-1][2], 200_000)  # the run's shares did reach the server
