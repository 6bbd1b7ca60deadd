"""Status snapshots of a governed node: its jobs, its peers and its link at one instant.

What the web pages, ``/metrics`` and the command read: frozen values built at
one instant (:class:`GovernorStatus`), never live objects. Fields that may hold
a capability, a local path or the owner's settings are declared with
:func:`~tahoe_governor.status.privacy.private_field`; everything else is fit
for the public page. Every rate is bytes per second; ``UNLIMITED``
(``math.inf``) means no cap; times are seconds since the epoch.

A job's status is kind-agnostic (state, caps, schedule, failures); only
``progress`` is the kind's own snapshot (:class:`BackupProgress` for a backup
job, :class:`MaintenancePass` for a ``[maintenance]`` task), so another kind
of job fills the same :class:`JobStatus`; ``kind`` names which.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from tahoe_governor.status.archives import RunRecord
from tahoe_governor.status.backup_progress import BackupProgress
from tahoe_governor.status.maintenance_progress import MaintenancePass
from tahoe_governor.status.privacy import private_field

JOB_STATES = ("done", "waiting", "running", "suspended", "paused", "failed")
"""Every user-visible job state (see docs/job-lifecycle.md)."""

FILE_OUTCOMES = ("uploaded", "reused", "skipped", "failed")
"""The outcomes counted per file (``tahoe_governor_job_files_total{outcome}``)."""

JOB_KINDS = ("backup", "maintenance")
"""A ``[backups]`` job, or a ``[maintenance]`` task."""


@attrs.frozen
class JobStatus:
    """One job (a backup job or a maintenance task) at one instant."""

    name: str
    state: str
    """One of :data:`JOB_STATES`."""
    progress: BackupProgress | MaintenancePass | None
    """The run in progress, or the last run of this process; ``None`` if none."""
    files_total: Mapping[str, int]
    """Files per outcome (:data:`FILE_OUTCOMES`, or for a maintenance task
    :data:`~tahoe_governor.status.maintenance_progress.CHECK_RESULTS`) over every run
    since the node started."""
    bytes_total: int
    """Bytes the job handed to the uploader since the node started."""
    limit_bytes_per_second: float
    """The job's upload cap in force (wire bytes/s), ``UNLIMITED`` for none."""
    limit_source: str
    """Which directive or rule set the cap (``b1.bandwidth``, ``override``, ...)."""
    cpu_budget: float | None
    """Share of one core allowed (0.25 = 25 %), ``None`` for no budget."""
    cpu_usage: float | None
    """Measured share of one core over 10 s, ``None`` when not measured."""
    last_success: float | None
    """End of the last completed run (from the state database), ``None`` if never."""
    next_start: float | None
    """When the job may next start (due and in its window); ``None``: paused or never."""
    window_end: float | None
    """End of the current allowed window while inside it; ``None`` if none or unending."""
    last_failure: str | None
    """What went wrong, in words only (no path, no capability): the kind of
    failure that ended the last attempt while the job is ``failed``, and, in
    any state, a state database that refused a run's record (kept in memory
    until written)."""
    retry_at: float | None
    """When a failed job is retried."""
    frequency_seconds: float
    source: str = private_field(default="")
    """The local directory backed up (private)."""
    target: str = private_field(default="")
    """``alias:path`` or directory cap the job backs up to (private)."""
    latest_snapshot_cap: str | None = private_field(default=None)
    """Read-only cap of the last completed snapshot (private)."""
    last_failure_detail: str | None = private_field(default=None)
    """The full error message of the last failure (private: it may name paths)."""
    allowed_times: str = private_field(default="")
    """The allowed times in force, as written (``""``: any time) (private)."""
    settings_overridden: tuple[str, ...] = private_field(default=())
    """Which of allowed_times, frequency and cpu are overridden live, not tahoe.cfg's (private)."""
    recent_runs: tuple[RunRecord, ...] = private_field(default=())
    """The last runs recorded in the state database, newest first (private: a run's
    detail may name paths, its archive name tells when the target was written)."""
    kind: str = "backup"
    """One of :data:`JOB_KINDS`."""
    last_pass: MaintenancePass | None = None
    """A maintenance task's last completed pass (its findings); ``None`` otherwise."""
    held_by: str | None = None
    """Why used-up quotas hold the job (directives and byte counts), ``None`` if none."""
    held_until: float | None = None
    """When the last quota holding the job resets (the end of its period)."""


@attrs.frozen
class PeerStatus:
    """One storage server (remote Tub) the node has talked to."""

    tubid: str
    nickname: str
    sent_bytes: int
    received_bytes: int
    rate_up: float
    rate_down: float
    """Smoothed rates (bytes/s, EWMA with a 2 s half-life)."""
    limit_up: float
    limit_down: float
    """Caps in force for this peer (bytes/s), ``UNLIMITED`` for none."""
    queued_up: int
    queued_down: int
    """Bytes held back by the shaper, waiting for tokens."""
    waited_up_seconds: float
    waited_down_seconds: float
    """Total time bytes to/from this peer were held back."""
    connections: int
    connected: bool
    auto_rate: float | None = None
    """The upload rate an automatic cap (``peer.<selector>.up = auto``) chose (bytes/s);
    ``None`` for a peer without one. The fields below are its measurements (seconds)."""
    base_rtt_seconds: float | None = None
    """The line's base round trip: the smallest over the last ten minutes."""
    current_rtt_seconds: float | None = None
    queueing_delay_seconds: float | None = None
    """Current minus base: how long bytes wait in the line's queues now."""
    target_delay_seconds: float | None = None
    """The queueing delay the controller steers to."""
    auto_rate_down: float | None = None
    """The download rate ``peer.<selector>.down = auto`` chose (bytes/s), ``None`` without."""
    base_rtt_down_seconds: float | None = None
    current_rtt_down_seconds: float | None = None
    queueing_delay_down_seconds: float | None = None
    """Its round trips and queueing delay, as the receiving side times them."""


@attrs.frozen
class QuotaStatus:
    """One per-period quota (``quota.up``, ``peer.<selector>.quota.up``, ``b1.quota``)."""

    scope: str
    """``node``, ``peer`` or ``job``."""
    name: str
    """The peer selector or the job's name (``""`` for the node)."""
    direction: str
    directive: str
    """The tahoe.cfg key that sets it."""
    period: str
    """``day``, ``week`` or ``month`` (calendar, local zone)."""
    used_bytes: int
    limit_bytes: int
    period_start: float
    resets_at: float
    """The end of the period: usage is 0 again from then on."""
    exhausted: bool


@attrs.frozen
class LinkStatus:
    """The link the grid traffic crosses, as measured and configured."""

    rate_up: float
    rate_down: float
    """Interface rates (all traffic, bytes/s)."""
    own_up: float
    own_down: float
    """Our governed traffic (bytes/s)."""
    capacity_up: float | None
    capacity_down: float | None
    """Configured or estimated capacity (bytes/s); ``None`` when unknown."""
    busy_up: float | None
    busy_down: float | None
    """The ``busy.*`` threshold (bytes/s) when configured."""
    node_limit_up: float
    node_limit_down: float
    """Node-wide caps in force (bytes/s), ``UNLIMITED`` for none."""
    node_auto_rate_up: float | None = None
    node_auto_rate_down: float | None = None
    """Under ``limit.up`` (``.down``) ``= auto``: the rate its delay controller chose (bytes/s)."""
    node_queueing_delay_up_seconds: float | None = None
    node_queueing_delay_down_seconds: float | None = None
    """Under ``limit.up`` (``.down``) ``= auto``: the queueing delay of the node's own
    uplink (downlink) now, ``None`` if not measured."""


@attrs.frozen
class GovernorStatus:
    """Everything a page, a scrape or ``tahoe-governor status`` shows, at instant ``at``."""

    at: float
    nickname: str
    jobs: tuple[JobStatus, ...]
    peers: tuple[PeerStatus, ...]
    link: LinkStatus
    overrides: tuple[str, ...] = private_field(default=())
    """Private: overrides in force, as ``"peer dsl up = 100kbps"`` (the owner's
    selectors and rates; the private page shows them, ``/metrics`` only their count)."""
    quotas: tuple[QuotaStatus, ...] = ()
    """Every configured quota: usage, limit and reset time."""
    recovery_sheet_reminder: str | None = private_field(default=None)
    """Private: why the owner should print the recovery sheet, ``None`` once done (see
    :mod:`tahoe_governor.policy.recovery_reminder`)."""

    def job(self, name: str) -> JobStatus:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)
