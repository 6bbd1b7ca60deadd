"""Realistic governor status snapshots for the metrics tests, with secrets planted
in every private field so a test can prove none of them is exported."""

from __future__ import annotations

from tahoe_governor.status import (
    BackupProgress,
    GovernorStatus,
    JobStatus,
    LinkStatus,
    PeerStatus,
    RunRecord,
    SkipCounts,
)
from tahoe_governor.throttle import UNLIMITED

DSL_TUBID = "v2wrn6mqxdnc6qmeigpm4kp5iy6gqm3p"
FAST_TUBID = "ixmlg3hq2uhtu7tdjcnqvwquoq6tm2nj"

SECRETS = (
    "URI:DIR2:ovjfxz6mlo7h5rmhd4jbhxwnba:bmtcqbkjgr2y4wjwcjwjdicqtxmwdyarxw6vhfd5mzuvj3bkqyfa",
    "URI:DIR2-RO:qk3v6sbdiaaweu7grzrrtg7eqm:sjn5z7g7h4ohdkkjmwzyvlb3z6c4gbbvzy5kszq3k6rgxikvzmea",
    "/home/alice/Pictures/2019/secret-holiday.jpg",
    "/Volumes/BackupDrive/Pictures",
    "backup:pictures",
    "c3ktdG9rZW4tbm90LWZvci1sYWJlbHM",
)
"""Strings that must never appear in /metrics: caps, local paths, the target
alias and a token-like value."""


def running_progress(elapsed: float, rate: float = 25_000.0) -> BackupProgress:
    """A walk in progress ``elapsed`` seconds in, handing ``rate`` bytes/s to the
    encoder, with an estimate (so an ETA) and local paths in flight."""
    uploaded = int(rate * elapsed)
    reused = 400_000_000
    estimated = 2_000_000_000
    done = reused + uploaded
    return BackupProgress(
        phase="walking",
        suspended=False,
        elapsed_seconds=elapsed,
        files_seen=1200 + int(elapsed),
        files_uploaded=40 + int(elapsed // 10),
        files_reused=1100,
        files_skipped=3,
        files_failed=0,
        files_checked=12,
        files_in_flight=2,
        files_restarted=1,
        directories_created=14,
        directories_reused=80,
        directories_skipped=1,
        directories_checked=2,
        skipped=SkipCounts(unreadable=1, special=1, symlink=2, undecodable=0),
        excluded=5,
        bytes_read=uploaded + 10_000_000,
        bytes_uploaded=uploaded,
        bytes_reused=reused,
        bytes_done=done,
        estimated_files=5000,
        estimated_bytes=estimated,
        rate_bytes_per_second=rate,
        progress_bytes_per_second=rate,
        eta_seconds=(estimated - done) / rate,
        private_current_paths=(SECRETS[2], SECRETS[3] + "/2020/beach.jpg"),
    )


def example_status(at: float = 1_790_000_000.0, elapsed: float = 120.0) -> GovernorStatus:
    """One running job with a cap and a CPU budget, one paused job without
    either, a capped DSL peer and an unlimited fast peer, a link with a known
    capacity and busy threshold. Counters grow with ``elapsed``."""
    photos = JobStatus(
        name="photos",
        state="running",
        progress=running_progress(elapsed),
        files_total={"uploaded": 140, "reused": 9000, "skipped": 7, "failed": 1},
        bytes_total=5_000_000_000 + int(25_000 * elapsed),
        limit_bytes_per_second=25_000.0,
        limit_source="photos.bandwidth",
        cpu_budget=0.25,
        cpu_usage=0.21,
        last_success=at - 7 * 86400,
        next_start=at,
        window_end=at + 6 * 3600,
        last_failure=None,
        retry_at=None,
        frequency_seconds=7 * 86400,
        source=SECRETS[3],
        target=SECRETS[4],
        latest_snapshot_cap=SECRETS[1],
        recent_runs=(
            RunRecord(started=at - 600, ended=None, outcome="running", files_seen=1200,
                      files_uploaded=300, files_reused=850, files_skipped=3, files_failed=1,
                      bytes_uploaded=1_500_000, detail=None),
            RunRecord(started=at - 7 * 86400 - 3600, ended=at - 7 * 86400, outcome="failed",
                      files_seen=10, files_uploaded=2, files_reused=8, files_skipped=0,
                      files_failed=0, bytes_uploaded=20_000,
                      detail=f"cannot read {SECRETS[2]}"),
        ),
    )
    documents = JobStatus(
        name="documents",
        state="paused",
        progress=None,
        files_total={"uploaded": 12},
        bytes_total=3_000_000,
        limit_bytes_per_second=UNLIMITED,
        limit_source="",
        cpu_budget=None,
        cpu_usage=None,
        last_success=None,
        next_start=None,
        window_end=None,
        last_failure=None,
        retry_at=None,
        frequency_seconds=86400,
        source="/home/alice/Documents",
        target=SECRETS[0],
        latest_snapshot_cap=None,
    )
    dsl = PeerStatus(
        tubid=DSL_TUBID,
        nickname="parents-dsl",
        sent_bytes=int(24_000 * elapsed),
        received_bytes=int(800 * elapsed),
        rate_up=24_100.0,
        rate_down=810.0,
        limit_up=25_000.0,
        limit_down=UNLIMITED,
        queued_up=16_384,
        queued_down=0,
        waited_up_seconds=0.6 * elapsed,
        waited_down_seconds=0.0,
        connections=1,
        connected=True,
    )
    fast = PeerStatus(
        tubid=FAST_TUBID,
        nickname="office",
        sent_bytes=int(60_000 * elapsed),
        received_bytes=int(2_000 * elapsed),
        rate_up=61_000.0,
        rate_down=1_900.0,
        limit_up=UNLIMITED,
        limit_down=1_000_000.0,
        queued_up=0,
        queued_down=0,
        waited_up_seconds=0.0,
        waited_down_seconds=0.01 * elapsed,
        connections=2,
        connected=True,
    )
    link = LinkStatus(
        rate_up=110_000.0,
        rate_down=400_000.0,
        own_up=85_100.0,
        own_down=2_710.0,
        capacity_up=125_000.0,
        capacity_down=1_000_000.0,
        busy_up=100_000.0,
        busy_down=None,
        node_limit_up=75_000.0,
        node_limit_down=UNLIMITED,
    )
    return GovernorStatus(
        at=at,
        nickname="alice-laptop",
        jobs=(photos, documents),
        peers=(dsl, fast),
        link=link,
        overrides=(f"job photos target {SECRETS[0]}",),
        recovery_sheet_reminder="The recovery sheet has never been printed: run "
                                "'tahoe-governor recovery-sheet NODEDIR'.",
    )
