"""The lifecycle of one backup job, as one explicit state machine (Automat).

The machine decides *what* happens to a job; it does nothing itself. Its
outputs call a :class:`RunControl` (start, suspend, resume a run) and a
:class:`RunRecorder` (remember outcomes). The scheduler above it turns the
clock, the job's frequency and its allowed times into *level* inputs: it sends
``became_due`` while the job is due, and ``window_open`` or ``window_closed``
at every evaluation, so a machine may receive the same input many times; where
an input changes nothing the transition is a self-loop with no output.

States (the user-visible name in brackets, as in metrics and status):

- ``done`` [done]: no run in progress; the last run completed and the job is
  not due again until its frequency has passed. A new machine starts here;
  a never-run job becomes due at once.
- ``waiting`` [waiting]: due, no run in progress, outside its allowed times.
- ``running`` [running]: a run is in progress and may move bytes.
- ``suspended`` [suspended]: a run is in progress but held because its window
  closed, or a quota it needs is used up (the scheduler then sends
  ``window_closed``); it resumes at the next window, or when the period ends.
- ``paused_idle`` / ``paused_run`` [paused]: held by hand, without or with a
  run in progress; nothing moves until ``resume``.
- ``failed`` [failed]: the last attempt failed; ``retry_due`` tries again.

See ``docs/job-lifecycle.md`` for the diagram.
"""

from __future__ import annotations

from typing import Protocol

from automat import MethodicalMachine


class RunControl(Protocol):
    """What the lifecycle asks of the thing that performs runs."""

    def start_run(self) -> None:
        """Begin a run (the walker); its end is reported back as an input."""

    def suspend_run(self) -> None:
        """Hold the run in progress: no new bytes within one second."""

    def resume_run(self) -> None:
        """Let the held run move bytes again."""


class RunRecorder(Protocol):
    """What the lifecycle asks of whoever remembers outcomes."""

    def record_success(self) -> None:
        """A run completed: remember it (the state database)."""

    def record_failure(self, reason: str) -> None:
        """A run failed with ``reason``: remember it and plan a retry."""


class JobLifecycle:
    """One job's state machine. See the module documentation for the states.

    ``control`` performs runs, ``recorder`` remembers outcomes. Inputs are the
    methods without a leading underscore; :attr:`state` names the current state.
    """

    _machine = MethodicalMachine()

    def __init__(self, control: RunControl, recorder: RunRecorder) -> None:
        self._control = control
        self._recorder = recorder
        self.last_failure: str | None = None

    @_machine.serializer()
    def _serialized_state(self, state: str) -> str:
        return state

    @property
    def state(self) -> str:
        """The user-visible state: done, waiting, running, suspended, paused or failed."""
        state = self._serialized_state()
        return "paused" if state == "paused_run" else state

    @property
    def run_in_progress(self) -> bool:
        """True while a run exists (running, suspended, or paused mid-run)."""
        return self._serialized_state() in ("running", "suspended", "paused_run")

    # -- states ---------------------------------------------------------------

    @_machine.state(initial=True, serialized="done")
    def done(self) -> None:
        "No run in progress; the last run completed (or none ever ran)."

    @_machine.state(serialized="waiting")
    def waiting(self) -> None:
        "Due, but outside the allowed times: waiting for the next window."

    @_machine.state(serialized="running")
    def running(self) -> None:
        "A run is in progress and may move bytes."

    @_machine.state(serialized="suspended")
    def suspended(self) -> None:
        "A run is in progress but its window closed: held until the next one."

    @_machine.state(serialized="paused")
    def paused_idle(self) -> None:
        "Paused by hand with no run in progress."

    @_machine.state(serialized="paused_run")
    def paused_run(self) -> None:
        "Paused by hand with a run in progress, held."

    @_machine.state(serialized="failed")
    def failed(self) -> None:
        "The last attempt failed; waiting for the retry time."

    # -- inputs from the scheduler (clock, frequency, allowed times) ----------

    @_machine.input()
    def became_due(self) -> None:
        "The job's frequency has passed since its last completed run."

    @_machine.input()
    def window_open(self) -> None:
        "Now is inside the job's allowed times (or the run is forced)."

    @_machine.input()
    def window_closed(self) -> None:
        "Now is outside the job's allowed times, or a quota the job needs is used up."

    @_machine.input()
    def retry_due(self) -> None:
        "The retry time after a failure has come."

    # -- inputs from the run -------------------------------------------------

    @_machine.input()
    def run_completed(self) -> None:
        "The run finished: every file is in the grid and Latest points at it."

    @_machine.input()
    def run_failed(self, reason: str) -> None:
        "The run stopped on an error (grid unavailable, target missing, ...)."

    # -- inputs from the user --------------------------------------------------

    @_machine.input()
    def pause(self) -> None:
        "Hold the job, in any window, until resume."

    @_machine.input()
    def resume(self) -> None:
        "Undo pause."

    @_machine.input()
    def run_now(self) -> None:
        "Make the job due regardless of its frequency (still inside its windows)."

    # -- outputs, named by their target ---------------------------------------

    @_machine.output()
    def _control_start(self) -> None:
        self._control.start_run()

    @_machine.output()
    def _control_suspend(self) -> None:
        self._control.suspend_run()

    @_machine.output()
    def _control_resume(self) -> None:
        self._control.resume_run()

    @_machine.output()
    def _record_success(self) -> None:
        self.last_failure = None
        self._recorder.record_success()

    @_machine.output()
    def _record_failure(self, reason: str) -> None:
        self.last_failure = reason
        self._recorder.record_failure(reason)

    # -- transitions: state.upon(input, enter=state, outputs=[...]) -----------

    done.upon(became_due, enter=waiting, outputs=[])
    done.upon(run_now, enter=waiting, outputs=[])
    done.upon(window_open, enter=done, outputs=[])
    done.upon(window_closed, enter=done, outputs=[])
    done.upon(pause, enter=paused_idle, outputs=[])
    done.upon(resume, enter=done, outputs=[])
    done.upon(retry_due, enter=done, outputs=[])

    waiting.upon(window_open, enter=running, outputs=[_control_start])
    waiting.upon(window_closed, enter=waiting, outputs=[])
    waiting.upon(became_due, enter=waiting, outputs=[])
    waiting.upon(run_now, enter=waiting, outputs=[])
    waiting.upon(pause, enter=paused_idle, outputs=[])
    waiting.upon(resume, enter=waiting, outputs=[])
    waiting.upon(retry_due, enter=waiting, outputs=[])

    running.upon(window_closed, enter=suspended, outputs=[_control_suspend])
    running.upon(window_open, enter=running, outputs=[])
    running.upon(became_due, enter=running, outputs=[])
    running.upon(run_now, enter=running, outputs=[])
    running.upon(resume, enter=running, outputs=[])
    running.upon(retry_due, enter=running, outputs=[])
    running.upon(pause, enter=paused_run, outputs=[_control_suspend])
    running.upon(run_completed, enter=done, outputs=[_record_success])
    running.upon(run_failed, enter=failed, outputs=[_record_failure])

    suspended.upon(window_open, enter=running, outputs=[_control_resume])
    suspended.upon(window_closed, enter=suspended, outputs=[])
    suspended.upon(became_due, enter=suspended, outputs=[])
    suspended.upon(run_now, enter=suspended, outputs=[])
    suspended.upon(resume, enter=suspended, outputs=[])
    suspended.upon(retry_due, enter=suspended, outputs=[])
    suspended.upon(pause, enter=paused_run, outputs=[])
    suspended.upon(run_completed, enter=done, outputs=[_record_success])
    suspended.upon(run_failed, enter=failed, outputs=[_record_failure])

    # Resuming a held run goes through "suspended": the next window_open
    # (immediately, when inside the window) lets it move bytes again.
    paused_run.upon(resume, enter=suspended, outputs=[])
    paused_run.upon(pause, enter=paused_run, outputs=[])
    paused_run.upon(window_open, enter=paused_run, outputs=[])
    paused_run.upon(window_closed, enter=paused_run, outputs=[])
    paused_run.upon(became_due, enter=paused_run, outputs=[])
    paused_run.upon(run_now, enter=paused_run, outputs=[])
    paused_run.upon(retry_due, enter=paused_run, outputs=[])
    paused_run.upon(run_completed, enter=paused_idle, outputs=[_record_success])
    paused_run.upon(run_failed, enter=paused_idle, outputs=[_record_failure])

    # Resuming an idle pause returns to "done"; the scheduler's next
    # became_due (at once, when the job is due) moves it on.
    paused_idle.upon(resume, enter=done, outputs=[])
    paused_idle.upon(pause, enter=paused_idle, outputs=[])
    paused_idle.upon(window_open, enter=paused_idle, outputs=[])
    paused_idle.upon(window_closed, enter=paused_idle, outputs=[])
    paused_idle.upon(became_due, enter=paused_idle, outputs=[])
    paused_idle.upon(run_now, enter=paused_idle, outputs=[])
    paused_idle.upon(retry_due, enter=paused_idle, outputs=[])

    failed.upon(retry_due, enter=waiting, outputs=[])
    failed.upon(run_now, enter=waiting, outputs=[])
    failed.upon(pause, enter=paused_idle, outputs=[])
    failed.upon(resume, enter=failed, outputs=[])
    failed.upon(window_open, enter=failed, outputs=[])
    failed.upon(window_closed, enter=failed, outputs=[])
    failed.upon(became_due, enter=failed, outputs=[])
