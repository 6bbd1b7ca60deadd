"""The parts of a status page built from public fields: job cards, the peer
table, the quotas, the link summary and the rate charts.

Both pages use them; the private page adds its details and controls beside
them. Nothing here reads a private field of a snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import tzinfo
from typing import Any

import attrs
from twisted.web.template import Tag, tags

from tahoe_governor.status import (
    BackupProgress,
    GovernorStatus,
    JobStatus,
    LinkStatus,
    MaintenancePass,
    PeerStatus,
    QuotaStatus,
)
from tahoe_governor.web.human_units import (
    auto_note,
    format_bytes,
    format_instant,
    format_seconds,
    format_speed,
    fraction_done,
    node_caps,
)
from tahoe_governor.web.maintenance_sections import maintenance_rows, pass_fraction
from tahoe_governor.web.rate_chart import lines_from_samples, rate_chart
from tahoe_governor.web.rate_history import RateHistory, peer_label


def definition_list(rows: Sequence[tuple[str, Any]]) -> Tag:
    """``<dl>`` of (term, value) rows; a row whose value is ``None`` is left out."""
    dl = tags.dl()
    for term, value in rows:
        if value is not None:
            dl(tags.dt(term), tags.dd(value))
    return dl


def progress_bar(fraction: float | None) -> Tag | str:
    if fraction is None:
        return ""
    percent = f"{fraction * 100:.1f}%"
    return tags.div(tags.span(style=f"width: {percent}"), class_="bar", role="progressbar",
                    title=percent, **{"aria-valuenow": f"{fraction * 100:.0f}",
                                      "aria-valuemin": "0", "aria-valuemax": "100"})


_NO_NEXT_START = {"running": "running now", "paused": "none while paused",
                  "suspended": "at the next allowed time"}


def job_rows(job: JobStatus, now: float, tz: tzinfo) -> list[tuple[str, Any]]:
    """The public facts of a job, as rows of a definition list."""
    rows = maintenance_rows(job) if job.kind == "maintenance" else _backup_rows(job)
    rows += [
        ("Last completed", format_instant(job.last_success, now, tz)),
        ("Next start", format_instant(job.next_start, now, tz, never=_NO_NEXT_START.get(
            job.state, "not scheduled"))),
        ("Window ends", format_instant(job.window_end, now, tz) if job.window_end else None),
        ("Frequency", f"every {format_seconds(job.frequency_seconds)}"),
    ]
    if job.cpu_budget is not None or job.cpu_usage is not None:
        used = "?" if job.cpu_usage is None else f"{job.cpu_usage * 100:.0f}%"
        budget = "no budget" if job.cpu_budget is None else f"budget {job.cpu_budget * 100:g}%"
        rows.append(("CPU", f"{used} of one core ({budget})"))
    if job.held_by:
        rows.append(("Held", f"{job.held_by}; resets "
                             f"{format_instant(job.held_until, now, tz)}"))
    if job.state == "failed" or job.last_failure:
        # A failed job, or one whose finished run waits to be recorded (in any state).
        rows.append(("Failure", job.last_failure or "unknown"))
    if job.state == "failed":
        rows.append(("Retry", format_instant(job.retry_at, now, tz, never="not scheduled")))
    return rows


def _backup_rows(job: JobStatus) -> list[tuple[str, Any]]:
    """A backup job's own rows: its run's files, bytes, rate, ETA and phase."""
    progress = job.progress
    if isinstance(progress, BackupProgress):
        files = (
            f"{progress.files_seen} seen, {progress.files_uploaded} uploaded, "
            f"{progress.files_reused} reused, {progress.files_skipped} skipped, "
            f"{progress.files_failed} failed"
        )
        if progress.estimated_files is not None:
            files += f" (about {progress.estimated_files} in all)"
        total = "" if progress.estimated_bytes is None else (
            f" of about {format_bytes(progress.estimated_bytes)}")
        size = (f"{format_bytes(progress.bytes_done)} done{total}; "
                f"{format_bytes(progress.bytes_uploaded)} uploaded")
        rate = format_speed(progress.rate_bytes_per_second)
        eta: str | None = format_seconds(progress.eta_seconds)
        phase: str | None = progress.phase
    else:
        files = ", ".join(f"{job.files_total.get(k, 0)} {k}"
                          for k in ("uploaded", "reused", "skipped", "failed"))
        size = f"{format_bytes(job.bytes_total)} uploaded since the node started"
        rate, eta, phase = format_speed(0.0), None, None
    limit = format_speed(job.limit_bytes_per_second)
    return [
        ("Files", files),
        ("Bytes", size),
        ("Rate", f"{rate} (cap {limit})"),
        ("ETA", eta),
        ("Run phase", phase),
    ]


def job_card(job: JobStatus, now: float, tz: tzinfo, *extra: Any) -> Tag:
    """A card for one job: name, state, progress bar, facts, then ``extra``."""
    fraction = None
    if isinstance(job.progress, BackupProgress):
        fraction = fraction_done(job.progress.bytes_done, job.progress.estimated_bytes)
    elif isinstance(job.progress, MaintenancePass):
        fraction = pass_fraction(job.progress)
    return tags.section(
        tags.h3(tags.span(job.name), tags.span(job.state, class_=f"state state-{job.state}")),
        progress_bar(fraction),
        definition_list(job_rows(job, now, tz)),
        *extra,
        class_="card job", id=f"job-{job.name}",
        **{"data-job": job.name, "data-state": job.state},
    )


def jobs_section(
    status: GovernorStatus,
    tz: tzinfo,
    extra_for: Callable[[JobStatus], Sequence[Any]] | None = None,
) -> Tag:
    """Every job as a card; ``extra_for(job)`` adds private content to a card."""
    if not status.jobs:
        return tags.section(tags.h2("Jobs"), tags.p("No backup jobs are configured."))
    cards = tags.div(class_="cards")
    for job in status.jobs:
        extra = extra_for(job) if extra_for is not None else ()
        cards(job_card(job, status.at, tz, *extra))
    return tags.section(tags.h2("Jobs"), cards)


def _rate_and_limit(rate: float, limit: float) -> str:
    return f"{format_speed(rate)} / {format_speed(limit)}"


def peers_section(peers: Sequence[PeerStatus], full_tubids: bool = False) -> Tag:
    """A table of every peer: rates against caps, both directions, and backlog."""
    if not peers:
        return tags.section(tags.h2("Peers"), tags.p("No storage server contacted yet."))
    table = tags.table(tags.thead(tags.tr(
        tags.th("Peer"), tags.th("TubID"), tags.th("Up (rate / cap)"),
        tags.th("Down (rate / cap)"), tags.th("Queued"), tags.th("Sent"),
        tags.th("Received"), tags.th("Connected"),
    )))
    body = tags.tbody()
    for peer in peers:
        body(tags.tr(
            tags.td(peer_label(peer)),
            tags.td(tags.code(peer.tubid if full_tubids else peer.tubid[:8]), class_="tubid"),
            tags.td(_rate_and_limit(peer.rate_up, peer.limit_up)
                    + auto_note(peer.auto_rate, peer.queueing_delay_seconds)),
            tags.td(_rate_and_limit(peer.rate_down, peer.limit_down)
                    + auto_note(peer.auto_rate_down, peer.queueing_delay_down_seconds)),
            tags.td(f"{format_bytes(peer.queued_up)} up, {format_bytes(peer.queued_down)} down"),
            tags.td(format_bytes(peer.sent_bytes)),
            tags.td(format_bytes(peer.received_bytes)),
            tags.td("yes" if peer.connected else "no"),
            **{"data-peer": peer.tubid},
        ))
    table(body)
    return tags.section(tags.h2("Peers"), tags.div(table, class_="scroll"))


def quotas_section(quotas: Sequence[QuotaStatus], now: float, tz: tzinfo) -> Tag | str:
    """A table of every per-period quota: used, limit, when it resets ("" if none)."""
    if not quotas:
        return ""
    body = tags.tbody()
    for quota in quotas:
        used = f"{format_bytes(quota.used_bytes)} of {format_bytes(quota.limit_bytes)}"
        body(tags.tr(
            tags.td(tags.code(quota.directive)),
            tags.td(used + (" (used up)" if quota.exhausted else ""),
                    progress_bar(min(1.0, quota.used_bytes / quota.limit_bytes))),
            tags.td(f"per {quota.period}"),
            tags.td(format_instant(quota.resets_at, now, tz)),
            **{"data-quota": quota.directive, "data-exhausted": str(quota.exhausted).lower()},
        ))
    table = tags.table(tags.thead(tags.tr(
        tags.th("Quota"), tags.th("Used"), tags.th("Period"), tags.th("Resets"))), body)
    return tags.section(tags.h2("Quotas"), tags.div(table, class_="scroll"))


def link_section(link: LinkStatus) -> Tag:
    """The node-wide caps and the measured link."""
    def capacity(value: float | None) -> str:
        return "unknown" if value is None else format_speed(value)

    return tags.section(tags.h2("Link"), tags.div(definition_list([
        ("Node cap", node_caps(attrs.asdict(link))),
        ("Governed traffic", f"up {format_speed(link.own_up)}, down {format_speed(link.own_down)}"),
        ("All traffic", f"up {format_speed(link.rate_up)}, down {format_speed(link.rate_down)}"),
        ("Capacity", f"up {capacity(link.capacity_up)}, down {capacity(link.capacity_down)}"),
        ("Busy threshold", None if link.busy_up is None and link.busy_down is None else
         f"up {capacity(link.busy_up)}, down {capacity(link.busy_down)}"),
    ]), class_="card"))


def chart_instant(now: float) -> float:
    """The right edge of the charts drawn at ``now``: the whole second, so the
    readers of one second share one drawing (a second is under a pixel of the span)."""
    return float(math.floor(now))


def charts_section(history: RateHistory, now: float) -> Tag:
    """The rate charts of the history's span, per peer and per job."""
    peer_lines, job_lines = lines_from_samples(history.samples(now))
    start = now - history.span_seconds
    minutes = format_seconds(history.span_seconds)
    return tags.section(
        tags.h2(f"Last {minutes}"),
        rate_chart("Peers (solid: up, dashed: down)", peer_lines, start, now),
        rate_chart("Jobs (upload rate)", job_lines, start, now),
    )
