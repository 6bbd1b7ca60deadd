"""LivePolicy: re-evaluation at the next change and on every input, driven by task.Clock."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from twisted.internet.task import Clock

from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.policy.engine import Limits
from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.policy.measurements import Measurements
from tahoe_governor.policy.overrides import LimitKey
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.policy.state_db import StateDatabase

UTC = ZoneInfo("UTC")
MONDAY_0759 = datetime.fromisoformat("2026-11-23T07:59:00+00:00").timestamp()
CFG = """
[backups]
a.source = /a
a.target = backup:a
a.frequency = 1day
a.allowed_times = 2200-0800
b.source = /b
b.target = backup:b
b.frequency = 1day
[bandwidth]
capacity.up = 1Mbps
busy.up = 80%
limit.up = 800kbps
schedule.up = Mon-Fri 0800-1800 100kbps
"""


def _live(store: StateDatabase | None = None) -> tuple[Clock, LivePolicy, list[Limits]]:
    clock = Clock()
    clock.advance(MONDAY_0759)
    live = LivePolicy(clock, parse_policy_text(CFG, UTC), store=store)
    seen: list[Limits] = []
    live.subscribe(seen.append)
    return clock, live, seen


def test_reevaluates_at_the_next_edge() -> None:
    """At 08:00 the schedule starts and job a's window ends: listeners hear it then."""
    clock, live, seen = _live()
    live.startService()
    assert live.current.node_up.bytes_per_second == 100_000
    assert [call.getTime() for call in clock.getDelayedCalls()] == [MONDAY_0759 + 60]
    clock.advance(59)
    assert seen == []
    clock.advance(1)
    (limits,) = seen
    assert limits.node_up.bytes_per_second == 12_500
    assert not limits.job("a").admission.may_run
    # and the next timer is at 18:00, the end of the schedule entry
    assert [call.getTime() for call in clock.getDelayedCalls()] == [MONDAY_0759 + 60 + 10 * 3600]
    live.stopService()
    assert clock.getDelayedCalls() == []


def test_measurements_notify_only_on_change() -> None:
    """A new measurement that changes a limit notifies; an identical one does not."""
    _clock, live, seen = _live()
    live.update_measurements(Measurements(other_up=50_000))
    assert seen[-1].node_up.bytes_per_second == 50_000
    live.update_measurements(Measurements(other_up=50_000))
    assert len(seen) == 1
    live.update_measurements(Measurements(other_up=50_000, job_cpu={"a": 0.1}))
    assert len(seen) == 2 and seen[-1].job("a").cpu_used == 0.1


def test_overrides_are_kept_in_the_store(tmp_path: Path) -> None:
    """set_override and set_paused persist, apply at once, and can be cleared."""
    db = StateDatabase(str(tmp_path / "governor.sqlite"))
    _clock, live, seen = _live(store=db)
    node_up = LimitKey("node", "", "up")
    live.set_override(node_up, "20kB/s")
    assert seen[-1].node_up.bytes_per_second == 20_000
    assert seen[-1].node_up.override == "20kB/s"
    live.set_paused("a", True)
    assert seen[-1].job("a").admission.paused
    assert db.overrides() == live.overrides
    live.set_override(node_up, None)
    live.set_paused("a", False)
    assert db.overrides().limits == {} and db.overrides().paused == frozenset()
    assert seen[-1].node_up.source == "limit.up"  # ties busy.up at 100 kB/s; first wins
    with pytest.raises(ValueSyntaxError):
        live.set_override(node_up, "fast")
    with pytest.raises(KeyError):
        live.set_paused("ghost", True)
    db.close()


def test_running_jobs_share_and_completion() -> None:
    """Starting a second job halves the first's share; completing a run makes it not due."""
    _clock, live, seen = _live()
    live.set_override(LimitKey("node", "", "up"), "unlimited")
    live.set_override(LimitKey("node", "", "up"), "100kB/s")
    live.set_running_jobs(["a"])
    assert live.current.job("a").rate.bytes_per_second == 100_000
    live.set_running_jobs(["a", "b"])
    assert live.current.job("a").rate.bytes_per_second == 50_000
    live.set_last_completed("b", MONDAY_0759)
    assert not live.current.job("b").admission.due
    assert live.current.next_change == MONDAY_0759 + 60


def test_policy_reload_keeps_overrides() -> None:
    """Replacing the parsed tahoe.cfg keeps overrides and drops vanished running jobs."""
    _clock, live, _seen = _live()
    live.set_override(LimitKey("node", "", "down"), "1MB/s")
    live.set_running_jobs(["a", "b"])
    live.set_policy(parse_policy_text("[bandwidth]\nlimit.down = 5MB/s\n", UTC))
    assert live.current.node_down.bytes_per_second == 1_000_000
    assert live.current.jobs == ()


def test_from_database(tmp_path: Path) -> None:
    """A live policy built from the database starts with its overrides, runs and estimates."""
    with StateDatabase(str(tmp_path / "governor.sqlite")) as db:
        run = db.start_run("a", MONDAY_0759 - 600)
        db.finish_run(run, MONDAY_0759 - 60, "completed")
        db.set_paused("b", True, MONDAY_0759)
        db.put_estimate("capacity.up", 50_000.0, MONDAY_0759)
        clock = Clock()
        clock.advance(MONDAY_0759)
        cfg = CFG.replace("capacity.up = 1Mbps", "capacity.up = auto")
        live = LivePolicy.from_database(clock, parse_policy_text(cfg, UTC), db)
        assert not live.current.job("a").admission.due
        assert live.current.job("b").admission.paused
        assert live.current.capacity_up == 50_000
        assert live.current.node_up.bytes_per_second == 40_000  # busy.up 80 % of 50 kB/s
        live.set_override(LimitKey("job", "a", "up"), "10kB/s")
        assert db.overrides().limit(LimitKey("job", "a", "up")) is not None
