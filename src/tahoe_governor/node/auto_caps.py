"""Automatic upload caps: a delay controller per peer, and one for the node, fed by round trips.

For each storage server under ``peer.<selector>.up = auto``, every meter tick
reads the kernel's round-trip estimate of each of its connections
(:mod:`tahoe_governor.throttle.socket_rtt`, from the socket under the TLS
transport), hands the largest to the peer's
:class:`~tahoe_governor.throttle.delay_controller.DelayController` with the
rate the peer was sent lately, and returns the rates chosen; the governor puts
them in the policy's measurements, so the engine applies them under every other
cap (the node's above all). The controller's floor is the upload floor of the
grid's encoding (a segment must reach the server within its idle limit), its
ceiling the node's upload cap.

Under ``limit.up = auto`` one more controller sets the node's upload cap: the
user's own uplink is the queue every connection passes, so each connection
keeps its own base round trip, and the node's queueing delay is the smallest
queueing delay among the peers it is uploading to (a queue only one peer
shows is at that peer's end, which its own cap, not the node's, should
answer). Its floor is the node's upload floor (every server's block of a
segment), and it has no ceiling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from tahoe_governor.policy.engine import auto_node_start_rate
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.policy.upload_floor import peer_floor, shared_floor
from tahoe_governor.throttle import UNLIMITED, ConnectionShaper
from tahoe_governor.throttle.delay_controller import (
    DEFAULT_TARGET_SECONDS,
    DelayController,
    DelaySettings,
    RoundTrips,
)
from tahoe_governor.throttle.socket_rtt import transport_rtt_seconds


@attrs.frozen
class AutoCapReading:
    """What one peer's controller knows now (seconds, bytes/s; ``None``: not measured)."""

    base_rtt: float | None
    current_rtt: float | None
    queueing_delay: float | None
    rate: float
    target_delay: float


ACTIVE_UPLOAD_BYTES = 1_000.0
"""A peer sent less than this (bytes/s, smoothed) has no bytes in flight worth
timing: its kernel round trip is stale, so the node's controller ignores it."""


class AutoPeerCaps:
    """The controllers of the peers under automatic caps; see the module doc.

    :param rtt: a transport's round trip in seconds, or ``None`` (the kernel's, by default).
    """

    def __init__(self, shaper: ConnectionShaper, live: LivePolicy,
                 rtt: Callable[[Any], float | None] = transport_rtt_seconds) -> None:
        self._shaper = shaper
        self._live = live
        self._rtt = rtt
        self._controllers: dict[str, DelayController] = {}
        self._node: DelayController | None = None
        self._node_round_trips: dict[str, RoundTrips] = {}
        self._node_queueing: float | None = None
        self.node_rate: float | None = None
        """The node's upload rate under ``limit.up = auto`` (``None``: not automatic)."""

    def tick(self, now: float) -> dict[str, float]:
        """Measure and steer every automatic cap; TubID -> the upload rate chosen for
        each automatic peer (the node's, if automatic, is then :attr:`node_rate`)."""
        self._tick_node(now)
        return self._tick_peers(now)

    def _tick_node(self, now: float) -> None:
        policy = self._live.policy
        if not policy.up.limit_auto:
            self._node, self.node_rate, self._node_queueing = None, None, None
            self._node_round_trips.clear()
            return
        floor = shared_floor(policy.encoding)
        if self._node is None:
            self._node = DelayController(
                DelaySettings(floor=floor, start=auto_node_start_rate(policy.encoding)), now)
        connected = set()
        for conn in self._shaper.connections():
            if conn.tubid is None:
                continue
            connected.add(conn.tubid)
            if (rtt := self._rtt(conn.transport)) is not None:
                self._node_round_trips.setdefault(conn.tubid, RoundTrips()).observe(now, rtt)
        for tubid in set(self._node_round_trips) - connected:
            del self._node_round_trips[tubid]
        delays = [trips.queueing_delay for tubid, trips in self._node_round_trips.items()
                  if self._shaper.peer_stats(tubid).rate_up >= ACTIVE_UPLOAD_BYTES]
        self._node_queueing = min((d for d in delays if d is not None), default=None)
        self.node_rate = self._node.steer(
            now, self._shaper.node_stats().rate_up, self._node_queueing)

    def node_reading(self) -> AutoCapReading | None:
        """The node controller's view, ``None`` unless ``limit.up = auto``."""
        if self._node is None or self.node_rate is None:
            return None
        return AutoCapReading(None, None, self._node_queueing, self.node_rate,
                              self._node.settings.target_seconds)

    def _tick_peers(self, now: float) -> dict[str, float]:
        limits = self._live.current
        automatic = [peer for peer in limits.peers if peer.auto_up is not None]
        if not automatic:  # the usual node: no socket is asked anything for its peers
            self._controllers.clear()
            return {}
        floor = peer_floor(self._live.policy.encoding)
        node_up = limits.node_up.bytes_per_second
        ceiling = max(floor, node_up) if node_up != UNLIMITED else UNLIMITED
        capped = {tubid for peer in automatic for tubid in peer.tubids}
        round_trips: dict[str, float] = {}
        for conn in self._shaper.connections():
            if conn.tubid in capped and (rtt := self._rtt(conn.transport)) is not None:
                round_trips[conn.tubid] = max(rtt, round_trips.get(conn.tubid, 0.0))
        rates: dict[str, float] = {}
        for peer in automatic:
            target = peer.target_delay or DEFAULT_TARGET_SECONDS
            for tubid in peer.tubids:
                controller = self._controllers.get(tubid)
                if controller is None or controller.settings.target_seconds != target:
                    controller = self._controllers[tubid] = DelayController(
                        DelaySettings(floor=floor, ceiling=ceiling, target_seconds=target,
                                      start=min(max(peer.auto_start, floor), ceiling)),
                        now)
                else:
                    controller.set_limits(floor=floor, ceiling=ceiling)
                if tubid in round_trips:
                    controller.observe(now, round_trips[tubid])
                rates[tubid] = controller.update(now, self._shaper.peer_stats(tubid).rate_up)
        for tubid in set(self._controllers) - set(rates):
            del self._controllers[tubid]  # no longer under an automatic cap
        return rates

    def reading(self, tubid: str) -> AutoCapReading | None:
        """The controller's view of ``tubid``, ``None`` if it is not under an automatic cap."""
        controller = self._controllers.get(tubid)
        if controller is None:
            return None
        return AutoCapReading(controller.base_rtt, controller.current_rtt,
                              controller.queueing_delay, controller.rate,
                              controller.settings.target_seconds)
