"""The ``[backups]``, ``[maintenance]`` and ``[bandwidth]`` sections of tahoe.cfg, parsed
into a :class:`Policy`.

The file is read like Tahoe reads it (UTF-8 with an optional byte-order mark,
``configparser`` with ``strict=False``), except that in these sections
keys are case-sensitive, ``%`` is literal, ``#`` after whitespace starts a
comment, and a key given twice is an error. Every problem of the file is
collected and raised together as one :class:`ConfigError`; no other exception
escapes for any text of a value. docs/configuration.md is the reference.
"""

from __future__ import annotations

import configparser
import difflib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import attrs

from tahoe_governor.policy.allowed_times import AllowedTimes
from tahoe_governor.policy.errors import FILE, ConfigError, ConfigProblem, ValueSyntaxError
from tahoe_governor.policy.peers import PeerSelector
from tahoe_governor.policy.quotas import Quota, QuotaKey, parse_quota
from tahoe_governor.policy.retention import KeepRule, parse_keep
from tahoe_governor.policy.schedule import Schedule, parse_schedule
from tahoe_governor.policy.units import (
    AUTO_WORD,
    UNLIMITED_WORD,
    Rate,
    parse_absolute_rate,
    parse_duration,
    parse_percent,
    parse_rate,
    parse_weight,
)
from tahoe_governor.policy.upload_floor import (
    DEFAULT_SHARES_NEEDED,
    DEFAULT_SHARES_TOTAL,
    Encoding,
    below_floor,
    peer_floor,
    shared_floor,
)

Direction = Literal["up", "down"]
DIRECTIONS: tuple[Direction, Direction] = ("up", "down")

BACKUPS = "backups"
MAINTENANCE = "maintenance"
BANDWIDTH = "bandwidth"
GOVERNOR_SECTIONS = (BACKUPS, MAINTENANCE, BANDWIDTH)
"""The sections this module reads (beyond ``[client]``'s two keys)."""
CLIENT = "client"
"""Tahoe's own section; read here for ``shares.needed`` and ``shares.total`` only."""

JOB_FIELDS = (
    "source",
    "target",
    "frequency",
    "allowed_times",
    "bandwidth",
    "cpu",
    "cpu.idle",
    "upstream",
    "exclude",
    "weight",
    "keep",
    "quota",
)
"""The keys ``<job>.<field>`` of ``[backups]``."""
REQUIRED_JOB_FIELDS = ("source", "target", "frequency")

MAINTENANCE_FIELDS = (
    "target",
    "frequency",
    "allowed_times",
    "verify",
    "repair",
    "add_lease",
    "bandwidth",
    "cpu",
)
"""The keys ``<task>.<field>`` of ``[maintenance]``."""
REQUIRED_MAINTENANCE_FIELDS = ("target", "frequency")

INTERFACE_KEY = "interface"
BANDWIDTH_KEYS = (
    *(
        f"{name}.{direction}"
        for name in ("capacity", "limit", "busy", "schedule", "quota")
        for direction in DIRECTIONS
    ),
    INTERFACE_KEY,
)
"""The fixed keys of ``[bandwidth]``; ``peer.<selector>.up|down`` come in addition."""

DIRECTIVES = (
    *(f"<job>.{field}" for field in JOB_FIELDS),
    *(f"<task>.{field}" for field in MAINTENANCE_FIELDS),
    *BANDWIDTH_KEYS,
    "peer.<selector>.up",
    "peer.<selector>.down",
    "peer.<selector>.target_delay",
    "peer.<selector>.quota.up",
    "peer.<selector>.quota.down",
)
"""Every directive, as named in docs/configuration.md."""

_JOB_NAME = re.compile(r"[A-Za-z0-9_-]+")
_DIRCAP = re.compile(r"URI:DIR2(?:-MDMF)?:[a-z2-7]+:[a-z2-7]+(?:/.*)?")
_ANY_DIRCAP = re.compile(
    r"URI:DIR2(?:-MDMF)?(?:-RO)?:[a-z2-7]+:[a-z2-7]+(?:/.*)?"
    r"|URI:DIR2-(?:CHK|LIT):[a-z2-7:0-9]+(?:/.*)?"
)
_VERIFY_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]+)?)[ \t]*%")
_ALIAS_PATH = re.compile(r"([^:/\s]+):(.*)")

CAPACITY_EXPECTED = "the link capacity: 'auto' or a rate with a unit, e.g. 1Mbps or 8Mbps"
TARGET_EXPECTED = (
    "alias:path (an alias from private/aliases) or a writeable directory cap "
    "URI:DIR2:... / URI:DIR2-MDMF:..."
)
MAINTENANCE_TARGET_EXPECTED = (
    "alias:path (an alias from private/aliases) or a directory cap "
    "URI:DIR2:... / URI:DIR2-RO:... / URI:DIR2-CHK:... / URI:DIR2-MDMF(-RO):..."
)
VERIFY_EXPECTED = (
    "the share of files whose data is downloaded and verified each pass: N% with "
    "0 <= N <= 100 (0% asks the servers only)"
)
BOOLEAN_EXPECTED = "true or false"
CPU_EXPECTED = "a CPU budget N% of one core, 0 < N <= 100, or 'unlimited'"
INTERFACE_MAX_CHARS = 256
"""Windows adapter names go up to 256 characters; Linux, BSD and macOS allow 15."""
_NOT_IN_INTERFACE = "/\\,;'\""
INTERFACE_EXPECTED = (
    "the name of one network interface as the system lists it, e.g. eth0, en0 or Wi-Fi 2 "
    f"(at most {INTERFACE_MAX_CHARS} characters, none of them a control character, "
    "a quote, '/', '\\', ',' or ';')"
)
SELECTOR_EXPECTED = ("peer.<selector>.up, peer.<selector>.down, "
                     "peer.<selector>.target_delay, peer.<selector>.quota.up or "
                     "peer.<selector>.quota.down")
TARGET_DELAY = "target_delay"
QUOTA_FIELDS = {"quota.up": "quota_up", "quota.down": "quota_down"}
"""The ``peer.<selector>.quota.*`` fields, and the :class:`PeerLimits` attribute of each."""
TARGET_DELAY_EXPECTED = "a delay such as 25ms or 0.1s, from 1ms to 1s"


def parse_delay(text: str) -> float:
    """``"25ms"`` -> 0.025 seconds (the queueing delay an automatic cap allows)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s)\s*", text)
    if match is None:
        raise ValueSyntaxError(TARGET_DELAY_EXPECTED)
    seconds = float(match.group(1)) / (1000.0 if match.group(2) == "ms" else 1.0)
    if not 0.001 <= seconds <= 1.0:
        raise ValueSyntaxError(TARGET_DELAY_EXPECTED)
    return seconds


@attrs.frozen
class Job:
    """One ``[backups]`` job. Rates in bytes/s, durations in seconds, shares as fractions."""

    name: str
    source: str
    """Absolute local path of the directory to back up (``~`` expanded)."""
    target: str
    """``alias:path`` or a directory cap, as written."""
    frequency: float
    """Seconds from the last completed run until the job is due again."""
    allowed_times: AllowedTimes
    bandwidth: Rate | None = None
    """Cap of the job's upload wire bytes; ``None`` when not configured."""
    cpu: float | None = None
    """Budget as a share of one core (0.25 = 25 %); ``None`` for no budget."""
    cpu_idle: float | None = attrs.field(
        default=attrs.Factory(lambda job: job.cpu, takes_self=True)
    )
    """Budget while the machine is idle, as ``cpu``; equal to ``cpu`` when ``cpu.idle``
    is not configured, and never below it."""
    upstream: float | None = None
    """Cap as a fraction of ``capacity.up``; ``None`` when not configured."""
    exclude: tuple[str, ...] = ()
    weight: float = 1.0
    keep: KeepRule | None = None
    """Which archives to keep after each completed run; ``None``: every one."""
    quota: Quota | None = None
    """Per-period cap of the job's upload wire bytes (those ``bandwidth`` counts)."""


@attrs.frozen
class MaintenanceJob:
    """One ``[maintenance]`` task: check (and verify, repair, renew the leases of)
    everything reachable from ``target``. It is scheduled like a backup job, so it
    offers the same fields the policy engine reads (``cpu_idle``, ``upstream``,
    ``weight``), fixed where ``[maintenance]`` has no key for them."""

    name: str
    target: str
    """``alias:path`` or a directory cap (read-only allowed), as written."""
    frequency: float
    """Seconds from the last completed pass until the task is due again."""
    allowed_times: AllowedTimes
    verify: float = 0.0
    """Share of the files (0 to 1) whose data is downloaded and verified each pass."""
    repair: bool = True
    add_lease: bool = True
    bandwidth: Rate | None = None
    """Cap of the task's wire bytes, both directions together; ``None`` when not configured."""
    cpu: float | None = None
    """Budget as a share of one core; ``None`` for no budget."""

    @property
    def cpu_idle(self) -> float | None:
        return self.cpu

    upstream: None = attrs.field(default=None, init=False)
    weight: float = attrs.field(default=1.0, init=False)


ScheduledJob = Job | MaintenanceJob
"""Anything the scheduler runs: a backup job or a maintenance task."""


@attrs.frozen
class LinkPolicy:
    """The ``[bandwidth]`` directives of one direction (``up`` or ``down``)."""

    capacity: Rate | None = None
    """The configured capacity (absolute), or ``None``; see ``capacity_auto``."""
    capacity_auto: bool = False
    """``capacity.* = auto``: use the measured estimate."""
    limit: Rate | None = None
    """``limit.*``; ``None`` when absent (unlimited) or ``auto``."""
    limit_auto: bool = False
    """``limit.* = auto``: the node's rate is found from the delay its connections
    see (the queue of the user's own uplink, or downlink)."""
    busy: float | None = None
    """``busy.*`` as a fraction of the capacity; ``None`` when absent."""
    schedule: Schedule | None = None
    quota: Quota | None = None
    """``quota.*``: the node's governed wire bytes of this direction per period."""


@attrs.frozen
class PeerLimits:
    """The ``peer.<selector>.*`` caps of one selector."""

    selector: PeerSelector
    up: Rate | None = None
    down: Rate | None = None
    up_auto: bool = False
    """``peer.<selector>.up = auto``: the rate is found from the connection's delay."""
    down_auto: bool = False
    """``peer.<selector>.down = auto``: the same, timed by the receiving side."""
    target_delay: float | None = None
    """``peer.<selector>.target_delay`` in seconds (``auto`` only); ``None``: the default."""
    quota_up: Quota | None = None
    quota_down: Quota | None = None
    """``peer.<selector>.quota.*``: per-period caps of the bytes to or from the peers the
    selector names, together."""


@attrs.frozen
class Policy:
    """Everything ``[backups]``, ``[maintenance]`` and ``[bandwidth]`` say, typed; jobs
    in file order."""

    tz: ZoneInfo
    jobs: tuple[Job, ...] = ()
    """The backup jobs."""
    up: LinkPolicy = LinkPolicy()
    down: LinkPolicy = LinkPolicy()
    peers: tuple[PeerLimits, ...] = ()
    interface: str | None = None
    """``[bandwidth] interface``: the interface that stands for the link; ``None``:
    chosen by the routes to the storage servers. Only its syntax is checked here."""
    encoding: Encoding = Encoding()
    """``[client] shares.needed`` and ``shares.total``: what the upload floor depends on."""
    maintenance: tuple[MaintenanceJob, ...] = ()
    """The maintenance tasks (their names differ from every backup job's)."""

    @property
    def scheduled_jobs(self) -> tuple[ScheduledJob, ...]:
        """Every job the scheduler runs: the backup jobs, then the maintenance tasks."""
        return (*self.jobs, *self.maintenance)

    def link(self, direction: Direction) -> LinkPolicy:
        return self.up if direction == "up" else self.down

    def quotas(self) -> tuple[tuple[QuotaKey, Quota], ...]:
        """Every configured quota: the node's, the peers', then the jobs'."""
        found: list[tuple[QuotaKey, Quota]] = []
        for direction in DIRECTIONS:
            quota = self.link(direction).quota
            if quota is not None:
                found.append((QuotaKey("node", "", direction), quota))
        for peer in self.peers:
            for direction, quota in (("up", peer.quota_up), ("down", peer.quota_down)):
                if quota is not None:
                    found.append((QuotaKey("peer", peer.selector.text, direction), quota))
        found += [(QuotaKey("job", job.name, "up"), job.quota)
                  for job in self.jobs if job.quota is not None]
        return tuple(found)

    def job(self, name: str) -> ScheduledJob:
        """The backup job or maintenance task ``name``; ``KeyError`` if none."""
        for job in self.scheduled_jobs:
            if job.name == name:
                return job
        raise KeyError(name)


T = TypeVar("T")


class _Problems:
    """Collects problems while parsing goes on."""

    def __init__(self) -> None:
        self.found: list[ConfigProblem] = []

    def add(self, section: str, key: str | None, value: str | None, expected: str) -> None:
        self.found.append(ConfigProblem(section, key, value, expected))

    def value(
        self, section: str, key: str, text: str, parse: Callable[[str], T]
    ) -> T | None:
        try:
            return parse(text)
        except ValueSyntaxError as e:
            self.add(section, key, text, e.expected)
            return None


def _duplicate_keys(text: str) -> Iterator[tuple[str, str]]:
    """(section, key) of every key repeated inside one of our sections."""
    section: str | None = None
    seen: set[tuple[str, str]] = set()
    for line in text.splitlines():
        if not line.strip() or line.lstrip()[0] in "#;" or line[0].isspace():
            continue
        header = configparser.ConfigParser.SECTCRE.match(line)
        if header:
            section = header.group("header")
            continue
        option = configparser.ConfigParser.OPTCRE.match(line)
        if option and section in GOVERNOR_SECTIONS:
            key = option.group("option").strip()
            if (section, key) in seen:
                yield section, key
            seen.add((section, key))


def read_sections(text: str) -> tuple[dict[str, dict[str, str]], list[ConfigProblem]]:
    """The keys of the governor's sections of tahoe.cfg text, and the problems of
    the file's structure (repeated keys, misspelt section names).

    Text that is not INI at all raises :class:`ConfigError`.
    """
    parser = configparser.ConfigParser(
        strict=False,
        interpolation=None,
        inline_comment_prefixes=("#",),
        # No section lends its keys to ours: [DEFAULT] is just another section.
        default_section="\x00none",
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as e:
        message = " ".join(str(e).split())
        problem = ConfigProblem(FILE, None, None, f"INI syntax: {message}")
        raise ConfigError([problem]) from None
    problems = [
        ConfigProblem(section, key, None, "each key at most once in its section")
        for section, key in _duplicate_keys(text)
    ]
    # A misspelt section would leave its jobs or caps silently unused.
    for section in parser.sections():
        near = difflib.get_close_matches(
            section.lower(), list(GOVERNOR_SECTIONS), n=1, cutoff=0.75)
        if near and section != near[0]:
            problems.append(
                ConfigProblem(section, None, None, f"the section name [{near[0]}] (lowercase)")
            )
    sections = {
        name: dict(parser.items(name, raw=True)) if parser.has_section(name) else {}
        for name in (*GOVERNOR_SECTIONS, CLIENT)
    }
    return sections, problems


def parse_cpu(text: str) -> float | None:
    if text.strip() == UNLIMITED_WORD:
        return None
    try:
        return parse_percent(text)
    except ValueSyntaxError:
        raise ValueSyntaxError(CPU_EXPECTED) from None


def parse_interface(text: str) -> str:
    """A plausible interface name; whether the machine has it is checked when the meters
    start (:func:`tahoe_governor.throttle.counters.choose_interfaces`)."""
    name = text.strip()
    if name == AUTO_WORD:
        raise ValueSyntaxError(
            INTERFACE_EXPECTED + "; leave the key out to choose by the routes to the servers"
        )
    if (
        not name
        or len(name) > INTERFACE_MAX_CHARS
        or any(not c.isprintable() or c in _NOT_IN_INTERFACE for c in name)
    ):
        raise ValueSyntaxError(INTERFACE_EXPECTED)
    return name


def _budget_at_least(budget: float | None, other: float | None) -> bool:
    """Whether CPU budget ``budget`` allows at least ``other`` (``None``: no budget)."""
    return budget is None or (other is not None and budget >= other)


def _directory_target(text: str, caps: re.Pattern[str], expected: str, not_a_cap: str) -> str:
    """``alias:path``, or a cap that ``caps`` accepts; else what was expected."""
    target = text.strip()
    if caps.fullmatch(target) or (
        not target.startswith("URI:") and _ALIAS_PATH.fullmatch(target)
    ):
        return target
    if target.startswith("URI:"):
        raise ValueSyntaxError(f"{expected} (this cap is not {not_a_cap})")
    raise ValueSyntaxError(expected)


def parse_target(text: str) -> str:
    return _directory_target(text, _DIRCAP, TARGET_EXPECTED, "a writeable directory")


def parse_maintenance_target(text: str) -> str:
    """Any directory: ``alias:path`` or a directory cap, writeable or not (a read-only
    cap is enough to check, verify, renew leases and repair immutable files)."""
    return _directory_target(text, _ANY_DIRCAP, MAINTENANCE_TARGET_EXPECTED, "a directory")


def parse_verify_share(text: str) -> float:
    """``"5%"`` -> ``0.05``; unlike other percentages, ``0%`` is allowed (verify nothing)."""
    match = _VERIFY_PERCENT.fullmatch(text.strip())
    if match is None or not 0 <= float(match.group(1)) <= 100:
        raise ValueSyntaxError(VERIFY_EXPECTED)
    return float(match.group(1)) / 100


def parse_boolean(text: str) -> bool:
    """``true``/``false`` (and the other words ``configparser`` accepts, as Tahoe does)."""
    word = text.strip().lower()
    if word not in configparser.ConfigParser.BOOLEAN_STATES:
        raise ValueSyntaxError(BOOLEAN_EXPECTED)
    return configparser.ConfigParser.BOOLEAN_STATES[word]


def parse_source(text: str) -> str:
    source = os.path.expanduser(text.strip())
    if not source or not os.path.isabs(source) or "\x00" in source:
        raise ValueSyntaxError("an absolute path of a local directory, e.g. /home/me/Pictures")
    return os.path.normpath(source)


def parse_exclude(text: str) -> tuple[str, ...]:
    patterns = tuple(p.strip() for p in text.split(","))
    if any(not p for p in patterns):
        raise ValueSyntaxError("comma-separated glob patterns, none empty, e.g. '*.tmp, .DS_Store'")
    return patterns


def _unknown(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return "one of " + ", ".join(known) + hint


def _parse_job_keys(
    section: str,
    keys: dict[str, str],
    parsers: dict[str, Callable[[str], object]],
    required: dict[str, str],
    problems: _Problems,
) -> dict[str, dict[str, object]]:
    """The jobs of a section whose keys are ``<name>.<field>``, as name -> field -> value:
    the one grammar of ``[backups]`` and ``[maintenance]``. ``parsers`` maps each known
    field to its parser, ``required`` each required field to what it expects."""
    jobs: dict[str, dict[str, object]] = {}
    placeholder = "<job>" if section == BACKUPS else "<task>"
    for key, text in keys.items():
        name, dot, field = key.partition(".")
        if not dot or not _JOB_NAME.fullmatch(name):
            problems.add(
                section, key, text,
                f"a key {placeholder}.<field> whose name has letters, digits, '_' or '-' only",
            )
            continue
        job = jobs.setdefault(name, {"name": name})
        if field not in parsers:
            problems.add(section, key, text, _unknown(f"{name}.{field}", [
                f"{name}.{f}" for f in parsers]))
            continue
        try:
            job[field] = parsers[field](text)
        except ValueSyntaxError as e:
            problems.add(section, key, text, e.expected)
    for name, job in jobs.items():
        for field, what in required.items():
            if field not in job and f"{name}.{field}" not in keys:
                problems.add(section, f"{name}.{field}", None, f"{what} (required)")
    return jobs


_FREQUENCY_EXPECTED = "a duration, e.g. 1day or 1week"


def _parse_jobs(
    keys: dict[str, str], tz: ZoneInfo, problems: _Problems
) -> list[dict[str, object]]:
    parsers: dict[str, Callable[[str], object]] = {
        "source": parse_source,
        "target": parse_target,
        "frequency": parse_duration,
        "allowed_times": lambda t: AllowedTimes.parse(t, tz),
        "bandwidth": parse_rate,
        "cpu": parse_cpu,
        "cpu.idle": parse_cpu,
        "upstream": parse_percent,
        "exclude": parse_exclude,
        "weight": parse_weight,
        "keep": parse_keep,
        "quota": parse_quota,
    }
    assert tuple(parsers) == JOB_FIELDS
    required = {"source": "the local directory to back up", "target": TARGET_EXPECTED,
                "frequency": _FREQUENCY_EXPECTED}
    jobs = _parse_job_keys(BACKUPS, keys, parsers, required, problems)
    for name, job in jobs.items():
        # cpu.idle alone would leave the job unbudgeted while the machine is in use and
        # budgeted only while it is idle: the opposite of what the directive is for.
        idle_key, cpu_key = f"{name}.cpu.idle", f"{name}.cpu"
        if idle_key in keys and cpu_key not in keys:
            problems.add(
                BACKUPS, idle_key, keys[idle_key],
                f"{cpu_key} to be set too: {idle_key} is the budget while the machine is "
                f"idle, {cpu_key} the one while it is in use",
            )
        elif "cpu.idle" in job and "cpu" in job and not _budget_at_least(
            job["cpu.idle"], job["cpu"]  # type: ignore[arg-type]
        ):
            problems.add(
                BACKUPS, idle_key, keys[idle_key],
                f"at least {cpu_key} = {keys[cpu_key].strip()}: the budget while the "
                "machine is idle is the larger one",
            )
    return list(jobs.values())


def _parse_maintenance(
    keys: dict[str, str], tz: ZoneInfo, backup_names: set[str], problems: _Problems
) -> list[dict[str, object]]:
    parsers: dict[str, Callable[[str], object]] = {
        "target": parse_maintenance_target,
        "frequency": parse_duration,
        "allowed_times": lambda t: AllowedTimes.parse(t, tz),
        "verify": parse_verify_share,
        "repair": parse_boolean,
        "add_lease": parse_boolean,
        "bandwidth": parse_rate,
        "cpu": parse_cpu,
    }
    assert tuple(parsers) == MAINTENANCE_FIELDS
    required = {"target": MAINTENANCE_TARGET_EXPECTED,
                "frequency": "a duration, e.g. 1week or 1month"}
    tasks = _parse_job_keys(MAINTENANCE, keys, parsers, required, problems)
    for name in tasks:
        if name in backup_names:
            # The controls, the pages and /metrics name a job by its name alone.
            first = next(key for key in keys if key.startswith(f"{name}."))
            problems.add(
                MAINTENANCE, first, keys[first],
                f"a task name that no [backups] job has ({name!r} is one): "
                "jobs and tasks are named alike by the controls and the pages",
            )
    return list(tasks.values())


def _parse_bandwidth(
    keys: dict[str, str], tz: ZoneInfo, problems: _Problems
) -> tuple[dict[Direction, dict[str, object]], dict[str, dict[str, Any]], str | None]:
    links: dict[Direction, dict[str, object]] = {"up": {}, "down": {}}
    peers: dict[str, dict[str, Any]] = {}
    interface = None
    for key, text in keys.items():
        if key == INTERFACE_KEY:
            interface = problems.value(BANDWIDTH, key, text, parse_interface)
            continue
        if key.startswith("peer."):
            selector, dot, field = key[len("peer."):].rpartition(".")
            if field in DIRECTIONS and selector.endswith(".quota"):
                selector = selector[:-len(".quota")]
                if selector.strip():
                    entry = peers.setdefault(selector, {})
                    entry[QUOTA_FIELDS[f"quota.{field}"]] = problems.value(
                        BANDWIDTH, key, text, parse_quota)
                    continue
            if not dot or not selector.strip() or field not in (*DIRECTIONS, TARGET_DELAY):
                problems.add(BANDWIDTH, key, text, SELECTOR_EXPECTED)
                continue
            entry = peers.setdefault(selector, {})
            if field == TARGET_DELAY:
                entry[TARGET_DELAY] = problems.value(BANDWIDTH, key, text, parse_delay)
            elif text.strip() == AUTO_WORD:
                entry[f"{field}_auto"] = True
            else:
                entry[field] = problems.value(BANDWIDTH, key, text, parse_rate)
            continue
        if key not in BANDWIDTH_KEYS:
            problems.add(BANDWIDTH, key, text, _unknown(key, [*BANDWIDTH_KEYS, SELECTOR_EXPECTED]))
            continue
        name, _, link_direction = key.partition(".")
        link = links["up" if link_direction == "up" else "down"]
        if name == "capacity":
            if text.strip() == AUTO_WORD:
                link["capacity_auto"] = True
            else:
                try:
                    link["capacity"] = parse_absolute_rate(text)
                except ValueSyntaxError:
                    problems.add(BANDWIDTH, key, text, CAPACITY_EXPECTED)
        elif name == "limit" and text.strip() == AUTO_WORD:
            link["limit_auto"] = True
        elif name == "limit":
            link["limit"] = problems.value(BANDWIDTH, key, text, parse_rate)
        elif name == "busy":
            link["busy"] = problems.value(BANDWIDTH, key, text, parse_percent)
        elif name == "quota":
            link["quota"] = problems.value(BANDWIDTH, key, text, parse_quota)
        else:
            link["schedule"] = problems.value(BANDWIDTH, key, text, lambda t: parse_schedule(t, tz))
    return links, peers, interface


def _parse_encoding(keys: dict[str, str], problems: _Problems) -> Encoding:
    """``[client] shares.needed`` and ``shares.total`` (Tahoe's defaults when absent)."""
    lowered = {key.lower(): text for key, text in keys.items()}
    shares = {}
    for key, default in (("shares.needed", DEFAULT_SHARES_NEEDED),
                         ("shares.total", DEFAULT_SHARES_TOTAL)):
        text = lowered.get(key)
        try:
            shares[key] = default if text is None else int(text.strip())
        except ValueError:
            shares[key] = default
            problems.add(CLIENT, key, text, "a whole number from 1 to 256")
            continue
        if not 1 <= shares[key] <= 256:
            problems.add(CLIENT, key, text, "a whole number from 1 to 256")
            shares[key] = default
    needed, total = shares["shares.needed"], shares["shares.total"]
    return Encoding(needed, total) if needed <= total else Encoding()


def _floor_problems(
    sections: dict[str, dict[str, str]],
    jobs: list[tuple[str, dict[str, object]]],
    links: dict[Direction, dict[str, object]],
    peers: dict[str, dict[str, Any]],
    encoding: Encoding,
    problems: _Problems,
) -> None:
    """A problem for every upload cap too low for a segment to reach a server in time."""
    shared, per_peer = shared_floor(encoding), peer_floor(encoding)
    capped: list[tuple[str, str, Rate | None, float, bool]] = [
        (BANDWIDTH, "limit.up", links["up"].get("limit"), shared, True),  # type: ignore[list-item]
    ]
    schedule = links["up"].get("schedule")
    if isinstance(schedule, Schedule):
        capped += [(BANDWIDTH, "schedule.up", e.rate, shared, True) for e in schedule.entries]
    capped += [(BANDWIDTH, f"peer.{selector}.up", rates.get("up"), per_peer, False)
               for selector, rates in peers.items()]
    capped += [(section, f"{job['name']}.bandwidth", job.get("bandwidth"), shared, True)  # type: ignore[misc]
               for section, job in jobs]
    for section, key, rate, floor, is_shared in capped:
        expected = below_floor(rate, floor, encoding, is_shared)
        if expected is not None:
            problems.add(section, key, sections[section][key], expected)


def _is_percent(value: object) -> bool:
    return isinstance(value, Rate) and value.kind == "percent"


def _needing_capacity(
    link: dict[str, object], direction: Direction, peers: dict[str, dict[str, Any]]
) -> Iterator[str]:
    """Every ``[bandwidth]`` key of ``direction`` that is a percentage of its capacity."""
    if _is_percent(link.get("limit")):
        yield f"limit.{direction}"
    if link.get("busy") is not None:
        yield f"busy.{direction}"
    schedule = link.get("schedule")
    if isinstance(schedule, Schedule) and any(_is_percent(e.rate) for e in schedule.entries):
        yield f"schedule.{direction}"
    for selector, rates in peers.items():
        if _is_percent(rates.get(direction)):
            yield f"peer.{selector}.{direction}"


def parse_policy_text(text: str, tz: ZoneInfo) -> Policy:
    """Parse the text of a tahoe.cfg; raise :class:`ConfigError` with every problem."""
    sections, structure_problems = read_sections(text)
    problems = _Problems()
    problems.found.extend(structure_problems)
    jobs = _parse_jobs(sections[BACKUPS], tz, problems)
    tasks = _parse_maintenance(
        sections[MAINTENANCE], tz, {str(job["name"]) for job in jobs}, problems)
    every_job = [(BACKUPS, job) for job in jobs] + [(MAINTENANCE, task) for task in tasks]
    links, peers, interface = _parse_bandwidth(sections[BANDWIDTH], tz, problems)
    encoding = _parse_encoding(sections[CLIENT], problems)
    _floor_problems(sections, every_job, links, peers, encoding, problems)
    # N% needs a capacity to be a fraction of.
    for direction in DIRECTIONS:
        link = links[direction]
        if "capacity" in link or link.get("capacity_auto"):
            continue
        needs = [(BANDWIDTH, key) for key in _needing_capacity(link, direction, peers)]
        if direction == "up":
            for section, job in every_job:
                if _is_percent(job.get("bandwidth")):
                    needs.append((section, f"{job['name']}.bandwidth"))
                if job.get("upstream") is not None:
                    needs.append((section, f"{job['name']}.upstream"))
        for section, key in needs:
            problems.add(
                section, key, sections[section][key],
                f"capacity.{direction} to be set (a rate or 'auto') for a percentage of it",
            )
    if problems.found:
        raise ConfigError(problems.found)
    return Policy(
        tz=tz,
        jobs=tuple(
            Job(
                name=str(job["name"]),
                source=job["source"],  # type: ignore[arg-type]
                target=job["target"],  # type: ignore[arg-type]
                frequency=job["frequency"],  # type: ignore[arg-type]
                allowed_times=job.get("allowed_times") or AllowedTimes.always(tz),  # type: ignore[arg-type]
                bandwidth=job.get("bandwidth"),  # type: ignore[arg-type]
                cpu=job.get("cpu"),  # type: ignore[arg-type]
                cpu_idle=job.get("cpu.idle", job.get("cpu")),  # type: ignore[arg-type]
                upstream=job.get("upstream"),  # type: ignore[arg-type]
                exclude=job.get("exclude", ()),  # type: ignore[arg-type]
                weight=job.get("weight", 1.0),  # type: ignore[arg-type]
                keep=job.get("keep"),  # type: ignore[arg-type]
                quota=job.get("quota"),  # type: ignore[arg-type]
            )
            for job in jobs
        ),
        up=LinkPolicy(**links["up"]),  # type: ignore[arg-type]
        down=LinkPolicy(**links["down"]),  # type: ignore[arg-type]
        peers=tuple(
            PeerLimits(PeerSelector.parse(selector), rates.get("up"), rates.get("down"),
                       up_auto=bool(rates.get("up_auto")),
                       down_auto=bool(rates.get("down_auto")),
                       target_delay=rates.get(TARGET_DELAY),
                       quota_up=rates.get("quota_up"), quota_down=rates.get("quota_down"))
            for selector, rates in peers.items()
        ),
        interface=interface,
        encoding=encoding,
        maintenance=tuple(
            MaintenanceJob(
                name=str(task["name"]),
                target=task["target"],  # type: ignore[arg-type]
                frequency=task["frequency"],  # type: ignore[arg-type]
                allowed_times=task.get("allowed_times") or AllowedTimes.always(tz),  # type: ignore[arg-type]
                verify=task.get("verify", 0.0),  # type: ignore[arg-type]
                repair=task.get("repair", True),  # type: ignore[arg-type]
                add_lease=task.get("add_lease", True),  # type: ignore[arg-type]
                bandwidth=task.get("bandwidth"),  # type: ignore[arg-type]
                cpu=task.get("cpu"),  # type: ignore[arg-type]
            )
            for task in tasks
        ),
    )


def target_problems(policy: Policy, aliases: Iterable[str]) -> list[ConfigProblem]:
    """A problem for every job whose ``alias:path`` target names an alias not in ``aliases``
    (the names in ``NODEDIR/private/aliases``, plus ``tahoe`` when a root dir exists)."""
    known = set(aliases)
    problems = []
    for job in policy.scheduled_jobs:
        match = _ALIAS_PATH.fullmatch(job.target)
        if job.target.startswith("URI:") or match is None or match.group(1) in known:
            continue
        listed = ", ".join(sorted(known)) or "none"
        problems.append(
            ConfigProblem(
                BACKUPS if isinstance(job, Job) else MAINTENANCE, f"{job.name}.target", job.target,
                f"an alias defined in private/aliases (defined: {listed}), "
                "or a directory cap; add one with 'tahoe create-alias'",
            )
        )
    return problems


def load_policy(nodedir: str, tz: ZoneInfo) -> Policy:
    """Parse ``NODEDIR/tahoe.cfg``; a missing file is a :class:`ConfigError`."""
    path = os.path.join(nodedir, "tahoe.cfg")
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            [ConfigProblem(FILE, None, None, f"a readable UTF-8 file at {path} ({e})")]
        ) from None
    return parse_policy_text(text, tz)
