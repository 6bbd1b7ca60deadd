"""The job state machine: transitions one by one, and properties over any input sequence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tahoe_governor.backup.job_lifecycle import JobLifecycle


class Recording:
    """Records every call the lifecycle makes to its control and recorder."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start_run(self) -> None:
        self.calls.append("start")

    def suspend_run(self) -> None:
        self.calls.append("suspend")

    def resume_run(self) -> None:
        self.calls.append("resume")

    def record_success(self) -> None:
        self.calls.append("success")

    def record_failure(self, reason: str) -> None:
        self.calls.append(f"failure:{reason}")


def drive(inputs: list[str]) -> tuple[JobLifecycle, Recording]:
    rec = Recording()
    job = JobLifecycle(rec, rec)
    for name in inputs:
        if name == "run_failed":
            job.run_failed("grid unavailable")
        else:
            getattr(job, name)()
    return job, rec


@pytest.mark.parametrize(
    ("inputs", "state", "calls", "why"),
    [
        ([], "done", [], "a new job starts done"),
        (["became_due"], "waiting", [], "due outside its window: waits"),
        (["became_due", "window_open"], "running", ["start"], "the window opens: it runs"),
        (["window_open"], "done", [], "an open window alone does not start a job that is not due"),
        (["became_due", "window_open", "window_closed"], "suspended", ["start", "suspend"],
         "the window closes: the run is held"),
        (["became_due", "window_open", "window_closed", "window_open"], "running",
         ["start", "suspend", "resume"], "the next window resumes the same run"),
        (["became_due", "window_open", "run_completed"], "done", ["start", "success"],
         "a completed run is recorded"),
        (["became_due", "window_open", "run_failed"], "failed",
         ["start", "failure:grid unavailable"], "a failed run is recorded with its reason"),
        (["became_due", "window_open", "run_failed", "retry_due", "window_open"], "running",
         ["start", "failure:grid unavailable", "start"], "a retry starts a new run in the window"),
        (["became_due", "window_open", "pause"], "paused", ["start", "suspend"],
         "pause holds the run"),
        (["became_due", "window_open", "pause", "window_open"], "paused", ["start", "suspend"],
         "a paused job stays held inside its window"),
        (["became_due", "window_open", "pause", "resume", "window_open"], "running",
         ["start", "suspend", "resume"], "resume inside the window moves bytes again"),
        (["became_due", "window_open", "pause", "resume", "window_closed"], "suspended",
         ["start", "suspend"], "resume outside the window stays suspended"),
        (["pause", "became_due", "window_open"], "paused", [], "a paused idle job never starts"),
        (["pause", "resume", "became_due", "window_open"], "running", ["start"],
         "after resume the scheduler's inputs start it"),
        (["run_now", "window_open"], "running", ["start"], "run now makes the job due"),
        (["run_now", "window_closed"], "waiting", [], "run now still waits for its window"),
        (["became_due", "window_open", "pause", "run_completed"], "paused", ["start", "suspend",
         "success"], "a run that finishes while paused is recorded"),
    ],
)
def test_transitions(inputs, state, calls, why):
    """Each row: inputs in order, the state reached, the calls made, and why."""
    job, rec = drive(inputs)
    assert job.state == state, why
    assert rec.calls == calls, why


INPUTS = ["became_due", "window_open", "window_closed", "retry_due", "run_completed",
          "run_failed", "pause", "resume", "run_now"]
RUN_INPUTS = {"run_completed", "run_failed"}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(INPUTS), max_size=40))
def test_any_input_sequence_keeps_runs_consistent(inputs):
    """For any sequence the table is complete and run calls are balanced.

    Run inputs (completed/failed) are only sent while a run exists, as the
    runner does; a run is started only when none exists, suspended only
    when moving, resumed only when held.
    """
    rec = Recording()
    job = JobLifecycle(rec, rec)
    moving = held = False
    for name in inputs:
        if name in RUN_INPUTS and not job.run_in_progress:
            continue
        before = len(rec.calls)
        if name == "run_failed":
            job.run_failed("x")
        else:
            getattr(job, name)()
        for call in rec.calls[before:]:
            if call == "start":
                assert not moving and not held
                moving = True
            elif call == "suspend":
                assert moving
                moving, held = False, True
            elif call == "resume":
                assert held
                moving, held = True, False
            else:  # success or failure ends the run
                moving = held = False
        assert job.run_in_progress == (moving or held)
        assert (job.state == "running") == moving
        assert job.state in {"done", "waiting", "running", "suspended", "paused", "failed"}
