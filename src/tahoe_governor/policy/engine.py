"""The policy engine: from policy, instant, overrides and measurements to every effective limit.

:func:`limits_at` is a pure function. Its rules (docs/configuration.md,
"How the limits combine"):

- Every rate is bytes/s; ``UNLIMITED`` (``math.inf``) means no cap.
- The smallest applicable cap wins; each limit names the directive that won.
- The node limit of a direction is ``limit.*``, replaced by the ``schedule.*``
  entry in force, replaced by a runtime override; then ``busy.*`` may lower it.
  ``limit.* = auto`` is the rate its delay controller chose
  (``Measurements.auto_node_up`` / ``_down``), :func:`auto_node_start_rate` until it has.
- ``N%`` resolves against ``capacity.*`` when configured, else against the
  measured estimate (``auto``). While no estimate exists a percentage cap
  cannot be applied and is reported as such (``applied=False``).
- ``busy.*`` (yield): governed traffic gets ``busy * capacity - other``
  (``other`` = measured traffic that is not ours), never less than the floor
  ``min(busy * capacity, max(5 % of capacity, 1 kB/s))``.
- A peer's limit is its ``peer.<selector>.*`` cap (or override), and never
  above the node limit.
- A job's rate is the smallest of its ``bandwidth`` (or override), its
  ``upstream`` share of ``capacity.up``, and its weighted share of the node's
  upload limit among the running jobs (itself counted as running).
- A job's CPU budget is ``cpu``, or ``cpu.idle`` while the meters say the
  machine is idle.
- A ``[maintenance]`` task is a job here like any other (its ``weight`` is 1,
  it has no ``upstream``); :attr:`Limits.jobs` lists the backup jobs, then the tasks.
- Quotas (:mod:`tahoe_governor.policy.quotas`): a used-up ``quota.*`` makes the
  node limit of its direction 0, a used-up ``peer.<selector>.quota.*`` that
  peer's; both hold every job (its runs talk to every storage server and would
  stall), and a used-up ``<job>.quota`` holds that job, until the period ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import attrs

from tahoe_governor.policy.config import DIRECTIONS, Direction, Policy, ScheduledJob
from tahoe_governor.policy.measurements import Measurements
from tahoe_governor.policy.overrides import LimitKey, Overrides
from tahoe_governor.policy.peers import KnownPeer, PeerResolution, PeerSelector, resolve_selector
from tahoe_governor.policy.quotas import QuotaKey, QuotaState, quota_state
from tahoe_governor.policy.units import AUTO_WORD, Rate
from tahoe_governor.policy.upload_floor import Encoding, peer_floor, shared_floor
from tahoe_governor.throttle import UNLIMITED

BUSY_FLOOR_FRACTION = 0.05
"""``busy.*`` never leaves less than this fraction of the capacity ..."""
BUSY_FLOOR_BYTES = 1000.0
"""... nor less than this many bytes/s (both capped at the busy share itself)."""


def busy_floor(capacity: float, busy_fraction: float) -> float:
    """The least ``busy.*`` leaves the governed traffic (bytes/s): 5 % of the
    capacity or 1 kB/s, whichever is more, but never above the busy share."""
    share = busy_fraction * capacity
    return min(share, max(BUSY_FLOOR_FRACTION * capacity, BUSY_FLOOR_BYTES))


def busy_limit(capacity: float, busy_fraction: float, other: float, floor: float) -> float:
    """The yield rule (bytes/s): governed traffic gets what ``other`` traffic
    leaves of ``busy_fraction`` of the ``capacity``, never less than ``floor``."""
    return max(floor, busy_fraction * capacity - other)


@attrs.frozen
class EffectiveLimit:
    """One effective cap.

    ``bytes_per_second`` is the rate in force (``UNLIMITED`` for none);
    ``source`` names the directive or rule that set it (``"limit.up"``,
    ``"schedule.up"``, ``"busy.up"``, ``"peer.dsl.up"``, ``"b1.bandwidth"``,
    ``"share of the node limit"``, ``"override"``, ``"none"``); ``configured``
    is the value text of the winning cap. When a runtime override is in force
    for this limit (whether or not it is the smallest cap), ``override`` is its
    text and ``overridden`` the tahoe.cfg value it replaces (``"unlimited"``
    if none). ``unapplied`` lists percentage caps that wait for a capacity
    estimate.
    """

    bytes_per_second: float
    source: str
    configured: str | None = None
    override: str | None = None
    overridden: str | None = None
    unapplied: tuple[str, ...] = ()


@attrs.frozen
class PeerLimit:
    """The limits of one configured (or overridden) peer selector."""

    selector: PeerSelector
    resolution: PeerResolution
    up: EffectiveLimit
    down: EffectiveLimit
    auto_up: Mapping[str, float] | None = None
    """For ``peer.<selector>.up = auto`` (not overridden): TubID -> the rate its delay
    controller chose, each peer's upload cap being the smaller of that and ``up``
    (``up`` alone then holds the other caps: the node's). ``None`` for a fixed cap."""
    target_delay: float | None = None
    """The queueing delay an automatic cap allows (seconds; ``None``: the default)."""

    auto_start: float = UNLIMITED
    """An automatic cap's rate for a peer its controller has not measured yet."""
    auto_down: Mapping[str, float] | None = None
    """For ``peer.<selector>.down = auto``, as :attr:`auto_up` for downloads."""

    def up_rate(self, tubid: str) -> float:
        """The upload cap of one peer this selector names (bytes/s)."""
        return self._rate(self.up, self.auto_up, tubid)

    def down_rate(self, tubid: str) -> float:
        """The download cap of one peer this selector names (bytes/s)."""
        return self._rate(self.down, self.auto_down, tubid)

    def _rate(self, limit: EffectiveLimit, auto: Mapping[str, float] | None, tubid: str) -> float:
        if auto is None:
            return limit.bytes_per_second
        return min(limit.bytes_per_second, auto.get(tubid, self.auto_start))

    @property
    def unresolved_up(self) -> float:
        """The upload cap a connection this selector may name must hold before it resolves."""
        return self._unresolved(self.up, self.auto_up)

    @property
    def unresolved_down(self) -> float:
        """The download cap a connection this selector may name must hold before it resolves."""
        return self._unresolved(self.down, self.auto_down)

    def _unresolved(self, limit: EffectiveLimit, auto: Mapping[str, float] | None) -> float:
        return limit.bytes_per_second if auto is None else min(limit.bytes_per_second,
                                                               self.auto_start)

    @property
    def tubids(self) -> tuple[str, ...]:
        """The peers this selector caps now (none until it resolves)."""
        return self.resolution.tubids

    def direction(self, direction: Direction) -> EffectiveLimit:
        return self.up if direction == "up" else self.down


@attrs.frozen
class Admission:
    """May a job run at the instant, and until when.

    ``due_at`` is when ``frequency`` has passed since the last completed run
    (``None``: never completed, due at once). ``may_run``: inside the allowed
    times and not paused (a running job continues). ``may_start``: also due.
    ``until``: the end of the current window while ``may_run`` (``None`` if it
    never ends). ``next_start``: the first instant at or after the instant when
    the job is due, inside its allowed times and held by no quota (``None``
    while paused, or if never). ``held_by``: why used-up quotas hold the job
    (public words), ``held_until`` when the last of them resets.
    """

    due_at: float | None
    due: bool
    in_window: bool
    paused: bool
    may_run: bool
    may_start: bool
    until: float | None
    next_start: float | None
    held_by: tuple[str, ...] = ()
    held_until: float | None = None


@attrs.frozen
class JobLimits:
    """A job's upload rate, CPU budget and admission."""

    name: str
    rate: EffectiveLimit
    cpu_budget: float | None
    """Share of one core (0.25 = 25 %) while the machine is in use; ``None`` for no budget."""
    cpu_idle_budget: float | None
    """Share of one core while the machine is idle (``cpu.idle``, else ``cpu_budget``)."""
    machine_idle: bool
    """Whether the measurements say the machine is idle (``False`` until measured)."""
    cpu_used: float | None
    """Measured share of one core, from the measurements (``None`` if unmeasured)."""
    admission: Admission

    @property
    def cpu_budget_in_force(self) -> float | None:
        return self.cpu_idle_budget if self.machine_idle else self.cpu_budget

    @property
    def cpu_over_budget(self) -> bool:
        budget = self.cpu_budget_in_force
        return budget is not None and self.cpu_used is not None and self.cpu_used > budget


@attrs.frozen
class Limits:
    """Every effective limit at instant ``at``, and ``next_change``: the next
    instant at which the same inputs give different limits (``None``: never).

    Two values compare equal when all limits are equal, whatever ``at``.
    """

    at: float = attrs.field(eq=False)
    capacity_up: float | None
    capacity_down: float | None
    node_up: EffectiveLimit
    node_down: EffectiveLimit
    peers: tuple[PeerLimit, ...]
    jobs: tuple[JobLimits, ...]
    next_change: float | None
    known_tubids: frozenset[str] = frozenset()
    """The TubIDs of the storage servers known at the instant: every other peer is
    one the node cannot name yet (see :meth:`unresolved_peer_rates`)."""
    quotas: tuple[QuotaState, ...] = attrs.field(default=(), eq=False)
    """Every configured quota at the instant (usage moves with every byte, so it takes
    no part in comparing two values; :attr:`used_up` does)."""
    used_up: tuple[tuple[QuotaKey, float], ...] = ()
    """The quotas used up at the instant, with the end of their period."""

    def node(self, direction: Direction) -> EffectiveLimit:
        return self.node_up if direction == "up" else self.node_down

    def capacity(self, direction: Direction) -> float | None:
        return self.capacity_up if direction == "up" else self.capacity_down

    def job(self, name: str) -> JobLimits:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)

    def peer_rates_by_tubid(self) -> dict[str, tuple[float, float]]:
        """TubID -> (up, down) bytes/s for the shaper; several selectors of one
        TubID combine by the smallest cap."""
        rates: dict[str, tuple[float, float]] = {}
        for peer in self.peers:
            for tubid in peer.tubids:
                up, down = rates.get(tubid, (UNLIMITED, UNLIMITED))
                rates[tubid] = (
                    min(up, peer.up_rate(tubid)),
                    min(down, peer.down_rate(tubid)),
                )
        return rates

    def unresolved_peer_rates(self) -> tuple[float, float]:
        """The smallest (up, down) caps of the selectors no known peer matches yet
        (``UNLIMITED`` where none): what a connection to a peer the node cannot
        name yet must hold, since the selector may turn out to name it."""
        up = down = UNLIMITED
        for peer in self.peers:
            if not peer.tubids:
                up = min(up, peer.unresolved_up)
                down = min(down, peer.unresolved_down)
        return up, down


AUTO_START_BYTES = 32_000.0
"""An automatic cap starts at 256 kbit/s, below most DSL uplinks, and moves from there: a
slower start leaves Tahoe's pipelined writes queued long enough to time out its queries."""


def auto_start_rate(encoding: Encoding) -> float:
    """The first rate of an automatic cap: :data:`AUTO_START_BYTES`, or four times the
    upload floor of ``encoding`` if that is more."""
    return max(AUTO_START_BYTES, 4 * peer_floor(encoding))


def auto_node_start_rate(encoding: Encoding) -> float:
    """The first rate of ``limit.up = auto``: :data:`AUTO_START_BYTES`, or four times
    the node's upload floor (all ``N`` servers' blocks) if that is more."""
    return max(AUTO_START_BYTES, 4 * shared_floor(encoding))


def _capacity(policy: Policy, measurements: Measurements, direction: Direction) -> float | None:
    link = policy.link(direction)
    if link.capacity is not None:
        return link.capacity.resolve(None)
    if link.capacity_auto:
        return measurements.capacity(direction)
    return None


class _Caps:
    """Candidate caps of one limit; the smallest wins, the first on a tie."""

    def __init__(self) -> None:
        self.candidates: list[tuple[float, str, str | None]] = []
        self.unapplied: list[str] = []
        self.override: str | None = None
        self.overridden: str | None = None

    def add(self, rate: Rate | None, capacity: float | None, source: str) -> None:
        if rate is None:
            return
        value = rate.resolve(capacity)
        if value is None:
            self.unapplied.append(f"{source} = {rate}")
            return
        self.candidates.append((value, source, str(rate)))

    def add_overridable(
        self, configured: Rate | None, override: Rate | None, capacity: float | None, source: str
    ) -> None:
        """The configured cap ``source``, unless a runtime override replaces it."""
        if override is None:
            self.add(configured, capacity, source)
            return
        self.override = str(override)
        self.overridden = "unlimited" if configured is None else str(configured)
        self.add(override, capacity, "override")

    def add_value(self, value: float, source: str, configured: str | None = None) -> None:
        self.candidates.append((value, source, configured))

    def smallest(self) -> EffectiveLimit:
        value, source, configured = min(
            self.candidates, key=lambda c: c[0], default=(UNLIMITED, "none", None)
        )
        return EffectiveLimit(
            value, source, configured, self.override, self.overridden, tuple(self.unapplied)
        )


def _hold_if_used_up(caps: _Caps, state: QuotaState | None) -> None:
    """A used-up quota is a cap of 0 bytes/s until its period ends."""
    if state is not None and state.exhausted:
        caps.add_value(0.0, state.key.directive, str(state.quota))


def _node_limit(
    policy: Policy,
    now: float,
    overrides: Overrides,
    measurements: Measurements,
    direction: Direction,
    capacity: float | None,
    quotas: Mapping[QuotaKey, QuotaState],
) -> EffectiveLimit:
    link = policy.link(direction)
    caps = _Caps()
    _hold_if_used_up(caps, quotas.get(QuotaKey("node", "", direction)))
    entry = link.schedule.entry_at(now) if link.schedule is not None else None
    configured_rate, configured_source = (
        (entry.rate, f"schedule.{direction} ({entry.times.text})")
        if entry is not None
        else (link.limit, f"limit.{direction}")
    )
    override = overrides.limit(LimitKey("node", "", direction))
    caps.add_overridable(configured_rate, override, capacity, configured_source)
    if link.limit_auto and entry is None:  # a schedule entry in force replaces limit.*
        if override is None:
            chosen = measurements.auto_node(direction)
            caps.add_value(auto_node_start_rate(policy.encoding) if chosen is None else chosen,
                           f"limit.{direction} (auto)", AUTO_WORD)
        else:
            caps.overridden = AUTO_WORD
    if link.busy is not None:
        if capacity is None:
            caps.unapplied.append(f"busy.{direction} = {link.busy * 100:g}%")
        else:
            other = measurements.other(direction) or 0.0
            caps.add_value(
                busy_limit(capacity, link.busy, other, busy_floor(capacity, link.busy)),
                f"busy.{direction}", f"{link.busy * 100:g}%",
            )
    return caps.smallest()


def _peer_limits(
    policy: Policy,
    overrides: Overrides,
    known_peers: Iterable[KnownPeer],
    node: Mapping[Direction, EffectiveLimit],
    capacity: Mapping[Direction, float | None],
    measurements: Measurements,
    encoding: Encoding,
    quotas: Mapping[QuotaKey, QuotaState],
) -> tuple[PeerLimit, ...]:
    known = list(known_peers)
    configured = {p.selector.text: p for p in policy.peers}
    overridden = [k.name for k in overrides.limits if k.scope == "peer"]
    selectors = list(configured) + [s for s in dict.fromkeys(overridden) if s not in configured]
    peers = []
    for text in selectors:
        selector = PeerSelector.parse(text)
        limits: dict[Direction, EffectiveLimit] = {}
        for direction in DIRECTIONS:
            caps = _Caps()
            _hold_if_used_up(caps, quotas.get(QuotaKey("peer", text, direction)))
            peer = configured.get(text)
            rate = None if peer is None else (peer.up if direction == "up" else peer.down)
            source = f"peer.{text}.{direction}"
            override = overrides.limit(LimitKey("peer", text, direction))
            caps.add_overridable(rate, override, capacity[direction], source)
            node_limit = node[direction]
            if not math.isinf(node_limit.bytes_per_second):
                caps.add_value(
                    node_limit.bytes_per_second, f"node limit ({node_limit.source})",
                    node_limit.configured,
                )
            limits[direction] = caps.smallest()
        peer = configured.get(text)
        auto = {d: (peer is not None and (peer.up_auto if d == "up" else peer.down_auto)
                    and overrides.limit(LimitKey("peer", text, d)) is None)
                for d in DIRECTIONS}
        resolution = resolve_selector(selector, known)
        chosen = {d: {t: r for t, r in measurements.auto_peer(d).items()
                      if t in resolution.tubids} if auto[d] else None
                  for d in DIRECTIONS}
        peers.append(PeerLimit(
            selector, resolution, limits["up"], limits["down"],
            auto_up=chosen["up"],
            target_delay=None if peer is None else peer.target_delay,
            auto_start=auto_start_rate(encoding) if any(auto.values()) else UNLIMITED,
            auto_down=chosen["down"],
        ))
    return tuple(peers)


def _holding(job: ScheduledJob, used_up: Iterable[QuotaState]) -> list[QuotaState]:
    """The used-up quotas that hold ``job``: its own, and every node or peer quota."""
    return [state for state in used_up
            if state.key.scope != "job" or state.key.name == job.name]


def _admission(
    job: ScheduledJob, now: float, paused: bool, last_completed: float | None,
    holding: list[QuotaState],
) -> Admission:
    due_at = None if last_completed is None else last_completed + job.frequency
    due = due_at is None or now >= due_at
    in_window = job.allowed_times.contains(now)
    held_until = max((state.resets_at for state in holding), default=None)
    may_run = in_window and not paused and held_until is None
    until = job.allowed_times.window_end(now) if may_run else None
    next_start = None
    if not paused:
        earliest = now if due or due_at is None else due_at
        if held_until is not None:
            earliest = max(earliest, held_until)
        next_start = job.allowed_times.next_start(earliest)
    return Admission(
        due_at=due_at,
        due=due,
        in_window=in_window,
        paused=paused,
        may_run=may_run,
        may_start=may_run and due,
        until=until,
        next_start=next_start,
        held_by=tuple(state.reason for state in holding),
        held_until=held_until,
    )


def _job_rate(
    job: ScheduledJob,
    overrides: Overrides,
    node_up: EffectiveLimit,
    capacity_up: float | None,
    running_weight: float,
) -> EffectiveLimit:
    caps = _Caps()
    override = overrides.limit(LimitKey("job", job.name, "up"))
    caps.add_overridable(job.bandwidth, override, capacity_up, f"{job.name}.bandwidth")
    if job.upstream is not None:
        caps.add(Rate.percent(job.upstream, f"{job.upstream * 100:g}%"), capacity_up,
                 f"{job.name}.upstream")
    if not math.isinf(node_up.bytes_per_second):
        weight = job.weight / running_weight
        caps.add_value(
            node_up.bytes_per_second * weight,
            f"share of the node limit ({node_up.source}, weight {job.weight:g} of "
            f"{running_weight:g})",
            node_up.configured,
        )
    return caps.smallest()


def limits_at(
    policy: Policy,
    now: float,
    overrides: Overrides = Overrides(),
    measurements: Measurements = Measurements(),
    running_jobs: Iterable[str] = (),
    last_completed: Mapping[str, float] | None = None,
    known_peers: Iterable[KnownPeer] = (),
) -> Limits:
    """Every effective limit at ``now`` (POSIX seconds); see the module documentation.

    ``running_jobs`` names the jobs running now (they share the node's upload
    limit by weight); ``last_completed`` maps a job name to the end of its last
    completed run; ``known_peers`` resolves nickname and server-id selectors.
    """
    scheduled = policy.scheduled_jobs  # backup jobs and maintenance tasks alike
    names = {job.name for job in scheduled}
    running = set(running_jobs)
    if running - names:
        raise ValueError(f"running jobs not in the policy: {sorted(running - names)}")
    completed = dict(last_completed or {})
    capacity: dict[Direction, float | None] = {
        d: _capacity(policy, measurements, d) for d in DIRECTIONS
    }
    quotas = {key: quota_state(key, quota, measurements.quota_usage.get(key), now, policy.tz)
              for key, quota in policy.quotas()}
    used_up = [state for state in quotas.values() if state.exhausted]
    node = {
        d: _node_limit(policy, now, overrides, measurements, d, capacity[d], quotas)
        for d in DIRECTIONS
    }
    known_peers = tuple(known_peers)
    peers = _peer_limits(policy, overrides, known_peers, node, capacity, measurements,
                         policy.encoding, quotas)
    weight_running = sum(job.weight for job in scheduled if job.name in running)
    jobs = []
    changes: list[float] = []
    for job in scheduled:
        shared_weight = weight_running + (0 if job.name in running else job.weight)
        admission = _admission(job, now, job.name in overrides.paused, completed.get(job.name),
                               _holding(job, used_up))
        jobs.append(
            JobLimits(
                name=job.name,
                rate=_job_rate(job, overrides, node["up"], capacity["up"], shared_weight),
                cpu_budget=job.cpu,
                cpu_idle_budget=job.cpu_idle,
                machine_idle=bool(measurements.machine_idle),
                cpu_used=measurements.job_cpu.get(job.name),
                admission=admission,
            )
        )
        window_change = job.allowed_times.next_change(now)
        if window_change is not None:
            changes.append(window_change)
        if admission.due_at is not None and admission.due_at > now:
            changes.append(admission.due_at)
    changes += [state.resets_at for state in used_up]
    for direction in DIRECTIONS:
        schedule = policy.link(direction).schedule
        if schedule is not None and (change := schedule.next_change(now)) is not None:
            changes.append(change)
    return Limits(
        at=now,
        capacity_up=capacity["up"],
        capacity_down=capacity["down"],
        node_up=node["up"],
        node_down=node["down"],
        peers=peers,
        jobs=tuple(jobs),
        next_change=min(changes, default=None),
        known_tubids=frozenset(peer.tubid for peer in known_peers),
        quotas=tuple(quotas.values()),
        used_up=tuple((state.key, state.resets_at) for state in used_up),
    )
