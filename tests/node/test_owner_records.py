"""OwnerRecords on Tahoe's in-process grid: archives joined with the runs that made them, the
rule's verdicts, a bad target's words, the recent runs and the recovery-sheet reminder."""

from __future__ import annotations

import os
from datetime import UTC
from typing import Any

import pytest
from allmydata.uri import LiteralFileURI
from twisted.trial import unittest

from tahoe_governor.backup import resolve_target_in_nodedir
from tahoe_governor.node.owner_records import OwnerRecords
from tahoe_governor.policy.allowed_times import AllowedTimes
from tahoe_governor.policy.config import Job
from tahoe_governor.policy.retention import KeepRule
from tahoe_governor.policy.state_db import StateDatabase
from tahoe_governor.status import ControlError
from tests.backup.grid import WalkerGridMixin

pytestmark = pytest.mark.e2e

OURS = ["2027-01-02_22:00:00Z", "2027-01-03_22:00:00Z"]
BY_HAND = "2027-01-01_22:00:00Z"  # linked by tahoe backup, not by this node


def _job(target: str = "tahoe:backups", keep: KeepRule | None = None) -> Job:
    return Job(name="b1", source="/home/alice", target=target, frequency=86400.0,
               allowed_times=AllowedTimes.always(UTC), keep=keep)


class OwnerRecordsTests(WalkerGridMixin, unittest.TestCase):
    async def _records(self, keep: KeepRule | None = None) -> tuple[OwnerRecords, Job]:
        """A target with three archives (Latest the newest), two of them made by recorded
        runs; the state database also holds a failed run."""
        await self.make_alias()
        root = self.client.create_node_from_uri(
            resolve_target_in_nodedir("tahoe:backups", self.nodedir).private_rootcap)
        target = await root.create_subdirectory("backups")
        snapshots: dict[str, Any] = {}
        for name in [BY_HAND, *OURS]:
            child = self.client.create_node_from_uri(LiteralFileURI(name.encode()).to_string())
            snapshots[name] = await self.client.create_immutable_dirnode({"f": (child, {})})
        await target.create_subdirectory(
            "Archives", {name: (node, {}) for name, node in snapshots.items()})
        await target.set_node("Latest", snapshots[OURS[-1]])
        self.db = StateDatabase(os.path.join(self.basedir, "state.sqlite"))
        self.addCleanup(self.db.close)
        for day, name in enumerate(OURS):
            run = self.db.start_run("b1", 1_800_000_000.0 + day * 86400)
            self.db.finish_run(run, 1_800_000_000.0 + day * 86400 + 600, "completed",
                               {"files_seen": 10 + day, "bytes_uploaded": 1000 * day}, name)
        failed = self.db.start_run("b1", 1_800_200_000.0)
        self.db.finish_run(failed, 1_800_200_060.0, "failed", detail="boom")
        job = _job(keep=keep)
        return OwnerRecords(self.client, self.nodedir, self.db, lambda: [job], UTC), job

    async def test_archives_joined_with_their_runs(self) -> None:
        """Newest first; each archive this node made carries its run; the one linked by
        hand has none; Latest is marked; no rule, no verdicts."""
        records, job = await self._records()
        listing = await records.archives(job)
        assert [a.name for a in listing.archives] == [OURS[1], OURS[0], BY_HAND]
        newest, older, by_hand = listing.archives
        assert newest.latest and not older.latest
        assert newest.run is not None and newest.run.files_seen == 11
        assert newest.run.duration_seconds == 600
        assert older.run is not None and older.run.files_seen == 10
        assert by_hand.run is None
        assert (listing.keep_rule, newest.keep, newest.reasons) == (None, None, ())

    async def test_rule_verdicts_in_the_listing(self) -> None:
        """With a rule, each archive says keep or forget and why; nothing is unlinked."""
        records, job = await self._records(KeepRule(last=1))
        listing = await records.archives(job)
        assert listing.keep_rule == "1 last"
        assert [a.keep for a in listing.archives] == [True, False, False]
        assert listing.archives[1].reasons == ("no kind of 1 last keeps it",)
        assert len((await records.archives(job)).archives) == 3  # a preview changes nothing

    async def test_a_target_whose_alias_is_gone(self) -> None:
        """An alias missing from private/aliases: a ControlError naming it, not the grid's."""
        records, _ = await self._records()
        with pytest.raises(ControlError, match="photos"):
            await records.archives(_job(target="photos:backups"))

    async def test_recent_runs_and_reminder(self) -> None:
        """The last runs come newest first; the reminder stays until the sheet covers b1."""
        records, _ = await self._records()
        assert [r.outcome for r in records.recent_runs("b1")] == [
            "failed", "completed", "completed"]
        assert records.recent_runs("mail") == ()
        assert "never been printed" in (records.recovery_sheet_reminder() or "")
        self.db.record_recovery_sheet(1.0, ("b1",))
        assert records.recovery_sheet_reminder() is None
