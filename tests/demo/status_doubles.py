"""Test doubles of the status snapshots (``tahoe_governor.backup.status``) the demo reads.

The real classes come with the metrics layer; these carry the same names for
exactly the fields the demo reads (``GovernorStatus.at/.peers/.jobs/.job()``,
``JobStatus.name/.state/.progress/.last_success/.last_failure``,
``PeerStatus.tubid/.nickname/.sent_bytes/.rate_up/.limit_up/.connected`` and the
``BackupProgress`` counts), so a test built on them reads like one built on
the real snapshots.
"""

from __future__ import annotations

import math

import attrs

UNLIMITED = math.inf


@attrs.frozen(kw_only=True)
class Progress:
    """Stands for ``BackupProgress``."""

    phase: str = "walking"
    elapsed_seconds: float = 0.0
    files_seen: int = 0
    files_uploaded: int = 0
    files_reused: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    bytes_uploaded: int = 0
    bytes_done: int = 0
    estimated_files: int | None = None
    estimated_bytes: int | None = None
    eta_seconds: float | None = None


@attrs.frozen(kw_only=True)
class Job:
    """Stands for ``JobStatus``."""

    name: str
    state: str
    progress: Progress | None = None
    last_success: float | None = None
    last_failure: str | None = None


@attrs.frozen(kw_only=True)
class Peer:
    """Stands for ``PeerStatus``."""

    tubid: str
    nickname: str
    sent_bytes: int = 0
    rate_up: float = 0.0
    limit_up: float = UNLIMITED
    connected: bool = True


@attrs.frozen(kw_only=True)
class Status:
    """Stands for ``GovernorStatus``."""

    at: float
    jobs: tuple[Job, ...] = ()
    peers: tuple[Peer, ...] = ()
    nickname: str = "governed-demo"

    def job(self, name: str) -> Job:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)
