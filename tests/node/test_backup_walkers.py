"""The node's walker factory: each run's backupdb connection is its own, closed when it ends."""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from allmydata import uri
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from tahoe_governor.backup.job_throttle import JobThrottle
from tahoe_governor.backup.walker import BackupFailed, SourceError
from tahoe_governor.node.backup_walkers import BackupWalkers
from tahoe_governor.policy.config import Job, parse_policy_text


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


@pytest.fixture
def walkers(tmp_path: Path) -> BackupWalkers:
    (tmp_path / "private").mkdir()
    dircap = uri.DirectoryURI(uri.WriteableSSKFileURI(b"k" * 16, b"f" * 32)).to_string()
    (tmp_path / "private" / "aliases").write_text(f"backup: {dircap.decode()}\n")
    return BackupWalkers(reactor, client=object(), nodedir=str(tmp_path))


def job(source: Path) -> Job:
    """Job b1 backing up ``source``."""
    policy = parse_policy_text(
        f"[backups]\nb1.source = {source}\nb1.target = backup:photos\nb1.frequency = 1day\n",
        ZoneInfo("UTC"))
    return policy.jobs[0]


def outcome_of(d: Deferred) -> object:
    out: list[object] = []
    d.addBoth(out.append)
    assert out, "the run has not ended"
    return out[0]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
@pytest.mark.parametrize("ending", ["source missing", "grid unusable"])
def test_a_runs_backupdb_is_closed_when_the_run_fails(walkers: BackupWalkers, tmp_path: Path,
                                                       ending: str) -> None:
    """However a run ends (here: it fails at once on a missing source, or on
    the grid after the backupdb was opened and the walk began), the backupdb
    connection opened for it is closed: no descriptor on the file is left."""
    before = open_backupdb_files()
    source = tmp_path / "photos"
    if ending == "grid unusable":
        source.mkdir()  # the walk starts, then the client (no grid at all) fails
    walker = walkers(job(source), JobThrottle(reactor))
    assert len(open_backupdb_files()) > len(before), "the run has its own connection"
    failure = outcome_of(walker.run())
    assert failure.check(SourceError if ending == "source missing" else BackupFailed)
    assert open_backupdb_files() == before
