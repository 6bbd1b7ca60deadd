"""The backup layer: the node-side ``tahoe backup`` and the job's source-side throttle.

One public import surface::

    from tahoe_governor.backup import (
        BackupWalker, JobThrottle, resolve_target_in_nodedir, open_backupdb, backupdb_path,
    )

    throttle = JobThrottle(reactor, wire_rate=25_000)          # the job's cap, wire bytes/s
    walker = BackupWalker(
        reactor=reactor, client=client, source="/home/me/Pictures",
        target=resolve_target_in_nodedir("backup:pictures", nodedir),
        backupdb=open_backupdb(backupdb_path(nodedir)),
        throttle=throttle, exclude=["*.tmp"],
    )
    d = walker.run()            # -> BackupResult, or BackupCancelled / BackupFailed / ...
    walker.progress()           # a frozen tahoe_governor.status.BackupProgress
    throttle.suspend(); throttle.resume(); throttle.abort_in_flight(); walker.cancel()
"""

from tahoe_governor.backup.backupdb import (
    BACKUPDB_RELPATH,
    BackupDBError,
    backupdb_path,
    open_backupdb,
)
from tahoe_governor.backup.job_throttle import CpuGate, InFlightAborted, JobThrottle, Lease
from tahoe_governor.backup.target import (
    BackupTarget,
    TargetError,
    archive_name,
    resolve_target,
    resolve_target_in_nodedir,
)
from tahoe_governor.backup.tree import ExcludePatterns, TreeEstimate, estimate_tree
from tahoe_governor.backup.uploadable import GovernedUploadable
from tahoe_governor.backup.walker import (
    DEFAULT_CONCURRENCY,
    BackupCancelled,
    BackupFailed,
    BackupResult,
    BackupWalker,
    SourceError,
)

__all__ = [
    "BACKUPDB_RELPATH",
    "BackupCancelled",
    "BackupDBError",
    "BackupFailed",
    "BackupResult",
    "BackupTarget",
    "BackupWalker",
    "CpuGate",
    "DEFAULT_CONCURRENCY",
    "ExcludePatterns",
    "GovernedUploadable",
    "InFlightAborted",
    "JobThrottle",
    "Lease",
    "SourceError",
    "TargetError",
    "TreeEstimate",
    "archive_name",
    "backupdb_path",
    "estimate_tree",
    "open_backupdb",
    "resolve_target",
    "resolve_target_in_nodedir",
]
