"""Archives on a real in-process Tahoe grid: listed without changes, pruned after runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from allmydata.uri import LiteralFileURI
from twisted.trial import unittest

from tahoe_governor.backup import resolve_target_in_nodedir
from tahoe_governor.backup.archives import apply_retention, read_archives
from tahoe_governor.policy.retention import KeepRule, parse_keep, retention_verdicts

from .grid import WalkerGridMixin, write_tree

pytestmark = pytest.mark.e2e

FORMAT = "%Y-%m-%d_%H:%M:%SZ"


class ArchivesGridTests(WalkerGridMixin, unittest.TestCase):
    """read_archives and apply_retention against NoNetworkGrid, and the walker's use of them."""

    async def _snapshot(self, content: bytes) -> Any:
        """A small immutable directory standing for a snapshot (a literal file in it)."""
        child = self.client.create_node_from_uri(LiteralFileURI(content).to_string())
        return await self.client.create_immutable_dirnode({"file": (child, {})})

    async def _target_with(self, names: list[str], latest: str) -> tuple[Any, Any]:
        """backups/ with Archives/<names> (each its own snapshot) and Latest -> ``latest``."""
        await self.make_alias()
        root = self.client.create_node_from_uri(
            resolve_target_in_nodedir("tahoe:backups", self.nodedir).private_rootcap)
        target = await root.create_subdirectory("backups")
        snapshots = {name: await self._snapshot(name.encode()) for name in names}
        archives = await target.create_subdirectory(
            "Archives", {name: (node, {}) for name, node in snapshots.items()})
        await target.set_node("Latest", snapshots[latest])
        return target, archives

    async def test_reading_a_target_never_backed_up_changes_nothing(self) -> None:
        """No target directory yet: no archives, and nothing is created on the grid."""
        await self.make_alias()
        target = resolve_target_in_nodedir("tahoe:backups", self.nodedir)
        listing = await read_archives(self.client, target)
        assert (listing.names, listing.latest) == ((), None)
        root = self.client.create_node_from_uri(target.private_rootcap)
        assert await root.list() == {}

    async def test_listing_names_latest(self) -> None:
        """Every entry is listed, and Latest's archive is found by its directory."""
        names = ["2027-01-01_22:00:00Z", "2027-01-02_22:00:00Z", "2027-01-03_22:00:00Z"]
        await self._target_with(names, latest=names[1])
        listing = await read_archives(
            self.client, resolve_target_in_nodedir("tahoe:backups", self.nodedir))
        assert sorted(listing.names) == names
        assert listing.latest == names[1]

    async def test_forty_days_pruned_as_the_rule_says(self) -> None:
        """Forty daily archives under '7 daily, 4 weekly': exactly the archives the decision
        keeps remain in Archives/, and Latest's (an old one, pointed at by hand) is among them."""
        start = datetime(2027, 1, 1, 22, 0, tzinfo=UTC)
        names = [(start + timedelta(days=d)).strftime(FORMAT) for d in range(40)]
        target, archives = await self._target_with(names, latest=names[3])
        rule = parse_keep("7 daily, 4 weekly")
        forgotten = await apply_retention(target, archives, rule, UTC)
        expected = {v.name for v in retention_verdicts(names, rule, UTC, names[3]) if v.keep}
        remaining = set(await archives.list())
        assert remaining == expected
        assert names[3] in remaining and names[-1] in remaining
        assert set(forgotten) == set(names) - expected
        assert len(remaining) == 10  # 7 days, 3 more weeks, Latest's

    async def test_runs_apply_the_rule_after_linking(self) -> None:
        """Three runs with '2 last': the third run unlinks the first archive; Latest is the
        third; a run whose rule keeps everything forgets nothing."""
        await self.make_alias()
        write_tree(self.source, {"a.txt": b"a"})
        made = []
        for _ in range(3):
            result = await self.walker(keep=KeepRule(last=2)).run()
            made.append(result)
            self.clock.advance(86400)
        assert [r.forgotten for r in made] == [(), (), (made[0].archive_name,)]
        assert all(r.retention_failure is None for r in made)
        target = await self.target_dir()
        archives = await (await target.get("Archives")).list()
        assert sorted(archives) == [made[1].archive_name, made[2].archive_name]
        latest = await target.get("Latest")
        assert latest.get_uri() == made[2].private_snapshot_cap
        fourth = await self.walker().run()  # no rule: nothing forgotten
        assert fourth.forgotten == ()
        assert len(await (await target.get("Archives")).list()) == 3
