"""The maintenance walker on a fake grid and a real state database, driven by a Clock:
each object once per pass, verify by age, repair, resumption, suspension, charging."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from tahoe_governor.backup.job_throttle import JobThrottle
from tahoe_governor.maintenance import (
    GridUnavailable,
    MaintenanceRecords,
    MaintenanceResult,
    MaintenanceWalker,
)
from tahoe_governor.policy.state_db import StateDatabase
from tests.maintenance.fake_grid import FakeGrid, archive_tree

OBJECTS = ("root", "snap-a", "snap-b", "pics", "f1", "f2", "f3", "f4")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDatabase]:
    database = StateDatabase(str(tmp_path / "governor.sqlite"))
    yield database
    database.close()


def _walker(clock: Clock, grid: FakeGrid, db: StateDatabase, throttle: JobThrottle | None = None,
            **options: object) -> MaintenanceWalker:
    return MaintenanceWalker(reactor=clock, grid=grid, records=MaintenanceRecords(db, "m1"),
                             gate=throttle or JobThrottle(clock), **options)  # type: ignore[arg-type]


def _result(d: Deferred[MaintenanceResult]) -> MaintenanceResult:
    outcomes: list[object] = []
    d.addBoth(outcomes.append)
    assert outcomes, "the run has not ended"
    (outcome,) = outcomes
    if isinstance(outcome, Failure):
        outcome.raiseException()
    assert isinstance(outcome, MaintenanceResult)
    return outcome


def test_a_pass_checks_each_storage_index_once_and_names_the_unrecoverable(
        db: StateDatabase) -> None:
    """An object reached by several paths (a directory and a file shared by two snapshots)
    is checked once; the damaged file is repaired, the lost one reported by its first path."""
    clock, grid = Clock(), archive_tree()
    result = _result(_walker(clock, grid, db).run())
    assert dict(grid.checks) == {key: 1 for key in OBJECTS}
    assert dict(grid.repairs) == {"f3": 1}
    p = result.progress
    assert (p.pass_number, p.objects_found, p.objects_checked, p.directories_listed) == \
        (1, 8, 8, 4)
    assert p.results == {"healthy": 6, "repaired": 1, "unrecoverable": 1}
    assert p.private_unrecoverable == ("b/gone.txt",)
    assert p.phase == "finished"
    assert "1 repaired" in result.detail and "gone" not in result.detail
    assert grid.leases == grid.checks  # add_lease by default, on every check


def test_the_next_pass_finds_the_repaired_file_healthy(db: StateDatabase) -> None:
    """A second run starts pass 2 and checks everything again once; what pass 1 repaired
    is healthy now; without repair an unhealthy file stays unhealthy and is not repaired."""
    clock, grid = Clock(), archive_tree()
    _result(_walker(clock, grid, db).run())
    second = _result(_walker(clock, grid, db).run()).progress
    assert second.pass_number == 2
    assert second.results == {"healthy": 7, "unrecoverable": 1}
    assert dict(grid.checks) == {key: 2 for key in OBJECTS}
    grid.objects["f1"].shares = 9
    third = _result(_walker(clock, grid, db, repair=False, add_lease=False).run()).progress
    assert third.result("unhealthy") == 1
    assert grid.repairs["f1"] == 0
    assert grid.leases["f1"] == 2


def test_a_cancelled_pass_resumes_without_checking_a_finished_object_again(
        db: StateDatabase) -> None:
    """Cancelled after three checks (the node stopped), the next run goes on with the same
    pass from the next object: every object is checked exactly once in the pass."""
    clock, grid = Clock(), archive_tree()
    walker = _walker(clock, grid, db)
    grid.on_check = lambda key: walker.cancel() if sum(grid.checks.values()) == 3 else None
    with pytest.raises(CancelledError):
        _result(walker.run())
    assert sum(grid.checks.values()) == 3
    assert walker.progress().phase == "cancelled"
    grid.on_check = None
    finished = {row[0] for row in db.query(
        "SELECT storage_index FROM maintenance_objects WHERE checked_pass = 1")}
    assert len(finished) == 2  # the third check was abandoned in flight, never recorded
    grid.checks.clear()
    resumed = _walker(clock, grid, db)
    result = _result(resumed.run()).progress
    assert dict(grid.checks) == {key: 1 for key in OBJECTS if key not in finished}
    assert (result.pass_number, result.objects_checked, result.checked_this_run) == (1, 8, 6)


def test_a_suspended_walker_starts_no_step_until_resumed(db: StateDatabase) -> None:
    """Suspending the throttle (the window closed) holds the walker before its next step,
    however long; resuming goes on from there."""
    clock, grid = Clock(), archive_tree()
    throttle = JobThrottle(clock)
    walker = _walker(clock, grid, db, throttle)
    grid.on_check = lambda key: throttle.suspend() if key == "snap-b" else None
    d = walker.run()
    checked = sum(grid.checks.values())
    assert checked == 3  # root, snap-a, snap-b: the fourth waits for the gate
    clock.advance(3600)
    assert sum(grid.checks.values()) == checked and not d.called
    assert walker.progress().suspended
    throttle.resume()
    assert _result(d).progress.objects_checked == 8


def test_verify_takes_the_objects_verified_longest_ago(db: StateDatabase) -> None:
    """With verify = 50 %, each pass verifies half of the objects (rounded up): first those
    never verified, so two passes verify every object once."""
    clock, grid = Clock(), archive_tree()
    first = _result(_walker(clock, grid, db, verify=0.5).run()).progress
    assert first.verified == 4
    once = {key for key, n in grid.verifies.items() if n}
    clock.advance(10)
    second = _result(_walker(clock, grid, db, verify=0.5).run()).progress
    assert second.verified == 4
    assert all(n == 1 for n in grid.verifies.values()) and len(grid.verifies) == 8
    assert once and once != {key for key in OBJECTS}
    assert second.bytes_verified + first.bytes_verified == 3000 + 600 + 900 + 300


def test_verify_and_repair_are_charged_to_the_tasks_bandwidth(db: StateDatabase) -> None:
    """With a cap, verifying a file waits for its wire bytes (size x N/k): a 3000-byte
    file at 3-of-10 is 10000 bytes, 10 s at 1000 B/s (after the bucket's burst)."""
    clock = Clock()
    grid = FakeGrid({"root": archive_tree().objects["pics"],
                     "f1": archive_tree().objects["f1"]})
    throttle = JobThrottle(clock, wire_rate=1000.0, burst=1000)
    d = _walker(clock, grid, db, throttle, verify=1.0).run()
    assert grid.verifies["f1"] == 0
    clock.pump([0.25] * 35)  # 8.75 s
    assert grid.verifies["f1"] == 0
    clock.pump([0.25] * 2)
    assert grid.verifies["f1"] == 1
    assert _result(d).progress.bytes_verified == 3000


def test_no_server_answering_fails_the_run_and_keeps_the_pass(db: StateDatabase) -> None:
    """A grid with no server answering is not a finding: the run fails, nothing is recorded
    as unrecoverable, and the next run finishes the same pass."""
    clock, grid = Clock(), archive_tree()
    grid.available = False
    with pytest.raises(GridUnavailable):
        _result(_walker(clock, grid, db).run())
    grid.available = True
    result = _result(_walker(clock, grid, db).run()).progress
    assert (result.pass_number, result.result("unrecoverable")) == (1, 1)


def test_objects_no_longer_reached_are_forgotten_at_the_end_of_a_pass(
        db: StateDatabase) -> None:
    """A snapshot deleted between passes: its only objects leave the records when the
    next pass ends, so the records stay the size of the archive."""
    clock, grid = Clock(), archive_tree()
    _result(_walker(clock, grid, db).run())
    del grid.objects["root"].children["b"]
    second = _result(_walker(clock, grid, db).run()).progress
    assert second.objects_found == 6  # root, snap-a, pics, f1, f2, f3
    keys = {row[0] for row in db.query("SELECT storage_index FROM maintenance_objects")}
    assert keys == {"root", "snap-a", "pics", "f1", "f2", "f3"}


def test_a_few_checks_at_once_and_a_closing_window_holds_the_rest(db: StateDatabase) -> None:
    """With three checks in flight at most, a fourth starts only when one ends; once the
    throttle is suspended, the checks in flight end and record, no new one starts, and
    the repair the fourth (the damaged f3) needs waits for the gate too."""
    clock, grid = Clock(), archive_tree()
    grid.held = []
    throttle = JobThrottle(clock)
    d = _walker(clock, grid, db, throttle, checks_in_flight=3).run()
    assert len(grid.held) == 3
    grid.held.pop(0).callback(None)
    assert len(grid.held) == 3 and sum(grid.checks.values()) == 4
    throttle.suspend()
    while grid.held:
        grid.held.pop(0).callback(None)
    clock.advance(3600)
    assert sum(grid.checks.values()) == 4 and not d.called
    recorded = db.query("SELECT storage_index FROM maintenance_objects WHERE checked_pass = 1")
    assert sorted(recorded) == [("root",), ("snap-a",), ("snap-b",)]
    assert grid.checks["f3"] == 1 and grid.repairs["f3"] == 0
    throttle.resume()
    while grid.held:
        grid.held.pop(0).callback(None)
    assert _result(d).progress.objects_checked == 8
    assert dict(grid.checks) == {key: 1 for key in OBJECTS}
