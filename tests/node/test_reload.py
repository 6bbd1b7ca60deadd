"""Reloading tahoe.cfg into a running node: a valid file takes effect at once, an invalid one never.

The real Governor on an injected clock (as in the two-day test) reads a real
tahoe.cfg from its node directory, judged as ``check`` judges it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from tahoe_governor.app import build_governor
from tahoe_governor.node.governor import Governor
from tahoe_governor.node.reload import reload_on_sighup, tahoe_settings_changed
from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.policy.state_db import StateDatabase
from tahoe_governor.status import ControlError
from tahoe_governor.throttle.testing import FakeCounters
from tests.node.test_governor import PARENTS, UTC, FakeClient, FakeServer
from tests.node.test_two_days import HOUR, THURSDAY_NOON, TimedWalkers

NODE = "[node]\nnickname = laptop\n\n"
BACKUPS = """[backups]
b1.source = /srv/photos
b1.target = backup:photos
b1.frequency = 1day
b1.allowed_times = 2200-0600
"""
BANDWIDTH = """
[bandwidth]
limit.up = 1MB/s
peer.parents.up = 200kbps
"""
B2 = """b2.source = /srv/mail
b2.target = backup:mail
b2.frequency = 1day
b2.allowed_times = 0100-0300
"""
AT_2300 = THURSDAY_NOON + 11 * HOUR  # inside b1's window


class Node:
    """A governed node on a clock, its tahoe.cfg on disk."""

    def __init__(self, tmp_path: Path, text: str) -> None:
        self.cfg = tmp_path / "tahoe.cfg"
        self.cfg.write_text(text)
        self.clock = Clock()
        self.clock.advance(AT_2300)
        self.client = FakeClient(self.clock)
        self.client.storage_broker.servers = [FakeServer(PARENTS, "parents")]
        self.database = StateDatabase(str(tmp_path / "governor.sqlite"))
        self.governor: Governor = build_governor(
            self.clock, self.client, str(tmp_path), parse_policy_text(text, UTC),
            self.database, counters=FakeCounters(),
            walkers=TimedWalkers(self.clock, self.client, str(tmp_path)), config_text=text,
        )
        self.governor.start()
        self.client.storage_broker.connected_enough.callback(None)

    def reload(self, text: str) -> str:
        self.cfg.write_text(text)
        return self.governor.controls.reload()

    def state(self, job: str) -> str:
        return self.governor.scheduler.runners[job].lifecycle.state


@pytest.fixture
def node(tmp_path: Path) -> Node:
    node = Node(tmp_path, NODE + BACKUPS + BANDWIDTH)
    assert node.state("b1") == "running"
    return node


def test_new_limits_apply_at_once_and_the_running_job_keeps_going(node: Node) -> None:
    """A lower node cap and peer cap reach the shaper as the reload returns; b1's run
    is the same run, still running."""
    walker = node.governor.scheduler.runners["b1"].walker
    said = node.reload(NODE + BACKUPS + BANDWIDTH.replace("1MB/s", "500kB/s")
                       .replace("200kbps", "100kbps"))
    assert said == "Reloaded tahoe.cfg: [bandwidth] changed."
    assert node.client.shaper.node_limit() == (500_000, None)
    assert node.client.shaper.peer_limit(PARENTS) == (12_500, None)
    assert node.state("b1") == "running"
    assert node.governor.scheduler.runners["b1"].walker is walker


def test_an_added_job_is_scheduled_and_a_removed_one_is_stopped(node: Node) -> None:
    """b2 added: it waits for its window (01:00) and runs there; b1 removed: its run is
    stopped and recorded as interrupted, and it leaves the status."""
    said = node.reload(NODE + "[backups]\n" + B2 + BANDWIDTH)
    assert said == ("Reloaded tahoe.cfg: job b2 added; job b1 removed (a run in progress "
                    "was stopped and recorded as interrupted).")
    assert list(node.governor.scheduler.runners) == ["b2"]
    node.clock.advance(0)  # the cancelled run ends
    assert [r.outcome for r in node.database.runs("b1")] == ["interrupted"]
    assert [j.name for j in node.governor.controls.status().jobs] == ["b2"]
    assert node.state("b2") == "waiting"
    node.clock.advance(2 * HOUR + 1)  # 01:00:01
    assert node.state("b2") == "running"


def test_a_changed_cpu_budget_reaches_the_jobs_gate(node: Node) -> None:
    """b1 gains a CPU budget: its throttle is gated by it from the reload on; losing it
    again removes the gate."""
    with_cpu = NODE + BACKUPS + "b1.cpu = 25%\n" + BANDWIDTH
    assert "job b1 changed" in node.reload(with_cpu)
    assert node.governor.budgets.jobs() == ["b1"]
    assert node.governor.scheduler.runners["b1"].throttle._cpu_gate is not None
    node.reload(NODE + BACKUPS + BANDWIDTH)
    assert node.governor.budgets.jobs() == []
    assert node.governor.scheduler.runners["b1"].throttle._cpu_gate is None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (NODE + BACKUPS + BANDWIDTH.replace("1MB/s", "fast"), "limit.up"),
        (NODE + BACKUPS.replace("1day", "1fortnight") + BANDWIDTH, "b1.frequency"),
        (NODE + "[client]\nshares.neded = 3\n" + BACKUPS, "shares.neded"),
    ],
    ids=["bad rate", "bad frequency", "unknown Tahoe key"],
)
def test_an_invalid_file_is_refused_with_checks_words_and_changes_nothing(
        node: Node, text: str, named: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The refusal says what ``check`` says about the same file; jobs, limits and the
    running run are as before, and a later valid reload compares against the file that
    was in force."""
    from tahoe_governor.cli.main import main as governor_main

    before = (node.client.shaper.node_limit(), node.client.shaper.peer_limit(PARENTS))
    walker = node.governor.scheduler.runners["b1"].walker
    with pytest.raises(ControlError) as refused:
        node.reload(text)
    assert named in str(refused.value)
    assert str(refused.value).endswith("; nothing was changed")
    assert governor_main(["check", str(node.cfg.parent), "--timezone", "UTC"]) == 1
    check_said = capsys.readouterr().err.strip()
    assert str(refused.value) == check_said + "; nothing was changed"
    assert (node.client.shaper.node_limit(), node.client.shaper.peer_limit(PARENTS)) == before
    assert node.governor.scheduler.runners["b1"].walker is walker
    assert node.reload(NODE + BACKUPS + BANDWIDTH) == (
        "Reloaded tahoe.cfg: nothing changed in [backups] or [bandwidth].")


def test_tahoe_settings_need_a_restart_and_say_so(node: Node) -> None:
    """A change of [node] or [client] is named as taking effect only at a restart."""
    said = node.reload("[node]\nnickname = laptop2\nweb.port = tcp:3456\n\n"
                       + BACKUPS + BANDWIDTH)
    assert said.endswith("These settings take effect only when the node restarts: "
                         "[node] nickname, [node] web.port.")
    assert tahoe_settings_changed(NODE, NODE) == ()


def test_sighup_reloads_and_logs_a_refusal(tmp_path: Path) -> None:
    """SIGHUP asks the reactor thread to reload; a refused reload is logged, not raised."""
    calls: list[str] = []

    class Reactor:
        def callFromThread(self, f: Any) -> None:
            f()

    def reload() -> str:
        calls.append("reload")
        raise ControlError("tahoe.cfg: bad; nothing was changed")

    previous = signal.getsignal(signal.SIGHUP)
    try:
        reload_on_sighup(Reactor(), reload)
        os.kill(os.getpid(), signal.SIGHUP)
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert calls == ["reload"]


def test_an_added_maintenance_task_is_scheduled_without_touching_bandwidth(node: Node) -> None:
    """A [maintenance] task added by a reload is a new job of the scheduler, waiting for its
    window; the reload does not call it a [bandwidth] change, and b1's run goes on."""
    walker = node.governor.scheduler.runners["b1"].walker
    said = node.reload(NODE + BACKUPS + BANDWIDTH + "[maintenance]\nm1.target = backup:photos\n"
                       "m1.frequency = 1week\nm1.allowed_times = 0300-0400\n")
    assert said == "Reloaded tahoe.cfg: job m1 added."
    assert list(node.governor.scheduler.runners) == ["b1", "m1"]
    task = node.governor.controls.status().job("m1")
    assert (task.kind, task.state) == ("maintenance", "waiting")
    assert node.governor.scheduler.runners["b1"].walker is walker
