"""Automatic per-peer caps in the real Governor, on an injected clock with a fake round trip.

A shaped connection to the capped server stays busy; the test plays the
line: its round trip is the base delay plus what the line's queue holds.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from twisted.internet.task import Clock

from tahoe_governor.cli.status import status_lines
from tahoe_governor.node.governor import Governor
from tahoe_governor.status import public_dict
from tahoe_governor.web.metrics import metric_families
from tests.node.test_governor import PARENTS, governor_on_fake_line
from tests.throttle.shaping_fakes import connect

CONFIG = """
[bandwidth]
limit.up = 1MB/s
peer.parents.up = auto
peer.parents.target_delay = 25ms
"""
LINE = 60_000.0  # the parents' uplink, bytes/s
BASE = 0.030


class Line:
    """The parents' modem: a queue that drains at LINE bytes/s."""

    def __init__(self) -> None:
        self.queued = 0.0
        self.sent_seen = 0

    def rtt(self, _transport: Any) -> float:
        return BASE + self.queued / LINE


@pytest.fixture
def node(tmp_path: Any) -> tuple[Governor, Clock, Line, Any]:
    line = Line()
    governor, clock, client = governor_on_fake_line(
        tmp_path, CONFIG, {PARENTS: "parents"}, line.rtt)
    shaped, _, transport = connect(client.shaper, clock, PARENTS)
    return governor, clock, line, (shaped, transport)


def run(governor: Governor, clock: Clock, line: Line, conn: Any, seconds: float) -> None:
    """The job keeps the connection busy; the line drains its queue."""
    shaped, transport = conn
    for _ in range(int(seconds * 20)):
        if governor.shaper.peer_stats(PARENTS).queued_up < 200_000:
            shaped.write(b"x" * 50_000)
        clock.advance(0.05)
        sent = len(transport.value())
        line.queued = max(0.0, line.queued + (sent - line.sent_seen) - LINE * 0.05)
        line.sent_seen = sent


def test_the_cap_finds_the_line_and_keeps_its_queue_short(node: Any) -> None:
    """From 32 kB/s the cap falls or grows to the parents' 60 kB/s line within two minutes and then
    holds the line's queue near the 25 ms target; the status shows what it measured."""
    governor, clock, line, conn = node
    assert governor.shaper.peer_limit(PARENTS)[0] == pytest.approx(32_000.0, rel=0.1)
    run(governor, clock, line, conn, 120.0)
    sent_before, t0 = line.sent_seen, clock.seconds()
    run(governor, clock, line, conn, 60.0)
    achieved = (line.sent_seen - sent_before) / (clock.seconds() - t0)
    assert achieved >= 0.85 * LINE
    assert line.queued / LINE < 0.2, "the modem's queue stays short"
    (peer,) = governor.controls.status().peers
    assert peer.auto_rate is not None and peer.auto_rate == pytest.approx(
        governor.shaper.peer_limit(PARENTS)[0])
    assert peer.base_rtt_seconds == pytest.approx(BASE, abs=0.002)
    assert peer.target_delay_seconds == 0.025
    assert public_dict(governor.controls.status())["peers"][0]["queueing_delay_seconds"] \
        is not None
    shown = "\n".join(status_lines(public_dict(governor.controls.status())))
    assert re.search(r"/ [0-9.]+ kB/s \(auto, queue [0-9]+ ms\)", shown), shown
    names = {family.name for family in metric_families(governor.controls.status())}
    assert {"tahoe_governor_peer_rtt_seconds", "tahoe_governor_peer_queueing_delay_seconds",
            "tahoe_governor_peer_auto_rate_bytes_per_second"} <= names


def test_a_line_that_gets_busy_makes_the_cap_back_off(node: Any) -> None:
    """When the parents' own traffic takes most of the line (their queue fills), the cap
    falls within seconds, and never below the upload floor."""
    governor, clock, line, conn = node
    run(governor, clock, line, conn, 120.0)
    before = governor.shaper.peer_limit(PARENTS)[0]
    line.queued = 5 * LINE * 0.025  # the parents start a large upload of their own
    clock.advance(0.25)
    for _ in range(12):
        line.queued += LINE * 0.25  # and keep their share of the line busy
        clock.advance(0.25)
    after = governor.shaper.peer_limit(PARENTS)[0]
    assert after < 0.5 * before
    assert after >= 1.0
