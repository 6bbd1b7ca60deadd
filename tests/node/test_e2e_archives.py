"""End to end: a governed node's archives on the real local grid, listed by the command and
pruned by bN.keep after its runs; its recovery sheet, and the reminder until it is printed."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from twisted.internet import defer, reactor, task
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tahoe_governor.cli.archives import run_archives
from tahoe_governor.cli.recovery_sheet import run_recovery_sheet
from tahoe_governor.node.governor import TICK_SECONDS
from tests.grid import LocalGrid
from tests.node.governed_grid import (  # noqa: F401 (grid_on_class is a fixture)
    get_body,
    grid_on_class,
    make_tree,
    start_governed_node,
    stop_node,
    wait_for,
)
from tests.node.recording_shaper import temp_dir
from tests.node.test_e2e_governor import done_runs, job_config


async def _archives(nodedir: Any, *flags: str) -> dict[str, Any]:
    """``tahoe-governor archives NODEDIR b1 --json`` over real HTTP (in a thread: the node
    answers from this reactor)."""
    out, err = io.StringIO(), io.StringIO()
    status = await deferToThread(run_archives, str(nodedir), "b1", out, err, as_json=True)
    assert status == 0, err.getvalue()
    listing: dict[str, Any] = json.loads(out.getvalue())
    return listing


@pytest.mark.e2e
@pytest.mark.usefixtures("grid_on_class")
class ArchivesOnGridTests(TestCase):
    grid: LocalGrid
    timeout = 150

    def test_archives_listed_with_their_runs_and_pruned(self) -> defer.Deferred[None]:
        """Two runs with a change between them: `archives` lists both, newest first, with
        each run's counts; a third run under '2 last' unlinks the first archive, and the
        listing and the run's result agree; the recovery sheet printed from the node directory
        holds the grid's introducer and the target's cap and ends the private page's reminder,
        and no public view (page, JSON, /metrics) shows any of it."""
        return defer.ensureDeferred(self._archives_listed_and_pruned())

    async def _archives_listed_and_pruned(self) -> None:
        base = temp_dir(self)
        source = base / "source"
        make_tree(source, files=3, size=2_000)
        nodedir = self.grid.make_client_dir(
            base / "client", extra_cfg=job_config(source, "b1.keep = 2 last\n"))
        client, governor = await start_governed_node(nodedir)
        try:
            await client.getServiceNamed("webish")._started
            runner = governor.scheduler.runners["b1"]
            await wait_for(lambda: done_runs(governor) == ["completed"], 90, "the first run")
            first = runner.last_result
            # Archive names have one-second resolution: the next run links another name.
            await task.deferLater(reactor, 1.1, lambda: None)
            (source / "new.bin").write_bytes(b"n" * 1000)
            governor.controls.run_now("b1")
            await wait_for(lambda: done_runs(governor) == ["completed"] * 2
                           and runner.lifecycle.state == "done", 60, "the second run")
            second = runner.last_result
            assert first is not None and second is not None

            listing = await _archives(nodedir)
            self.assertEqual(listing["keep_rule"], "2 last")
            newest, older = listing["archives"]
            self.assertEqual([newest["name"], older["name"]],
                             [second.archive_name, first.archive_name])
            self.assertEqual((newest["latest"], older["latest"]), (True, False))
            self.assertEqual(newest["run"]["files_seen"], 4)
            self.assertEqual(newest["run"]["files_uploaded"], 1)
            self.assertEqual(newest["run"]["bytes_uploaded"], 1000)
            self.assertEqual(older["run"]["files_seen"], 3)
            self.assertEqual(older["run"]["files_uploaded"], 3)
            self.assertEqual(older["run"]["outcome"], "completed")
            self.assertEqual([a["keep"] for a in listing["archives"]], [True, True])

            await task.deferLater(reactor, 1.1, lambda: None)
            governor.controls.run_now("b1")
            await wait_for(lambda: done_runs(governor) == ["completed"] * 3
                           and runner.lifecycle.state == "done", 60, "the third run")
            third = runner.last_result
            assert third is not None
            self.assertEqual(third.forgotten, (first.archive_name,))
            names = [a["name"] for a in (await _archives(nodedir))["archives"]]
            self.assertEqual(names, [third.archive_name, second.archive_name])

            # The recovery sheet: the private page reminds until it is printed; the sheet
            # holds the grid's introducer and the target's cap; no public view shows either.
            private = json.loads(await get_body(governor.private_url + "?t=json"))
            self.assertIn("never been printed", private["recovery_sheet_reminder"])
            sheet, err = io.StringIO(), io.StringIO()
            status = await deferToThread(run_recovery_sheet, str(nodedir), sheet, err, 1e9)
            self.assertEqual(status, 0, err.getvalue())
            cap = (nodedir / "private" / "aliases").read_text().split(": ")[1].strip()
            furl = self.grid.introducer_furl
            self.assertIn(f"directory cap of alias 'backup': {cap}", sheet.getvalue())
            self.assertIn(f"tahoe create-client --introducer={furl}", sheet.getvalue())
            # the command wrote to the state database: the pages' shared snapshot
            # shows it from the next meter tick on
            await task.deferLater(reactor, TICK_SECONDS, lambda: None)
            private = json.loads(await get_body(governor.private_url + "?t=json"))
            self.assertIsNone(private["recovery_sheet_reminder"])
            public = await get_body(governor.web_url + "governor?t=json")
            page = await get_body(governor.web_url + "governor")
            metrics = await get_body(governor.web_url + "metrics")
            for view in (public, page, metrics):
                for secret in (cap, furl, "recovery", first.archive_name):
                    self.assertNotIn(secret.encode(), view)
        finally:
            await stop_node(client)
