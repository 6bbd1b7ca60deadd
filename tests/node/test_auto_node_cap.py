"""``limit.up = auto`` in the real Governor, on an injected clock with a fake uplink.

Two storage servers are uploaded to over one slow uplink (the user's own DSL
line): every byte of both connections waits in the same modem queue, so each
connection's round trip is its own base delay plus what that queue holds.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.web.template import flattenString

from tahoe_governor.cli.check import report_lines
from tahoe_governor.cli.status import status_lines
from tahoe_governor.node.governor import Governor
from tahoe_governor.policy.engine import AUTO_START_BYTES
from tahoe_governor.status import public_dict
from tahoe_governor.throttle import UNLIMITED
from tahoe_governor.throttle.receive_window import receive_window_bytes
from tahoe_governor.throttle.testing import FakeCounters
from tahoe_governor.web.metrics import metric_families
from tahoe_governor.web.status_sections import link_section
from tests.node.test_governor import FRIEND, PARENTS, governor_on_fake_line
from tests.throttle.shaping_fakes import connect

UPLINK = 80_000.0  # the user's uplink, bytes/s
BASES = {PARENTS: 0.040, FRIEND: 0.010}  # each server's own distance


class Uplink:
    """The user's modem: one queue for every connection, draining at UPLINK bytes/s.

    ``far_queue`` is a queue at one server's end (its own slow downlink), seen by
    that server's connection only.
    """

    def __init__(self) -> None:
        self.queued = 0.0
        self.far_queue = {PARENTS: 0.0, FRIEND: 0.0}
        self.peer_of: dict[Any, str] = {}
        self.last_sent: dict[Any, int] = {}
        self.last_rtt: dict[Any, float] = {}
        self.sent_seen = 0

    def rtt(self, transport: Any) -> float:
        """As the kernel's estimate: it moves only while the connection has bytes acknowledged;
        an idle connection keeps its last value."""
        peer = self.peer_of[transport]
        sent = len(transport.value())
        if sent == self.last_sent.get(transport, 0):
            return self.last_rtt.get(transport, BASES[peer])
        self.last_sent[transport] = sent
        rtt = self.last_rtt[transport] = BASES[peer] + (self.queued + self.far_queue[peer]) / UPLINK
        return rtt


def connected_node(tmp_path: Any, config: str, peer_of: dict[Any, str], rtt: Any = None,
                   receive_rtt: Any = None) -> tuple[Governor, Clock, list[Any]]:
    """A governor connected to the parents and the friend; ``peer_of`` learns each
    connection's transport, by which the round-trip functions answer."""
    governor, clock, client = governor_on_fake_line(
        tmp_path, config, {PARENTS: "parents", FRIEND: "friend"},
        rtt or (lambda transport: None), receive_rtt=receive_rtt or (lambda transport: None))
    conns = []
    for peer in (PARENTS, FRIEND):
        shaped, _, transport = connect(client.shaper, clock, peer)
        peer_of[transport] = peer
        conns.append((shaped, transport, peer))
    return governor, clock, conns


def governed(tmp_path: Any, config: str) -> tuple[Governor, Clock, Uplink, list[Any]]:
    uplink = Uplink()
    governor, clock, conns = connected_node(tmp_path, config, uplink.peer_of, rtt=uplink.rtt)
    return governor, clock, uplink, conns


def upload(governor: Governor, clock: Clock, uplink: Uplink, conns: list[Any],
           seconds: float, busy: tuple[str, ...] = (PARENTS, FRIEND)) -> None:
    """The jobs keep the ``busy`` connections full; the modem drains its queue."""
    for _ in range(int(seconds * 20)):
        for shaped, _, peer in conns:
            if peer in busy and governor.shaper.peer_stats(peer).queued_up < 200_000:
                shaped.write(b"x" * 50_000)
        clock.advance(0.05)
        sent = sum(len(transport.value()) for _, transport, _ in conns)
        uplink.queued = max(0.0, uplink.queued + (sent - uplink.sent_seen) - UPLINK * 0.05)
        uplink.sent_seen = sent


def node_up(governor: Governor) -> float:
    return governor.live.current.node_up.bytes_per_second


def test_the_node_cap_finds_the_uplink_and_keeps_its_queue_short(tmp_path: Any) -> None:
    """From its start rate the node's cap reaches the 80 kB/s uplink within two
    minutes, then uses at least 85 % of it while its queue stays under 0.2 s."""
    governor, clock, uplink, conns = governed(tmp_path, "[bandwidth]\nlimit.up = auto\n")
    assert node_up(governor) == pytest.approx(AUTO_START_BYTES)
    assert governor.live.current.node_up.source == "limit.up (auto)"
    upload(governor, clock, uplink, conns, 120.0)
    sent_before, t0 = uplink.sent_seen, clock.seconds()
    upload(governor, clock, uplink, conns, 60.0)
    achieved = (uplink.sent_seen - sent_before) / (clock.seconds() - t0)
    assert achieved >= 0.85 * UPLINK
    assert uplink.queued / UPLINK < 0.2, "the modem's queue stays short"
    reading = governor.auto_caps.node_reading()
    assert reading is not None and reading.rate == pytest.approx(node_up(governor))


def test_a_queue_at_one_servers_end_does_not_hold_the_node_back(tmp_path: Any) -> None:
    """A queue only the parents' connection shows (their own downlink) is not the
    user's uplink: the node's cap still grows to the uplink."""
    governor, clock, uplink, conns = governed(tmp_path, "[bandwidth]\nlimit.up = auto\n")
    upload(governor, clock, uplink, conns, 30.0)
    uplink.far_queue[PARENTS] = UPLINK * 0.5  # half a second of queue at the parents' end
    upload(governor, clock, uplink, conns, 120.0)
    assert node_up(governor) >= 0.85 * UPLINK


def test_an_idle_connection_does_not_count(tmp_path: Any) -> None:
    """The friend is sent nothing, so its round trip (stale, at its base) is not
    taken as the uplink's: with the parents' connection over the target the
    node's cap falls."""
    governor, clock, uplink, conns = governed(tmp_path, "[bandwidth]\nlimit.up = auto\n")
    upload(governor, clock, uplink, conns, 120.0, busy=(PARENTS,))
    before = node_up(governor)
    for _ in range(12):
        uplink.queued += UPLINK * 0.25  # the household starts a large upload of its own
        upload(governor, clock, uplink, conns, 0.25, busy=(PARENTS,))
    assert node_up(governor) < 0.5 * before


def test_an_override_replaces_auto_and_check_says_so(tmp_path: Any) -> None:
    """A live override wins over ``auto`` and names it as what it replaced; without
    one, ``check`` explains the automatic cap."""
    governor, clock, uplink, conns = governed(tmp_path, "[bandwidth]\nlimit.up = auto\n")
    lines = "\n".join(report_lines(governor.live.policy, governor.live.current,
                                   str(tmp_path), {}, FakeCounters()))
    assert "node limit up:   auto: starts at 32 kB/s (256 kbps) and follows" in lines, lines
    governor.controls.set_limit("node", "", "up", "100kB/s")
    limit = governor.live.current.node_up
    assert (limit.bytes_per_second, limit.source, limit.overridden) == (100_000.0, "override",
                                                                         "auto")


DOWNLINK = 100_000.0  # the parents' downlink, bytes/s, in front of their node


class Downlink:
    """The modem in front of the node's downlink: what the senders push waits in one queue
    that delivers DOWNLINK bytes/s."""

    def __init__(self) -> None:
        self.queued: dict[str, float] = {PARENTS: 0.0, FRIEND: 0.0}
        self.peer_of: dict[Any, str] = {}

    def total(self) -> float:
        return sum(self.queued.values())

    def receive_rtt(self, transport: Any) -> float:
        return BASES[self.peer_of[transport]] + self.total() / DOWNLINK


def receive(governor: Governor, clock: Clock, line: Downlink, conns: list[Any],
            seconds: float, senders: tuple[str, ...] = (PARENTS, FRIEND)) -> int:
    """The ``senders`` send to the node as fast as it lets them for ``seconds``; the
    bytes it delivered."""
    delivered = 0
    for _ in range(int(seconds * 20)):
        # Each sender keeps a receive window in flight: 80 ms of the cap in force, as the
        # node sizes it (throttle.receive_window; the kernel's 256 KB without a cap),
        # less what the node holds unread.
        for _shaped, _transport, peer in conns:
            if peer not in senders:
                continue
            _up, peer_down = governor.shaper.peer_limit(peer)
            cap = min(governor.live.current.node_down.bytes_per_second,
                      UNLIMITED if peer_down is None else peer_down)
            window = receive_window_bytes(cap) if cap != UNLIMITED else 256_000
            unread = governor.shaper.peer_stats(peer).queued_down
            line.queued[peer] = max(line.queued[peer], float((window or 0) - unread))
        budget = DOWNLINK * 0.05
        total = line.total()
        for shaped, _transport, peer in conns:
            share = int(min(line.queued[peer], budget * line.queued[peer] / total)) if total else 0
            if share:
                line.queued[peer] -= share
                shaped.dataReceived(b"x" * share)
                delivered += share
        clock.advance(0.05)
    return delivered


def downloading_node(tmp_path: Any, bandwidth: str) -> tuple[Governor, Clock, Downlink, list[Any]]:
    line = Downlink()
    governor, clock, conns = connected_node(tmp_path, f"[bandwidth]\n{bandwidth}\n",
                                            line.peer_of, receive_rtt=line.receive_rtt)
    return governor, clock, line, conns


def test_limit_down_auto_keeps_the_downlink_queue_short(tmp_path: Any) -> None:
    """The parents' own node under ``limit.down = auto``, two uncapped uploaders: the cap
    finds the 100 kB/s downlink from its start, then the node takes at least 90 % of it
    while the modem's queue stays under a tenth of a second."""
    governor, clock, line, conns = downloading_node(tmp_path, "limit.down = auto")
    assert governor.live.current.node_down.source == "limit.down (auto)"
    receive(governor, clock, line, conns, 120.0)
    delivered, longest = 0, 0.0
    for _ in range(60):
        delivered += receive(governor, clock, line, conns, 1.0)
        longest = max(longest, line.total() / DOWNLINK)
    assert delivered / 60.0 >= 0.9 * DOWNLINK
    assert longest < 0.1, "the modem's queue stays short"
    reading = governor.auto_caps.node_reading("down")
    assert reading is not None and reading.rate == pytest.approx(
        governor.live.current.node_down.bytes_per_second)


def test_a_fixed_cap_above_the_downlink_fills_its_queue(tmp_path: Any) -> None:
    """The same line under a fixed ``limit.down`` above its rate: the windows the node
    offers fill the modem's queue for good (what ``auto`` avoids)."""
    governor, clock, line, conns = downloading_node(tmp_path, "limit.down = 1MB/s")
    receive(governor, clock, line, conns, 30.0)
    assert line.total() / DOWNLINK > 1.0


def test_the_status_pages_and_metrics_show_the_node_cap_as_automatic(tmp_path: Any) -> None:
    """The snapshot carries the rate chosen and the uplink's queueing delay; ``status``,
    the public page and ``/metrics`` show them."""
    governor, clock, uplink, conns = governed(tmp_path, "[bandwidth]\nlimit.up = auto\n")
    upload(governor, clock, uplink, conns, 30.0)
    status = governor.controls.status()
    assert status.link.node_auto_rate_up == pytest.approx(node_up(governor))
    assert status.link.node_queueing_delay_up_seconds is not None
    shown = "\n".join(status_lines(public_dict(status)))
    assert re.search(r"Node cap: up [0-9.]+ kB/s \(auto, queue [0-9]+ ms\)",
                     shown), shown
    rendered: list[bytes] = []
    flattenString(None, link_section(status.link)).addCallback(rendered.append)
    assert b"(auto, queue" in rendered[0]
    names = {family.name for family in metric_families(status)}
    assert "tahoe_governor_node_queueing_delay_seconds" in names


def test_a_peers_down_auto_keeps_its_uplink_queue_short(tmp_path: Any) -> None:
    """Restoring from the parents' server across their slow uplink, under
    ``peer.parents.down = auto``: the parents' cap finds their line (at least 90 % of
    it) and keeps its queue under a tenth of a second; the friend is not capped."""
    governor, clock, line, conns = downloading_node(tmp_path, "peer.parents.down = auto")
    receive(governor, clock, line, conns, 120.0, senders=(PARENTS,))
    delivered, longest = 0, 0.0
    for _ in range(60):
        delivered += receive(governor, clock, line, conns, 1.0, senders=(PARENTS,))
        longest = max(longest, line.total() / DOWNLINK)
    assert delivered / 60.0 >= 0.9 * DOWNLINK
    assert longest < 0.1, "the parents' modem queue stays short"
    assert governor.auto_caps.reading(PARENTS, "down") is not None
    assert governor.auto_caps.reading(FRIEND, "down") is None
    assert governor.shaper.peer_limit(FRIEND)[1] is None
    status = governor.controls.status()
    parents = next(peer for peer in status.peers if peer.tubid == PARENTS)
    assert parents.auto_rate_down is not None and parents.auto_rate is None
    shown = "\n".join(status_lines(public_dict(status)))
    assert re.search(r"parents .* unlimited  [0-9.]+ kB/s / [0-9.]+ kB/s \(auto, queue", shown), \
        shown
    samples = {(sample.labels["peer"], sample.labels["direction"])
               for family in metric_families(status)
               if family.name == "tahoe_governor_peer_auto_rate_bytes_per_second"
               for sample in family.samples}
    assert samples == {(PARENTS, "down")}
    checked = "\n".join(report_lines(governor.live.policy, governor.live.current,
                                     str(tmp_path), {}, FakeCounters()))
    assert "    down: auto: starts at 32 kB/s (256 kbps) and follows" in checked, checked


def test_a_peer_automatic_both_ways_shows_both(tmp_path: Any) -> None:
    """``peer.parents.up = auto`` and ``.down = auto`` together: the status carries both
    controllers' rates and one target delay, and the status command shows both."""
    governor, clock, line, conns = downloading_node(
        tmp_path, "peer.parents.up = auto\npeer.parents.down = auto")
    receive(governor, clock, line, conns, 10.0, senders=(PARENTS,))
    status = governor.controls.status()
    parents = next(peer for peer in status.peers if peer.tubid == PARENTS)
    assert parents.auto_rate is not None and parents.auto_rate_down is not None
    assert parents.target_delay_seconds == pytest.approx(0.025)
    shown = "\n".join(status_lines(public_dict(status)))
    assert shown.count("(auto,") >= 2, shown
