"""The application: the one place that builds a governed node's parts and wires them.

As magic-wormhole's ``_boss`` does, every collaborator is made here and handed
to the pieces that use it; no part builds another or reaches into one:

- :func:`make_shaper`: the shaper every storage Tub of the node is shaped by
  (``tahoe-governor run`` and :func:`start_governor` both take it from here);
- :func:`build_governor`: around a governed client node, the live policy, the
  meters and CPU budgets, each job's throttle (its CPU gate, and the backlog
  gate that keeps a slow peer's queue short), the scheduler with its
  walker factory (backup jobs and maintenance tasks), peer watching, status
  assembly and the owner's controls,
  handed to a :class:`~tahoe_governor.node.governor.Governor`;
- :func:`govern`: reads the node's policy and state database, builds and
  starts the governor, and mounts ``/governor`` (public and private pages) and
  ``/metrics`` on the node's web server;
- :func:`start_governor`: the whole node in this process (the demo, tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from tahoe_governor.backup.job_throttles import JobThrottles
from tahoe_governor.backup.scheduler import BackupScheduler
from tahoe_governor.node.auto_caps import AutoPeerCaps
from tahoe_governor.node.backup_walkers import BackupWalkers
from tahoe_governor.node.controls import NodeControls
from tahoe_governor.node.governor import TICK_SECONDS, Governor
from tahoe_governor.node.maintenance_walkers import JobWalkers, MaintenanceWalkers
from tahoe_governor.node.owner_records import OwnerRecords
from tahoe_governor.node.quota_counting import QuotaCounting
from tahoe_governor.node.recent_snapshot import RecentSnapshot
from tahoe_governor.node.reload import ConfigReloader, read_for_reload
from tahoe_governor.node.status_assembly import NodeStatusAssembly
from tahoe_governor.node.storage_peers import StoragePeerWatch, shaped_peer_addresses, text
from tahoe_governor.policy.config import Policy, parse_policy_text
from tahoe_governor.policy.local_zone import local_zone
from tahoe_governor.policy.quota_ledger import QuotaLedger
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.policy.state_db import StateDatabase, state_db_path
from tahoe_governor.throttle import Shaper
from tahoe_governor.throttle.backlog_gate import BacklogGate
from tahoe_governor.throttle.clock_steps import ClockStepThread, ClockStepWatch
from tahoe_governor.throttle.counters import PsutilCounters, SystemCounters
from tahoe_governor.throttle.cpu_budget import JobCpuBudgets
from tahoe_governor.throttle.link_capacity import LinkCapacityEstimate
from tahoe_governor.throttle.meters import Meters
from tahoe_governor.throttle.reactor_clock import ReactorClock
from tahoe_governor.throttle.socket_rtt import (
    transport_receive_rtt_seconds,
    transport_rtt_seconds,
)
from tahoe_governor.web.access_tokens import load_or_create_token
from tahoe_governor.web.governor_tree import mount_governor_pages
from tahoe_governor.web.metrics import metrics_resource

DEFAULT_CAPACITY = (125_000.0, 1_000_000.0)
"""Where an ``auto`` link capacity estimate starts (bytes/s up, down): 1 and 8 Mbit/s."""


def make_shaper(reactor: Any) -> Shaper:
    """The shaper installed on every storage Tub of the node (DESIGN.md's ``Shaper``)."""
    return Shaper(reactor)


def build_governor(
    reactor: ReactorClock,
    client: Any,
    nodedir: str,
    policy: Policy,
    database: StateDatabase,
    *,
    counters: SystemCounters | None = None,
    web: Any = None,
    token: str | None = None,
    walkers: BackupWalkers | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    config_text: str | None = None,
    round_trip: Callable[[Any], float | None] = transport_rtt_seconds,
    receive_round_trip: Callable[[Any], float | None] = transport_receive_rtt_seconds,
) -> Governor:
    """Build (not start) the governor of a governed client node and every part it uses.

    :param client: the governed client (its ``shaper``, ``storage_broker``,
        ``encoding_params``, ``nickname``; the walkers upload through it).
    :param policy: the parsed ``[backups]``/``[bandwidth]`` sections.
    :param database: the state database (runs, overrides, estimates).
    :param counters: the system counters the meters read (psutil by default).
    :param web: the node's web server, ``token`` its private page's token.
    :param walkers: makes each backup run's walker (the node's own by default).
    :param config_text: the tahoe.cfg text the node runs with: given, the ``reload``
        control reads ``nodedir``'s tahoe.cfg again (see :mod:`~tahoe_governor.node.reload`).
    :param round_trip: a connection's round trip (seconds) from its transport, for the
        automatic caps (the kernel's estimate of its socket by default);
        ``receive_round_trip`` the same as its receiving side times it (``limit.down = auto``).
    :param monotonic: the clock that does not step, against which the reactor's wall
        clock is watched for steps (see :mod:`~tahoe_governor.throttle.clock_steps`).
    """
    shaper: Shaper = client.shaper
    counters = counters or PsutilCounters()
    live = LivePolicy.from_database(reactor, policy, database)
    start = live.current
    meters = Meters(
        reactor, counters, (), own_bytes=lambda: _own_bytes(shaper),
        tick_seconds=TICK_SECONDS,
        capacity=LinkCapacityEstimate(
            TICK_SECONDS,
            start=(start.capacity_up or DEFAULT_CAPACITY[0],
                   start.capacity_down or DEFAULT_CAPACITY[1]),
        ),
    )
    budgets = JobCpuBudgets(reactor, TICK_SECONDS)
    # one backlog gate: a slow peer's queue is every job's
    throttles = JobThrottles(reactor, budgets, BacklogGate(shaper, reactor))
    backup_walkers = walkers if walkers is not None else BackupWalkers(
        reactor, client, nodedir, policy.tz)
    every_walker = JobWalkers(
        backup_walkers, MaintenanceWalkers(reactor, client, nodedir, database))
    scheduler = BackupScheduler(
        reactor, live, database, every_walker, on_completed=every_walker.completed,
        throttles=throttles,
    )
    peers = StoragePeerWatch(
        reactor, getattr(client, "storage_broker", None), live, meters, counters,
        peer_addresses=lambda: shaped_peer_addresses(shaper),
    )
    records = OwnerRecords(client, nodedir, database, lambda: live.policy.jobs, policy.tz)
    auto_caps = AutoPeerCaps(shaper, live, rtt=round_trip, receive_rtt=receive_round_trip)
    quotas = QuotaCounting(reactor, shaper, live, scheduler, database,
                           QuotaLedger(policy.tz, database.quota_usage()))
    assembly = NodeStatusAssembly(
        reactor, text(getattr(client, "nickname", "")), shaper, meters, live, scheduler,
        peer_nickname=peers.nickname, latest_caps=every_walker.latest_caps,
        recent_runs=records.recent_runs, recovery_sheet_reminder=records.recovery_sheet_reminder,
        auto_caps=auto_caps,
    )
    reloader = None if config_text is None else ConfigReloader(
        lambda running, text: read_for_reload(nodedir, running, text), scheduler, live,
        config_text)
    snapshots = RecentSnapshot(assembly.status, reactor, TICK_SECONDS)
    scheduler.add_change_listener(snapshots.invalidate)  # a job's new state shows at once
    return Governor(
        reactor, client, shaper=shaper, live=live, database=database, meters=meters,
        budgets=budgets, scheduler=scheduler, peers=peers,
        clock_steps=ClockStepWatch(reactor, monotonic), auto_caps=auto_caps, quotas=quotas,
        controls=NodeControls(scheduler, live, snapshots,
                              reload=None if reloader is None else reloader.reload,
                              records=records),
        web=web, token=token,
    )


def _own_bytes(shaper: Shaper) -> tuple[int, int]:
    stats = shaper.node_stats()
    return stats.sent_bytes, stats.received_bytes


def govern(reactor: Any, client: Any, tz: ZoneInfo | None = None) -> Governor:
    """Build and start the governor of a started governed client; mount its web pages.

    The policy comes from the node's ``[backups]``/``[bandwidth]`` text (a
    :class:`~tahoe_governor.policy.errors.ConfigError` lists every problem),
    in the local time zone unless ``tz`` is given; the state database lives
    in ``NODEDIR/private/governor.sqlite``. Stopping the node stops the
    governor first. Without a web port the node still runs governed; only the
    pages are missing.
    """
    nodedir = client.config.get_config_path()
    policy = parse_policy_text(client.sections.text, tz or local_zone())
    web = client.getServiceNamed("webish") if client.has_web_server else None
    governor = build_governor(
        reactor, client, nodedir, policy, StateDatabase(state_db_path(nodedir)),
        web=web, token=load_or_create_token(nodedir) if web is not None else None,
        config_text=client.sections.text,
    )
    clock_watch = ClockStepThread(reactor, governor.clock_steps)
    client.add_stop_hook("clock-step watch", clock_watch.stop)
    client.add_stop_hook("backup jobs", governor.stop_parts)
    governor.start()
    clock_watch.start()
    if web is not None and governor.token is not None:
        mount_governor_pages(web, governor.controls, governor.token, reactor, tz=policy.tz)
        client.mount("metrics", metrics_resource(governor.controls.status))
    return governor


async def start_governor(reactor: Any, nodedir: str, tz: ZoneInfo | None = None) -> Governor:
    """Run the governed node in ``nodedir`` in this process, governed, with its pages.

    For embedding (the demo, tests); ``tahoe-governor run`` calls :func:`govern`
    from the node runner instead. ``governor.stop()`` stops the node and the jobs.
    """
    from tahoe_governor.node.client import create_governed_client
    from tahoe_governor.node.config import read_governed_config

    config = read_governed_config(nodedir)
    client = await create_governed_client(config, make_shaper(reactor), reactor)
    client.startService()
    return govern(reactor, client, tz)
