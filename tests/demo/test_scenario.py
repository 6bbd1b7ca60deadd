"""The demo's runs against a simulated governor on a task.Clock: what it measures and decides."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer, task

from tahoe_governor.demo.live_view import LiveView
from tahoe_governor.demo.run_report import MIN_JUDGED_SECONDS
from tahoe_governor.demo.sample_tree import SampleFile, SampleTree, generate_sample_tree
from tahoe_governor.demo.scenario import (
    DSL_NICKNAME,
    JOB,
    DemoFailed,
    DemoOptions,
    DemoRecord,
    backup_runs,
    exit_status,
    final_checks,
    governed_cfg,
    hold_job,
    share_bytes_per_server,
    sized_cap,
    write_alias,
)
from tests.demo.simulated_governor import SimulatedGovernor


def drive(clock: task.Clock, d: defer.Deferred[Any], step: float = 0.5, limit: int = 10_000) -> Any:
    """Advance ``clock`` until ``d`` fires; its result (or raise its failure)."""
    outcome: list[Any] = []
    d.addBoth(outcome.append)
    for _ in range(limit):
        if outcome:
            break
        clock.advance(step)
    assert outcome, "the coroutine never finished"
    if isinstance(outcome[0], Exception) or hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()
    return outcome[0]


@pytest.fixture
def demo_node(tmp_path: Path) -> tuple[SampleTree, Path]:
    """A small sample tree and a node directory whose tahoe.cfg backs it up, DSL capped."""
    tree = generate_sample_tree(tmp_path / "sample", seed=7, files=30, total_bytes=600_000)
    nodedir = tmp_path / "node"
    nodedir.mkdir()
    cap = sized_cap(share_bytes_per_server(tree, 2), seconds=10)
    (nodedir / "tahoe.cfg").write_text(governed_cfg(tree.root, cap))
    (nodedir / "private").mkdir()
    hold_job(nodedir, at=0.0)
    return tree, nodedir


def run_both(
    tree: SampleTree, nodedir: Path, **governor_options: Any
) -> tuple[DemoRecord, SimulatedGovernor, str]:
    clock = task.Clock()
    clock.advance(1_000_000)  # the epoch is not special
    governor = SimulatedGovernor(clock, str(nodedir), **governor_options)
    record = DemoRecord(tree=tree)
    out = io.StringIO()
    options = DemoOptions(files=30, total_bytes=600_000, seed=7, modify=4, run_seconds=10)
    d = defer.ensureDeferred(
        backup_runs(clock, governor, tree, options, LiveView(out, in_place=False), out, record)
    )
    try:
        drive(clock, d)
    except DemoFailed as e:
        record.fail(str(e))
    return record, governor, out.getvalue()


def test_two_runs_measured_from_snapshots(demo_node: tuple[SampleTree, Path]) -> None:
    """A full run then an incremental one: the DSL peer's bytes and busy time come from the
    snapshots, its ratio is the simulated pace, the second run reuses all unmodified files,
    and every check passes, so the exit status is 0."""
    tree, nodedir = demo_node
    record, governor, out = run_both(tree, nodedir)
    assert [r.label for r in record.runs] == ["full", "incremental"]
    assert governor.calls == [f"resume {JOB}", f"run_now {JOB}"]
    full, incremental = record.runs
    dsl = next(p for p in full.peers if p.nickname == DSL_NICKNAME)
    assert dsl.sent_bytes == share_bytes_per_server(tree, 2)
    assert dsl.cap_ratio == pytest.approx(0.98, abs=0.06)  # snapshot steps widen the span
    assert dsl.cap_ratio <= 0.98 + 1e-9
    assert dsl.seconds >= MIN_JUDGED_SECONDS
    assert full.job.files_uploaded == len(tree.files) and full.job.files_reused == 0
    assert full.job.files_skipped == len(tree.symlinks)
    assert incremental.job.files_uploaded == 4
    assert incremental.job.files_reused == len(tree.files) - 4
    assert len(record.modified) == 4
    checks = final_checks(record)
    assert all(c.ok for c in checks), checks
    assert exit_status(record, checks) == 0
    assert "full run of job 'photos'" in out and "incremental run of job 'photos'" in out


def test_a_failed_job_fails_the_demo(demo_node: tuple[SampleTree, Path]) -> None:
    """A run that fails ends the runs with the job's own reason; the exit status is 1."""
    tree, nodedir = demo_node
    record, _, _ = run_both(tree, nodedir, fault="job")
    assert record.runs == []
    assert record.failure == "the full run failed: simulated: storage server went away"
    assert exit_status(record, final_checks(record)) == 1


def test_a_run_that_never_ends_times_out(demo_node: tuple[SampleTree, Path]) -> None:
    """A run past its time budget is abandoned with a reason, not waited for forever."""
    tree, nodedir = demo_node
    record, _, _ = run_both(tree, nodedir, fault="hang")
    assert record.failure is not None and "did not complete within" in record.failure
    assert exit_status(record, final_checks(record)) == 1


def test_a_cap_exceeded_fails_the_check(demo_node: tuple[SampleTree, Path]) -> None:
    """A peer sent faster than its cap (a shaper that does not hold) makes the demo fail."""
    tree, nodedir = demo_node
    record, _, _ = run_both(tree, nodedir, pace=1.2)
    checks = final_checks(record)
    failed = [c.text for c in checks if not c.ok]
    assert failed and all(DSL_NICKNAME in text and "> 1.03" in text for text in failed)
    assert exit_status(record, checks) == 1


def test_an_uncapped_demo_fails_the_check(tmp_path: Path) -> None:
    """Without any capped peer nothing shows the governor at work: that is a failure."""
    tree = SampleTree(tmp_path, (SampleFile("a", 100),))
    record = DemoRecord(tree=tree)
    assert exit_status(record, final_checks(record)) == 1


def test_alias_file(tmp_path: Path) -> None:
    """The alias is written as tahoe add-alias writes it, after any already there."""
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "aliases").write_text("old: URI:DIR2:aaa:bbb\n")
    write_alias(tmp_path, "demo", "URI:DIR2:ccc:ddd")
    assert (tmp_path / "private" / "aliases").read_text().splitlines() == [
        "old: URI:DIR2:aaa:bbb",
        "demo: URI:DIR2:ccc:ddd",
    ]


@pytest.mark.parametrize(
    ("share_bytes", "seconds", "expected"),
    [
        (10_000_000, 45, "1780kbps"),  # 1777.8 kbps rounded up to 10
        (1_000, 45, "10kbps"),  # never below 10 kbps
        (1_000_000, 8, "1000kbps"),
    ],
)
def test_sized_cap(share_bytes: int, seconds: float, expected: str) -> None:
    """The cap moves the share bytes in about the asked time, in whole tens of kbps."""
    assert sized_cap(share_bytes, seconds) == expected


def test_sized_cap_rejects_no_time() -> None:
    """A run time of zero is an error naming the value."""
    with pytest.raises(ValueError, match="positive, got 0"):
        sized_cap(1000, 0)


def test_governed_cfg_is_a_valid_policy(tmp_path: Path) -> None:
    """The demo's sections parse with the policy's own parser: the job and the peer cap."""
    from zoneinfo import ZoneInfo

    from tahoe_governor.policy.config import parse_policy_text

    policy = parse_policy_text(governed_cfg(tmp_path, "800kbps"), ZoneInfo("UTC"))
    (job,) = policy.jobs
    assert (job.name, job.source, job.target) == (JOB, str(tmp_path), "demo:photos")
    (peer,) = policy.peers
    assert DSL_NICKNAME in str(peer.selector)
    assert peer.up is not None and peer.up.bytes_per_second == 100_000


def test_waiting_for_servers_gives_up_naming_the_missing(
    demo_node: tuple[SampleTree, Path],
) -> None:
    """A node that never meets one of its servers fails the demo, naming that server."""
    from tahoe_governor.demo.scenario import wait_for_servers

    _, nodedir = demo_node
    clock = task.Clock()
    governor = SimulatedGovernor(clock, str(nodedir), uncapped_peers=("home-nas",))
    d = defer.ensureDeferred(
        wait_for_servers(clock, governor, ("home-nas", "parents-dsl", "friends-office"), 0.5, 10)
    )
    with pytest.raises(DemoFailed, match="did not connect to friends-office within 10 s"):
        drive(clock, d)
    assert governor.calls == [] and governor.paused  # held, never resumed
