"""The governor: one place that builds and wires every part around a governed node.

From a started :class:`~tahoe_governor.node.client.GovernedClient` it makes
the live policy (from ``[backups]``/``[bandwidth]`` and the state database),
the meters and CPU budgets, and the backup scheduler; it keeps the shaper's
node-wide and per-peer limits equal to the policy's, tells the policy which
storage servers are known (so nickname and server-id selectors resolve) and
what the meters measure, and answers the status and control requests of the
web pages and the command (:class:`~tahoe_governor.status.GovernorControls`).

Everything receives the reactor it is given; only :func:`start_governor`
touches the node directory.
"""

from __future__ import annotations

import os
from typing import Any, Literal
from zoneinfo import ZoneInfo

from allmydata.util import base32
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from tahoe_governor.backup.backupdb import open_backupdb
from tahoe_governor.backup.job_throttle import JobThrottle
from tahoe_governor.backup.scheduler import BackupScheduler
from tahoe_governor.backup.target import resolve_target_in_nodedir
from tahoe_governor.backup.tree import TreeEstimate
from tahoe_governor.backup.walker import BackupResult, BackupWalker
from tahoe_governor.policy.config import Job, Policy, parse_policy_text
from tahoe_governor.policy.engine import Limits
from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.policy.local_zone import local_zone
from tahoe_governor.policy.measurements import Measurements
from tahoe_governor.policy.overrides import SCOPES, LimitKey
from tahoe_governor.policy.peers import KnownPeer
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.policy.state_db import CAPACITY_ESTIMATE_KEYS, StateDatabase, state_db_path
from tahoe_governor.status import (
    ControlError,
    GovernorStatus,
    LinkStatus,
    PeerStatus,
)
from tahoe_governor.throttle import UNLIMITED
from tahoe_governor.throttle.counters import PsutilCounters, SystemCounters, choose_interfaces
from tahoe_governor.throttle.cpu_budget import JobCpuBudgets
from tahoe_governor.throttle.link_capacity import LinkCapacityEstimate
from tahoe_governor.throttle.meters import Meters, MeterTick

log = Logger()

TICK_SECONDS = 0.25
"""Meters, budgets and the shaper's estimators tick at 4 Hz."""
PEER_REFRESH_SECONDS = 2.0
"""How often the known storage servers are re-read from the storage broker."""
CAPACITY_SAVE_SECONDS = 600.0
"""How often an ``auto`` capacity estimate is saved to the state database."""
GRID_WAIT_SECONDS = 120.0
"""Jobs start once ``shares.happy`` servers are connected, or after this long."""


def _none_if_unlimited(rate: float) -> float | None:
    return None if rate == UNLIMITED else rate


def _tubid_text(server: Any) -> str:
    tubid = server.get_tubid()
    return base32.b2a(tubid).decode("ascii") if isinstance(tubid, bytes) else str(tubid)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


class Governor:
    """The parts around one governed node, wired; see the module documentation.

    :param client: a started :class:`GovernedClient` (its ``shaper`` is used).
    :param policy: the parsed ``[backups]``/``[bandwidth]`` sections.
    :param database: the state database (runs, overrides, estimates).
    :param counters: the system counters the meters read (psutil by default).
    """

    def __init__(
        self,
        reactor: Any,
        client: Any,
        policy: Policy,
        database: StateDatabase,
        counters: SystemCounters | None = None,
    ) -> None:
        self._reactor = reactor
        self.client = client
        self.shaper = client.shaper
        self.database = database
        self.nodedir = client.config._basedir
        self.live = LivePolicy.from_database(reactor, policy, database)
        self._counters = counters or PsutilCounters()
        start = self.live.current
        capacity = LinkCapacityEstimate(
            TICK_SECONDS,
            start=(start.capacity_up or 125_000.0, start.capacity_down or 1_000_000.0),
        )
        self.meters = Meters(
            reactor, self._counters, (), own_bytes=self._own_bytes,
            tick_seconds=TICK_SECONDS, capacity=capacity,
        )
        self.budgets = JobCpuBudgets(reactor, TICK_SECONDS)
        self.scheduler = BackupScheduler(
            reactor, self.live, database, self._make_walker, on_completed=self._completed,
        )
        for name, runner in self.scheduler.runners.items():
            job = runner.job
            if job.cpu is not None:
                idle = UNLIMITED if job.cpu_idle is None else job.cpu_idle
                runner.throttle.set_cpu_gate(self.budgets.add_job(name, job.cpu, idle).gate)
        self._work_seen: dict[str, int] = {}
        self._latest_caps: dict[str, str] = {}
        self._last_trees: dict[str, TreeEstimate] = {}
        self._peer_addresses: frozenset[str] = frozenset()
        self._nicknames: dict[str, str] = {}
        self._limited_peers: set[str] = set()
        self._peer_loop = LoopingCall(self._refresh_peers)
        self._peer_loop.clock = reactor
        self._save_loop = LoopingCall(self._save_capacity)
        self._save_loop.clock = reactor
        self._unsubscribe = self.live.subscribe(self._apply_limits)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start every part: limits on the shaper, meters, peers, the scheduler."""
        self._apply_limits(self.live.current)
        self.live.startService()
        self.meters.subscribe(self._metered)
        self.meters.start()
        self._peer_loop.start(PEER_REFRESH_SECONDS, now=True)
        self._save_loop.start(CAPACITY_SAVE_SECONDS, now=False)
        self._start_jobs_when_connected()

    def _start_jobs_when_connected(self) -> None:
        """Start the scheduler once enough storage servers are connected for an
        upload to succeed (``shares.happy``), or after :data:`GRID_WAIT_SECONDS`:
        a job started before the node has met its grid fails its first run."""
        broker = getattr(self.client, "storage_broker", None)
        if broker is None:
            self._start_jobs()
            return
        happy = int(self.client.encoding_params.get("happy", 1))
        self._grid_wait = broker.when_connected_enough(happy)
        self._grid_wait.addCallbacks(self._start_jobs, lambda f: f.trap(CancelledError))
        self._grid_timer = self._reactor.callLater(GRID_WAIT_SECONDS, self._start_jobs)

    _grid_wait: Deferred[Any] | None = None
    _grid_timer: Any = None

    def _start_jobs(self, _: object = None) -> None:
        if self._grid_timer is not None and self._grid_timer.active():
            self._grid_timer.cancel()
        if self._grid_wait is not None and not self._grid_wait.called:
            self._grid_wait.cancel()
        if not self.scheduler.running:
            self.scheduler.startService()

    token: str | None = None
    """The private page's token, once the web layer has mounted the pages."""

    @property
    def private_url(self) -> str | None:
        """The private page's URL (a secret: show it to the owner only)."""
        web = self.web_url
        if web is None or self.token is None:
            return None
        return f"{web}governor/{self.token}/"

    @property
    def web_url(self) -> str | None:
        """The node's web URL (``http://127.0.0.1:PORT/``), ``None`` without a web server."""
        if not self.client.has_web_server:
            return None
        url: str = self.client.getServiceNamed("webish").getURL()
        return url

    def stop(self) -> Deferred[Any]:
        """Stop the node: its stop hooks stop the jobs first (see :meth:`stop_parts`)."""
        d: Deferred[Any] = self.client.stopService()
        return d

    def stop_parts(self) -> Deferred[None]:
        """Stop the jobs (runs in progress are recorded as interrupted), then the
        meters and the policy; the node's stop hook."""
        return ensureDeferred(self._stop_parts())

    async def _stop_parts(self) -> None:
        if self._grid_timer is not None and self._grid_timer.active():
            self._grid_timer.cancel()
        if self._grid_wait is not None and not self._grid_wait.called:
            self._grid_wait.cancel()
        if self.scheduler.running:
            await self.scheduler.stopService()
        for loop in (self._peer_loop, self._save_loop):
            if loop.running:
                loop.stop()
        if self.meters.running:
            self.meters.stop()
        self._save_capacity()
        self.live.stopService()
        self._unsubscribe()

    # -- wiring ------------------------------------------------------------------

    def _make_walker(self, job: Job, throttle: JobThrottle) -> BackupWalker:
        target = resolve_target_in_nodedir(job.target, self.nodedir)
        backupdb = open_backupdb(os.path.join(self.nodedir, "private", "backupdb.sqlite"))
        return BackupWalker(
            reactor=self._reactor, client=self.client, source=job.source, target=target,
            backupdb=backupdb, throttle=throttle, exclude=job.exclude,
            # The last completed run's figures, when there is one, instead of an
            # estimate walk: a nightly run would otherwise walk the tree twice.
            estimate=self._last_trees.get(job.name),
        )

    def _completed(self, job: str, ended: float, result: BackupResult) -> None:
        self._latest_caps[job] = _text(result.private_snapshot_cap)
        progress = result.progress
        self._last_trees[job] = TreeEstimate(files=progress.files_seen,
                                             bytes=progress.bytes_done)

    def _apply_limits(self, limits: Limits) -> None:
        """Make the shaper's limits the policy's."""
        self.shaper.set_node_limit(
            up=_none_if_unlimited(limits.node_up.bytes_per_second),
            down=_none_if_unlimited(limits.node_down.bytes_per_second),
        )
        rates = limits.peer_rates_by_tubid()
        for tubid, (up, down) in rates.items():
            self.shaper.set_peer_limit(tubid, up=_none_if_unlimited(up),
                                       down=_none_if_unlimited(down))
        for tubid in self._limited_peers - set(rates):
            self.shaper.set_peer_limit(tubid, up=None, down=None)
        self._limited_peers = set(rates)

    def _own_bytes(self) -> tuple[int, int]:
        stats = self.shaper.node_stats()
        return stats.sent_bytes, stats.received_bytes

    def _refresh_peers(self) -> None:
        """Tell the policy which storage servers are known; watch the interfaces to them."""
        broker = getattr(self.client, "storage_broker", None)
        servers = list(broker.get_known_servers()) if broker is not None else []
        known = []
        for server in servers:
            tubid = _tubid_text(server)
            nickname = _text(server.get_nickname())
            self._nicknames[tubid] = nickname
            known.append(KnownPeer(tubid, _text(server.get_serverid()), nickname))
        if tuple(known) != getattr(self, "_known", ()):
            self._known = tuple(known)
            self.live.set_known_peers(known)
        # The link is the configured interface, or the route(s) to the servers.
        configured = self.live.policy.interface
        addresses = frozenset(self._connection_addresses())
        if (addresses or configured) and addresses != self._peer_addresses:
            self._peer_addresses = addresses
            try:
                self.meters.set_interfaces(choose_interfaces(self._counters, configured, addresses))
            except (ValueError, OSError) as e:
                log.warn("cannot tell which interface carries the grid traffic: {e}", e=e)

    def _connection_addresses(self) -> list[str]:
        out = []
        for conn in self.shaper.connections():
            transport = getattr(conn, "transport", None)
            peer = transport.getPeer() if transport is not None else None
            host = getattr(peer, "host", None)
            if host:
                out.append(host)
        return out

    def _metered(self, tick: MeterTick) -> None:
        """Each meter tick: charge CPU to the jobs by their work, update the policy."""
        budgeted = set(self.budgets.jobs())
        for name, runner in self.scheduler.runners.items():
            if name not in budgeted:
                continue
            progress = runner.progress()
            done = progress.bytes_read if progress is not None and runner.walker else 0
            seen = self._work_seen.get(name, 0)
            if done > seen:
                self.budgets.record_work(name, done - seen)
            self._work_seen[name] = done
        self.budgets.charge_tick(tick.process_cpu_seconds, tick.machine_idle)
        readings = self.meters.readings()
        self.live.update_measurements(
            Measurements(
                capacity_up=readings.capacity_up,
                capacity_down=readings.capacity_down,
                other_up=readings.other_up,
                other_down=readings.other_down,
                machine_idle=readings.machine_idle,
                job_cpu={name: self.budgets.usage(name) for name in self.budgets.jobs()},
            )
        )

    def _save_capacity(self) -> None:
        policy = self.live.policy
        readings = self.meters.readings()
        now = self._reactor.seconds()
        for direction, key in CAPACITY_ESTIMATE_KEYS.items():
            if policy.link(direction).capacity_auto:
                value = readings.capacity_up if direction == "up" else readings.capacity_down
                self.database.put_estimate(key, value, now)

    # -- GovernorControls ----------------------------------------------------------

    def status(self) -> GovernorStatus:
        """A snapshot of jobs, peers and the link now."""
        limits = self.live.current
        readings = self.meters.readings()
        peers = []
        for tubid in self.shaper.peers():
            s = self.shaper.peer_stats(tubid)
            peers.append(PeerStatus(
                tubid=tubid, nickname=self._nicknames.get(tubid, ""),
                sent_bytes=s.sent_bytes, received_bytes=s.received_bytes,
                rate_up=s.rate_up, rate_down=s.rate_down,
                limit_up=UNLIMITED if s.limit_up is None else s.limit_up,
                limit_down=UNLIMITED if s.limit_down is None else s.limit_down,
                queued_up=s.queued_up, queued_down=s.queued_down,
                waited_up_seconds=s.waited_up_seconds, waited_down_seconds=s.waited_down_seconds,
                connections=s.connections, connected=s.connections > 0,
            ))
        policy = self.live.policy
        busy = {d: policy.link(d).busy for d in ("up", "down")}
        link = LinkStatus(
            rate_up=readings.link_up, rate_down=readings.link_down,
            own_up=readings.own_up, own_down=readings.own_down,
            capacity_up=limits.capacity_up, capacity_down=limits.capacity_down,
            busy_up=(busy["up"] * limits.capacity_up
                     if busy["up"] is not None and limits.capacity_up else None),
            busy_down=(busy["down"] * limits.capacity_down
                       if busy["down"] is not None and limits.capacity_down else None),
            node_limit_up=limits.node_up.bytes_per_second,
            node_limit_down=limits.node_down.bytes_per_second,
        )
        overrides = tuple(
            f"{key} = {rate}" for key, rate in sorted(
                self.live.overrides.limits.items(), key=lambda kv: str(kv[0]))
        )
        return GovernorStatus(
            at=self._reactor.seconds(),
            nickname=_text(getattr(self.client, "nickname", "")),
            jobs=self.scheduler.job_statuses(self._latest_caps),
            peers=tuple(peers),
            link=link,
            overrides=overrides,
        )

    def pause(self, job: str) -> None:
        self.scheduler.pause(job)

    def resume(self, job: str) -> None:
        self.scheduler.resume(job)

    def run_now(self, job: str, force: bool = False) -> None:
        self.scheduler.run_now(job, force)

    def set_limit(
        self,
        scope: Literal["node", "peer", "job"],
        name: str,
        direction: Literal["up", "down"],
        rate: str | None,
    ) -> None:
        if scope not in SCOPES:
            raise ControlError(f"limit scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        if scope == "job":
            self.scheduler.runner(name)
        try:
            key = LimitKey(scope, "" if scope == "node" else name, direction)
            self.live.set_override(key, rate)
        except (ValueError, ValueSyntaxError) as e:
            raise ControlError(str(e)) from None


def attach_governor(reactor: Any, client: Any, tz: ZoneInfo | None = None) -> Governor:
    """Build and start the governor of a started governed client node.

    The policy comes from the node's ``[backups]``/``[bandwidth]`` text (a
    :class:`~tahoe_governor.policy.errors.ConfigError` lists every problem),
    in the local time zone unless ``tz`` is given; the state database lives
    in ``NODEDIR/private/governor.sqlite``. Stopping the node stops it.
    """
    nodedir = client.config._basedir
    policy = parse_policy_text(client.sections.text, tz or local_zone())
    database = StateDatabase(state_db_path(nodedir))
    governor = Governor(reactor, client, policy, database)
    client.add_stop_hook("backup jobs", governor.stop_parts)
    governor.start()
    return governor
