"""Automatic caps: a delay controller per peer and direction, and one per node direction.

For each storage server under ``peer.<selector>.up = auto`` (``.down``), every
meter tick reads the kernel's round-trip estimate of each of its connections
(:mod:`tahoe_governor.throttle.socket_rtt`, from the socket under the TLS
transport; for downloads, as the receiving side times it), hands the largest
to the peer's :class:`~tahoe_governor.throttle.delay_controller.DelayController`
with the rate the peer was sent (or sent us) lately, and keeps the rates
chosen; the governor puts them in the policy's measurements, so the engine
applies them under every other cap (the node's above all). The controller's
floor is the upload floor of the grid's encoding (a segment must reach the
server within its idle limit; 32 kbit/s for downloads), its ceiling the node's
cap in that direction.

Under ``limit.up = auto`` (``limit.down``) one more controller sets the node's
cap: the user's own uplink (downlink) is the queue every connection passes, so
each connection keeps its own base round trip, and the node's queueing delay
is the smallest queueing delay among the peers it is exchanging with (a queue
only one peer shows is at that peer's end, which its own cap, not the node's,
should answer). Uploads' floor is the node's upload floor (every server's
block of a segment); neither has a ceiling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from tahoe_governor.policy.config import DIRECTIONS, Direction
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
from tahoe_governor.throttle.socket_rtt import (
    transport_receive_rtt_seconds,
    transport_rtt_seconds,
)


@attrs.frozen
class AutoCapReading:
    """What one peer's controller knows now (seconds, bytes/s; ``None``: not measured)."""

    base_rtt: float | None
    current_rtt: float | None
    queueing_delay: float | None
    rate: float
    target_delay: float


ACTIVE_BYTES = 1_000.0
"""A peer that moved less than this (bytes/s, smoothed, in the controller's direction)
has no bytes in flight worth timing: its kernel round trip is stale, so the node's
controller ignores it."""

DOWNLOAD_FLOOR_BYTES = 4_000.0
"""``limit.down = auto`` never goes below 32 kbit/s: downloads have no idle limit to
meet, but directory reads and server-selection answers should still come through."""


class _NodeCap:
    """The delay controller of ``limit.<direction> = auto`` and the round trips it reads."""

    def __init__(self, direction: Direction, settings: DelaySettings, now: float) -> None:
        self.direction = direction
        self.controller = DelayController(settings, now)
        self.round_trips: dict[str, RoundTrips] = {}
        self.queueing: float | None = None

    def tick(self, now: float, shaper: ConnectionShaper,
             rtt: Callable[[Any], float | None]) -> float:
        connected = set()
        for conn in shaper.connections():
            if conn.tubid is None:
                continue
            connected.add(conn.tubid)
            if (sample := rtt(conn.transport)) is not None:
                self.round_trips.setdefault(conn.tubid, RoundTrips()).observe(now, sample)
        for tubid in set(self.round_trips) - connected:
            del self.round_trips[tubid]
        delays = [trips.queueing_delay for tubid, trips in self.round_trips.items()
                  if _rate(shaper.peer_stats(tubid), self.direction) >= ACTIVE_BYTES]
        self.queueing = min((d for d in delays if d is not None), default=None)
        return self.controller.steer(now, _rate(shaper.node_stats(), self.direction),
                                     self.queueing)

    def reading(self) -> AutoCapReading:
        return AutoCapReading(None, None, self.queueing, self.controller.rate,
                              self.controller.settings.target_seconds)


def _rate(stats: Any, direction: Direction) -> float:
    return float(stats.rate_up if direction == "up" else stats.rate_down)


class AutoPeerCaps:
    """The controllers of the peers under automatic caps; see the module doc.

    :param rtt: a transport's round trip in seconds, or ``None`` (the kernel's, by default);
    :param receive_rtt: the same as its receiving side times it (for ``limit.down = auto``).
    """

    def __init__(self, shaper: ConnectionShaper, live: LivePolicy,
                 rtt: Callable[[Any], float | None] = transport_rtt_seconds,
                 receive_rtt: Callable[[Any], float | None] = transport_receive_rtt_seconds,
                 ) -> None:
        self._shaper = shaper
        self._live = live
        self._round_trip = {"up": rtt, "down": receive_rtt}
        self._controllers: dict[tuple[Direction, str], DelayController] = {}
        self.peer_rates: dict[Direction, dict[str, float]] = {"up": {}, "down": {}}
        """TubID -> the rate chosen, per direction, for the peers under automatic caps."""
        self._node: dict[Direction, _NodeCap] = {}
        self.node_rates: dict[Direction, float] = {}
        """The node's rate per direction under ``limit.* = auto`` (absent: not automatic)."""

    @property
    def node_rate(self) -> float | None:
        """The node's upload rate under ``limit.up = auto`` (``None``: not automatic)."""
        return self.node_rates.get("up")

    def tick(self, now: float) -> dict[str, float]:
        """Measure and steer every automatic cap; TubID -> the upload rate chosen for
        each automatic peer (the node's, where automatic, are then :attr:`node_rates`)."""
        policy = self._live.policy
        for direction in DIRECTIONS:
            if not policy.link(direction).limit_auto:
                self._node.pop(direction, None)
                self.node_rates.pop(direction, None)
                continue
            if direction not in self._node:
                floor = shared_floor(policy.encoding) if direction == "up" \
                    else DOWNLOAD_FLOOR_BYTES
                self._node[direction] = _NodeCap(direction, DelaySettings(
                    floor=floor, start=max(floor, auto_node_start_rate(policy.encoding))), now)
            self.node_rates[direction] = self._node[direction].tick(
                now, self._shaper, self._round_trip[direction])
        return self._tick_peers(now)

    def node_reading(self, direction: Direction = "up") -> AutoCapReading | None:
        """The node controller's view in ``direction``, ``None`` unless it is automatic."""
        cap = self._node.get(direction)
        return None if cap is None else cap.reading()

    def _tick_peers(self, now: float) -> dict[str, float]:
        self.peer_rates = {d: self._tick_peer_direction(now, d) for d in DIRECTIONS}
        return self.peer_rates["up"]

    def _tick_peer_direction(self, now: float, direction: Direction) -> dict[str, float]:
        limits = self._live.current
        automatic = [peer for peer in limits.peers
                     if (peer.auto_up if direction == "up" else peer.auto_down) is not None]
        if not automatic:  # the usual node: no socket is asked anything for its peers
            for key in [key for key in self._controllers if key[0] == direction]:
                del self._controllers[key]
            return {}
        floor = peer_floor(self._live.policy.encoding) if direction == "up" \
            else DOWNLOAD_FLOOR_BYTES
        node_limit = limits.node(direction).bytes_per_second
        ceiling = max(floor, node_limit) if node_limit != UNLIMITED else UNLIMITED
        capped = {tubid for peer in automatic for tubid in peer.tubids}
        round_trips: dict[str, float] = {}
        rtt = self._round_trip[direction]
        for conn in self._shaper.connections():
            if conn.tubid in capped and (sample := rtt(conn.transport)) is not None:
                round_trips[conn.tubid] = max(sample, round_trips.get(conn.tubid, 0.0))
        rates: dict[str, float] = {}
        for peer in automatic:
            target = peer.target_delay or DEFAULT_TARGET_SECONDS
            for tubid in peer.tubids:
                controller = self._controllers.get((direction, tubid))
                if controller is None or controller.settings.target_seconds != target:
                    controller = self._controllers[(direction, tubid)] = DelayController(
                        DelaySettings(floor=floor, ceiling=ceiling, target_seconds=target,
                                      start=min(max(peer.auto_start, floor), ceiling)),
                        now)
                else:
                    controller.set_limits(floor=floor, ceiling=ceiling)
                if tubid in round_trips:
                    controller.observe(now, round_trips[tubid])
                rates[tubid] = controller.update(
                    now, _rate(self._shaper.peer_stats(tubid), direction))
        for key in [key for key in self._controllers
                    if key[0] == direction and key[1] not in rates]:
            del self._controllers[key]  # no longer under an automatic cap
        return rates

    def reading(self, tubid: str, direction: Direction = "up") -> AutoCapReading | None:
        """The controller's view of ``tubid`` in ``direction``, ``None`` if it is not
        under an automatic cap there."""
        controller = self._controllers.get((direction, tubid))
        if controller is None:
            return None
        return AutoCapReading(controller.base_rtt, controller.current_rtt,
                              controller.queueing_delay, controller.rate,
                              controller.settings.target_seconds)
