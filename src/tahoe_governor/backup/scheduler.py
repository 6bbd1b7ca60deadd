"""The scheduler: the service that runs every configured job on time.

It keeps one :class:`JobRunner` per ``[backups]`` job and per ``[maintenance]``
task (a task is a job of another kind: the same lifecycle, runner and
controls; only its walker differs, made by the injected factory), and, whenever the live
policy's limits change (a window edge, a job becoming due, a schedule edge,
an override, a measurement) or a run ends, hands each runner its verdict
(:meth:`JobRunner.apply`). It tells the policy which jobs are running (they
share the node's upload limit by weight) and when a run completed (the job
is then not due until its frequency has passed). It also carries out the
controls (pause, resume, run now) and builds the jobs' status snapshots.

Stopping the service cancels the runs in progress and records them as
interrupted; the next start resumes where the backupdb allows.

A reloaded tahoe.cfg (:meth:`BackupScheduler.set_policy`) changes the set of
jobs live: a new job gets a runner, a removed one is stopped like that, and
the others go on (a run in progress keeps its source and target; the new
limits apply at once, the new definition from the next run).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger

from tahoe_governor.backup.job_runner import JobRunner, RunHistory, WalkerFactory
from tahoe_governor.backup.job_throttles import JobThrottles
from tahoe_governor.policy.config import Job, Policy, ScheduledJob
from tahoe_governor.policy.engine import Limits
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.status import (
    CHECK_RESULTS,
    FILE_OUTCOMES,
    ControlError,
    JobStatus,
    MaintenancePass,
)
from tahoe_governor.throttle.reactor_clock import ReactorClock

log = Logger()


class BackupScheduler(service.Service):
    """Runs the jobs of ``live_policy.policy`` as their admissions allow.

    :param make_walker: makes the walker of one run (see :data:`WalkerFactory`).
    :param history: the state database (runs are recorded there).
    :param on_completed: optional ``(job, end time, result)`` callback after a
        completed run is recorded (e.g. to remember the snapshot cap).
    :param throttles: makes each job's throttle (with its CPU gate); without
        it, every job gets a new unlimited one.
    """

    name = "backup-scheduler"

    def __init__(
        self,
        reactor: ReactorClock,
        live_policy: LivePolicy,
        history: RunHistory,
        make_walker: WalkerFactory,
        on_completed: Callable[[str, float, Any], None] | None = None,
        throttles: JobThrottles | None = None,
    ) -> None:
        self._reactor = reactor
        self._live = live_policy
        self._history = history
        self._make_walker = make_walker
        self._on_completed = on_completed
        self._throttles = throttles
        self.runners: dict[str, JobRunner] = {
            job.name: self._make_runner(job) for job in live_policy.policy.scheduled_jobs
        }
        self._unsubscribe: Callable[[], None] | None = None
        self._change_listeners: list[Callable[[], None]] = []
        self._applying = False
        self._again = False
        self._running_names: frozenset[str] = frozenset()

    def _make_runner(self, job: ScheduledJob) -> JobRunner:
        return JobRunner(
            self._reactor, job, self._make_walker, self._history,
            on_change=self._runner_changed, on_success=self._completed,
            throttle=None if self._throttles is None else self._throttles.make(job),
        )

    def set_policy(self, policy: Policy) -> Deferred[Any]:
        """Run the jobs of ``policy`` from now on (see the module doc); fires once the runs
        of removed jobs have stopped."""
        names = {job.name for job in policy.scheduled_jobs}
        stopping = []
        for name in [n for n in self.runners if n not in names]:
            if (d := self.runners.pop(name).stop()) is not None:
                stopping.append(d)
            if self._throttles is not None:
                self._throttles.forget(name)
        self._live.set_policy(policy)
        self._follow_policy()
        return DeferredList(stopping)

    def set_job_setting(self, job: str, setting: str, text: str | None) -> None:
        """Override ``job``'s allowed times, frequency or CPU budget (``None``: back to
        tahoe.cfg); see :meth:`LivePolicy.set_job_setting`. Applies at once."""
        if not isinstance(self.runner(job).job, Job):
            raise ControlError(f"maintenance task {job!r}: its settings are changed in "
                               "tahoe.cfg ([maintenance]), then 'tahoe-governor reload'")
        self._live.set_job_setting(job, setting, text)
        self._follow_policy()

    def _follow_policy(self) -> None:
        """Give every runner its job as now in force (a new job a new runner), then apply."""
        for job in self._live.policy.scheduled_jobs:
            runner = self.runners.get(job.name)
            if runner is None:
                self.runners[job.name] = self._make_runner(job)
                continue
            runner.job = job
            if self._throttles is not None:
                self._throttles.retune(job, runner.throttle)
        self.reevaluate()

    # -- service -----------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        mark = getattr(self._history, "mark_interrupted", None)
        if mark is not None:  # runs left "running" by a crash
            try:
                mark(self._reactor.seconds())
            except sqlite3.Error as e:
                # They stay "running" in the file (no completed run is lost):
                # the next start marks them; the jobs must start regardless.
                log.warn("could not mark the runs left running as interrupted in the "
                         "state database ({error}); the next start does", error=e)
        self._unsubscribe = self._live.subscribe(self._limits_changed)
        self.reevaluate()

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        stopping = [d for r in self.runners.values() if (d := r.stop()) is not None]
        return DeferredList(stopping)

    # -- scheduling -------------------------------------------------------------

    def add_change_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever a job's state changes (a run starts, ends,
        fails, is suspended or resumed), after the scheduler has reacted to it."""
        self._change_listeners.append(listener)

    def _runner_changed(self) -> None:
        self.reevaluate()
        for listener in list(self._change_listeners):
            listener()

    def reevaluate(self) -> None:
        """Ask the policy for fresh limits and apply them to every job."""
        if not self.running:
            return
        self._live.reevaluate()  # tells _limits_changed if anything moved
        self._apply(self._live.current)

    def _limits_changed(self, limits: Limits) -> None:
        self._apply(limits)

    def _apply(self, limits: Limits) -> None:
        # Applying may change the running set, which changes the limits,
        # which calls us again: loop here instead of recursing.
        if self._applying:
            self._again = True
            return
        self._applying = True
        try:
            while True:
                self._again = False
                for name, runner in self.runners.items():
                    runner.apply(limits.job(name))
                running = frozenset(
                    n for n, r in self.runners.items() if r.lifecycle.state == "running"
                )
                if running != self._running_names:
                    self._running_names = running
                    self._live.set_running_jobs(running)
                if not self._again:
                    break
                limits = self._live.current
        finally:
            self._applying = False

    def _completed(self, job: str, ended: float, result: Any) -> None:
        self._live.set_last_completed(job, ended)
        if self._on_completed is not None:
            self._on_completed(job, ended, result)

    # -- controls ---------------------------------------------------------------

    def runner(self, job: str) -> JobRunner:
        """The runner of ``job``; :class:`ControlError` for an unknown name."""
        try:
            return self.runners[job]
        except KeyError:
            known = ", ".join(self.runners) or "none (tahoe.cfg has no [backups] job)"
            raise ControlError(f"unknown job {job!r}: expected one of {known}") from None

    def pause(self, job: str) -> None:
        """Hold ``job`` until resumed (kept in the state database)."""
        self.runner(job)
        self._live.set_paused(job, True)
        self.reevaluate()

    def resume(self, job: str) -> None:
        """Undo :meth:`pause`."""
        self.runner(job)
        self._live.set_paused(job, False)
        self.reevaluate()

    def run_now(self, job: str, force: bool = False) -> None:
        """Start ``job`` now regardless of its frequency (inside its windows unless forced)."""
        runner = self.runner(job)
        if job in self._live.overrides.paused:
            raise ControlError(f"{_kind(runner.job)} {job!r} is paused; resume it first")
        runner.run_now(force)
        self.reevaluate()

    # -- status -------------------------------------------------------------------

    def job_statuses(self, latest_caps: dict[str, str] | None = None) -> tuple[JobStatus, ...]:
        """Every job's status now (``latest_caps``: job -> last snapshot cap, private)."""
        limits = self._live.current
        last = self._live.last_completed
        out = []
        for name, runner in self.runners.items():
            jl = limits.job(name)
            job = runner.job
            totals = runner.totals
            progress = runner.progress()
            outcomes = FILE_OUTCOMES if isinstance(job, Job) else CHECK_RESULTS
            files_total = {k: totals[k] for k in outcomes}
            bytes_total = totals["bytes"]
            if runner.walker is not None and progress is not None:  # count the run in progress
                for outcome, n in progress.outcome_counts().items():
                    files_total[outcome] += n
                bytes_total += progress.work_bytes
            last_pass = getattr(runner.last_result, "progress", None)
            state = runner.lifecycle.state
            failure, failure_detail = runner.failure_status()
            if not self.running and jl.admission.due:
                state = "waiting"  # due, but the jobs have not started (the node meets its grid)
            out.append(
                JobStatus(
                    name=name,
                    state=state,
                    progress=progress,
                    files_total=files_total,
                    bytes_total=bytes_total,
                    limit_bytes_per_second=jl.rate.bytes_per_second,
                    limit_source=jl.rate.source,
                    cpu_budget=jl.cpu_budget_in_force,
                    cpu_usage=jl.cpu_used,
                    last_success=last.get(name),
                    next_start=(None if runner.lifecycle.state == "running"
                                else jl.admission.next_start),
                    window_end=jl.admission.until if jl.admission.in_window else None,
                    last_failure=failure,
                    retry_at=runner.retry_at,
                    frequency_seconds=job.frequency,
                    source=job.source if isinstance(job, Job) else "",
                    target=job.target,
                    latest_snapshot_cap=(latest_caps or {}).get(name),
                    last_failure_detail=failure_detail,
                    allowed_times=job.allowed_times.text or "",
                    settings_overridden=tuple(
                        setting for (named, setting) in self._live.overrides.job_settings
                        if named == name),
                    kind=_kind(job).split()[0],
                    last_pass=last_pass if isinstance(last_pass, MaintenancePass) else None,
                    held_by="; ".join(jl.admission.held_by) or None,
                    held_until=jl.admission.held_until,
                )
            )
        return tuple(out)


def _kind(job: object) -> str:
    """How a message names a job of this kind."""
    return "backup job" if isinstance(job, Job) else "maintenance task"
