"""Each maintenance run's walker, made for the node's tasks; the factory of every job's walker.

:class:`MaintenanceWalkers` makes the walker of a ``[maintenance]`` task's
run: its target resolved in the node directory (as a backup job's is), the
node's own objects for the checks and repairs, the task's rows in the state
database, and the task's throttle as its gate. It remembers how many objects
each task's last completed pass checked, which the next pass takes as its
expected size (for the ETA). :class:`JobWalkers` is the scheduler's factory for
every job: a backup job's walker from :class:`BackupWalkers`, a task's from
:class:`MaintenanceWalkers`.
"""

from __future__ import annotations

from typing import Any

from tahoe_governor.backup.job_runner import Walker
from tahoe_governor.backup.job_throttle import JobThrottle
from tahoe_governor.backup.target import TargetError, resolve_target_in_nodedir
from tahoe_governor.maintenance import (
    MaintenanceRecords,
    MaintenanceWalker,
    NodeMaintenanceGrid,
    TargetUnavailable,
)
from tahoe_governor.node.backup_walkers import BackupWalkers
from tahoe_governor.policy.config import Job, MaintenanceJob, ScheduledJob
from tahoe_governor.policy.state_db import StateDatabase
from tahoe_governor.throttle.reactor_clock import ReactorClock


class MaintenanceWalkers:
    """Makes the walker of each maintenance run and keeps each task's last pass size."""

    def __init__(self, reactor: ReactorClock, client: Any, nodedir: str,
                 database: StateDatabase) -> None:
        self._reactor = reactor
        self._client = client
        self._nodedir = nodedir
        self._database = database
        self._last_pass_objects: dict[str, int] = {}

    def __call__(self, task: MaintenanceJob, throttle: JobThrottle) -> MaintenanceWalker:
        try:
            target = resolve_target_in_nodedir(task.target, self._nodedir)
        except TargetError as e:
            raise TargetUnavailable(str(e).replace("backup target", "maintenance target")) from e
        return MaintenanceWalker(
            reactor=self._reactor,
            grid=NodeMaintenanceGrid(self._client, target.private_rootcap, target.path),
            records=MaintenanceRecords(self._database, task.name),
            gate=throttle, verify=task.verify, repair=task.repair, add_lease=task.add_lease,
            expected_objects=self._last_pass_objects.get(task.name),
        )

    def completed(self, task: str, ended: float, result: Any) -> None:
        """Remember a completed pass of ``task``."""
        self._last_pass_objects[task] = result.progress.objects_checked


class JobWalkers:
    """The scheduler's walker factory for every kind of job, and its ``on_completed``."""

    def __init__(self, backups: BackupWalkers, maintenance: MaintenanceWalkers) -> None:
        self.backups = backups
        self.maintenance = maintenance
        self.latest_caps = backups.latest_caps
        """Backup job name -> read-only cap of its last completed snapshot (private)."""

    def __call__(self, job: ScheduledJob, throttle: JobThrottle) -> Walker:
        if isinstance(job, Job):
            return self.backups(job, throttle)
        return self.maintenance(job, throttle)

    def completed(self, job: str, ended: float, result: Any) -> None:
        """Tell the walkers of the job's kind that a run of it completed."""
        if hasattr(result, "archive_name"):
            self.backups.completed(job, ended, result)
        else:
            self.maintenance.completed(job, ended, result)
