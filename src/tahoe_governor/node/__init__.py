"""Node integration: a Tahoe-LAFS client node run in-process, governed.

Reads tahoe.cfg with the ``[backups]`` and ``[bandwidth]`` sections accepted,
forces Foolscap for storage, hands every storage Tub to the shaper, keeps the
log Tub on loopback, runs stop hooks before stopping, mounts extra web
resources, and keeps Tahoe's pidfile discipline (``process``).
"""

from tahoe_governor.node.client import GovernedClient, create_governed_client
from tahoe_governor.node.config import (
    GOVERNOR_SECTIONS,
    GovernedConfig,
    GovernedConfigError,
    GovernorSections,
    read_governed_config,
)
from tahoe_governor.node.stopping import StopHookOutcome, StopHooks
from tahoe_governor.node.tubs import TubShaper
from tahoe_governor.node.webroot import MountError

__all__ = [
    "GOVERNOR_SECTIONS",
    "GovernedClient",
    "GovernedConfig",
    "GovernedConfigError",
    "GovernorSections",
    "MountError",
    "StopHookOutcome",
    "StopHooks",
    "TubShaper",
    "create_governed_client",
    "read_governed_config",
]
