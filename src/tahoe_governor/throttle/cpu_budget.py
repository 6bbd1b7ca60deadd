"""CPU budgets: hold a job's work loop to a share of one core, averaged over 10 s.

The model
---------
A budget ``b`` is a share of one core (``0.25`` = 25 % of one core; above 1
means more than one core). A job's :class:`CpuDutyCycle` keeps a *balance* in
CPU seconds: it grows by ``b`` every second, and every CPU second measured
for the job is charged against it. While the balance is negative (a debt) the
job's work loop waits; the wait is ``debt / b`` seconds, the time it takes the
budget to pay the debt back. So the loop works in bursts and waits in
between, and over any interval ``T`` the CPU charged is at most
``b * T + credit``, where the credit (``b * credit_seconds``, default 1 s of
budget) is what a job may save up while it does not use its share.

A debt is never allowed beyond ``b * window_seconds`` (10 s of budget): the
budget is an average over 10 s, so one long measurement (a CPU-heavy step
charged at once) makes the loop wait at most 10 s, not longer.

Measurements arrive once per meter tick (0.25 s), so a loop that resumes
works until the next tick charges it; the next wait pays for it. The average
is exact; only the rhythm is as coarse as the tick.

Special values: a budget of ``UNLIMITED`` (``math.inf``) never waits; a budget
of ``0`` holds the loop (``delay`` answers ``inf``) until it is raised, and the
raised budget starts from a zero balance. A negative or NaN budget raises
``ValueError``.

Several jobs in one process
---------------------------
The process's CPU time is one number; :func:`attribute_cpu` splits each
tick's CPU seconds between the jobs by their share of the work reported in
that tick (bytes read and hashed, for instance). A tick in which no job
reported work is split by the shares of the last tick that had work, if that
was within ``window_seconds``; otherwise it is not charged to any job (the
node's own background work). :class:`JobCpuBudgets` does this bookkeeping for
every job and keeps each job's measured share (10 s mean) for display.

Idle budgets
------------
A job may have a second, larger budget used while the machine is idle (the
``cpu.idle`` directive). "Idle" is decided by the meters
(:class:`tahoe_governor.throttle.meters.IdleRule`): the CPU use of everything
except this process stayed below a threshold for a hold time.

Time
----
:class:`CpuDutyCycle` takes ``now`` (seconds) in every call and reads no clock.
:class:`CpuGate` is the thin shell that asks an injected reactor clock (``IReactorTime``) and
returns Deferreds.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

from twisted.internet.defer import Deferred

from tahoe_governor.throttle.estimators import WindowRate
from tahoe_governor.throttle.reactor_clock import DelayedCall, ReactorClock
from tahoe_governor.throttle.token_bucket import UNLIMITED

CPU_WINDOW_SECONDS = 10.0
"""Budgets are averages over this many seconds."""

DEFAULT_CREDIT_SECONDS = 1.0
"""A job may save up this many seconds of its budget while it does not use it."""


def check_budget(budget: float, name: str = "budget") -> float:
    """Return ``budget`` (share of one core) if valid: a number >= 0, or ``UNLIMITED``."""
    if not isinstance(budget, int | float) or isinstance(budget, bool):
        raise ValueError(f"{name} must be a share of one core (e.g. 0.25), got {budget!r}")
    if math.isnan(budget) or budget < 0:
        raise ValueError(f"{name} must be >= 0 (a share of one core) or UNLIMITED, got {budget!r}")
    return float(budget)


class CpuDutyCycle:
    """A job's CPU balance against a budget (share of one core); see the module doc.

    ``now`` is seconds (the reactor's wall clock); time going backwards earns
    nothing, and earning starts again from the earlier instant.
    """

    def __init__(
        self,
        budget: float,
        now: float = 0.0,
        credit_seconds: float = DEFAULT_CREDIT_SECONDS,
        window_seconds: float = CPU_WINDOW_SECONDS,
    ) -> None:
        if not credit_seconds >= 0:
            raise ValueError(f"credit_seconds must be >= 0, got {credit_seconds!r}")
        if not window_seconds > 0:
            raise ValueError(f"window_seconds must be > 0, got {window_seconds!r}")
        self._budget = check_budget(budget)
        self.credit_seconds = float(credit_seconds)
        self.window_seconds = float(window_seconds)
        self._balance = 0.0  # CPU seconds; negative is a debt
        self._last = float(now)

    @property
    def budget(self) -> float:
        """The budget in force (share of one core)."""
        return self._budget

    def balance(self, now: float) -> float:
        """CPU seconds the job may still use now (negative: its debt)."""
        self._advance(now)
        return self._balance

    def set_budget(self, budget: float, now: float) -> None:
        """Change the budget from ``now`` on; the balance so far was earned at the old one."""
        budget = check_budget(budget)
        self._advance(now)
        self._budget = budget
        self._clamp()

    def charge(self, cpu_seconds: float, now: float) -> None:
        """Charge ``cpu_seconds`` of measured CPU use to the job at ``now``."""
        if not cpu_seconds >= 0:
            raise ValueError(f"cpu_seconds must be >= 0, got {cpu_seconds!r}")
        self._advance(now)
        self._balance -= cpu_seconds
        self._clamp()

    def delay(self, now: float) -> float:
        """Seconds the work loop must wait before it continues (0.0: go on now)."""
        self._advance(now)
        if self._budget == 0:
            return math.inf
        if self._balance >= 0 or math.isinf(self._budget):
            return 0.0
        return -self._balance / self._budget

    def _advance(self, now: float) -> None:
        if now > self._last and not math.isinf(self._budget):
            self._balance += self._budget * (now - self._last)
        # Also when the clock stepped back: waiting for the old instant would stall the job.
        self._last = now
        self._clamp()

    def _clamp(self) -> None:
        if math.isinf(self._budget):
            self._balance = 0.0
            return
        credit = self._budget * self.credit_seconds
        debt = self._budget * self.window_seconds
        self._balance = min(max(self._balance, -debt), credit)

    def __repr__(self) -> str:
        return f"CpuDutyCycle(budget={self._budget!r}, balance={self._balance!r})"


class CpuGate:
    """Makes a job's work loop wait as its :class:`CpuDutyCycle` says, on a reactor clock.

    The loop calls :meth:`gate` before each piece of work and continues when
    the Deferred fires. The Deferred always fires from the reactor (after
    ``callLater``, with a delay of 0 when the job is within budget), so even a
    loop that is never held back lets the reactor run its timers and I/O: that
    is how the meters get to measure it.
    """

    def __init__(self, clock: ReactorClock, duty_cycle: CpuDutyCycle) -> None:
        self._clock = clock
        self.duty_cycle = duty_cycle
        self._waiting: dict[Deferred[None], DelayedCall | None] = {}

    def delay(self) -> float:
        """Seconds a call to :meth:`gate` now would wait."""
        return self.duty_cycle.delay(self._clock.seconds())

    def gate(self) -> Deferred[None]:
        """A Deferred that fires (with ``None``) when the job may continue.

        Cancelling it stops the wait (the Deferred fails with ``CancelledError``).
        """
        d: Deferred[None] = Deferred(self._cancel)
        self._waiting[d] = None
        self._schedule(d)
        return d

    def set_budget(self, budget: float) -> None:
        """Change the budget now; loops already waiting get their wait recomputed."""
        self.duty_cycle.set_budget(budget, self._clock.seconds())
        for d, call in list(self._waiting.items()):
            if call is not None and call.active():
                call.cancel()
            self._schedule(d)

    def waiting(self) -> int:
        """How many loops are waiting now."""
        return len(self._waiting)

    def _schedule(self, d: Deferred[None]) -> None:
        delay = self.delay()
        if math.isinf(delay):
            self._waiting[d] = None  # until set_budget raises the budget
            return
        self._waiting[d] = self._clock.callLater(delay, self._wake, d)

    def _wake(self, d: Deferred[None]) -> None:
        # More CPU may have been charged while this loop waited: check again.
        if self.delay() > 0:
            self._schedule(d)
            return
        del self._waiting[d]
        d.callback(None)

    def _cancel(self, d: Deferred[None]) -> None:
        call = self._waiting.pop(d, None)
        if call is not None and call.active():
            call.cancel()


def attribute_cpu(cpu_seconds: float, work: Mapping[Hashable, float]) -> dict[Hashable, float]:
    """Split ``cpu_seconds`` between jobs in proportion to their ``work`` (any unit).

    Returns ``{job: cpu_seconds}`` for the jobs with work > 0; empty when no
    job did any work (the CPU time is then nobody's). Negative work or CPU
    time raises ``ValueError``.
    """
    if not cpu_seconds >= 0:
        raise ValueError(f"cpu_seconds must be >= 0, got {cpu_seconds!r}")
    for job, units in work.items():
        if not units >= 0:
            raise ValueError(f"work of job {job!r} must be >= 0 units, got {units!r}")
    total = sum(work.values())
    if total <= 0:
        return {}
    return {job: cpu_seconds * (units / total) for job, units in work.items() if units > 0}


class JobCpuBudgets:
    """Every job's CPU gate, fed with the process's CPU time once per meter tick.

    Jobs report work as they do it (:meth:`record_work`, e.g. bytes hashed);
    :meth:`charge_tick` splits the tick's process CPU seconds between them
    (:func:`attribute_cpu`) and charges each job's duty cycle. Each job has a
    budget and an optional idle budget; :meth:`charge_tick` is told whether
    the machine is idle and applies the right one.
    """

    def __init__(
        self,
        clock: ReactorClock,
        tick_seconds: float,
        window_seconds: float = CPU_WINDOW_SECONDS,
    ) -> None:
        self._clock = clock
        self.window_seconds = float(window_seconds)
        self._usage = WindowRate(tick_seconds, max(1, round(window_seconds / tick_seconds)))
        self._jobs: dict[Hashable, _JobCpu] = {}
        self._channels = 0  # usage channels handed out (never reused)
        self._work: dict[Hashable, float] = {}
        self._last_shares: dict[Hashable, float] = {}
        self._last_work_at = -math.inf
        self._idle = False

    def add_job(self, job: Hashable, budget: float, idle_budget: float | None = None) -> CpuGate:
        """Register ``job`` with its budget(s) (shares of one core); returns its gate."""
        if job in self._jobs:
            raise ValueError(f"job {job!r} already has a CPU budget")
        budget = check_budget(budget, f"CPU budget of job {job!r}")
        if idle_budget is not None:
            idle_budget = check_budget(idle_budget, f"idle CPU budget of job {job!r}")
        now = self._clock.seconds()
        gate = CpuGate(self._clock, CpuDutyCycle(budget, now, window_seconds=self.window_seconds))
        self._jobs[job] = _JobCpu(gate, budget, idle_budget, channel=self._channels)
        self._channels += 1
        self._apply_budget(self._jobs[job])
        return gate

    def set_budget(self, job: Hashable, budget: float, idle_budget: float | None = None) -> None:
        """Change a job's budget(s) now (live tuning)."""
        entry = self._job(job)
        entry.budget = check_budget(budget, f"CPU budget of job {job!r}")
        entry.idle_budget = (
            None
            if idle_budget is None
            else check_budget(idle_budget, f"idle CPU budget of job {job!r}")
        )
        self._apply_budget(entry)

    def remove_job(self, job: Hashable) -> None:
        """Forget ``job`` (its loop has ended)."""
        self._job(job)
        del self._jobs[job]
        self._work.pop(job, None)
        self._last_shares.pop(job, None)

    def gate(self, job: Hashable) -> CpuGate:
        """The gate of ``job``."""
        return self._job(job).gate

    def record_work(self, job: Hashable, units: float) -> None:
        """``job`` did ``units`` of work (e.g. bytes) since the last tick."""
        self._job(job)
        if not units >= 0:
            raise ValueError(f"work of job {job!r} must be >= 0 units, got {units!r}")
        self._work[job] = self._work.get(job, 0.0) + units

    def charge_tick(self, cpu_seconds: float, machine_idle: bool = False) -> dict[Hashable, float]:
        """Charge one tick's process CPU seconds to the jobs; returns what each was charged."""
        now = self._clock.seconds()
        if machine_idle != self._idle:
            self._idle = machine_idle
            for entry in self._jobs.values():
                self._apply_budget(entry)
        if any(units > 0 for units in self._work.values()):
            shares = dict(self._work)
            self._last_shares, self._last_work_at = shares, now
        elif now - self._last_work_at <= self.window_seconds:
            shares = self._last_shares
        else:
            shares = {}
        charged = attribute_cpu(cpu_seconds, {j: u for j, u in shares.items() if j in self._jobs})
        self._work.clear()
        counts = [0] * self._channels
        for job, seconds in charged.items():
            entry = self._jobs[job]
            entry.gate.duty_cycle.charge(seconds, now)
            counts[entry.channel] = round(seconds * 1e6)
        self._usage.update(counts)
        return charged

    def usage(self, job: Hashable) -> float:
        """The CPU charged to ``job`` over the last 10 s, as a share of one core."""
        return self._usage.rate(self._job(job).channel) / 1e6

    def budget_in_force(self, job: Hashable) -> float:
        """The budget applied now (the idle one while the machine is idle, if set)."""
        return self._job(job).gate.duty_cycle.budget

    def jobs(self) -> list[Hashable]:
        """The registered jobs."""
        return list(self._jobs)

    def _job(self, job: Hashable) -> _JobCpu:
        try:
            return self._jobs[job]
        except KeyError:
            raise KeyError(f"no CPU budget for job {job!r}") from None

    def _apply_budget(self, entry: _JobCpu) -> None:
        budget = entry.budget
        if self._idle and entry.idle_budget is not None:
            budget = entry.idle_budget
        if budget != entry.gate.duty_cycle.budget:
            entry.gate.set_budget(budget)


class _JobCpu:
    """One job's gate and configured budgets."""

    def __init__(
        self, gate: CpuGate, budget: float, idle_budget: float | None, channel: int
    ) -> None:
        self.gate = gate
        self.budget = budget
        self.idle_budget = idle_budget
        self.channel = channel


__all__ = [
    "CPU_WINDOW_SECONDS",
    "CpuDutyCycle",
    "CpuGate",
    "JobCpuBudgets",
    "UNLIMITED",
    "attribute_cpu",
    "check_budget",
]
