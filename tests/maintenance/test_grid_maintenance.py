"""End to end: a governed node keeps its archive alive on the real local grid.

A backup job makes the archive; one storage server then loses its shares of
some files from its disk; the node's ``[maintenance]`` task, run by the same
scheduler as the backups, finds exactly those files, repairs them (the share
files are counted on the servers' disks), and a second pass finds everything
healthy. Then a pass paused mid-way (held as a closed window holds it) and cut
by a node restart resumes without checking a finished object again.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from allmydata.util import base32
from twisted.internet import defer, reactor, task
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tahoe_governor.cli.maintenance import UNRECOVERABLE_EXIT, run_maintenance
from tahoe_governor.policy.state_db import StateDatabase
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
from tests.socket_counters import SS, bytes_received_from_this_process
from tests.system_programs import require_programs

FILES = 9
DAMAGED = 3
PEER_CAP = 100_000  # 800kbps, in bytes per second


def config(source: Path) -> str:
    return (
        "[backups]\n"
        f"b1.source = {source}\n"
        "b1.target = backup:photos\n"
        "b1.frequency = 1week\n"
        "[maintenance]\n"
        "m1.target = backup:photos\n"
        "m1.frequency = 1week\n"
        "m1.verify = 50%\n"
    )


def outcomes(governor: Any, job: str) -> list[str]:
    return [run.outcome for run in governor.database.runs(job)][::-1]


def share_numbers(grid: LocalGrid, storage_index: str) -> dict[str, set[str]]:
    """Server nickname -> the share numbers it holds of ``storage_index`` (on its disk)."""
    held = {}
    for server in grid.servers:
        folder = server.nodedir / "storage" / "shares" / storage_index[:2] / storage_index
        held[server.nickname] = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    return held


async def file_indexes(client: Any, snapshot_cap: str) -> dict[str, str]:
    """Name -> storage index (base32) of every file of a snapshot."""
    found: dict[str, str] = {}

    async def walk(node: Any, path: str) -> None:
        for name, (child, _) in (await node.list()).items():
            if child.is_unknown():
                continue
            if hasattr(child, "list"):
                await walk(child, f"{path}{name}/")
            else:
                found[f"{path}{name}"] = base32.b2a(child.get_storage_index()).decode()

    await walk(client.create_node_from_uri(snapshot_cap.encode()), "")
    return found


@pytest.mark.e2e
@pytest.mark.usefixtures("grid_on_class")
class MaintenanceOnGridTests(TestCase):
    """A maintenance task on the real grid: repair exactly what was lost, then resume."""

    grid: LocalGrid
    timeout = 240

    def test_lost_shares_are_repaired_and_a_paused_pass_resumes(self) -> defer.Deferred[None]:
        """Every file whose shares one server lost is back to its full share count, exactly
        those are reported repaired, the next pass finds all healthy; a pass held mid-way
        and cut by a restart goes on without checking a finished object again."""
        return defer.ensureDeferred(self._repair_and_resume())

    async def _repair_and_resume(self) -> None:
        base = temp_dir(self)
        source = base / "source"
        make_tree(source, files=FILES, size=5_000)
        nodedir = self.grid.make_client_dir(base / "client", extra_cfg=config(source))
        database = base / "client" / "private" / "governor.sqlite"
        with StateDatabase(str(database)) as db:
            db.set_paused("m1", True, 0.0)  # until the archive is made
        client, governor = await start_governed_node(nodedir)
        try:
            await wait_for(lambda: outcomes(governor, "b1") == ["completed"], 90, "the backup")
            snapshot = governor.controls.status().job("b1").latest_snapshot_cap
            assert snapshot is not None
            files = await file_indexes(client, snapshot)
            self.assertEqual(len(files), FILES)
            lost_server = self.grid.servers[0]
            damaged = dict(sorted(files.items())[:DAMAGED])
            for storage_index in damaged.values():
                held = share_numbers(self.grid, storage_index)
                self.assertEqual(sum(len(s) for s in held.values()), 3)
                shutil.rmtree(lost_server.nodedir / "storage" / "shares" / storage_index[:2]
                              / storage_index)

            governor.controls.resume("m1")
            await wait_for(lambda: outcomes(governor, "m1") == ["completed"], 120, "the pass",
                           state=lambda: governor.scheduler.runners["m1"].progress())
            first = governor.scheduler.runners["m1"].last_result.progress
            repaired = governor.database.query(
                "SELECT storage_index FROM maintenance_objects WHERE result = 'repaired'")
            self.assertEqual({row[0] for row in repaired}, set(damaged.values()))
            self.assertEqual(first.result("repaired"), DAMAGED)
            self.assertEqual(first.result("unrecoverable"), 0)
            for storage_index in files.values():
                held = share_numbers(self.grid, storage_index)
                self.assertEqual(set().union(*held.values()), {"0", "1", "2"}, storage_index)
                self.assertTrue(held[lost_server.nickname], "the server that lost it holds one")
                # Only what was missing is put back: the healthy state's 3 share files.
                self.assertEqual(sum(len(s) for s in held.values()), 3, held)
            self.assertEqual(first.verified, -(-first.objects_checked // 2))

            status = governor.controls.status().job("m1")
            self.assertEqual((status.kind, status.state), ("maintenance", "done"))
            self.assertEqual(status.files_total["repaired"], DAMAGED)

            governor.controls.run_now("m1")
            await wait_for(lambda: outcomes(governor, "m1") == ["completed"] * 2, 120,
                           "the second pass")
            second = governor.scheduler.runners["m1"].last_result.progress
            self.assertEqual(second.pass_number, 2)
            self.assertEqual(second.results, {"healthy": first.objects_checked})

            # A third pass, held once three objects are checked: its gate (the task's
            # throttle) stops admitting steps, as a closing window makes it; then the
            # task is paused and the node stopped mid-pass.
            runner = governor.scheduler.runners["m1"]
            held: list[defer.Deferred[None]] = []

            def gate() -> defer.Deferred[None]:
                walker = runner.walker
                if walker is not None and walker.progress().checked_this_run >= 3:
                    held.append(defer.Deferred())
                    return held[-1]
                return defer.succeed(None)

            runner.throttle.set_cpu_gate(gate)
            governor.controls.run_now("m1")
            await wait_for(lambda: bool(held), 60, "the third pass to be held")
            governor.controls.pause("m1")
            await wait_for(lambda: runner.progress().suspended, 5, "the hold")
            self.assertEqual(runner.progress().pass_number, 3)
        finally:
            await stop_node(client)

        with StateDatabase(str(database)) as db:  # what the stopped node left recorded
            finished = dict(db.query("SELECT storage_index, last_checked "
                                     "FROM maintenance_objects WHERE checked_pass = 3"))
        self.assertGreaterEqual(len(finished), 3)
        self.assertLess(len(finished), first.objects_checked)
        client, governor = await start_governed_node(nodedir, aliases=())
        try:
            governor.controls.resume("m1")
            # Pass 3 was started by hand (run now), so the task is not due by its
            # frequency: start it by hand again; the run goes on with pass 3.
            governor.controls.run_now("m1")
            await wait_for(lambda: "completed" in outcomes(governor, "m1")[2:], 120,
                           "the resumed pass")
            self.assertEqual(outcomes(governor, "m1"),
                             ["completed", "completed", "interrupted", "completed"])
            third = governor.scheduler.runners["m1"].last_result.progress
            self.assertEqual((third.pass_number, third.objects_checked),
                             (3, first.objects_checked))
            self.assertEqual(third.checked_this_run, first.objects_checked - len(finished))
            again = dict(governor.database.query(
                "SELECT storage_index, last_checked FROM maintenance_objects"))
            for storage_index, checked_at in finished.items():
                self.assertEqual(again[storage_index], checked_at, "checked again")
        finally:
            await stop_node(client)
        self.assertEqual(integrity(database), "ok")

    def test_a_file_below_k_shares_is_reported_by_name_once(self) -> defer.Deferred[None]:
        """A file left with one share (k = 2) is reported unrecoverable by its path, not
        repaired and not retried: the pass completes, the command names it (exit 2), the
        public page only counts it."""
        return defer.ensureDeferred(self._unrecoverable())

    async def _unrecoverable(self) -> None:
        base = temp_dir(self)
        source = base / "source"
        make_tree(source, files=4, size=5_000)
        nodedir = self.grid.make_client_dir(base / "client", extra_cfg=config(source))
        with StateDatabase(str(base / "client" / "private" / "governor.sqlite")) as db:
            db.set_paused("m1", True, 0.0)
        client, governor = await start_governed_node(nodedir)
        try:
            await wait_for(lambda: outcomes(governor, "b1") == ["completed"], 90, "the backup")
            snapshot = governor.controls.status().job("b1").latest_snapshot_cap
            assert snapshot is not None
            name, lost = sorted((await file_indexes(client, snapshot)).items())[0]
            for server in self.grid.servers[:2]:
                folder = server.nodedir / "storage" / "shares" / lost[:2] / lost
                if folder.is_dir():
                    shutil.rmtree(folder)
            self.assertEqual(sum(len(s) for s in share_numbers(self.grid, lost).values()), 1)
            governor.controls.resume("m1")
            await wait_for(lambda: outcomes(governor, "m1") == ["completed"], 120, "the pass")
            runner = governor.scheduler.runners["m1"]
            found = runner.last_result.progress
            self.assertEqual(found.result("unrecoverable"), 1)
            self.assertEqual(found.result("repaired"), 0)
            (path,) = found.private_unrecoverable
            self.assertTrue(path.endswith(name), (path, name))
            self.assertEqual(runner.lifecycle.state, "done")  # not failed, not looping
            out, err = io.StringIO(), io.StringIO()
            code = await deferToThread(run_maintenance, str(nodedir), None, out, err)
            self.assertEqual(code, UNRECOVERABLE_EXIT, err.getvalue())
            self.assertIn(f"    {path}\n", out.getvalue())
            public = await get_body(governor.web_url + "governor?t=json")
            self.assertNotIn(name.split("/")[-1].encode(), public)
            self.assertIn(b'"unrecoverable": 1', public)
        finally:
            await stop_node(client)

    def test_a_repair_holds_the_peer_cap_at_the_receiving_server(self) -> defer.Deferred[None]:
        """Repairing a 1.5 MB file whose share a capped server lost: counted by that
        server's own kernel, the repair upload never ran ahead of the cap's pace (plus one
        burst and the TLS overhead), and the share did arrive."""
        require_programs((SS,), ("iproute2",))
        return defer.ensureDeferred(self._repair_under_a_peer_cap())

    async def _repair_under_a_peer_cap(self) -> None:
        base = temp_dir(self)
        source = base / "source"
        source.mkdir()
        (source / "big.bin").write_bytes(os.urandom(1_500_000))
        capped = self.grid.servers[0]
        nodedir = self.grid.make_client_dir(
            base / "client",
            extra_cfg=config(source) + f"[bandwidth]\npeer.{capped.nickname}.up = 800kbps\n")
        with StateDatabase(str(base / "client" / "private" / "governor.sqlite")) as db:
            db.set_paused("m1", True, 0.0)
        client, governor = await start_governed_node(nodedir)
        try:
            await wait_for(lambda: outcomes(governor, "b1") == ["completed"], 120, "the backup")
            snapshot = governor.controls.status().job("b1").latest_snapshot_cap
            assert snapshot is not None
            (lost,) = (await file_indexes(client, snapshot)).values()
            folder = capped.nodedir / "storage" / "shares" / lost[:2] / lost
            self.assertTrue(folder.is_dir())
            shutil.rmtree(folder)

            port = capped.tub_port
            samples: list[tuple[float, int]] = []  # (seconds since the resume, bytes)
            # Only the node's own connection: the other servers' client sides reach this port too.
            before = await deferToThread(bytes_received_from_this_process, port)
            started = reactor.seconds()
            sampling = True

            async def sample() -> None:
                while sampling:
                    received = await deferToThread(bytes_received_from_this_process, port)
                    samples.append((reactor.seconds() - started, received - before))
                    await task.deferLater(reactor, 0.05, lambda: None)

            sampler = defer.ensureDeferred(sample())
            governor.controls.resume("m1")
            try:
                await wait_for(lambda: outcomes(governor, "m1") == ["completed"], 120,
                               "the repair")
            finally:
                sampling = False
                await sampler
            found = governor.scheduler.runners["m1"].last_result.progress
            self.assertEqual(found.result("repaired"), 1)
            allowance = 4096 + 12_288  # one burst; TLS record overhead
            over = [(round(at, 2), n) for at, n in samples
                    if n > PEER_CAP * 1.03 * at + allowance]
            self.assertEqual(over, [], "bytes received above the cap's pace (seconds, bytes)")
            self.assertGreater(samples[-1][1], 700_000)  # the lost share (750 kB) arrived
            self.assertTrue(folder.is_dir())
        finally:
            await stop_node(client)
