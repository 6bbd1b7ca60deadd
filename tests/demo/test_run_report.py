"""The summary's figures and lines, computed from status snapshots (pure functions)."""

from __future__ import annotations

import math

import pytest

from tahoe_governor.demo.run_report import (
    JobRun,
    PeerUsage,
    RunReport,
    demo_checks,
    format_bytes,
    format_rate,
    format_seconds,
    job_run,
    peer_usage,
    render_live,
    render_summary,
    run_completed,
)
from tests.demo.status_builders import UNLIMITED, Job, Peer, Progress, Status

DSL = "tub-dsl"


def snapshots(at_and_sent: list[tuple[float, int]], cap: float = 10_000) -> list[Status]:
    """Snapshots of one capped peer (``DSL``) with the given byte counts at the given times,
    and an uncapped peer that only ever idles."""
    return [
        Status(
            at=at,
            peers=(
                Peer(tubid=DSL, nickname="parents-dsl", sent_bytes=sent, limit_up=cap),
                Peer(tubid="tub-idle", nickname="idle", sent_bytes=5),
            ),
        )
        for at, sent in at_and_sent
    ]


def test_busy_span_excludes_quiet_start_and_end() -> None:
    """Time counts from the last snapshot before the bytes started to grow to the first one
    with the final count: the quiet walk before and the linking after do not dilute it."""
    (dsl,) = peer_usage(
        snapshots(
            [(0, 100), (1, 100), (2, 5_100), (3, 15_100), (4, 20_100), (5, 20_100), (9, 20_100)]
        )
    )
    assert (dsl.sent_bytes, dsl.seconds) == (20_000, 3.0)  # from t=1 to t=4
    assert dsl.rate == pytest.approx(20_000 / 3)
    assert dsl.cap_ratio == pytest.approx(20_000 / 3 / 10_000)


def test_peer_met_late_counts_from_zero_and_idle_uncapped_left_out() -> None:
    """A peer absent from the first snapshots counts from zero; an uncapped peer that received
    nothing is not listed; a capped one that received nothing is (at rate 0)."""
    first = Status(at=0.0, peers=(Peer(tubid="tub-idle", nickname="idle", sent_bytes=5),))
    later = snapshots([(2, 3_000), (4, 6_000)])
    usage = peer_usage([first, *later])
    assert [(u.nickname, u.sent_bytes, u.seconds) for u in usage] == [("parents-dsl", 6_000, 4.0)]
    quiet = peer_usage(snapshots([(0, 7), (1, 7), (2, 7)]))
    assert [(u.nickname, u.sent_bytes, u.seconds, u.rate) for u in quiet] == [
        ("parents-dsl", 0, 2.0, 0.0)
    ]


def test_cap_is_the_latest_in_force() -> None:
    """The cap reported is the one of the last snapshot that lists the peer."""
    shots = snapshots([(0, 0), (1, 1_000)], cap=10_000) + snapshots([(2, 2_000)], cap=4_000)
    (dsl,) = peer_usage(shots)
    assert dsl.cap == 4_000


def test_peer_usage_needs_ordered_snapshots() -> None:
    """Fewer than two snapshots, or snapshots out of time order, are refused with a reason."""
    with pytest.raises(ValueError, match="at least 2 snapshots"):
        peer_usage(snapshots([(0, 0)]))
    with pytest.raises(ValueError, match="increasing time order"):
        peer_usage(snapshots([(1, 0), (1, 5)]))


def test_uncapped_peer_has_no_ratio() -> None:
    """An uncapped peer is listed with its rate and no ratio."""
    usage = PeerUsage("t", "n", 100, 2.0, math.inf)
    assert not usage.capped and usage.cap_ratio is None and usage.rate == 50


def test_job_run_and_completion() -> None:
    """A job's run counts come from its progress; completion is a last success newer than the
    one before; a job without progress cannot be reported."""
    progress = Progress(
        files_seen=9,
        files_uploaded=5,
        files_reused=3,
        files_skipped=1,
        bytes_uploaded=700,
        elapsed_seconds=12.5,
    )
    job = Job(name="photos", state="done", progress=progress, last_success=50.0)
    assert job_run(job) == JobRun("photos", 9, 5, 3, 1, 0, 700, 12.5)
    assert run_completed(job, None) and run_completed(job, 49.0)
    assert not run_completed(job, 50.0)
    assert not run_completed(Job(name="photos", state="running"), None)
    with pytest.raises(ValueError, match="'photos' has no run"):
        job_run(Job(name="photos", state="waiting"))


def report(label: str, uploaded: int, reused: int, peers: tuple[PeerUsage, ...]) -> RunReport:
    return RunReport(
        label, JobRun("photos", uploaded + reused, uploaded, reused, 0, 0, 0, 1.0), peers
    )


CAPPED_OK = PeerUsage("t", "parents-dsl", 98_000, 10.0, 10_000)  # 0.98
CAPPED_OVER = PeerUsage("t", "parents-dsl", 104_000, 10.0, 10_000)  # 1.04
CAPPED_SHORT = PeerUsage("t", "parents-dsl", 21_000, 2.0, 10_000)  # 1.05 in 2 s
FREE = PeerUsage("u", "home-nas", 98_000, 10.0, math.inf)


@pytest.mark.parametrize(
    ("runs", "failing"),
    [
        ([report("full", 10, 0, (CAPPED_OK, FREE)), report("incremental", 2, 8, (CAPPED_OK,))], []),
        (
            [report("full", 10, 0, (CAPPED_OVER,)), report("incremental", 2, 8, (CAPPED_OK,))],
            ["full run, peer parents-dsl: achieved 10.40 kB/s ÷ cap 10.00 kB/s = 1.040 > 1.03"],
        ),
        (
            [report("full", 10, 0, (CAPPED_OK,)), report("incremental", 2, 8, (CAPPED_SHORT,))],
            [],
        ),  # too short to judge: shown, not checked
        (
            [report("full", 10, 0, (FREE,)), report("incremental", 2, 8, (FREE,))],
            ["no capped peer was busy for 3 s or more: the cap was never seen at work"],
        ),
        ([report("full", 10, 0, (CAPPED_OK,))], ["incremental run: not completed"]),
        (
            [report("full", 9, 0, (CAPPED_OK,)), report("incremental", 3, 7, (CAPPED_OK,))],
            [
                "full run backed up 9 of 10 files",
                "incremental run reused 7 of 8 unmodified files and uploaded 3 of 2 modified",
            ],
        ),
        ([], ["full run: not completed", "incremental run: not completed"]),
    ],
    ids=["pass", "over-cap", "short-span", "no-cap", "one-run", "wrong-counts", "no-run"],
)
def test_demo_checks(runs: list[RunReport], failing: list[str]) -> None:
    """Each way the demo can fall short gives a failed check that says which; a good run has
    none failing."""
    checks = demo_checks(runs, ("full", "incremental"), regular_files=10, modified_files=2)
    assert [c.text for c in checks if not c.ok] == failing
    assert any(c.ok for c in checks) == bool(runs)


def test_render_summary() -> None:
    """The summary lists each run's peers with bytes, busy time, average, cap and ratio (marked
    when too short to judge), each run's job counts, then every check."""
    runs = [report("full", 10, 0, (FREE, CAPPED_OK)), report("incremental", 2, 8, (CAPPED_SHORT,))]
    checks = demo_checks(runs, ("full", "incremental"), 10, 2)
    text = "\n".join(render_summary(runs, checks))
    assert text.splitlines()[1].split() == [
        "run",
        "peer",
        "sent",
        "busy",
        "average",
        "cap",
        "achieved",
        "÷",
        "cap",
    ]
    assert (
        "full         home-nas     98.00 kB  10.0 s   9.80 kB/s      no cap               -" in text
    )
    assert (
        "full         parents-dsl  98.00 kB  10.0 s   9.80 kB/s  10.00 kB/s           0.980" in text
    )
    assert (
        "incremental  parents-dsl  21.00 kB   2.0 s  10.50 kB/s  10.00 kB/s         1.050 *" in text
    )
    assert "* busy less than 3 s: not judged" in text
    assert "  incremental  photos     10         2       8        0       0    0 B  1.0 s" in text
    assert (
        "  [ok] full run, peer parents-dsl: achieved 9.80 kB/s ÷ cap 10.00 kB/s = 0.980 ≤ 1.03"
        in text
    )
    assert text.count("[ok]") == len(checks)


def test_render_live() -> None:
    """The live view: the job's state, files, bytes with share done and ETA, then each peer's
    rate against its cap with a bar, or "(no cap)"."""
    status = Status(
        at=10.0,
        jobs=(
            Job(
                name="photos",
                state="running",
                progress=Progress(
                    files_seen=120,
                    estimated_files=300,
                    files_uploaded=118,
                    files_skipped=1,
                    bytes_done=5_000_000,
                    estimated_bytes=20_000_000,
                    eta_seconds=75.2,
                    elapsed_seconds=25.0,
                ),
            ),
        ),
        peers=(
            Peer(
                tubid="a",
                nickname="parents-dsl",
                sent_bytes=2_500_000,
                rate_up=5_000,
                limit_up=10_000,
            ),
            Peer(tubid="b", nickname="home-nas", sent_bytes=2_600_000, rate_up=5_100),
        ),
    )
    lines = render_live(status, "photos", "full", width=10)
    assert lines == [
        "full run of job 'photos': running",
        "  files  120 of 300   uploaded 118  reused 0  skipped 1   25 s",
        "  bytes  5.00 MB of 20.00 MB  25%   ETA 1 min 15 s",
        "  home-nas         5.10 kB/s  (no cap)" + " " * 24 + "sent 2.60 MB",
        "  parents-dsl      5.00 kB/s  of  10.00 kB/s [#####-----]  sent 2.50 MB",
    ]


def test_render_live_before_any_estimate() -> None:
    """Without an estimate yet, no totals, no share and an unknown ETA are shown as such."""
    status = Status(at=1.0, jobs=(Job(name="photos", state="running", progress=Progress()),))
    assert render_live(status, "photos", "full")[1:] == [
        "  files  0   uploaded 0  reused 0  skipped 0   0 s",
        "  bytes  0 B   ETA ?",
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0 B"), (999, "999 B"), (1_000, "1.00 kB"), (1_500_000, "1.50 MB"), (2e9, "2.00 GB")],
)
def test_format_bytes(value: float, text: str) -> None:
    """Bytes in SI units with two decimals."""
    assert format_bytes(value) == text


def test_format_rate_and_seconds() -> None:
    """Rates add /s, infinity reads unlimited; seconds read as minutes and seconds."""
    assert format_rate(25_000) == "25.00 kB/s" and format_rate(UNLIMITED) == "unlimited"
    assert [format_seconds(s) for s in (0, 59.4, 60, 75, math.inf)] == [
        "0 s",
        "59 s",
        "1 min 0 s",
        "1 min 15 s",
        "?",
    ]
