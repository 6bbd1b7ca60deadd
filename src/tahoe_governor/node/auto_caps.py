"""Automatic per-peer upload caps: a delay controller per peer, fed by its connections' round trips.

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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.policy.upload_floor import peer_floor
from tahoe_governor.throttle import UNLIMITED, ConnectionShaper
from tahoe_governor.throttle.delay_controller import (
    DEFAULT_TARGET_SECONDS,
    DelayController,
    DelaySettings,
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

    def tick(self, now: float) -> dict[str, float]:
        """Measure and steer every automatic peer; TubID -> the upload rate chosen."""
        limits = self._live.current
        automatic = [peer for peer in limits.peers if peer.auto_up is not None]
        if not automatic:  # the usual node: no socket is asked anything
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
