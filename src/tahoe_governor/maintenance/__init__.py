"""Maintenance tasks: keep the archives alive by checking, verifying, repairing, renewing leases.

A ``[maintenance]`` task walks everything reachable from its target in
*passes*, one small step at a time (:mod:`.walker`), with the pass's frontier
and findings in the state database (:mod:`.records`), through Tahoe's own
checker, verifier and repairer on the node's objects (:mod:`.grid`). It is
scheduled, suspended, paused and throttled as a backup job is: the backup
layer's scheduler, runner and lifecycle run its walker (the node layer makes
it), so this package depends on nothing of theirs.
"""

from tahoe_governor.maintenance.grid import (
    GridUnavailable,
    MaintenanceError,
    MaintenanceGrid,
    NodeMaintenanceGrid,
    TargetUnavailable,
)
from tahoe_governor.maintenance.records import Finding, GridEntry, MaintenanceRecords
from tahoe_governor.maintenance.walker import MaintenanceResult, MaintenanceWalker

__all__ = [
    "Finding",
    "GridEntry",
    "GridUnavailable",
    "MaintenanceError",
    "MaintenanceGrid",
    "MaintenanceRecords",
    "MaintenanceResult",
    "MaintenanceWalker",
    "NodeMaintenanceGrid",
    "TargetUnavailable",
]
