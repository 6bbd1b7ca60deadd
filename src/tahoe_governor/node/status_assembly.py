"""The node's status snapshot, assembled at one instant from the parts that know each piece.

:class:`NodeStatusAssembly` reads the shaper (each peer's traffic and caps),
the meters and the live policy (the link), the scheduler (each job) and what
the node has learnt of its peers and runs (nicknames, latest snapshot caps),
and freezes them into a :class:`~tahoe_governor.status.GovernorStatus`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs

from tahoe_governor.backup.scheduler import BackupScheduler
from tahoe_governor.node.auto_caps import AutoPeerCaps
from tahoe_governor.policy.config import Direction
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.status import GovernorStatus, LinkStatus, PeerStatus, QuotaStatus, RunRecord
from tahoe_governor.throttle import UNLIMITED, Shaper
from tahoe_governor.throttle.meters import Meters
from tahoe_governor.throttle.reactor_clock import ReactorClock


class NodeStatusAssembly:
    """Builds the node's :class:`GovernorStatus` on each :meth:`status` call.

    :param nickname: the node's own nickname.
    :param peer_nickname: a peer's announced nickname by TubID ("" if unknown).
    :param latest_caps: job name -> cap of its last completed snapshot (read at each call).
    :param recent_runs: a job's last runs from the state database (private).
    :param recovery_sheet_reminder: why to print the recovery sheet, or ``None`` (private).
    """

    def __init__(
        self,
        reactor: ReactorClock,
        nickname: str,
        shaper: Shaper,
        meters: Meters,
        live: LivePolicy,
        scheduler: BackupScheduler,
        peer_nickname: Callable[[str], str],
        latest_caps: Mapping[str, str],
        recent_runs: Callable[[str], tuple[RunRecord, ...]] = lambda job: (),
        recovery_sheet_reminder: Callable[[], str | None] = lambda: None,
        auto_caps: AutoPeerCaps | None = None,
    ) -> None:
        self._recent_runs = recent_runs
        self._recovery_sheet_reminder = recovery_sheet_reminder
        self._auto_caps = auto_caps
        self._reactor = reactor
        self._nickname = nickname
        self._shaper = shaper
        self._meters = meters
        self._live = live
        self._scheduler = scheduler
        self._peer_nickname = peer_nickname
        self._latest_caps = latest_caps

    def status(self) -> GovernorStatus:
        """A snapshot of jobs, peers and the link now."""
        return GovernorStatus(
            at=self._reactor.seconds(),
            nickname=self._nickname,
            jobs=tuple(attrs.evolve(job, recent_runs=self._recent_runs(job.name))
                       for job in self._scheduler.job_statuses(dict(self._latest_caps))),
            peers=tuple(self._peer(tubid) for tubid in self._shaper.peers()),
            link=self._link(),
            overrides=tuple(
                f"{key} = {rate}" for key, rate in sorted(
                    self._live.overrides.limits.items(), key=lambda kv: str(kv[0]))
            ) + tuple(
                f"job {job} {setting} = {text}" for (job, setting), text in sorted(
                    self._live.overrides.job_settings.items())
            ),
            recovery_sheet_reminder=self._recovery_sheet_reminder(),
            quotas=self._quotas(),
        )

    def _quotas(self) -> tuple[QuotaStatus, ...]:
        """Every quota as the live policy last evaluated it (its usage as of the last tick)."""
        return tuple(
            QuotaStatus(
                scope=q.key.scope, name=q.key.name, direction=q.key.direction,
                directive=q.key.directive, period=q.quota.period, used_bytes=q.used_bytes,
                limit_bytes=q.quota.bytes, period_start=q.period_start,
                resets_at=q.resets_at, exhausted=q.exhausted,
            )
            for q in self._live.current.quotas
        )

    def _peer(self, tubid: str) -> PeerStatus:
        s = self._shaper.peer_stats(tubid)
        automatic: dict[str, float | None] = {}
        suffixes: tuple[tuple[Direction, str], ...] = (("up", ""), ("down", "_down"))
        for direction, suffix in suffixes:
            auto = None if self._auto_caps is None else self._auto_caps.reading(tubid, direction)
            if auto is not None:
                automatic.update({
                    f"auto_rate{suffix}": auto.rate,
                    f"base_rtt{suffix}_seconds": auto.base_rtt,
                    f"current_rtt{suffix}_seconds": auto.current_rtt,
                    f"queueing_delay{suffix}_seconds": auto.queueing_delay,
                    "target_delay_seconds": auto.target_delay,  # the peer's, both directions
                })
        return PeerStatus(
            tubid=tubid, nickname=self._peer_nickname(tubid),
            sent_bytes=s.sent_bytes, received_bytes=s.received_bytes,
            rate_up=s.rate_up, rate_down=s.rate_down,
            limit_up=UNLIMITED if s.limit_up is None else s.limit_up,
            limit_down=UNLIMITED if s.limit_down is None else s.limit_down,
            queued_up=s.queued_up, queued_down=s.queued_down,
            waited_up_seconds=s.waited_up_seconds, waited_down_seconds=s.waited_down_seconds,
            connections=s.connections, connected=s.connections > 0,
            **automatic,
        )

    def _link(self) -> LinkStatus:
        limits = self._live.current
        readings = self._meters.readings()
        policy = self._live.policy
        busy = {d: policy.link(d).busy for d in ("up", "down")}
        auto: dict[str, float | None] = {}
        for direction in ("up", "down"):
            reading = None if self._auto_caps is None else self._auto_caps.node_reading(direction)
            if reading is not None:
                auto[f"node_auto_rate_{direction}"] = reading.rate
                auto[f"node_queueing_delay_{direction}_seconds"] = reading.queueing_delay
        return LinkStatus(
            rate_up=readings.link_up, rate_down=readings.link_down,
            own_up=readings.own_up, own_down=readings.own_down,
            capacity_up=limits.capacity_up, capacity_down=limits.capacity_down,
            busy_up=(busy["up"] * limits.capacity_up
                     if busy["up"] is not None and limits.capacity_up else None),
            busy_down=(busy["down"] * limits.capacity_down
                       if busy["down"] is not None and limits.capacity_down else None),
            node_limit_up=limits.node_up.bytes_per_second,
            node_limit_down=limits.node_down.bytes_per_second,
            **auto,
        )
