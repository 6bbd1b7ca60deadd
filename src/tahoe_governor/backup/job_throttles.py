"""Each job's throttle (a backup job's or a task's), made from tahoe.cfg, retuned on reload.

A job's :class:`~tahoe_governor.backup.job_throttle.JobThrottle` has the CPU
gate of its budget (``bN.cpu``, ``bN.cpu.idle``) and the node's one backlog
gate (a slow peer's queue holds every job's new uploads). A job that gains a
budget on reload gets a gate; one that loses it is left ungated.
"""

from __future__ import annotations

from tahoe_governor.backup.job_throttle import JobThrottle
from tahoe_governor.policy.config import ScheduledJob
from tahoe_governor.throttle import UNLIMITED
from tahoe_governor.throttle.backlog_gate import BacklogGate
from tahoe_governor.throttle.cpu_budget import JobCpuBudgets
from tahoe_governor.throttle.reactor_clock import ReactorClock


class JobThrottles:
    """Makes, retunes and forgets the jobs' throttles (see the module doc)."""

    def __init__(self, reactor: ReactorClock, budgets: JobCpuBudgets,
                 backlog: BacklogGate) -> None:
        self._reactor = reactor
        self._budgets = budgets
        self._backlog = backlog

    def make(self, job: ScheduledJob) -> JobThrottle:
        """A new throttle for ``job``, gated by its CPU budget if it has one."""
        throttle = JobThrottle(self._reactor, backlog_gate=self._backlog)
        self.retune(job, throttle)
        return throttle

    def retune(self, job: ScheduledJob, throttle: JobThrottle) -> None:
        """Apply ``job``'s CPU budget (as now configured) to its ``throttle``."""
        has_budget = job.name in self._budgets.jobs()
        if job.cpu is None:
            if has_budget:
                self._budgets.remove_job(job.name)
            throttle.set_cpu_gate(None)
            return
        idle = UNLIMITED if job.cpu_idle is None else job.cpu_idle
        if has_budget:
            self._budgets.set_budget(job.name, job.cpu, idle)
        else:
            throttle.set_cpu_gate(self._budgets.add_job(job.name, job.cpu, idle).gate)

    def forget(self, name: str) -> None:
        """``name`` is no longer a job: drop its CPU budget."""
        if name in self._budgets.jobs():
            self._budgets.remove_job(name)
