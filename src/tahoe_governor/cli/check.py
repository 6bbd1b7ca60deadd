"""``tahoe-governor check NODEDIR``: print the parsed policy and every effective limit now.

Reads ``NODEDIR/tahoe.cfg``, the aliases, ``private/servers.yaml``, (read
only, if it exists) the job-state database and, when the node is running, the
storage servers it knows (so a nickname resolves as the node resolves it);
prints every job with its next allowed start, caps and budgets, its retention
rule with what it would keep and forget of the archives the state database
recorded, every effective limit, and every quota with its usage (the running
node's, else as last saved in the state database) and reset time; or every error.
Exit status 0 when the policy is valid, 1 otherwise. This command is the only
place that reads the wall clock (``--now`` replaces it) and the local zone.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from tahoe_governor.cli.node_api import CommandError, GovernorClient, HttpFunction, urllib_http
from tahoe_governor.cli.node_directory import add_node_directory
from tahoe_governor.policy.config import (
    Job,
    MaintenanceJob,
    Policy,
    ScheduledJob,
    target_problems,
)
from tahoe_governor.policy.engine import (
    EffectiveLimit,
    JobLimits,
    Limits,
    auto_node_start_rate,
    limits_at,
)
from tahoe_governor.policy.errors import ConfigError, ConfigProblem
from tahoe_governor.policy.job_settings import with_job_settings
from tahoe_governor.policy.local_zone import local_zone
from tahoe_governor.policy.measurements import Measurements
from tahoe_governor.policy.overrides import Overrides
from tahoe_governor.policy.peers import KnownPeer, peers_from_servers_yaml
from tahoe_governor.policy.quotas import SCOPES, QuotaKey, QuotaState, QuotaUsage
from tahoe_governor.policy.retention import archive_instant, retention_verdicts
from tahoe_governor.policy.state_db import (
    CAPACITY_ESTIMATE_KEYS,
    StateDatabase,
    StateDatabaseError,
    state_db_path,
)
from tahoe_governor.policy.units import format_duration, format_rate
from tahoe_governor.throttle.counters import PsutilCounters, SystemCounters, choose_interfaces
from tahoe_governor.throttle.delay_controller import DEFAULT_TARGET_SECONDS


def _aliases(nodedir: str) -> set[str]:
    from allmydata.scripts.common import get_aliases

    return set(get_aliases(nodedir))


def _running_status(nodedir: str, http: HttpFunction) -> dict[str, object] | None:
    """The running node's public status snapshot, or ``None`` when it does not answer."""
    try:
        status = GovernorClient(nodedir, http).public_status()
    except CommandError:
        return None
    return status if isinstance(status, dict) else None


def _known_peers(nodedir: str, status: dict[str, object] | None) -> tuple[list[KnownPeer], str]:
    """The storage servers a nickname or server id may name, and where they were learnt:
    ``private/servers.yaml``, and the peers of the running node (its ``status``)."""
    path = os.path.join(nodedir, "private", "servers.yaml")
    try:
        with open(path, encoding="utf-8") as f:
            peers = peers_from_servers_yaml(yaml.safe_load(f))
    except (OSError, yaml.YAMLError):
        peers = []
    running = (status or {}).get("peers")
    if not isinstance(running, list):
        return peers, ("the node is not running: nicknames resolve through "
                       "private/servers.yaml only")
    peers += [KnownPeer(tubid=p["tubid"], nickname=p.get("nickname") or None)
              for p in running if isinstance(p, dict) and isinstance(p.get("tubid"), str)]
    return peers, "servers known to the running node and private/servers.yaml"


def _running_usage(status: dict[str, object] | None) -> dict[QuotaKey, QuotaUsage] | None:
    """The quotas' usage as the running node counts it now, or ``None`` if it did not say."""
    quotas = (status or {}).get("quotas")
    if not isinstance(quotas, list):
        return None
    usage = {}
    for q in quotas:
        try:
            if q["scope"] in SCOPES and q["direction"] in ("up", "down"):
                usage[QuotaKey(q["scope"], str(q["name"]), q["direction"])] = QuotaUsage(
                    int(q["used_bytes"]), float(q["period_start"]))
        except (KeyError, TypeError, ValueError):
            continue
    return usage


_RESETS = {"day": "at local midnight", "week": "at local midnight between Sunday and Monday",
           "month": "at local midnight on the 1st"}
_COUNTS = {
    "node": "every byte of the node's governed Foolscap traffic",
    "peer": "the bytes to or from the peers this selector names",
    "job": "the share data the job uploads (the wire bytes its bandwidth cap counts)",
}


def _quota_lines(quotas: Sequence[QuotaState], tz: ZoneInfo, usage_from: str) -> Iterator[str]:
    yield ""
    yield f"Quotas ({len(quotas)}; usage {usage_from})"
    for q in quotas:
        share = q.used_bytes / q.quota.bytes * 100
        direction = "" if q.key.scope == "job" else f" {q.key.direction}"
        yield f"  {q.key.directive} = {q.quota}"
        yield f"    counts:   {_COUNTS[q.key.scope]}{direction}"
        yield (f"    used:     {q.used_bytes} of {q.quota.bytes} bytes ({share:.1f}%) "
               f"since {_when(q.period_start, tz)}")
        yield (f"    resets:   {_when(q.resets_at, tz)} "
               f"(each {q.quota.period}, {_RESETS[q.quota.period]})")
        if q.exhausted:
            stops = ("that job is held" if q.key.scope == "job" else
                     f"its {q.key.direction} limit is 0 and every job is held")
            yield f"    USED UP:  {stops} until the reset"


class _Stored:
    """What the state database holds for check, or nothing when there is none yet."""

    def __init__(self, nodedir: str) -> None:
        self.overrides = Overrides()
        self.last_completed: dict[str, float] = {}
        self.capacity: dict[str, float | None] = {"up": None, "down": None}
        self.quota_usage: dict[QuotaKey, QuotaUsage] = {}
        self.archives: dict[str, list[str]] = {}
        """Job -> names of the archives its completed runs linked, newest first."""
        path = state_db_path(nodedir)
        if not os.path.exists(path):
            return
        with StateDatabase(path, read_only=True) as db:
            self.overrides = db.overrides()
            self.last_completed = db.last_completed()
            self.quota_usage = db.quota_usage()
            for run in db.runs(limit=100_000):
                if run.outcome == "completed" and run.detail and archive_instant(run.detail):
                    self.archives.setdefault(run.job, []).append(run.detail)
            for direction, key in CAPACITY_ESTIMATE_KEYS.items():
                found = db.estimate(key)
                self.capacity[direction] = None if found is None else found[0]


def _when(instant: float | None, tz: ZoneInfo, never: str = "never") -> str:
    if instant is None:
        return never
    return datetime.fromtimestamp(instant, tz).strftime("%a %Y-%m-%d %H:%M:%S %Z")


def _limit(limit: EffectiveLimit) -> str:
    text = format_rate(limit.bytes_per_second)
    if limit.source != "none":
        shown = f" = {limit.configured}" if limit.configured else ""
        text += f"  [{limit.source}{shown}]"
    if limit.override is not None:
        text += f"  (live override {limit.override} replaces tahoe.cfg {limit.overridden})"
    for unapplied in limit.unapplied:
        text += f"  (not applied until the capacity is known: {unapplied})"
    return text


def _cpu_budgets(job: JobLimits) -> str:
    busy, idle = job.cpu_budget, job.cpu_idle_budget
    text = "none" if busy is None else f"{busy * 100:g}% of one core"
    if idle != busy:
        text += "; " + ("no budget" if idle is None else f"{idle * 100:g}%")
        text += " while the machine is idle"
    return text


def _schedule_lines(
    job: ScheduledJob, job_limits: JobLimits, last_completed: dict[str, float], tz: ZoneInfo,
    overridden: Callable[[str, str], str],
) -> Iterator[str]:
    """A job's or task's frequency, windows and whether it may start now; ``overridden``
    notes a setting changed live."""
    admission = job_limits.admission
    last = last_completed.get(job.name)
    yield (
        f"    frequency:       {format_duration(job.frequency)} since the last completed run "
        f"(last completed: {_when(last, tz)}){overridden(job.name, 'frequency')}"
    )
    yield (f"    allowed times:   {job.allowed_times.text or 'any time'}"
           f"{overridden(job.name, 'allowed_times')}")
    if admission.paused:
        state = "paused by hand (resume to run)"
    elif admission.may_start:
        state = "may start now"
        state += f", until {_when(admission.until, tz)}" if admission.until else ""
    elif admission.held_by:
        state = (f"held until {_when(admission.held_until, tz)}: "
                 f"{'; '.join(admission.held_by)}")
    elif not admission.due:
        state = f"not due until {_when(admission.due_at, tz)}"
    else:
        state = "due, waiting for its allowed times"
    yield f"    now:             {state}"
    never = "none while paused" if admission.paused else "never"
    yield f"    next start:      {_when(admission.next_start, tz, never)}"


def _maintenance_work(task: MaintenanceJob) -> str:
    """What one pass of ``task`` does, in words."""
    verify = (f"verify the data of {task.verify * 100:g}% of the files (those verified "
              "longest ago first), ask the servers about the rest" if task.verify
              else "ask the servers which shares they hold (no data downloaded)")
    steps = ["check every file and directory once per pass", verify,
             "repair what is not healthy" if task.repair else "repair nothing (repair = false)",
             "renew the leases" if task.add_lease else "leave the leases (add_lease = false)"]
    return "; ".join(steps)


def _interface(policy: Policy, counters: SystemCounters) -> str:
    if policy.interface is None:
        return "chosen by the routes to the storage servers"
    try:
        choose_interfaces(counters, policy.interface)
    except ValueError as e:
        return f"{policy.interface} [interface]  (warning: {e})"
    return f"{policy.interface} [interface]"


def _retention(policy: Policy, job: Job, recorded: Sequence[str]) -> Iterator[str]:
    if job.keep is None:
        yield f"    keep:            every archive ({job.name}.keep not set)"
        return
    yield f"    keep:            {job.keep}; Latest's archive always"
    if not recorded:
        yield "                     (no archive recorded here yet to preview)"
        return
    verdicts = retention_verdicts(recorded, job.keep, policy.tz, latest=recorded[0])
    forgotten = [v for v in verdicts if not v.keep]
    yield (f"                     of the {len(verdicts)} archives recorded here: keeps "
           f"{len(verdicts) - len(forgotten)}, forgets {len(forgotten)} after the next "
           "completed run")
    for verdict in forgotten:
        yield f"                     forgets {verdict.name}"
    yield (f"                     (all of Archives/, with reasons: tahoe-governor archives "
           f"NODEDIR {job.name} --keep-preview)")


def report_lines(
    policy: Policy,
    limits: Limits,
    nodedir: str,
    last_completed: dict[str, float],
    counters: SystemCounters | None = None,
    job_settings: Mapping[tuple[str, str], str] | None = None,
    recorded_archives: Mapping[str, Sequence[str]] | None = None,
    peers_from: str = "",
    quota_usage_from: str = "as saved in the state database",
) -> Iterator[str]:
    """The human report of ``check`` of ``policy`` (tahoe.cfg with ``job_settings``, the
    live overrides of the jobs' settings, applied); ``counters`` (default: the system's)
    tell whether a configured interface exists; ``recorded_archives`` (job -> archive
    names its runs linked, newest first) are previewed under each job's retention rule."""
    settings = job_settings or {}

    def overridden(job: str, setting: str) -> str:
        value = settings.get((job, setting))
        return "" if value is None else f"  (live override {value} replaces tahoe.cfg's)"

    tz = policy.tz
    yield f"Policy of {os.path.join(nodedir, 'tahoe.cfg')}"
    yield f"Evaluated at {_when(limits.at, tz)} (zone {tz.key})"
    yield ""
    yield f"Jobs ({len(policy.jobs)})" if policy.jobs else "Jobs: none ([backups] is empty)"
    for job in policy.jobs:
        job_limits = limits.job(job.name)
        missing = "" if os.path.isdir(job.source) else "  (warning: not a directory now)"
        yield f"  {job.name}"
        yield f"    source:          {job.source}{missing}"
        yield f"    target:          {job.target}"
        yield from _schedule_lines(job, job_limits, last_completed, tz, overridden)
        yield f"    upload cap:      {_limit(job_limits.rate)}"
        yield f"    cpu budget:      {_cpu_budgets(job_limits)}{overridden(job.name, 'cpu')}"
        if job.upstream is not None:
            yield f"    upstream:        {job.upstream * 100:g}% of capacity.up"
        yield f"    exclude:         {', '.join(job.exclude) or 'nothing'}"
        yield f"    weight:          {job.weight:g}"
        yield from _retention(policy, job, (recorded_archives or {}).get(job.name, ()))
    if policy.maintenance:
        yield ""
        yield f"Maintenance ({len(policy.maintenance)})"
    for task in policy.maintenance:
        task_limits = limits.job(task.name)
        yield f"  {task.name}"
        yield f"    target:          {task.target}"
        yield from _schedule_lines(task, task_limits, last_completed, tz, overridden)
        yield f"    does:            {_maintenance_work(task)}"
        yield f"    bandwidth cap:   {_limit(task_limits.rate)}  (both directions together)"
        yield f"    cpu budget:      {_cpu_budgets(task_limits)}"
    yield ""
    yield "Link"
    for direction in ("up", "down"):
        link = policy.link(direction)
        if link.capacity is not None:
            capacity = f"{format_rate(limits.capacity(direction))} [capacity.{direction}]"
        elif link.capacity_auto:
            estimate = limits.capacity(direction)
            capacity = "auto: " + (
                "not estimated yet" if estimate is None else f"estimated {format_rate(estimate)}"
            )
        else:
            capacity = "not configured"
        yield f"  {'capacity ' + direction + ':':<17}{capacity}"
    yield f"  interface:       {_interface(policy, counters or PsutilCounters())}"
    for direction, line in (("up", "uplink"), ("down", "downlink")):
        limit = limits.node(direction)
        label = f"node limit {direction}:"
        if limit.source == f"limit.{direction} (auto)":
            yield (f"  {label:<17}auto: starts at "
                   f"{format_rate(auto_node_start_rate(policy.encoding))} and follows the delay "
                   f"of the node's own {line} (target {DEFAULT_TARGET_SECONDS * 1000:g} ms)")
        else:
            yield f"  {label:<17}{_limit(limit)}"
    yield ""
    yield (f"Peers ({len(limits.peers)}; {peers_from})" if limits.peers and peers_from
           else f"Peers ({len(limits.peers)})" if limits.peers else "Peers: no per-peer caps")
    for peer in limits.peers:
        resolution = peer.resolution
        where = (
            "TubID " + ", ".join(resolution.tubids) if resolution.tubids
            else f"resolved when the peer is known: {resolution.problem}"
        )
        yield f"  {peer.selector.text} ({peer.selector.kind.replace('_', ' ')}; {where})"
        if resolution.note is not None:
            yield f"    note: {resolution.note}"
        elif peer.selector.kind == "nickname":
            yield ("    note: storage servers choose their own nicknames; another one may "
                   "announce this one too (then both are capped): a TubID names one server")
        for direction, limit, auto in (("up", peer.up, peer.auto_up),
                                       ("down", peer.down, peer.auto_down)):
            label = f"{direction}:"
            if auto is None:
                yield f"    {label:<6}{_limit(limit)}"
                continue
            target = (peer.target_delay or DEFAULT_TARGET_SECONDS) * 1000
            under = "" if math.isinf(limit.bytes_per_second) else f", under {_limit(limit)}"
            yield (f"    {label:<6}auto: starts at {format_rate(peer.auto_start)} and follows "
                   f"the line's delay (target {target:g} ms){under}")
    if limits.quotas:
        yield from _quota_lines(limits.quotas, tz, quota_usage_from)
    yield ""
    yield f"Next change of any limit: {_when(limits.next_change, tz)}"


def run_check(
    nodedir: str,
    now: float,
    tz: ZoneInfo,
    out: TextIO,
    err: TextIO,
    counters: SystemCounters | None = None,
    http: HttpFunction = urllib_http,
) -> int:
    """The whole command, with the clock, zone and system counters as arguments;
    returns the exit status."""
    # Importing Tahoe takes seconds: only when checking.
    from tahoe_governor.node.config import (
        CONFIGURATION_ERRORS,
        describe_configuration_error,
        read_governed_node,
    )

    try:
        # The very judgement run makes before it starts, then what only check
        # can tell ahead (the targets' aliases).
        _, policy = read_governed_node(nodedir, tz)
        problems: list[ConfigProblem] = target_problems(policy, _aliases(nodedir))
        if problems:
            raise ConfigError(problems)
    except CONFIGURATION_ERRORS as e:
        print(f"{os.path.join(nodedir, 'tahoe.cfg')}: {describe_configuration_error(e)}",
              file=err)
        return 1
    try:
        stored = _Stored(nodedir)
    except StateDatabaseError as e:
        print(f"state database: {e}", file=err)
        return 1
    unknown = sorted(set(stored.overrides.paused) - {j.name for j in policy.scheduled_jobs})
    policy = with_job_settings(policy, stored.overrides.job_settings)
    running = _running_status(nodedir, http)
    known, peers_from = _known_peers(nodedir, running)
    usage, usage_from = _running_usage(running), "counted by the running node"
    if usage is None:
        usage, usage_from = stored.quota_usage, ("as last saved in the state database "
                                                 "(the node is not running)")
    limits = limits_at(
        policy,
        now,
        stored.overrides,
        Measurements(capacity_up=stored.capacity["up"], capacity_down=stored.capacity["down"],
                     quota_usage=usage),
        (),
        stored.last_completed,
        known,
    )
    for line in report_lines(policy, limits, nodedir, stored.last_completed, counters,
                             stored.overrides.job_settings, stored.archives, peers_from,
                             usage_from):
        print(line, file=out)
    for job in unknown:
        print(f"note: job {job!r} is paused in the state database but not in tahoe.cfg", file=out)
    return 0


def _instant(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time with its offset, e.g. 2026-11-26T22:30+01:00, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. +01:00")
    stamp = moment.timestamp()
    if not math.isfinite(stamp):
        raise argparse.ArgumentTypeError(f"{text!r} is out of range")
    return stamp


def _zone(text: str) -> ZoneInfo:
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"expected an IANA zone such as Europe/Amsterdam, "
                                         f"got {text!r}") from None


def add_check_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``check`` on the ``tahoe-governor`` subcommand parser."""
    check = commands.add_parser(
        "check", help="print the parsed policy and every effective limit now, or every error"
    )
    add_node_directory(check)
    check.add_argument("--now", type=_instant, default=None,
                       help="evaluate at this ISO 8601 time instead of now")
    check.add_argument("--timezone", type=_zone, default=None,
                       help="the zone of allowed times (default: the machine's local zone)")
    check.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    now = args.now if args.now is not None else time.time()
    tz = args.timezone if args.timezone is not None else local_zone()
    return run_check(args.nodedir, now, tz,
                     sys.stdout, sys.stderr)
