"""An in-memory GovernorControls for the web and command tests.

It keeps state and validates input as the node's real controls do: an
unknown job, a malformed rate, a job cap on the download direction or an
unknown peer selector raise ControlError and change nothing. Its snapshot
has private fields with realistic capabilities and paths, so tests can check
that they stay off the public page.
"""

from __future__ import annotations

import math
from zoneinfo import ZoneInfo

import attrs
from twisted.internet.defer import Deferred, fail, succeed

from tahoe_governor.policy.allowed_times import AllowedTimes
from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.policy.job_settings import parse_job_setting
from tahoe_governor.policy.overrides import LimitKey
from tahoe_governor.policy.units import RATE_EXPECTED, parse_rate
from tahoe_governor.status import (
    ArchiveEntry,
    BackupProgress,
    ControlError,
    GovernorStatus,
    JobArchives,
    JobStatus,
    LinkStatus,
    PeerStatus,
    QuotaStatus,
    RunRecord,
    SkipCounts,
)

UNLIMITED = math.inf

PHOTOS_SOURCE = "/home/alice/Pictures"
PHOTOS_TARGET = (
    "URI:DIR2:ry5ztmefxf7pfhc4ylozhcuo4a:3s4zhyj3ikd7s6t4xyttdyfukyzl2o3o3rgnv6xx3c7zfuveqh7a"
)
PHOTOS_SNAPSHOT = (
    "URI:DIR2-RO:b7sr5qsifnicca7cbk3rhrhbvq:3s4zhyj3ikd7s6t4xyttdyfukyzl2o3o3rgnv6xx3c7zfuveqh7a"
)
MAIL_SOURCE = "/srv/mail/archive"
MAIL_TARGET = "backup:mail"
IN_FLIGHT_PATH = "/home/alice/Pictures/2026/IMG_0042.jpg"
PARENTS_TUBID = "rpiw4n3ffwb2xuylahnyqwunrqzmrgwk"
FRIEND_TUBID = "kfyg4hbdk3mq5ga6xhzrtxs7o7ffzqjd"

SECRETS = (PHOTOS_SOURCE, PHOTOS_TARGET, PHOTOS_SNAPSHOT, MAIL_SOURCE, MAIL_TARGET,
           IN_FLIGHT_PATH, "URI:", "/home/", "/srv/")
"""Strings that must never appear on the public page or in its JSON."""

NOW = 1_795_000_000.0
"""The snapshot's instant (2026-11-18)."""

PHOTOS_RUN = RunRecord(
    started=NOW - 6 * 86400 - 3600, ended=NOW - 6 * 86400, outcome="completed",
    files_seen=1154, files_uploaded=300, files_reused=850, files_skipped=3, files_failed=1,
    bytes_uploaded=1_500_000_000, detail="2026-11-12_01:46:40Z")
"""Photos' last completed run (it linked archive ``2026-11-12_01:46:40Z``)."""

PHOTOS_ARCHIVES = JobArchives(
    job="photos", keep_rule="1 last",
    archives=(
        ArchiveEntry("2026-11-12_01:46:40Z", NOW - 6 * 86400, True, PHOTOS_RUN, True,
                     ("last: one of the 1 newest",)),
        ArchiveEntry("2026-11-01_10:00:00Z", NOW - 17 * 86400 + 32_000, False, None, False,
                     ("no kind of 1 last keeps it",)),
    ))
"""Photos' archives on the grid: the last run's, and an older one made by tahoe backup."""


def running_progress() -> BackupProgress:
    return BackupProgress(
        phase="walking", suspended=False, elapsed_seconds=600.0,
        files_seen=1200, files_uploaded=300, files_reused=850, files_skipped=3,
        files_failed=1, files_checked=0, files_in_flight=1, files_restarted=0,
        directories_created=4, directories_reused=40, directories_skipped=0,
        directories_checked=0, skipped=SkipCounts(unreadable=1, symlink=2), excluded=7,
        bytes_read=3_000_000_000, bytes_uploaded=1_500_000_000, bytes_reused=1_400_000_000,
        bytes_done=2_900_000_000, estimated_files=2000, estimated_bytes=5_000_000_000,
        rate_bytes_per_second=24_000.0, progress_bytes_per_second=80_000.0,
        eta_seconds=26_250.0, private_current_paths=(IN_FLIGHT_PATH,),
    )


@attrs.define
class _Job:
    name: str
    state: str
    source: str
    target: str
    snapshot: str | None
    progress: BackupProgress | None
    in_window: bool
    limit: float
    limit_source: str
    last_success: float | None
    next_start: float | None


class InMemoryControls:
    """GovernorControls over a small fixed node: jobs ``photos`` and ``mail``,
    peers ``parents`` (capped) and ``friend``."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now
        self.jobs = {
            "photos": _Job("photos", "running", PHOTOS_SOURCE, PHOTOS_TARGET, PHOTOS_SNAPSHOT,
                           running_progress(), True, 25_000.0, "photos.bandwidth",
                           now - 6 * 86400, None),
            "mail": _Job("mail", "waiting", MAIL_SOURCE, MAIL_TARGET, None, None, False,
                         UNLIMITED, "none", None, now + 5 * 3600),
        }
        self.peers = {"parents": PARENTS_TUBID, "friend": FRIEND_TUBID}
        self.peer_limits: dict[tuple[str, str], float] = {(PARENTS_TUBID, "up"): 25_000.0}
        self.node_limits = {"up": 75_000.0, "down": UNLIMITED}
        self.overrides: dict[LimitKey, str] = {}
        self.calls: list[tuple[object, ...]] = []
        self.recovery_sheet_reminder: str | None = None
        self.grid_error: Exception | None = None
        """What reading the grid fails with (None: it works)."""
        self.peer_rates = {PARENTS_TUBID: (24_500.0, 800.0), FRIEND_TUBID: (40_000.0, 1_200.0)}
        self.job_settings: dict[tuple[str, str], str] = {}
        self.reload_refusal: str | None = None
        """Set: ``reload`` is refused with this message (an invalid tahoe.cfg)."""
        self.quotas: tuple[QuotaStatus, ...] = ()
        self.held: dict[str, tuple[str, float]] = {}
        """Job -> (why a used-up quota holds it, when that quota resets)."""

    # -- GovernorControls ---------------------------------------------------

    def status(self) -> GovernorStatus:
        return GovernorStatus(
            at=self.now,
            nickname="alice-laptop",
            jobs=tuple(self._job_status(j) for j in self.jobs.values()),
            peers=tuple(self._peer_status(nick, tubid) for nick, tubid in self.peers.items()),
            link=LinkStatus(
                rate_up=90_000.0, rate_down=30_000.0, own_up=64_500.0, own_down=2_000.0,
                capacity_up=125_000.0, capacity_down=None, busy_up=100_000.0, busy_down=None,
                node_limit_up=self._node_limit("up"), node_limit_down=self._node_limit("down"),
            ),
            overrides=tuple(f"{key} = {rate}" for key, rate in self.overrides.items()) + tuple(
                f"job {job} {setting} = {value}"
                for (job, setting), value in sorted(self.job_settings.items())),
            recovery_sheet_reminder=self.recovery_sheet_reminder,
            quotas=self.quotas,
        )

    def archives(self, job: str) -> Deferred[JobArchives]:
        self._job(job)
        if self.grid_error is not None:
            return fail(self.grid_error)
        return succeed(PHOTOS_ARCHIVES if job == "photos" else JobArchives(
            job=job, keep_rule=None,
            archives=(ArchiveEntry("2026-11-17_23:00:00Z", NOW - 86400 + 3200, True, None,
                                   None),)))

    def pause(self, job: str) -> None:
        self._job(job).state = "paused"
        self.calls.append(("pause", job))

    def resume(self, job: str) -> None:
        found = self._job(job)
        if found.state == "paused":
            found.state = "running" if found.in_window else "waiting"
        self.calls.append(("resume", job))

    def run_now(self, job: str, force: bool = False) -> None:
        found = self._job(job)
        if found.state == "paused":
            raise ControlError(f"job {job!r} is paused: resume it before asking it to run")
        found.state = "running" if (force or found.in_window) else "waiting"
        self.calls.append(("run_now", job, force))

    def set_job_setting(self, job: str, setting: str, value: str | None) -> None:
        """As the node's: validated as tahoe.cfg's value; new allowed times move the job
        in or out of its window now (the snapshot's instant)."""
        found = self._job(job)
        if value is None:
            if (job, setting) not in self.job_settings:
                raise ControlError(f"no override of job {job!r} {setting} to clear")
            del self.job_settings[(job, setting)]
        else:
            try:
                parsed = parse_job_setting(setting, value, ZoneInfo("UTC"))
            except ValueError as e:
                raise ControlError(f"job {job!r}: {e}") from None
            self.job_settings[(job, setting)] = value
            if isinstance(parsed, AllowedTimes) and found.state in ("running", "waiting"):
                found.in_window = parsed.contains(self.now)
                found.state = "running" if found.in_window else "waiting"
        self.calls.append(("set_job_setting", job, setting, value))

    def reload(self) -> str:
        self.calls.append(("reload",))
        if self.reload_refusal is not None:
            raise ControlError(self.reload_refusal)
        return "Reloaded tahoe.cfg: nothing changed in [backups] or [bandwidth]."

    def set_limit(self, scope: str, name: str, direction: str, rate: str | None) -> None:
        try:
            key = LimitKey(scope, name, direction)  # type: ignore[arg-type]
        except ValueError as e:
            raise ControlError(str(e)) from None
        if scope == "job":
            self._job(name)
        elif scope == "peer" and name not in self.peers and name not in self.peers.values():
            raise ControlError(f"unknown peer {name!r}: expected a TubID or one of the "
                               f"nicknames {', '.join(sorted(self.peers))}")
        if rate is None:
            if key not in self.overrides:
                raise ControlError(f"no override of {key} to clear")
            del self.overrides[key]
        else:
            try:
                parsed = parse_rate(rate)
            except ValueSyntaxError as e:
                raise ControlError(f"rate {rate!r}: expected {e.expected}") from None
            if parsed.kind == "percent":
                raise ControlError(f"rate {rate!r}: a percentage needs a known capacity; "
                                   f"expected {RATE_EXPECTED}")
            self.overrides[key] = rate
        self.calls.append(("set_limit", scope, name, direction, rate))

    # -- internals ----------------------------------------------------------

    def _job(self, name: str) -> _Job:
        if name not in self.jobs:
            raise ControlError(f"unknown job {name!r}: expected one of {', '.join(self.jobs)}")
        return self.jobs[name]

    def _override_rate(self, key: LimitKey) -> float | None:
        text = self.overrides.get(key)
        if text is None:
            return None
        resolved = parse_rate(text).resolve(None)
        return UNLIMITED if resolved is None else resolved

    def _node_limit(self, direction: str) -> float:
        found = self._override_rate(LimitKey("node", "", direction))  # type: ignore[arg-type]
        return self.node_limits[direction] if found is None else found

    def _job_status(self, job: _Job) -> JobStatus:
        override = self._override_rate(LimitKey("job", job.name, "up"))
        paused = job.state == "paused"
        return JobStatus(
            name=job.name, state=job.state, progress=job.progress,
            files_total={"uploaded": 300, "reused": 850, "skipped": 3, "failed": 1}
            if job.progress else {"uploaded": 0, "reused": 0, "skipped": 0, "failed": 0},
            bytes_total=job.progress.bytes_uploaded if job.progress else 0,
            limit_bytes_per_second=job.limit if override is None else override,
            limit_source=job.limit_source if override is None else "override",
            cpu_budget=0.25 if job.name == "photos" else None,
            cpu_usage=0.21 if job.state == "running" else None,
            last_success=job.last_success,
            next_start=None if paused else job.next_start,
            window_end=self.now + 3 * 3600 if job.in_window else None,
            last_failure=None, retry_at=None, frequency_seconds=7 * 86400.0,
            source=job.source, target=job.target, latest_snapshot_cap=job.snapshot,
            allowed_times=self.job_settings.get((job.name, "allowed_times"), "2200-0600"),
            settings_overridden=tuple(s for (j, s) in self.job_settings if j == job.name),
            recent_runs=(PHOTOS_RUN,) if job.name == "photos" else (),
            held_by=self.held.get(job.name, (None, None))[0],
            held_until=self.held.get(job.name, (None, None))[1],
        )

    def _peer_status(self, nickname: str, tubid: str) -> PeerStatus:
        limits = {}
        for direction in ("up", "down"):
            found = None
            for selector in (nickname, tubid):
                found = self._override_rate(LimitKey("peer", selector, direction))  # type: ignore[arg-type]
                if found is not None:
                    break
            limits[direction] = (found if found is not None
                                 else self.peer_limits.get((tubid, direction), UNLIMITED))
        up, down = self.peer_rates[tubid]
        return PeerStatus(
            tubid=tubid, nickname=nickname, sent_bytes=900_000_000, received_bytes=4_000_000,
            rate_up=up, rate_down=down, limit_up=limits["up"], limit_down=limits["down"],
            queued_up=16_384, queued_down=0, waited_up_seconds=812.5, waited_down_seconds=0.0,
            connections=1, connected=True,
        )


QUOTA_RESET = NOW + 5 * 86400
"""When the example quotas reset (their month ends)."""


def with_quotas(controls: InMemoryControls) -> InMemoryControls:
    """``controls`` with a node upload quota 6 % used and the mail job's own quota used
    up, holding it until :data:`QUOTA_RESET`."""
    month_start = NOW - 25 * 86400
    controls.quotas = (
        QuotaStatus(scope="node", name="", direction="up", directive="quota.up",
                    period="month", used_bytes=12_000_000_000, limit_bytes=200_000_000_000,
                    period_start=month_start, resets_at=QUOTA_RESET, exhausted=False),
        QuotaStatus(scope="job", name="mail", direction="up", directive="mail.quota",
                    period="month", used_bytes=50_000_000_000, limit_bytes=50_000_000_000,
                    period_start=month_start, resets_at=QUOTA_RESET, exhausted=True),
    )
    controls.held["mail"] = (
        "mail.quota = 50GB/month used up (50000000000 of 50000000000 bytes)", QUOTA_RESET)
    return controls
