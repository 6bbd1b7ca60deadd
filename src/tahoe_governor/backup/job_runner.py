"""One job over time (a backup job or a maintenance task): its lifecycle, runs, throttle, history.

A :class:`JobRunner` performs what the job's :class:`JobLifecycle` decides:
it starts a run (a walker made by the injected factory), holds and resumes it
through the job's :class:`JobThrottle` (kept across runs, so the job's cap and
CPU gate stay in force), records every run in the state database, and plans
retries with backoff. It turns the policy's verdict for the job
(:class:`JobLimits`) into the lifecycle's level inputs in :meth:`apply`.

A run's records are written to the state database when it starts and when it
ends. A write that fails (an ``sqlite3`` error: the disk under ``private/`` is
full, the file is locked past its timeout) never jams the job: a start that
cannot be recorded fails the run at once (:class:`StateDatabaseFault`) and it
is retried with the usual backoff; an end that cannot be recorded is kept in
memory (:class:`UnwrittenRecord`) and written before the next start, or by
its own retry timer with the same backoff, whichever comes first. A completed
run whose record waits still counts as completed in memory (the snapshot is
linked), so the job is not due again at once. Only a process that stops
before the record is written loses it; the job then runs once more and the
backupdb skips what that run finds already uploaded.

The storage servers abort an upload that receives nothing for 30 minutes, so
when a suspension will last longer than :data:`IDLE_ABORT_SECONDS` the files
in flight are aborted at once; the backupdb makes the next window skip every
finished file.

The runner knows a kind of job only through its :class:`Walker`: a backup
run's (:class:`~tahoe_governor.backup.walker.BackupWalker`) or a maintenance
pass's (:class:`~tahoe_governor.maintenance.walker.MaintenanceWalker`, made by
the node layer). A walker's progress says what a run counts
(:class:`RunProgress`); an error may carry ``public_summary``, its words for
the public page.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from tahoe_governor.backup.backupdb import BackupDBError
from tahoe_governor.backup.job_lifecycle import JobLifecycle
from tahoe_governor.backup.job_throttle import JobThrottle
from tahoe_governor.backup.run_errors import StateDatabaseFault, database_fault_kind
from tahoe_governor.backup.target import TargetError
from tahoe_governor.backup.walker import BackupCancelled, BackupFailed, SourceError
from tahoe_governor.policy.config import ScheduledJob
from tahoe_governor.policy.engine import JobLimits
from tahoe_governor.policy.upload_floor import IDLE_WINDOW_SECONDS
from tahoe_governor.throttle.reactor_clock import ReactorClock

IDLE_ABORT_SECONDS = IDLE_WINDOW_SECONDS
"""Abort in-flight files when a suspension will outlast this (the storage
server's idle limit is 30 minutes; five are kept as a margin)."""

RETRY_FIRST_SECONDS = 60.0
RETRY_MAX_SECONDS = 3600.0
"""A failed run is retried after 1 min, then 2, 4, ... up to 1 h; so is the
writing of a run's record that the state database refused."""

log = Logger()


class RunProgress(Protocol):
    """What a runner reads of a walker's progress (a backup run's, a maintenance pass's)."""

    @property
    def work_bytes(self) -> int:
        """Bytes of work so far, the CPU budget's measure of work."""

    def outcome_counts(self) -> Mapping[str, int]:
        """Files per outcome so far, added to the job's totals when the run ends."""

    def run_counts(self) -> Mapping[str, int]:
        """The counts the state database keeps for the run."""


class RunResult(Protocol):
    """What a completed run gives: its last progress and a public note for its record."""

    @property
    def progress(self) -> Any: ...

    @property
    def detail(self) -> str: ...


class Walker(Protocol):
    """What a runner uses of a walker (:class:`~tahoe_governor.backup.walker.BackupWalker`,
    :class:`~tahoe_governor.maintenance.walker.MaintenanceWalker`)."""

    def run(self) -> Deferred[Any]: ...

    def progress(self) -> Any: ...

    def cancel(self) -> None: ...


WalkerFactory = Callable[[ScheduledJob, JobThrottle], Walker]
"""Makes the walker of one run of a job, governed by the job's throttle."""


class RunHistory(Protocol):
    """Where runs are recorded (the state database provides this)."""

    def start_run(self, job: str, started: float) -> int: ...

    def finish_run(
        self,
        run_id: int,
        ended: float,
        outcome: Any,
        counts: Mapping[str, int] | None = None,
        detail: str | None = None,
    ) -> None: ...


def failure_summary(failure: Failure) -> str:
    """What kind of failure ended a run, without its message: messages may hold
    local paths or capabilities, and this is shown on the public page."""
    summary = getattr(failure.value, "public_summary", None)
    if isinstance(summary, str):
        return summary  # the error's own public words (a maintenance task's errors)
    if failure.check(StateDatabaseFault):
        return state_database_summary(failure.value.error)
    if failure.check(BackupDBError):
        return "the backup database could not be opened"
    if failure.check(sqlite3.Error):
        return backup_database_summary(failure.value)
    cause = getattr(failure.value, "cause", None)
    if failure.check(BackupFailed) and isinstance(cause, Failure) and cause.check(sqlite3.Error):
        return backup_database_summary(cause.value)
    if failure.check(SourceError):
        return "the source directory could not be read"
    if failure.check(TargetError):
        return "the backup target could not be opened"
    if failure.check(BackupFailed):
        cause = getattr(failure.value, "cause", None)
        kind = cause.type.__name__ if isinstance(cause, Failure) else "error"
        return f"an operation on the grid failed ({kind})"
    return f"unexpected error ({failure.type.__name__})"


def state_database_summary(error: BaseException) -> str:
    """Public words for a write to the job-state database that failed."""
    return f"the state database could not be written ({database_fault_kind(error)})"


def backup_database_summary(error: BaseException) -> str:
    """Public words for a backupdb query or write that failed during a run."""
    return f"the backup database could not be used ({database_fault_kind(error)})"


@attrs.frozen
class UnwrittenRecord:
    """The end of a run that the state database refused, kept until it can be written."""

    run_id: int
    ended: float
    outcome: str
    counts: Mapping[str, int] | None
    detail: str | None


def run_counts(progress: RunProgress) -> dict[str, int]:
    """The counts the state database keeps for a run."""
    return dict(progress.run_counts())


class JobRunner:
    """Runs one job as its lifecycle decides; see the module documentation.

    :param on_change: called (with no arguments) whenever the runner's state
        changed in a way the scheduler must react to (a run ended, a retry
        time came).
    :param on_success: called with ``(job name, end time, result)`` after a
        completed run is recorded.
    :param throttle: the job's throttle, kept across runs (its cap and CPU
        gate); a new unlimited one if not given.
    """

    def __init__(
        self,
        reactor: ReactorClock,
        job: ScheduledJob,
        make_walker: WalkerFactory,
        history: RunHistory,
        on_change: Callable[[], None],
        on_success: Callable[[str, float, Any], None],
        throttle: JobThrottle | None = None,
    ) -> None:
        self._reactor = reactor
        self.job = job
        self._make_walker = make_walker
        self._history = history
        self._on_change = on_change
        self._on_success = on_success
        self.throttle = throttle if throttle is not None else JobThrottle(reactor)
        self.lifecycle = JobLifecycle(self, self)
        self.walker: Walker | None = None
        self.last_progress: Any = None
        """The last progress of the run in progress or of the last run (a ``RunProgress``)."""
        self.last_result: Any = None
        """The result of the last completed run (a ``RunResult``)."""
        self.forced = False
        self.failure_summary: str | None = None
        """Why the last run failed, in words safe for the public page (no path, no cap)."""
        self.retry_at: float | None = None
        self.retry_first_seconds = RETRY_FIRST_SECONDS
        """The first retry's delay (seconds); it doubles per failure in a row."""
        self._failures_in_a_row = 0
        self._retry_timer: Any = None
        self._run_id: int | None = None
        self._unwritten: list[UnwrittenRecord] = []
        """Ends of runs the state database refused, oldest first, until written."""
        self._record_fault: str | None = None
        self._record_fault_detail: str | None = None
        self._record_failures_in_a_row = 0
        self._record_timer: Any = None
        self._suspended_until: float | None = None
        self.totals: Counter[str] = Counter()
        """Files per outcome (the walker's ``outcome_counts``) and, under ``"bytes"``, the
        work bytes over every finished run of this process."""

    # -- from the scheduler ----------------------------------------------------

    def apply(self, limits: JobLimits) -> None:
        """Bring the job in line with the policy's verdict for it, now."""
        rate = limits.rate.bytes_per_second
        if rate != self.throttle.wire_rate:
            self.throttle.set_wire_rate(rate)
        admission = limits.admission
        if admission.paused:
            self._suspended_until = None  # held until resumed by hand: unknown
            self.lifecycle.pause()
            return
        self.lifecycle.resume()
        if admission.due:
            self.lifecycle.became_due()
        if self.retry_at is not None and self._reactor.seconds() >= self.retry_at:
            self.retry_at = None
            self.lifecycle.retry_due()
        # A forced run ignores the windows until it ends; nothing ignores a used-up
        # quota: it holds the job like a closed window, until its period ends.
        if (admission.in_window or self.forced) and not admission.held_by:
            self.lifecycle.window_open()
        else:
            self._suspended_until = admission.next_start
            self.lifecycle.window_closed()

    def run_now(self, force: bool) -> None:
        """Make the job due now; ``force`` also ignores its windows for this run."""
        self.forced = self.forced or force
        self.retry_at = None
        self.lifecycle.run_now()

    # -- RunControl ------------------------------------------------------------

    def start_run(self) -> None:
        now = self._reactor.seconds()
        self.last_progress = None  # from here on, "the last run" is this one
        try:
            self._write_unwritten()  # earlier ends first, so the history stays in order
            self._run_id = self._history.start_run(self.job.name, now)
        except sqlite3.Error as e:
            # Nothing of this run is recorded: it fails before it starts and is
            # retried with backoff, like any failed run.
            fault = StateDatabaseFault("record the start of a run", e)
            self._reactor.callLater(0, self._ended_badly, Failure(fault))
            return
        self.throttle.resume()
        try:
            walker = self.walker = self._make_walker(self.job, self.throttle)
            d = walker.run()
        except Exception as e:  # a bad target or source: the run fails at once
            self.walker = None
            self._reactor.callLater(0, self._ended_badly, Failure(e))
            return
        # The end is handled in a later reactor turn: never inside this
        # transition of the lifecycle, even when the run ends at once.
        d.addBoth(lambda outcome: self._reactor.callLater(0, self._ended, outcome))

    def _ended(self, outcome: RunResult | Failure) -> None:
        if isinstance(outcome, Failure):
            self._ended_badly(outcome)
        else:
            self._ended_well(outcome)

    def suspend_run(self) -> None:
        self.throttle.suspend()
        now = self._reactor.seconds()
        resume_at = self._suspended_until
        if resume_at is not None and resume_at - now > IDLE_ABORT_SECONDS:
            self._abort_if_held()  # the next window is too far: abort now
        elif resume_at is None:  # paused by hand: abort if it lasts too long
            self._cancel(self._idle_timer)
            self._idle_timer = self._reactor.callLater(IDLE_ABORT_SECONDS, self._abort_if_held)

    def resume_run(self) -> None:
        self._cancel(self._idle_timer)
        self.throttle.resume()

    _idle_timer: Any = None

    def _abort_if_held(self) -> None:
        if not self.throttle.suspended:
            return
        aborted = self.throttle.abort_in_flight()
        if aborted:
            log.info(
                "backup job {job}: held longer than the storage servers wait; {n} in-flight "
                "uploads aborted (the next run skips every finished file)",
                job=self.job.name, n=aborted,
            )

    @staticmethod
    def _cancel(timer: Any) -> None:
        if timer is not None and timer.active():
            timer.cancel()

    # -- RunRecorder -----------------------------------------------------------

    def record_success(self) -> None:
        now = self._reactor.seconds()
        self._failures_in_a_row = 0
        self.forced = False
        result = self.last_result
        if result is not None:
            # The run completed (its snapshot is linked) even if its record must
            # wait: the in-memory last completion is set in _after_run either way.
            self._record_end(now, "completed", run_counts(result.progress), result.detail)
        self._run_id = None
        self._completed_at = now  # reported in _after_run, outside the transition

    def record_failure(self, reason: str) -> None:
        now = self._reactor.seconds()
        self._failures_in_a_row += 1
        self.forced = False
        counts = run_counts(self.last_progress) if self.last_progress else None
        self._record_end(now, "failed", counts, reason)
        delay = self._backoff(self._failures_in_a_row)
        self.retry_at = now + delay
        self._cancel(self._retry_timer)
        self._retry_timer = self._reactor.callLater(delay, self._on_change)
        log.warn("backup job {job} failed: {reason}; retry in {delay:.0f} s",
                 job=self.job.name, reason=reason, delay=delay)

    # -- status ------------------------------------------------------------------

    def progress(self) -> Any:
        """The run in progress now, or the last run of this process."""
        if self.walker is not None:
            return self.walker.progress()
        return self.last_progress

    def failure_status(self) -> tuple[str | None, str | None]:
        """What went wrong, for the status: ``(public words, private detail)``.

        The failure of the last run while the job is ``failed``, and, in any
        state, the ends of runs the state database refused and that wait in
        memory; ``(None, None)`` when nothing is wrong.
        """
        public: list[str] = []
        detail: list[str] = []
        if self.lifecycle.state == "failed":
            if self.failure_summary:
                public.append(self.failure_summary)
            if self.lifecycle.last_failure:
                detail.append(self.lifecycle.last_failure)
        if self._unwritten and self._record_fault is not None:
            waiting = len(self._unwritten)
            note = (f"the end of {waiting} run{'s' if waiting > 1 else ''} is kept in memory "
                    "and written when the state database can be written again")
            if self._record_fault not in public:
                public.append(self._record_fault)
            public.append(note)
            detail.append(f"{self._record_fault_detail}; {note}")
        return ("; ".join(public) or None, "; ".join(detail) or None)

    def stop(self) -> Deferred[None] | None:
        """Cancel a run in progress (node shutdown); the Deferred fires when it has ended."""
        self._cancel(self._retry_timer)
        self._cancel(self._idle_timer)
        self._cancel(self._record_timer)
        walker = self.walker
        if walker is None:
            self._write_unwritten_or_log_loss()
            return None
        ended: Deferred[None] = Deferred()
        self._stopping = ended
        walker.cancel()
        return ended

    _stopping: Deferred[None] | None = None

    # -- internals ---------------------------------------------------------------

    def _finish_walker(self) -> None:
        if self.walker is not None:
            self.last_progress = self.walker.progress()
            self.walker = None
        if self.last_progress is not None:
            p = self.last_progress
            self.totals.update(p.outcome_counts())
            self.totals["bytes"] += p.work_bytes

    def _ended_well(self, result: RunResult) -> None:
        self.last_result = result
        self._finish_walker()
        self.last_progress = result.progress
        self.lifecycle.run_completed()
        self._after_run()

    def _ended_badly(self, failure: Failure) -> None:
        self._finish_walker()
        if failure.check(BackupCancelled, CancelledError) and self._stopping is not None:
            # Shut down: the run is interrupted, not failed; the next start resumes it.
            counts = run_counts(self.last_progress) if self.last_progress else None
            self._unwritten_end(self._reactor.seconds(), "interrupted", counts, "node stopped")
            self._write_unwritten_or_log_loss()
        else:
            self.failure_summary = failure_summary(failure)
            self.lifecycle.run_failed(failure.getErrorMessage() or failure.type.__name__)
        self._after_run()

    _completed_at: float | None = None

    # -- the run's records ------------------------------------------------------

    def _backoff(self, failures_in_a_row: int) -> float:
        return float(min(RETRY_MAX_SECONDS,
                         self.retry_first_seconds * 2 ** (failures_in_a_row - 1)))

    def _unwritten_end(self, ended: float, outcome: str, counts: Mapping[str, int] | None,
                       detail: str | None) -> None:
        """Queue the end of the run in progress (if it was recorded as started)."""
        run_id, self._run_id = self._run_id, None
        if run_id is not None:
            self._unwritten.append(UnwrittenRecord(run_id, ended, outcome, counts, detail))

    def _record_end(self, ended: float, outcome: str, counts: Mapping[str, int] | None,
                    detail: str | None) -> None:
        """Record the end of the run in progress now, or keep it and retry with backoff."""
        self._unwritten_end(ended, outcome, counts, detail)
        self._write_unwritten_or_retry()

    def _write_unwritten(self) -> None:
        """Write the waiting ends of runs, oldest first; an ``sqlite3.Error`` leaves
        the rest waiting and is raised."""
        while self._unwritten:
            record = self._unwritten[0]
            self._history.finish_run(record.run_id, record.ended, record.outcome,
                                     record.counts, detail=record.detail)
            self._unwritten.pop(0)
        self._cancel(self._record_timer)
        self._record_failures_in_a_row = 0
        if self._record_fault is not None:
            self._record_fault = self._record_fault_detail = None
            log.info("backup job {job}: the state database can be written again; "
                     "every waiting record is written", job=self.job.name)

    def _write_unwritten_or_retry(self) -> None:
        try:
            self._write_unwritten()
        except sqlite3.Error as e:
            self._record_failures_in_a_row += 1
            delay = self._backoff(self._record_failures_in_a_row)
            self._record_fault = state_database_summary(e)
            self._record_fault_detail = str(StateDatabaseFault("record the end of a run", e))
            self._cancel(self._record_timer)
            self._record_timer = self._reactor.callLater(delay, self._write_unwritten_or_retry)
            log.warn("backup job {job}: {detail}; {n} run end(s) kept in memory, "
                     "written again in {delay:.0f} s", job=self.job.name,
                     detail=self._record_fault_detail, n=len(self._unwritten), delay=delay)

    def _write_unwritten_or_log_loss(self) -> None:
        """At shutdown: a last attempt. What cannot be written stays ``running`` in
        the database and the next start marks it ``interrupted``."""
        try:
            self._write_unwritten()
        except sqlite3.Error as e:
            log.warn("backup job {job}: stopping with {n} run end(s) not written ({error}); "
                     "the next start records them as interrupted", job=self.job.name,
                     n=len(self._unwritten), error=e)

    def _after_run(self) -> None:
        completed_at, self._completed_at = self._completed_at, None
        if completed_at is not None and self.last_result is not None:
            self._on_success(self.job.name, completed_at, self.last_result)
        stopping, self._stopping = self._stopping, None
        if stopping is not None:
            stopping.callback(None)
        else:
            self._on_change()

