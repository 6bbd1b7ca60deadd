"""What the state database tells the owner: each job's recent runs, its archives joined with
the runs that made them, and whether the recovery sheet needs printing.

:class:`OwnerRecords` reads the node's state database for the private status
(the last runs per job, the recovery sheet reminder) and, with the grid,
answers :meth:`~tahoe_governor.status.GovernorControls.archives`: the job's
``Archives/`` listed through the node's own directory objects (nothing is
created), newest first, each archive joined with the completed run that
linked it (a run records its archive's name) and with what the job's
``bN.keep`` does with it; a target that cannot be resolved or is not a
directory is a :class:`~tahoe_governor.status.ControlError` in the words of
:class:`~tahoe_governor.backup.target.TargetError`. A state database that
cannot be read leaves the runs out (and no reminder) rather than failing the
status.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from datetime import tzinfo
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from tahoe_governor.backup.archives import read_archives
from tahoe_governor.backup.target import TargetError, resolve_target_in_nodedir
from tahoe_governor.policy.config import Job
from tahoe_governor.policy.recovery_reminder import recovery_sheet_reminder
from tahoe_governor.policy.retention import newest_first, retention_verdicts
from tahoe_governor.policy.state_db import Run, StateDatabase
from tahoe_governor.status import ArchiveEntry, ControlError, JobArchives, RunRecord

RECENT_RUNS = 5
"""Runs per job on the private page (``status --history`` shows the same)."""
RUNS_JOINED = 10_000
"""How many of a job's runs are searched for the runs that made its archives."""

log = Logger()


def run_record(run: Run) -> RunRecord:
    """A state database run as the owner sees it."""
    return RunRecord(
        started=run.started, ended=run.ended, outcome=run.outcome,
        files_seen=run.files_seen, files_uploaded=run.files_uploaded,
        files_reused=run.files_reused, files_skipped=run.files_skipped,
        files_failed=run.files_failed, bytes_uploaded=run.bytes_uploaded, detail=run.detail,
    )


class OwnerRecords:
    """See the module documentation.

    :param job: the configured job of a name (KeyError if none; the caller
        refuses unknown jobs first).
    :param tz: the zone of the retention rules' calendar (the policy's).
    """

    def __init__(self, client: Any, nodedir: str, database: StateDatabase,
                 jobs: Callable[[], Iterable[Job]], tz: tzinfo) -> None:
        self._client = client
        self._nodedir = nodedir
        self._database = database
        self._jobs = jobs
        self._tz = tz

    def recent_runs(self, job: str) -> tuple[RunRecord, ...]:
        """The last :data:`RECENT_RUNS` runs of ``job``, newest first."""
        try:
            runs = self._database.runs(job, limit=RECENT_RUNS)
        except sqlite3.Error as e:
            log.warn("could not read the runs of {job} from the state database: {error}",
                     job=job, error=e)
            return ()
        return tuple(run_record(run) for run in runs)

    def recovery_sheet_reminder(self) -> str | None:
        """Why the owner should print the recovery sheet now, or ``None``."""
        try:
            printed = self._database.recovery_sheet()
        except sqlite3.Error:
            return None
        return recovery_sheet_reminder(printed, (job.name for job in self._jobs()))

    def archives(self, job: Job) -> Deferred[JobArchives]:
        """The archives of ``job`` on the grid (see the module documentation)."""
        return Deferred.fromCoroutine(self._archives(job))

    async def _archives(self, job: Job) -> JobArchives:
        try:
            target = resolve_target_in_nodedir(job.target, self._nodedir)
            listing = await read_archives(self._client, target)
        except TargetError as e:  # its words name the alias and path, never the cap
            raise ControlError(str(e)) from None
        runs = {run.detail: run for run in self._database.runs(job.name, limit=RUNS_JOINED)
                if run.outcome == "completed" and run.detail}
        verdicts = ({v.name: v for v in retention_verdicts(
            listing.names, job.keep, self._tz, listing.latest)} if job.keep else {})
        entries = []
        for instant, name in newest_first(listing.names):
            verdict = verdicts.get(name)
            run = runs.get(name)
            entries.append(ArchiveEntry(
                name=name, instant=instant, latest=name == listing.latest,
                run=None if run is None else run_record(run),
                keep=None if verdict is None else verdict.keep,
                reasons=() if verdict is None else verdict.reasons,
            ))
        return JobArchives(job=job.name, keep_rule=None if job.keep is None else str(job.keep),
                           archives=tuple(entries))
