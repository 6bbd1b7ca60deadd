"""What the demo shows: the live view of a run and the summary, computed from status snapshots.

Everything here is a pure function of :class:`~tahoe_governor.status.GovernorStatus`
snapshots (or of the values computed from them): no clock, no I/O. A peer's
achieved rate is measured, not configured: the bytes the shaper counted
towards it between two snapshots (``PeerStatus.sent_bytes``) divided by the
time between them (``GovernorStatus.at``), against the cap in force
(``PeerStatus.limit_up``). Bytes are counted in SI units (1 kB = 1000 B).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from tahoe_governor.status import BackupProgress

if TYPE_CHECKING:  # the status module is the metrics layer's; read, never built, here
    from tahoe_governor.status import GovernorStatus, JobStatus, PeerStatus

#: A capped peer passes when its achieved rate is at most this many times its cap.
MAX_CAP_RATIO = 1.03

#: Busy spans shorter than this are shown but not judged against the cap. A bucket
#: may send one burst (50 ms of its rate) on top of rate x time, which is more
#: than 3 % of anything shorter than 50 ms / 3 % = 1.7 s; an incremental run of a
#: few files keeps a peer busy about that long.
MIN_JUDGED_SECONDS = 3.0


@attrs.frozen
class PeerUsage:
    """What one peer received from the node over one run."""

    tubid: str
    nickname: str
    sent_bytes: int
    """Bytes sent to the peer between the run's first and last snapshot."""
    seconds: float
    """Time between those snapshots."""
    cap: float
    """The peer's upload cap in force in the last snapshot that lists it (bytes/s),
    ``math.inf`` for none."""

    @property
    def rate(self) -> float:
        """The average rate achieved (bytes/s)."""
        return self.sent_bytes / self.seconds

    @property
    def capped(self) -> bool:
        return not math.isinf(self.cap)

    @property
    def cap_ratio(self) -> float | None:
        """Achieved rate ÷ cap; ``None`` for an uncapped peer."""
        return self.rate / self.cap if self.capped else None


@attrs.frozen
class JobRun:
    """One completed (or abandoned) run of a job, as its progress reported it."""

    job: str
    files_seen: int
    files_uploaded: int
    files_reused: int
    files_skipped: int
    files_failed: int
    bytes_uploaded: int
    seconds: float


@attrs.frozen
class RunReport:
    """One run of the demo: a label (``full``, ``incremental``), the job's counts, every peer."""

    label: str
    job: JobRun
    peers: tuple[PeerUsage, ...]


@attrs.frozen
class Check:
    """One line of the final check: passed or not, and what was checked."""

    ok: bool
    text: str


def peer_usage(snapshots: Sequence[GovernorStatus]) -> tuple[PeerUsage, ...]:
    """Every peer's bytes and average rate over a run, from the run's snapshots in time order.

    A peer's time is its busy span: from the last snapshot before its byte
    count first grew to the first snapshot that shows its final count. Bytes
    sent within a span of snapshots are at most the cap times the span plus
    one burst, so the ratio measured this way is an honest upper bound of the
    peer's rate, without the run's quiet start and end diluting it. A peer
    first met after the first snapshot counts from zero; peers to which
    nothing was sent and that have no cap are left out.
    """
    if len(snapshots) < 2:
        raise ValueError(f"a run needs at least 2 snapshots to measure, got {len(snapshots)}")
    times = [s.at for s in snapshots]
    if any(later <= earlier for earlier, later in zip(times, times[1:], strict=False)):
        raise ValueError("snapshots must be in strictly increasing time order")
    latest = {peer.tubid: peer for s in snapshots for peer in s.peers}  # later ones win
    usage = []
    for tubid in latest:
        sent = [_sent_to(s, tubid) for s in snapshots]
        last = latest[tubid]
        total = sent[-1] - sent[0]
        if total <= 0:
            if math.isinf(last.limit_up):
                continue
            begin, end = 0, len(snapshots) - 1
        else:
            first_growth = next(i for i in range(1, len(sent)) if sent[i] > sent[0])
            begin = first_growth - 1
            end = next(i for i in range(len(sent)) if sent[i] == sent[-1])
        usage.append(
            PeerUsage(tubid, peer_name(last), total, times[end] - times[begin], last.limit_up)
        )
    return tuple(sorted(usage, key=lambda u: (u.nickname, u.tubid)))


def peer_name(peer: PeerStatus) -> str:
    """A peer's nickname, or the start of its TubID while it has none (the introducer)."""
    return peer.nickname or f"tub {peer.tubid[:8]}"


def _sent_to(status: GovernorStatus, tubid: str) -> int:
    for peer in status.peers:
        if peer.tubid == tubid:
            return int(peer.sent_bytes)
    return 0


def job_run(job: JobStatus) -> JobRun:
    """The counts of ``job``'s current or last run (from its progress)."""
    progress = job.progress
    if not isinstance(progress, BackupProgress):
        what = "empty" if progress is None else "a maintenance pass's"
        raise ValueError(f"job {job.name!r} has no run to report (its progress is {what})")
    return JobRun(
        job=job.name,
        files_seen=progress.files_seen,
        files_uploaded=progress.files_uploaded,
        files_reused=progress.files_reused,
        files_skipped=progress.files_skipped,
        files_failed=progress.files_failed,
        bytes_uploaded=progress.bytes_uploaded,
        seconds=progress.elapsed_seconds,
    )


def run_completed(job: JobStatus, completed_before: float | None) -> bool:
    """Whether ``job`` completed a run after ``completed_before`` (its last success before)."""
    last = job.last_success
    return last is not None and (completed_before is None or last > completed_before)


def demo_checks(
    runs: Sequence[RunReport],
    expected_runs: Sequence[str],
    regular_files: int,
    modified_files: int,
    max_ratio: float = MAX_CAP_RATIO,
    min_judged_seconds: float = MIN_JUDGED_SECONDS,
) -> tuple[Check, ...]:
    """The checks that decide the demo's exit status.

    Every run in ``expected_runs`` completed; every capped peer of every run
    that was busy for at least ``min_judged_seconds`` stayed within
    ``max_ratio`` of its cap, and at least one was judged so (otherwise the
    cap was never seen at work); the first run uploaded all
    ``regular_files``; the incremental run (the second) uploaded exactly the
    ``modified_files`` and reused every other file.
    """
    checks = []
    by_label = {run.label: run for run in runs}
    for label in expected_runs:
        run = by_label.get(label)
        checks.append(
            Check(
                run is not None, f"{label} run completed" if run else f"{label} run: not completed"
            )
        )
    capped = [(run.label, peer) for run in runs for peer in run.peers if peer.capped]
    judged = [(label, peer) for label, peer in capped if peer.seconds >= min_judged_seconds]
    if runs and not judged:
        checks.append(
            Check(
                False,
                f"no capped peer was busy for {min_judged_seconds:g} s or more: "
                "the cap was never seen at work",
            )
        )
    for label, peer in judged:
        ratio = peer.cap_ratio
        assert ratio is not None
        checks.append(
            Check(
                ratio <= max_ratio,
                f"{label} run, peer {peer.nickname}: achieved {format_rate(peer.rate)} "
                f"÷ cap {format_rate(peer.cap)} = {ratio:.3f} "
                + ("≤" if ratio <= max_ratio else ">")
                + f" {max_ratio:.2f}",
            )
        )
    if len(runs) >= 1:
        first = runs[0].job
        checks.append(
            Check(
                first.files_uploaded + first.files_reused == regular_files,
                f"{runs[0].label} run backed up {first.files_uploaded + first.files_reused} "
                f"of {regular_files} files",
            )
        )
    if len(runs) >= 2:
        second = runs[1].job
        unmodified = regular_files - modified_files
        checks.append(
            Check(
                second.files_reused == unmodified and second.files_uploaded == modified_files,
                f"{runs[1].label} run reused {second.files_reused} of {unmodified} unmodified "
                f"files and uploaded {second.files_uploaded} of {modified_files} modified",
            )
        )
    return tuple(checks)


# -- rendering ------------------------------------------------------------------------


def render_summary(
    runs: Sequence[RunReport],
    checks: Sequence[Check],
    min_judged_seconds: float = MIN_JUDGED_SECONDS,
) -> list[str]:
    """The summary: a table of peers per run, a table of job runs, then the checks.

    A peer's time is its busy span (see :func:`peer_usage`).
    """
    peer_rows = [
        [
            run.label,
            peer.nickname,
            format_bytes(peer.sent_bytes),
            f"{peer.seconds:.1f} s",
            format_rate(peer.rate),
            format_rate(peer.cap) if peer.capped else "no cap",
            _ratio_cell(peer, min_judged_seconds),
        ]
        for run in runs
        for peer in run.peers
    ]
    job_rows = [
        [
            run.label,
            run.job.job,
            str(run.job.files_seen),
            str(run.job.files_uploaded),
            str(run.job.files_reused),
            str(run.job.files_skipped),
            str(run.job.files_failed),
            format_bytes(run.job.bytes_uploaded),
            f"{run.job.seconds:.1f} s",
        ]
        for run in runs
    ]
    lines = ["Peers (bytes the node sent to each storage server, measured by the shaper)"]
    lines += _table(["run", "peer", "sent", "busy", "average", "cap", "achieved ÷ cap"], peer_rows)
    if any(row[-1].endswith("*") for row in peer_rows):
        lines.append(
            f"  * busy less than {min_judged_seconds:g} s: not judged, as one burst "
            "(50 ms of the cap) weighs too much in so short a time"
        )
    lines += ["", "Jobs"]
    lines += _table(
        ["run", "job", "files", "uploaded", "reused", "skipped", "failed", "bytes", "time"],
        job_rows,
    )
    lines += ["", "Checks"]
    lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.text}" for c in checks]
    return lines


def _ratio_cell(peer: PeerUsage, min_judged_seconds: float) -> str:
    ratio = peer.cap_ratio
    if ratio is None:
        return "-"
    return f"{ratio:.3f}" + (" *" if peer.seconds < min_judged_seconds else "")


def render_live(status: GovernorStatus, job_name: str, label: str, width: int = 20) -> list[str]:
    """The live view of a run: the job's files, bytes and ETA, each peer's rate against its cap."""
    job = status.job(job_name)
    lines = [f"{label} run of job {job.name!r}: {job.state}"]
    progress = job.progress
    if isinstance(progress, BackupProgress):  # the demo's jobs are backup jobs
        expected_files = progress.estimated_files
        expected_bytes = progress.estimated_bytes
        lines.append(
            f"  files  {progress.files_seen}"
            + (f" of {expected_files}" if expected_files is not None else "")
            + f"   uploaded {progress.files_uploaded}  reused {progress.files_reused}"
            + f"  skipped {progress.files_skipped}   {progress.elapsed_seconds:.0f} s"
        )
        share = (
            f"  {100 * min(progress.bytes_done / expected_bytes, 1):.0f}%" if expected_bytes else ""
        )
        eta = progress.eta_seconds
        lines.append(
            f"  bytes  {format_bytes(progress.bytes_done)}"
            + (f" of {format_bytes(expected_bytes)}" if expected_bytes is not None else "")
            + share
            + f"   ETA {format_seconds(eta) if eta is not None else '?'}"
        )
    for peer in sorted(status.peers, key=peer_name):
        if math.isinf(peer.limit_up):
            lines.append(
                f"  {peer_name(peer):<14} {format_rate(peer.rate_up):>11}  (no cap)"
                + " " * (width + 14)
                + f"sent {format_bytes(peer.sent_bytes)}"
            )
        else:
            fill = min(max(peer.rate_up / peer.limit_up, 0.0), 1.0)
            bar = "#" * round(fill * width) + "-" * (width - round(fill * width))
            lines.append(
                f"  {peer_name(peer):<14} {format_rate(peer.rate_up):>11}  of "
                f"{format_rate(peer.limit_up):>11} [{bar}]  sent {format_bytes(peer.sent_bytes)}"
            )
    return lines


def format_bytes(count: float) -> str:
    """``1_500_000`` -> ``"1.50 MB"`` (SI)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(count) >= size:
            return f"{count / size:.2f} {unit}"
    return f"{int(count)} B"


def format_rate(bytes_per_second: float) -> str:
    """``25_000`` -> ``"25.00 kB/s"``; infinity -> ``"unlimited"``."""
    if math.isinf(bytes_per_second):
        return "unlimited"
    return format_bytes(bytes_per_second) + "/s"


def format_seconds(seconds: float) -> str:
    """``75`` -> ``"1 min 15 s"``; ``"?"`` for infinity or NaN (no pace yet)."""
    if not math.isfinite(seconds):
        return "?"
    whole = max(int(round(seconds)), 0)
    return f"{whole // 60} min {whole % 60} s" if whole >= 60 else f"{whole} s"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Rows under a header, columns padded (text left, figures right), indented two spaces."""
    if not rows:
        return ["  (none)"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str], header_row: bool = False) -> str:
        out = []
        for i, cell in enumerate(cells):
            left = header_row or i < 2
            out.append(cell.ljust(widths[i]) if left else cell.rjust(widths[i]))
        return "  " + "  ".join(out).rstrip()

    return [line(header, True), *(line(r) for r in rows)]
