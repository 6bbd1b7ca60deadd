"""Each backup run's walker, made for the node's jobs, and what their last completed runs found.

:class:`BackupWalkers` is the scheduler's walker factory: a walker of one run
uploads through this node's client, to the job's target resolved in the node
directory, with the node's backupdb (a connection of its own, closed when
the run ends, however it ends). It remembers each job's last completed
run of this process: the snapshot's cap (for the private page) and the tree's
size, which the next run takes as its estimate instead of walking the tree
twice. Each walker applies its job's retention rule (``bN.keep``) in the
policy's zone ``tz`` after linking its snapshot.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from typing import Any

from tahoe_governor.backup.backupdb import backupdb_path, open_backupdb
from tahoe_governor.backup.job_throttle import JobThrottle
from tahoe_governor.backup.target import resolve_target_in_nodedir
from tahoe_governor.backup.tree import TreeEstimate
from tahoe_governor.backup.walker import BackupResult, BackupWalker
from tahoe_governor.node.storage_peers import text
from tahoe_governor.policy.config import Job
from tahoe_governor.throttle.reactor_clock import ReactorClock


class BackupWalkers:
    """Makes the walker of each run (:data:`~tahoe_governor.backup.job_runner.WalkerFactory`)
    and keeps what the last completed run of each job found."""

    def __init__(self, reactor: ReactorClock, client: Any, nodedir: str,
                 tz: tzinfo = UTC) -> None:
        self._reactor = reactor
        self._tz = tz
        self._client = client
        self._nodedir = nodedir
        self.latest_caps: dict[str, str] = {}
        """Job name -> read-only cap of its last completed snapshot (private)."""
        self._last_trees: dict[str, TreeEstimate] = {}

    def __call__(self, job: Job, throttle: JobThrottle) -> BackupWalker:
        target = resolve_target_in_nodedir(job.target, self._nodedir)
        backupdb = open_backupdb(backupdb_path(self._nodedir))
        try:
            return BackupWalker(
                reactor=self._reactor, client=self._client, source=job.source, target=target,
                backupdb=backupdb, throttle=throttle, exclude=job.exclude,
                # The last completed run's figures, when there is one, instead of an
                # estimate walk: a nightly run would otherwise walk the tree twice.
                estimate=self._last_trees.get(job.name),
                close_backupdb=True,  # this run's own connection: closed when it ends
                keep=job.keep, keep_zone=self._tz,
            )
        except BaseException:
            backupdb.connection.close()
            raise

    def completed(self, job: str, ended: float, result: BackupResult) -> None:
        """Remember a completed run of ``job`` (the scheduler's ``on_completed``)."""
        self.latest_caps[job] = text(result.private_snapshot_cap)
        progress = result.progress
        self._last_trees[job] = TreeEstimate(files=progress.files_seen,
                                             bytes=progress.bytes_done)
