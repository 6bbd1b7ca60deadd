"""Builders of the real status snapshots (``tahoe_governor.status``) for the demo's tests.

The demo reads ``GovernorStatus.at/.peers/.jobs/.job()``,
``JobStatus.name/.state/.progress/.last_success/.last_failure``,
``PeerStatus.tubid/.nickname/.sent_bytes/.rate_up/.limit_up/.connected`` and
the ``BackupProgress`` counts. These builders take just those as keywords and
fill every other field with a neutral value, so the tests state what matters
to them and still hand the demo the very classes a governed node produces.
"""

from __future__ import annotations

from tahoe_governor.status import (
    BackupProgress,
    GovernorStatus,
    JobStatus,
    LinkStatus,
    PeerStatus,
    SkipCounts,
)
from tahoe_governor.throttle import UNLIMITED

__all__ = ["UNLIMITED", "Job", "Peer", "Progress", "Status"]


def Progress(  # noqa: N802 - named after what it stands for in the tests
    *,
    phase: str = "walking",
    elapsed_seconds: float = 0.0,
    files_seen: int = 0,
    files_uploaded: int = 0,
    files_reused: int = 0,
    files_skipped: int = 0,
    files_failed: int = 0,
    bytes_uploaded: int = 0,
    bytes_done: int = 0,
    estimated_files: int | None = None,
    estimated_bytes: int | None = None,
    eta_seconds: float | None = None,
) -> BackupProgress:
    """A ``BackupProgress`` with these counts and nothing else under way."""
    return BackupProgress(
        phase=phase, suspended=False, elapsed_seconds=elapsed_seconds,
        files_seen=files_seen, files_uploaded=files_uploaded, files_reused=files_reused,
        files_skipped=files_skipped, files_failed=files_failed, files_checked=0,
        files_in_flight=0, files_restarted=0, directories_created=0,
        directories_reused=0, directories_skipped=0, directories_checked=0,
        skipped=SkipCounts(unreadable=files_skipped, special=0, symlink=0, undecodable=0),
        excluded=0, bytes_read=bytes_uploaded, bytes_uploaded=bytes_uploaded,
        bytes_reused=max(bytes_done - bytes_uploaded, 0), bytes_done=bytes_done,
        estimated_files=estimated_files, estimated_bytes=estimated_bytes,
        rate_bytes_per_second=0.0, progress_bytes_per_second=0.0, eta_seconds=eta_seconds,
        private_current_paths=(),
    )


def Job(  # noqa: N802
    *,
    name: str,
    state: str,
    progress: BackupProgress | None = None,
    last_success: float | None = None,
    last_failure: str | None = None,
) -> JobStatus:
    """A ``JobStatus`` of an unlimited daily job."""
    return JobStatus(
        name=name, state=state, progress=progress, files_total={}, bytes_total=0,
        limit_bytes_per_second=UNLIMITED, limit_source="", cpu_budget=None, cpu_usage=None,
        last_success=last_success, next_start=None, window_end=None,
        last_failure=last_failure, retry_at=None, frequency_seconds=86400.0,
    )


def Peer(  # noqa: N802
    *,
    tubid: str,
    nickname: str,
    sent_bytes: int = 0,
    rate_up: float = 0.0,
    limit_up: float = UNLIMITED,
    connected: bool = True,
) -> PeerStatus:
    """A ``PeerStatus`` of one connection that received nothing."""
    return PeerStatus(
        tubid=tubid, nickname=nickname, sent_bytes=sent_bytes, received_bytes=0,
        rate_up=rate_up, rate_down=0.0, limit_up=limit_up, limit_down=UNLIMITED,
        queued_up=0, queued_down=0, waited_up_seconds=0.0, waited_down_seconds=0.0,
        connections=1 if connected else 0, connected=connected,
    )


_QUIET_LINK = LinkStatus(
    rate_up=0.0, rate_down=0.0, own_up=0.0, own_down=0.0, capacity_up=None,
    capacity_down=None, busy_up=None, busy_down=None, node_limit_up=UNLIMITED,
    node_limit_down=UNLIMITED,
)


def Status(  # noqa: N802
    *,
    at: float,
    jobs: tuple[JobStatus, ...] = (),
    peers: tuple[PeerStatus, ...] = (),
    nickname: str = "governed-demo",
) -> GovernorStatus:
    """A ``GovernorStatus`` on a quiet, unlimited link."""
    return GovernorStatus(at=at, nickname=nickname, jobs=jobs, peers=peers, link=_QUIET_LINK)
