"""A job's allowed times, frequency and CPU budget changed live, as the private page does.

The real Governor on an injected clock with its tahoe.cfg on disk (see
``tests/node/test_reload.py``): a setting applies at once, is kept in the state
database across restarts and reloads, and goes back to tahoe.cfg's on request.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tahoe_governor.app import build_governor
from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.status import ControlError, private_dict, public_dict
from tahoe_governor.throttle.testing import FakeCounters
from tests.node.test_governor import UTC
from tests.node.test_reload import BACKUPS, BANDWIDTH, HOUR, NODE, Node, TimedWalkers

TEXT = NODE + BACKUPS + BANDWIDTH


def run(node: Node, seconds: float) -> None:
    """Let time pass a minute at a time (the fake runs count their work per step)."""
    for _ in range(round(seconds / 60)):
        node.clock.advance(60)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    node = Node(tmp_path, TEXT)  # 23:00, b1 running in its 2200-0600 window
    assert node.state("b1") == "running"
    return node


def test_new_allowed_times_apply_at_once_and_back_to_tahoe_cfg(node: Node) -> None:
    """At 23:00, allowed times 0100-0300 suspend b1 at once; it runs again at 01:00;
    back to tahoe.cfg's 2200-0600 at 03:30 it runs on instead of stopping at 03:00."""
    controls = node.governor.controls
    controls.set_job_setting("b1", "allowed_times", "0100-0300")
    assert node.state("b1") == "suspended"
    job = controls.status().job("b1")
    assert (job.allowed_times, job.settings_overridden) == ("0100-0300", ("allowed_times",))
    run(node, 2 * HOUR + 60)  # 01:01
    assert node.state("b1") == "running"
    controls.set_job_setting("b1", "allowed_times", None)
    run(node, 2.5 * HOUR)  # 03:31
    assert node.state("b1") == "running"
    assert controls.status().job("b1").settings_overridden == ()


def test_settings_are_private_kept_across_restart_and_reload(node: Node, tmp_path: Path) -> None:
    """A frequency and a CPU budget set live are in the private status only; a node
    started again on the same state database runs with them, and a reload keeps them."""
    controls = node.governor.controls
    controls.set_job_setting("b1", "frequency", "2weeks")
    controls.set_job_setting("b1", "cpu", "10%")
    assert node.governor.scheduler.runners["b1"].throttle._cpu_gate is not None
    status = controls.status()
    assert status.overrides == ("job b1 cpu = 10%", "job b1 frequency = 2weeks")
    assert "overrides" not in public_dict(status)
    assert "settings_overridden" not in public_dict(status)["jobs"][0]
    assert private_dict(status)["jobs"][0]["settings_overridden"] == ["frequency", "cpu"]

    again = build_governor(
        node.clock, node.client, str(tmp_path), parse_policy_text(TEXT, UTC), node.database,
        counters=FakeCounters(), walkers=TimedWalkers(node.clock, node.client, str(tmp_path)),
        config_text=TEXT)
    job = again.live.policy.job("b1")
    assert (job.frequency, job.cpu) == (14 * 86400, 0.10)
    assert again.live.configured_policy.job("b1").frequency == 86400

    node.reload(TEXT.replace("b1.frequency = 1day", "b1.frequency = 3days"))
    assert node.governor.live.policy.job("b1").frequency == 14 * 86400
    controls.set_job_setting("b1", "frequency", None)
    assert node.governor.live.policy.job("b1").frequency == 3 * 86400


@pytest.mark.parametrize(
    ("job", "setting", "value", "message"),
    [
        ("b1", "allowed_times", "tonight", "allowed_times = 'tonight': expected"),
        ("b1", "frequency", "1fortnight", "frequency = '1fortnight': expected"),
        ("b1", "cpu", "150%", "cpu = '150%': expected"),
        ("b1", "weight", "2", "unknown job setting 'weight': expected one of allowed_times"),
        ("b9", "frequency", "1day", "unknown job 'b9': expected one of b1"),
        ("b1", "frequency", None, "no override of job 'b1' frequency to clear"),
    ],
)
def test_bad_settings_are_refused_and_change_nothing(
        node: Node, job: str, setting: str, value: str | None, message: str) -> None:
    """Each refusal says what was wrong and what was expected; nothing is kept."""
    with pytest.raises(ControlError, match=message.replace("(", r"\(")):
        node.governor.controls.set_job_setting(job, setting, value)
    assert node.governor.live.overrides.job_settings == {}
    assert node.database.overrides().job_settings == {}
    assert node.state("b1") == "running"
