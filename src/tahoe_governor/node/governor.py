"""The governor: the running whole around one governed node, started and stopped as one.

:class:`Governor` receives its parts already built (``tahoe_governor.app``
builds them: the one place that does) and orchestrates them: it keeps the
shaper's node-wide and per-peer limits equal to the live policy's, feeds the
meters' measurements (CPU charged to each job by its work, the link) to the
policy, saves ``auto`` capacity estimates, starts the backup scheduler once
the grid is reachable, and stops it all in order. Status assembly, the
owner's controls and peer watching are parts of their own
(:mod:`.status_assembly`, :mod:`.controls`, :mod:`.storage_peers`):
``governor.controls`` answers :class:`~tahoe_governor.status.GovernorControls`
(the status snapshot, pause, resume, run now, limits).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from tahoe_governor.backup.scheduler import BackupScheduler
from tahoe_governor.node.auto_caps import AutoPeerCaps
from tahoe_governor.node.controls import NodeControls
from tahoe_governor.node.quota_counting import QuotaCounting
from tahoe_governor.node.storage_peers import StoragePeerWatch
from tahoe_governor.policy.engine import Limits
from tahoe_governor.policy.measurements import Measurements
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.policy.state_db import CAPACITY_ESTIMATE_KEYS, StateDatabase
from tahoe_governor.throttle import UNLIMITED, Shaper
from tahoe_governor.throttle.clock_steps import ClockStepWatch
from tahoe_governor.throttle.cpu_budget import JobCpuBudgets
from tahoe_governor.throttle.meters import Meters, MeterTick
from tahoe_governor.throttle.reactor_clock import ReactorClock

log = Logger()

TICK_SECONDS = 0.25
"""Meters, budgets and the shaper's estimators tick at 4 Hz."""
CAPACITY_SAVE_SECONDS = 600.0
"""How often an ``auto`` capacity estimate is saved to the state database."""
GRID_WAIT_SECONDS = 120.0
"""Jobs start once ``shares.happy`` servers are connected, or after this long."""


log = Logger()


def _none_if_unlimited(rate: float) -> float | None:
    return None if rate == UNLIMITED else rate


class Governor:
    """The parts around one governed node, orchestrated; see the module documentation.

    :param client: the governed client node: its ``storage_broker`` and
        ``encoding_params`` say when the grid is reachable, and
        ``stopService()`` stops the node (see :meth:`stop`).
    :param web: the node's web server (Tahoe's ``WebishServer``), ``None``
        without one.
    :param token: the private page's token, ``None`` without a web server.
    """

    def __init__(
        self,
        reactor: ReactorClock,
        client: Any,
        *,
        shaper: Shaper,
        live: LivePolicy,
        database: StateDatabase,
        meters: Meters,
        budgets: JobCpuBudgets,
        scheduler: BackupScheduler,
        peers: StoragePeerWatch,
        controls: NodeControls,
        clock_steps: ClockStepWatch,
        auto_caps: AutoPeerCaps,
        quotas: QuotaCounting,
        web: Any = None,
        token: str | None = None,
    ) -> None:
        self._reactor = reactor
        self.clock_steps = clock_steps
        self.auto_caps = auto_caps
        self.quotas = quotas
        self.client = client
        self.shaper = shaper
        self.live = live
        self.database = database
        self.meters = meters
        self.budgets = budgets
        self.scheduler = scheduler
        self.peers = peers
        self.controls = controls
        self._web = web
        self.token = token
        self._work_seen: dict[str, int] = {}
        self._limited_peers: set[str] = set()
        self._identified: set[str] = set()
        self._noted: set[str] = set()
        self._save_loop = LoopingCall(self._save_capacity)
        self._save_loop.clock = reactor
        self._grid_wait: Deferred[Any] | None = None
        self._grid_timer: Any = None
        self._unsubscribe = self.live.subscribe(self._apply_limits)
        shaper.add_identified_listener(self._peer_identified)
        clock_steps.add_listener(self._clock_stepped)

    @property
    def web_url(self) -> str | None:
        """The node's web URL (``http://127.0.0.1:PORT/``), ``None`` without a web server."""
        if self._web is None:
            return None
        url: str = self._web.getURL()  # known once the web server listens
        return url

    @property
    def private_url(self) -> str | None:
        """The private page's URL (a secret: show it to the owner only)."""
        if self.web_url is None or self.token is None:
            return None
        return f"{self.web_url}governor/{self.token}/"

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start every part: limits on the shaper, meters, peers, the scheduler."""
        self._identified.update(self.shaper.peers())  # met before the governor was attached
        self._apply_limits(self.live.current)
        self.live.startService()
        self.meters.subscribe(self._metered)
        self.meters.start()
        self.peers.start()
        self._save_loop.start(CAPACITY_SAVE_SECONDS, now=False)
        self.quotas.start()
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

    def _start_jobs(self, _: object = None) -> None:
        self._stop_waiting_for_grid()
        if not self.scheduler.running:
            self.scheduler.startService()

    def _stop_waiting_for_grid(self) -> None:
        if self._grid_timer is not None and self._grid_timer.active():
            self._grid_timer.cancel()
        if self._grid_wait is not None and not self._grid_wait.called:
            self._grid_wait.cancel()

    def stop(self) -> Deferred[Any]:
        """Stop the node: its stop hooks stop the jobs first (see :meth:`stop_parts`)."""
        d: Deferred[Any] = self.client.stopService()
        return d

    def stop_parts(self) -> Deferred[None]:
        """Stop the jobs (runs in progress are recorded as interrupted), then the
        meters and the policy; the node's stop hook."""
        return ensureDeferred(self._stop_parts())

    async def _stop_parts(self) -> None:
        self._stop_waiting_for_grid()
        if self.scheduler.running:
            await self.scheduler.stopService()
        self.peers.stop()
        if self._save_loop.running:
            self._save_loop.stop()
        if self.meters.running:
            self.meters.stop()
        self._save_capacity()
        self.quotas.stop()
        self.live.stopService()
        self._unsubscribe()

    # -- wiring ------------------------------------------------------------------

    def _peer_identified(self, tubid: str) -> None:
        """A connection's peer became known (before any of its bytes pass): learn
        what the storage broker knows of it now, not at the next poll, and set
        its limits, so a cap by nickname or server id holds from the first byte."""
        self._identified.add(tubid)
        if tubid not in self.live.current.known_tubids:
            self.peers.refresh()
        self._apply_limits(self.live.current)

    def _clock_stepped(self, step: float) -> None:
        # The timers have kept their lengths; what is meant for a time of day (the next
        # window edge, a due job) is planned again from the new time.
        log.info("the wall clock moved {how} by {seconds:.0f} s (a sleep, or the clock was "
                 "set): windows and schedules follow the new time",
                 how="forward" if step > 0 else "back", seconds=abs(step))
        if self.scheduler.running:
            self.scheduler.reevaluate()
        else:
            self.live.reevaluate()

    def _apply_limits(self, limits: Limits) -> None:
        """Make the shaper's limits the policy's.

        A peer the node cannot name yet (not among the known storage servers)
        holds the caps of every selector that has not resolved: such a selector
        may turn out to name it, and a cap must hold before, not after.
        """
        self.shaper.set_node_limit(
            up=_none_if_unlimited(limits.node_up.bytes_per_second),
            down=_none_if_unlimited(limits.node_down.bytes_per_second),
        )
        rates = limits.peer_rates_by_tubid()
        unresolved = limits.unresolved_peer_rates()
        if unresolved != (UNLIMITED, UNLIMITED):
            for tubid in self._identified - limits.known_tubids - set(rates):
                rates[tubid] = unresolved
        for peer in limits.peers:
            note = peer.resolution.note
            if note is not None and note not in self._noted:
                self._noted.add(note)
                log.warn("peer.{selector}: {note}", selector=peer.selector.text, note=note)
        for tubid, (up, down) in rates.items():
            self.shaper.set_peer_limit(tubid, up=_none_if_unlimited(up),
                                       down=_none_if_unlimited(down))
        for tubid in self._limited_peers - set(rates):
            self.shaper.set_peer_limit(tubid, up=None, down=None)
        self._limited_peers = set(rates)

    def _metered(self, tick: MeterTick) -> None:
        """Each meter tick: charge CPU to the jobs by their work, update the policy."""
        budgeted = set(self.budgets.jobs())
        for name, runner in self.scheduler.runners.items():
            if name not in budgeted:
                continue
            progress = runner.progress()
            done = progress.work_bytes if progress is not None and runner.walker else 0
            seen = self._work_seen.get(name, 0)
            if done > seen:
                self.budgets.record_work(name, done - seen)
            self._work_seen[name] = done
        self.budgets.charge_tick(tick.process_cpu_seconds, tick.machine_idle)
        readings = self.meters.readings()
        auto_up = self.auto_caps.tick(tick.now)
        self.live.update_measurements(
            Measurements(
                capacity_up=readings.capacity_up,
                capacity_down=readings.capacity_down,
                other_up=readings.other_up,
                other_down=readings.other_down,
                machine_idle=readings.machine_idle,
                job_cpu={name: self.budgets.usage(name) for name in self.budgets.jobs()},
                auto_up=auto_up,
                auto_down=self.auto_caps.peer_rates["down"],
                auto_node_up=self.auto_caps.node_rates.get("up"),
                auto_node_down=self.auto_caps.node_rates.get("down"),
                quota_usage=self.quotas.tick(tick.now),
            )
        )

    def _save_capacity(self) -> None:
        # Called by a LoopingCall (which an exception would stop for good) and
        # at shutdown (which it would block): a refused write is only logged;
        # the estimate is saved at the next try (every CAPACITY_SAVE_SECONDS).
        try:
            self._write_capacity()
        except sqlite3.Error as e:
            log.warn("could not save the link capacity estimate in the state database "
                     "({error}); tried again in {delay:.0f} s", error=e,
                     delay=CAPACITY_SAVE_SECONDS)

    def _write_capacity(self) -> None:
        policy = self.live.policy
        readings = self.meters.readings()
        now = self._reactor.seconds()
        for direction, key in CAPACITY_ESTIMATE_KEYS.items():
            if policy.link(direction).capacity_auto:
                value = readings.capacity_up if direction == "up" else readings.capacity_down
                self.database.put_estimate(key, value, now)
