"""The status model: what the node shows of itself, and what its owner may ask of it.

Frozen snapshots built at one instant (:mod:`.snapshots`, with a backup run's
progress in :mod:`.backup_progress` and a maintenance pass's in
:mod:`.maintenance_progress`), one way to mark a field private and one
filter that drops private fields (:mod:`.privacy`), and the controls the
private page and the command use (:mod:`.controls`). The jobs build the
snapshots and the web pages, ``/metrics`` and the command read them: both
depend on this package, and it depends on nothing of theirs.
"""

from tahoe_governor.status.archives import ArchiveEntry, JobArchives, RunRecord
from tahoe_governor.status.backup_progress import PHASES, BackupProgress, SkipCounts
from tahoe_governor.status.controls import ControlError, GovernorControls
from tahoe_governor.status.maintenance_progress import (
    CHECK_RESULTS,
    MAINTENANCE_PHASES,
    MaintenancePass,
)
from tahoe_governor.status.privacy import is_private, private_dict, private_field, public_dict
from tahoe_governor.status.snapshots import (
    FILE_OUTCOMES,
    JOB_KINDS,
    JOB_STATES,
    GovernorStatus,
    JobStatus,
    LinkStatus,
    PeerStatus,
    QuotaStatus,
)

__all__ = [
    "ArchiveEntry",
    "JobArchives",
    "RunRecord",
    "CHECK_RESULTS",
    "FILE_OUTCOMES",
    "JOB_KINDS",
    "JOB_STATES",
    "MAINTENANCE_PHASES",
    "MaintenancePass",
    "PHASES",
    "BackupProgress",
    "ControlError",
    "GovernorControls",
    "GovernorStatus",
    "JobStatus",
    "LinkStatus",
    "PeerStatus",
    "QuotaStatus",
    "SkipCounts",
    "is_private",
    "private_dict",
    "private_field",
    "public_dict",
]
