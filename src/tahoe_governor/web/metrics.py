"""``/metrics``: the governor's state as Prometheus metrics, read at scrape time.

:class:`GovernorCollector` is a custom prometheus-client collector: on every
scrape it asks its *status source* (a zero-argument callable returning a
:class:`~tahoe_governor.status.GovernorStatus`) for a snapshot and
turns it into metric families (:func:`metric_families`). Nothing is copied
into long-lived counters, so the exposition is never staler than the scrape.

Conventions: one prefix (``tahoe_governor_``), base units (bytes, seconds,
ratios of one CPU core), ``_total`` on counters. ``peer`` is the remote TubID,
``nickname`` the server's self-chosen nickname (control characters escaped, as every
display escapes them: :mod:`tahoe_governor.status.display_names`), ``direction`` ``up`` (from this
node) or ``down`` (to this node). Only public status fields are read: no
capability, local path or token ever reaches a label or a value.

Absent values have no sample: an unlimited cap (``UNLIMITED``), an unknown
capacity, an unset budget, a job never completed or not scheduled, a run
without an estimate or an ETA. Prometheus would accept ``+Inf``, but a
Grafana time series with an infinite point loses its y axis; a missing limit
line reads as "no cap" instead, and ``absent(...)`` queries it.

:func:`metrics_resource` builds the ``twisted.web`` resource for ``/metrics``
(never touching prometheus-client's global registry). It renders in the
reactor thread, unlike prometheus-client's ``MetricsResource`` (a WSGI
resource on the thread pool): the status source reads live reactor-owned
objects. It encodes each snapshot once per format for every scraper of it
(:mod:`~tahoe_governor.web.rendered_once`): a node sharing one snapshot per
meter tick among its readers serves a crowd of scrapers with one encoding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

import attrs
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from tahoe_governor.status import (
    CHECK_RESULTS,
    FILE_OUTCOMES,
    JOB_STATES,
    PHASES,
    BackupProgress,
    GovernorStatus,
    JobStatus,
    LinkStatus,
    MaintenancePass,
    PeerStatus,
    QuotaStatus,
    SkipCounts,
)
from tahoe_governor.status.display_names import display_name
from tahoe_governor.web.rendered_once import RenderedOnce

StatusSource = Callable[[], GovernorStatus]
"""Returns a snapshot now; called once per scrape, in the reactor thread."""

PREFIX = "tahoe_governor_"
DIRECTIONS = ("up", "down")


@attrs.frozen
class MetricSpec:
    """One exported metric family: name (with its ``_total`` for counters),
    type, help text and label names."""

    name: str
    kind: Literal["counter", "gauge"]
    help: str
    labels: tuple[str, ...]

    def family(self) -> CounterMetricFamily | GaugeMetricFamily:
        """An empty family of this spec, ready for samples."""
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.help, labels=self.labels)
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)


PEER = ("peer", "nickname")
PEER_DIR = ("peer", "nickname", "direction")
JOB = ("job",)
DIRECTION = ("direction",)
QUOTA = ("scope", "name", "direction")


def _spec(
    name: str, kind: Literal["counter", "gauge"], labels: tuple[str, ...], text: str
) -> MetricSpec:
    return MetricSpec(PREFIX + name, kind, text, labels)


METRICS: tuple[MetricSpec, ...] = (
    # -- the snapshot ---------------------------------------------------------
    _spec("status_timestamp_seconds", "gauge", (), "When the status snapshot was taken."),
    _spec("overrides", "gauge", (),
          "Live limit overrides in force (set from the private page or the command)."),
    # -- peers (the shaper) ---------------------------------------------------
    _spec("peer_bytes_total", "counter", PEER_DIR,
          "Bytes the Foolscap connections to this peer wrote (up) or read (down)."),
    _spec("peer_rate_bytes_per_second", "gauge", PEER_DIR,
          "Smoothed rate to (up) or from (down) this peer (EWMA, 2 s half-life)."),
    _spec("peer_limit_bytes_per_second", "gauge", PEER_DIR,
          "Cap in force for this peer and direction; no sample when unlimited."),
    _spec("peer_queued_bytes", "gauge", PEER_DIR,
          "Bytes the shaper holds back for this peer, waiting for tokens."),
    _spec("peer_wait_seconds_total", "counter", PEER_DIR,
          "Time bytes to (up) or from (down) this peer were held back by a cap."),
    _spec("peer_connections", "gauge", PEER, "Open Foolscap connections to this peer."),
    _spec("peer_connected", "gauge", PEER, "1 while the node is connected to this peer."),
    _spec("peer_auto_rate_bytes_per_second", "gauge", PEER_DIR,
          "The rate an automatic cap (peer.<selector>.up|down = auto) chose for this peer."),
    _spec("peer_rtt_seconds", "gauge", ("peer", "nickname", "direction", "kind"),
          "Round trip of an automatically capped peer's connection, as its sending (up) or "
          "receiving (down) side times it: kind=base (the smallest over ten minutes) or "
          "current."),
    _spec("peer_queueing_delay_seconds", "gauge", PEER_DIR,
          "Current minus base round trip of an automatically capped peer: how long bytes "
          "wait in its line's queues."),
    _spec("peer_target_delay_seconds", "gauge", PEER,
          "The queueing delay an automatic cap steers to."),
    # -- jobs -----------------------------------------------------------------
    _spec("job_state", "gauge", ("job", "state"),
          "1 for the job's current state, 0 for every other state."),
    _spec("job_files_total", "counter", ("job", "outcome"),
          "Files per outcome (uploaded, reused, skipped, failed) since the node started."),
    _spec("job_bytes_total", "counter", JOB,
          "Bytes the job handed to the uploader since the node started."),
    _spec("job_limit_bytes_per_second", "gauge", JOB,
          "The job's upload cap in force (wire bytes/s); no sample when unlimited."),
    _spec("job_limit_source", "gauge", ("job", "source"),
          "1, labelled with the directive or rule that set the job's cap."),
    _spec("job_last_success_timestamp_seconds", "gauge", JOB,
          "End of the job's last completed run; no sample if it never completed."),
    _spec("job_next_start_timestamp_seconds", "gauge", JOB,
          "When the job may next start; no sample while paused or never."),
    _spec("job_window_end_timestamp_seconds", "gauge", JOB,
          "End of the allowed window the job is in; no sample outside one or if unending."),
    _spec("job_retry_timestamp_seconds", "gauge", JOB, "When a failed job is retried."),
    _spec("job_frequency_seconds", "gauge", JOB,
          "How long after a completed run the job is due again."),
    _spec("cpu_usage_ratio", "gauge", JOB, "Measured CPU use of the job, in cores, over 10 s."),
    _spec("cpu_budget_ratio", "gauge", JOB,
          "The job's CPU budget, in cores; no sample without one."),
    # -- the current (or last) run of each job ---------------------------------
    _spec("job_run_phase", "gauge", ("job", "phase"),
          "1 for the run's current phase, 0 for the others."),
    _spec("job_run_suspended", "gauge", JOB,
          "1 while the job's throttle holds all work (outside its window)."),
    _spec("job_run_elapsed_seconds", "gauge", JOB,
          "Time since the run started, suspensions included."),
    _spec("job_run_files_seen", "gauge", JOB, "Files met so far in this run."),
    _spec("job_run_files", "gauge", ("job", "outcome"), "Files of this run per outcome."),
    _spec("job_run_files_in_flight", "gauge", JOB, "Files being hashed or uploaded now."),
    _spec("job_run_estimated_files", "gauge", JOB, "Files the run expects; no sample until known."),
    _spec("job_run_skipped_entries", "gauge", ("job", "reason"),
          "Files and directories of this run not backed up, by reason."),
    _spec("job_run_done_bytes", "gauge", JOB,
          "Bytes of the tree accounted for: reused, skipped, finished and in-flight progress."),
    _spec("job_run_estimated_bytes", "gauge", JOB, "Bytes the run expects; no sample until known."),
    _spec("job_run_uploaded_bytes", "gauge", JOB,
          "Plaintext bytes this run handed to the encoder."),
    _spec("job_run_reused_bytes", "gauge", JOB,
          "Sizes of the files this run reused from the backupdb."),
    _spec("job_run_rate_bytes_per_second", "gauge", JOB,
          "Plaintext bytes handed to the encoder per second, mean over 30 s."),
    _spec("job_run_progress_bytes_per_second", "gauge", JOB,
          "Done bytes per second over 30 s: the pace the ETA assumes."),
    _spec("job_run_eta_seconds", "gauge", JOB,
          "Seconds until the run is done at its current pace; no sample without estimate or pace."),
    # -- maintenance tasks (a task is a job too: job_state and the like cover it) --
    _spec("maintenance_last_success_timestamp_seconds", "gauge", JOB,
          "End of the task's last completed pass; no sample if none completed."),
    _spec("maintenance_objects_total", "counter", ("job", "result"),
          "Objects checked per result (healthy, unhealthy, repaired, unrecoverable, failed) "
          "since the node started."),
    _spec("maintenance_verified_bytes_total", "counter", JOB,
          "Bytes of the objects whose data was verified since the node started."),
    _spec("maintenance_unrecoverable_objects", "gauge", JOB,
          "Objects found unrecoverable by the pass in progress, or else the last pass."),
    _spec("maintenance_pass_number", "gauge", JOB,
          "The number of the task's current (or last) pass in this process."),
    _spec("maintenance_pass_found_objects", "gauge", JOB,
          "Distinct objects the pass has found so far."),
    _spec("maintenance_pass_checked_objects", "gauge", JOB,
          "Objects the pass has checked so far (runs before this one included)."),
    _spec("maintenance_pass_verified_objects", "gauge", JOB,
          "Objects whose data the pass has verified so far."),
    _spec("maintenance_pass_pending_directories", "gauge", JOB,
          "Directories the pass has found and not listed yet."),
    _spec("maintenance_pass_results", "gauge", ("job", "result"),
          "Objects of the pass so far per result."),
    _spec("maintenance_pass_eta_seconds", "gauge", JOB,
          "Seconds until the pass ends at this run's pace; no sample without estimate."),
    _spec("maintenance_last_pass_results", "gauge", ("job", "result"),
          "Objects of the last completed pass per result."),
    # -- the node and its link --------------------------------------------------
    _spec("node_limit_bytes_per_second", "gauge", DIRECTION,
          "Node-wide cap on governed traffic in force; no sample when unlimited."),
    _spec("node_queueing_delay_seconds", "gauge", DIRECTION,
          "Under limit.up (limit.down) = auto: the queueing delay of the node's own uplink "
          "(downlink), the smallest among the peers it exchanges with; no sample otherwise."),
    _spec("link_rate_bytes_per_second", "gauge", DIRECTION,
          "Interface rate, all traffic of the machine."),
    _spec("link_own_rate_bytes_per_second", "gauge", DIRECTION,
          "The governed traffic of this node."),
    _spec("link_capacity_bytes_per_second", "gauge", DIRECTION,
          "Configured or estimated link capacity; no sample when unknown."),
    _spec("link_busy_threshold_bytes_per_second", "gauge", DIRECTION,
          "The busy.* threshold the whole link is kept under; no sample when not configured."),
    # -- per-period quotas (scope node, peer or job; name the selector or the job) --
    _spec("quota_used_bytes", "gauge", QUOTA,
          "Wire bytes counted against the quota in its current calendar period."),
    _spec("quota_limit_bytes", "gauge", QUOTA, "The quota: wire bytes allowed per period."),
    _spec("quota_reset_timestamp_seconds", "gauge", QUOTA,
          "When the quota's period ends and its usage starts again from 0."),
)

METRIC_NAMES: frozenset[str] = frozenset(spec.name for spec in METRICS)
"""Every sample name an exposition can hold (counters with their ``_total``)."""


def _known(value: float | None) -> bool:
    """A value worth a sample: present and finite (unlimited means absent)."""
    return value is not None and math.isfinite(value)


class _Families:
    """The families of one scrape, by short name."""

    def __init__(self) -> None:
        self.by_name: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            spec.name: spec.family() for spec in METRICS
        }

    def add(self, short: str, labels: Iterable[str], value: float | None) -> None:
        if _known(value):
            assert value is not None
            self.by_name[PREFIX + short].add_metric(list(labels), float(value))


def metric_families(status: GovernorStatus) -> list[Metric]:
    """Every metric family of ``status``, in :data:`METRICS` order."""
    out = _Families()
    out.add("status_timestamp_seconds", (), status.at)
    out.add("overrides", (), len(status.overrides))
    for peer in status.peers:
        _add_peer(out, peer)
    for job in status.jobs:
        _add_job(out, job)
    _add_link(out, status.link)
    for quota in status.quotas:
        _add_quota(out, quota)
    return list(out.by_name.values())


def _add_quota(out: _Families, quota: QuotaStatus) -> None:
    labels = (quota.scope, display_name(quota.name), quota.direction)
    out.add("quota_used_bytes", labels, quota.used_bytes)
    out.add("quota_limit_bytes", labels, quota.limit_bytes)
    out.add("quota_reset_timestamp_seconds", labels, quota.resets_at)


def _add_peer(out: _Families, peer: PeerStatus) -> None:
    ids = (peer.tubid, display_name(peer.nickname))
    per_direction = {
        "up": (
            peer.sent_bytes,
            peer.rate_up,
            peer.limit_up,
            peer.queued_up,
            peer.waited_up_seconds,
        ),
        "down": (
            peer.received_bytes,
            peer.rate_down,
            peer.limit_down,
            peer.queued_down,
            peer.waited_down_seconds,
        ),
    }
    for direction, (total, rate, limit, queued, waited) in per_direction.items():
        labels = (*ids, direction)
        out.add("peer_bytes_total", labels, total)
        out.add("peer_rate_bytes_per_second", labels, rate)
        out.add("peer_limit_bytes_per_second", labels, limit)
        out.add("peer_queued_bytes", labels, queued)
        out.add("peer_wait_seconds_total", labels, waited)
    out.add("peer_connections", ids, peer.connections)
    out.add("peer_connected", ids, 1 if peer.connected else 0)
    # Automatic caps only: a peer without one has None here, and None gets no sample.
    for direction, rate, base, current, queueing in (
        ("up", peer.auto_rate, peer.base_rtt_seconds, peer.current_rtt_seconds,
         peer.queueing_delay_seconds),
        ("down", peer.auto_rate_down, peer.base_rtt_down_seconds,
         peer.current_rtt_down_seconds, peer.queueing_delay_down_seconds),
    ):
        out.add("peer_auto_rate_bytes_per_second", (*ids, direction), rate)
        out.add("peer_rtt_seconds", (*ids, direction, "base"), base)
        out.add("peer_rtt_seconds", (*ids, direction, "current"), current)
        out.add("peer_queueing_delay_seconds", (*ids, direction), queueing)
    out.add("peer_target_delay_seconds", ids, peer.target_delay_seconds)


def _add_job(out: _Families, job: JobStatus) -> None:
    name = job.name
    for state in JOB_STATES:
        out.add("job_state", (name, state), 1 if job.state == state else 0)
    if job.kind == "backup":
        for outcome in FILE_OUTCOMES:
            out.add("job_files_total", (name, outcome), job.files_total.get(outcome, 0))
        out.add("job_bytes_total", (name,), job.bytes_total)
    out.add("job_limit_bytes_per_second", (name,), job.limit_bytes_per_second)
    if job.limit_source:
        out.add("job_limit_source", (name, job.limit_source), 1)
    out.add("job_last_success_timestamp_seconds", (name,), job.last_success)
    out.add("job_next_start_timestamp_seconds", (name,), job.next_start)
    out.add("job_window_end_timestamp_seconds", (name,), job.window_end)
    out.add("job_retry_timestamp_seconds", (name,), job.retry_at)
    out.add("job_frequency_seconds", (name,), job.frequency_seconds)
    out.add("cpu_usage_ratio", (name,), job.cpu_usage)
    out.add("cpu_budget_ratio", (name,), job.cpu_budget)
    run = job.progress
    if job.kind == "maintenance":
        _add_maintenance(out, job)
    if not isinstance(run, BackupProgress):
        return
    for phase in PHASES:
        out.add("job_run_phase", (name, phase), 1 if run.phase == phase else 0)
    out.add("job_run_suspended", (name,), 1 if run.suspended else 0)
    out.add("job_run_elapsed_seconds", (name,), run.elapsed_seconds)
    out.add("job_run_files_seen", (name,), run.files_seen)
    run_files = {
        "uploaded": run.files_uploaded,
        "reused": run.files_reused,
        "skipped": run.files_skipped,
        "failed": run.files_failed,
    }
    for outcome in FILE_OUTCOMES:
        out.add("job_run_files", (name, outcome), run_files[outcome])
    out.add("job_run_files_in_flight", (name,), run.files_in_flight)
    out.add("job_run_estimated_files", (name,), run.estimated_files)
    for reason in attrs.fields_dict(SkipCounts):
        out.add("job_run_skipped_entries", (name, reason), getattr(run.skipped, reason))
    out.add("job_run_done_bytes", (name,), run.bytes_done)
    out.add("job_run_estimated_bytes", (name,), run.estimated_bytes)
    out.add("job_run_uploaded_bytes", (name,), run.bytes_uploaded)
    out.add("job_run_reused_bytes", (name,), run.bytes_reused)
    out.add("job_run_rate_bytes_per_second", (name,), run.rate_bytes_per_second)
    out.add("job_run_progress_bytes_per_second", (name,), run.progress_bytes_per_second)
    out.add("job_run_eta_seconds", (name,), run.eta_seconds)


def _add_maintenance(out: _Families, job: JobStatus) -> None:
    name = job.name
    out.add("maintenance_last_success_timestamp_seconds", (name,), job.last_success)
    for result in CHECK_RESULTS:
        out.add("maintenance_objects_total", (name, result), job.files_total.get(result, 0))
    out.add("maintenance_verified_bytes_total", (name,), job.bytes_total)
    last, run = job.last_pass, job.progress
    if last is not None:
        for result in CHECK_RESULTS:
            out.add("maintenance_last_pass_results", (name, result), last.result(result))
    latest = run if isinstance(run, MaintenancePass) else last
    if latest is not None:
        out.add("maintenance_unrecoverable_objects", (name,), latest.result("unrecoverable"))
    if not isinstance(run, MaintenancePass):
        return
    out.add("maintenance_pass_number", (name,), run.pass_number)
    out.add("maintenance_pass_found_objects", (name,), run.objects_found)
    out.add("maintenance_pass_checked_objects", (name,), run.objects_checked)
    out.add("maintenance_pass_verified_objects", (name,), run.verified)
    out.add("maintenance_pass_pending_directories", (name,), run.directories_pending)
    for result in CHECK_RESULTS:
        out.add("maintenance_pass_results", (name, result), run.result(result))
    out.add("maintenance_pass_eta_seconds", (name,), run.eta_seconds)


def _add_link(out: _Families, link: LinkStatus) -> None:
    per_direction = {
        "up": (link.node_limit_up, link.rate_up, link.own_up, link.capacity_up, link.busy_up),
        "down": (
            link.node_limit_down,
            link.rate_down,
            link.own_down,
            link.capacity_down,
            link.busy_down,
        ),
    }
    for direction, (limit, rate, own, capacity, busy) in per_direction.items():
        out.add("node_limit_bytes_per_second", (direction,), limit)
        out.add("link_rate_bytes_per_second", (direction,), rate)
        out.add("link_own_rate_bytes_per_second", (direction,), own)
        out.add("link_capacity_bytes_per_second", (direction,), capacity)
        out.add("link_busy_threshold_bytes_per_second", (direction,), busy)
    out.add("node_queueing_delay_seconds", ("up",), link.node_queueing_delay_up_seconds)
    out.add("node_queueing_delay_seconds", ("down",), link.node_queueing_delay_down_seconds)


class GovernorCollector:
    """A prometheus-client collector reading ``status_source`` on each scrape."""

    def __init__(self, status_source: StatusSource) -> None:
        self._status_source = status_source

    def describe(self) -> Iterator[Metric]:
        """The families without samples: registering never calls the source."""
        for spec in METRICS:
            yield spec.family()

    def collect(self) -> Iterator[Metric]:
        yield from metric_families(self._status_source())


class _OneSnapshot:
    """A collector of one snapshot's families: what the encoders read."""

    def __init__(self, status: GovernorStatus) -> None:
        self._status = status

    def collect(self) -> list[Metric]:
        return metric_families(self._status)


class MetricsPage(Resource):
    """``GET /metrics``: the metrics of ``status_source``'s snapshot, in the
    format the scraper asks for (Prometheus text or OpenMetrics), rendered in
    the reactor thread, once per snapshot and format."""

    isLeaf = True
    _log = Logger()

    def __init__(self, status_source: StatusSource) -> None:
        super().__init__()
        self._status_source = status_source
        self._encoded: RenderedOnce[bytes] = RenderedOnce()

    def render_GET(self, request: Request) -> bytes:
        accept = request.getHeader(b"accept")
        encoder, content_type = choose_encoder(accept.decode("latin-1") if accept else "")
        try:
            status = self._status_source()
            body = self._encoded.get((status, content_type),
                                     lambda: encoder(_OneSnapshot(status)))
        except Exception:
            self._log.failure("collecting /metrics failed")
            request.setResponseCode(500)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"collecting the governor's metrics failed; see the node's log\n"
        request.setHeader(b"content-type", content_type.encode("ascii"))
        return body


def metrics_resource(status_source: StatusSource) -> MetricsPage:
    """The ``/metrics`` resource of ``status_source``'s snapshots (and nothing else)."""
    return MetricsPage(status_source)
