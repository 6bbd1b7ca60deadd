"""The node's walker factory: each run's backupdb connection is its own, closed when it ends."""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo

from allmydata import uri
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from tahoe_governor.backup.job_throttle import JobThrottle
from tahoe_governor.backup.walker import BackupFailed, SourceError
from tahoe_governor.node.backup_walkers import BackupWalkers
from tahoe_governor.policy.config import Job, parse_policy_text
from tests.node.recording_shaper import temp_dir


def open_backupdb_files() -> list[str]:
    """The file descriptors of this process open on a backupdb file (its WAL included)."""
    fds = Path("/proc/self/fd")
    found = []
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if "backupdb.sqlite" in target:
            found.append(target)
    return found


def job(source: Path) -> Job:
    """Job b1 backing up ``source``."""
    policy = parse_policy_text(
        f"[backups]\nb1.source = {source}\nb1.target = backup:photos\nb1.frequency = 1day\n",
        ZoneInfo("UTC"))
    return policy.jobs[0]


class BackupdbClosedTests(TestCase):
    """However a run ends, the backupdb connection opened for it is closed."""

    def setUp(self) -> None:
        if not Path("/proc/self/fd").is_dir():
            self.skipTest("counts descriptors in /proc")
        self.nodedir = temp_dir(self)
        (self.nodedir / "private").mkdir()
        dircap = uri.DirectoryURI(uri.WriteableSSKFileURI(b"k" * 16, b"f" * 32)).to_string()
        (self.nodedir / "private" / "aliases").write_text(f"backup: {dircap.decode()}\n")
        self.walkers = BackupWalkers(reactor, client=object(), nodedir=str(self.nodedir))

    def test_missing_source(self) -> object:
        """The run fails on a missing source: no descriptor on the backupdb is left."""
        return ensureDeferred(self._fails_and_closes(make_source=False, error=SourceError))

    def test_grid_unusable(self) -> object:
        """The walk begins, then the client (no grid at all) fails it: no descriptor is left."""
        return ensureDeferred(self._fails_and_closes(make_source=True, error=BackupFailed))

    async def _fails_and_closes(self, make_source: bool, error: type[Exception]) -> None:
        before = open_backupdb_files()
        source = self.nodedir / "photos"
        if make_source:
            source.mkdir()
        walker = self.walkers(job(source), JobThrottle(reactor))
        self.assertGreater(len(open_backupdb_files()), len(before),
                           "the run has its own connection")
        with self.assertRaises(error):
            await walker.run()
        self.assertEqual(open_backupdb_files(), before)
