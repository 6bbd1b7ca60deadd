"""A maintenance task under the real scheduler, policy, lifecycle and state database, on a
Clock: a window's end holds the pass within a second, the next window resumes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from twisted.internet.task import Clock

from tahoe_governor.backup.job_throttle import JobThrottle
from tahoe_governor.backup.scheduler import BackupScheduler
from tahoe_governor.maintenance import MaintenanceRecords, MaintenanceWalker
from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.policy.state_db import StateDatabase
from tahoe_governor.status import ControlError
from tests.maintenance.fake_grid import archive_tree

UTC = ZoneInfo("UTC")
HOUR = 3600.0
MIDNIGHT = 1795651200.0  # 2026-11-26 00:00 UTC
CONFIG = """
[maintenance]
m1.target = backup:photos
m1.frequency = 1week
m1.allowed_times = 0100-0200
"""


def test_the_window_end_holds_the_pass_and_the_next_window_resumes_it(
        tmp_path: Path) -> None:
    """Five seconds before 02:00 the due task starts (one check a second, one at a time);
    at 02:00 no further check starts, all night; at 01:00 the next day the same run goes on
    from the next object and completes, every object checked once."""
    clock = Clock()
    clock.advance(MIDNIGHT + 2 * HOUR - 5)
    db = StateDatabase(str(tmp_path / "governor.sqlite"))
    grid = archive_tree()
    grid.check_seconds = (clock, 1.0)
    walkers: list[MaintenanceWalker] = []

    def make_walker(task: Any, throttle: JobThrottle) -> MaintenanceWalker:
        walkers.append(MaintenanceWalker(
            reactor=clock, grid=grid, records=MaintenanceRecords(db, task.name),
            gate=throttle, checks_in_flight=1))
        return walkers[-1]

    live = LivePolicy.from_database(clock, parse_policy_text(CONFIG, UTC), db)
    scheduler = BackupScheduler(clock, live, db, make_walker)
    live.startService()
    scheduler.startService()
    runner = scheduler.runners["m1"]
    clock.pump([0.1] * 49)  # to 01:59:59.9
    assert runner.lifecycle.state == "running"
    clock.pump([0.2] * 2)  # to 02:00:00.3
    assert runner.lifecycle.state == "suspended"
    checked_at_the_end = sum(grid.checks.values())
    assert 4 <= checked_at_the_end <= 6
    clock.pump([1.0] * 2)  # the check in flight ends within the second; no new one
    held = sum(grid.checks.values())
    assert held <= checked_at_the_end + 1
    clock.pump([600.0] * 6 * 22)  # 00:00 the next day: nothing more all night
    assert sum(grid.checks.values()) == held and runner.lifecycle.state == "suspended"
    clock.pump([600.0] * 6 + [1.0] * 10)  # to 01:00:12
    assert runner.lifecycle.state in ("running", "done")
    clock.pump([1.0] * 10)
    assert runner.lifecycle.state == "done"
    assert len(walkers) == 1  # the same run, resumed
    assert dict(grid.checks) == {key: 1 for key in grid.objects}
    assert [run.outcome for run in db.runs("m1")] == ["completed"]
    status = scheduler.job_statuses()[0]
    assert (status.kind, status.files_total["repaired"], status.last_pass) == (
        "maintenance", 1, runner.last_result.progress)
    scheduler.stopService()
    live.stopService()
    db.close()


def test_a_tasks_settings_are_not_overridden_live(tmp_path: Path) -> None:
    """The private page's live job settings are a backup job's: for a task they are refused
    with where to change them, and nothing is stored."""
    clock = Clock()
    clock.advance(MIDNIGHT)
    db = StateDatabase(str(tmp_path / "governor.sqlite"))
    live = LivePolicy.from_database(clock, parse_policy_text(CONFIG, UTC), db)
    scheduler = BackupScheduler(clock, live, db, lambda job, throttle: None)  # type: ignore
    with pytest.raises(ControlError, match=r"maintenance task 'm1': its settings are changed "
                                           r"in tahoe.cfg \(\[maintenance\]\)"):
        scheduler.set_job_setting("m1", "frequency", "1day")
    assert live.overrides.job_settings == {}
    db.close()
