"""One run of a maintenance task: the next steps of its pass, one directory or one object each.

A pass lists every directory reachable from the target once (breadth first,
in the order found), then chooses the objects to verify (the task's
``verify`` share of them, those verified longest ago first), then checks each
object once, repairing what is not healthy when the task says so. The pass's
state lives in the state database (:class:`MaintenanceRecords`), written at
the end of each step: a run that stops (its window closed, the node stopped or
was killed) leaves the pass where its last step ended, and the next run goes
on from there without checking a finished object again. A run ends when the
pass ends; a pass ends when every object it reached is checked.

Every step first passes the task's gate (its :class:`StepGate`, the job's
throttle): held while the task is suspended or paused, so once suspended no
new step starts; held for the CPU budget; and charged, before a verify or a
repair, the wire bytes it will move (the object's size times its expansion
N/k), so the task's ``bandwidth`` holds on average over its steps. Per-peer
and node caps hold byte by byte in the shaper under the connections.

Cancelling (:meth:`MaintenanceWalker.cancel`, the node stopping) ends the
run at once with :class:`~twisted.internet.defer.CancelledError`; a step in
flight is abandoned and its result never recorded, so the next run redoes it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

import attrs
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from tahoe_governor.maintenance.grid import MaintenanceGrid, UnreadableDirectory
from tahoe_governor.maintenance.records import (
    Finding,
    GridEntry,
    MaintenanceRecords,
    PassState,
    PendingObject,
)
from tahoe_governor.status.maintenance_progress import MaintenancePass
from tahoe_governor.throttle.reactor_clock import ReactorClock

log = Logger()

CHECKS_IN_FLIGHT = 8
"""Objects checked at once: a check waits on the servers' round trips, so a few in
flight keep the pass going at the grid's pace (``tahoe deep-check`` keeps 10)."""


class StepLease(Protocol):
    def fail(self, error: BaseException) -> None: ...


class StepGate(Protocol):
    """What the walker uses of the job's throttle
    (:class:`~tahoe_governor.backup.job_throttle.JobThrottle`)."""

    @property
    def suspended(self) -> bool: ...

    def lease(self, abortable: bool) -> Any: ...

    def release(self, lease: Any) -> None: ...

    async def admit(self, lease: Any, wire_bytes: int = 0) -> None: ...


@attrs.frozen
class MaintenanceResult:
    """A completed pass: its last counts and the names of what it found unrecoverable."""

    progress: MaintenancePass

    @property
    def detail(self) -> str:
        """The run's note in the state database (public words: counts only)."""
        p = self.progress
        return (f"pass {p.pass_number}: {p.objects_checked} checked, {p.verified} verified, "
                f"{p.result('repaired')} repaired, {p.result('unhealthy')} unhealthy, "
                f"{p.result('unrecoverable')} unrecoverable")


def _detached(d: Deferred[Any]) -> Deferred[Any]:
    """A Deferred that fires as ``d`` does, and that can be cancelled without touching
    ``d`` (Tahoe's own Deferreds do not expect to be cancelled)."""
    out: Deferred[Any] = Deferred()

    def relay(result: Any) -> None:
        if out.called:
            return None  # abandoned by a cancel: its outcome is dropped
        if isinstance(result, Failure):
            out.errback(result)
        else:
            out.callback(result)
        return None

    d.addBoth(relay)
    return out


class MaintenanceWalker:
    """One run of task ``name``; see the module documentation.

    :param grid: where the pass's objects are listed, checked and repaired.
    :param records: the task's rows in the state database.
    :param gate: the task's throttle (every step passes it first).
    :param verify: the share (0 to 1) of each pass's objects to verify.
    :param checks_in_flight: how many objects are checked at once (each step still
        passes the gate first, so a closing window holds all but those in flight).
    """

    def __init__(
        self,
        *,
        reactor: ReactorClock,
        grid: MaintenanceGrid,
        records: MaintenanceRecords,
        gate: StepGate,
        verify: float = 0.0,
        repair: bool = True,
        add_lease: bool = True,
        expected_objects: int | None = None,
        checks_in_flight: int = CHECKS_IN_FLIGHT,
    ) -> None:
        self._reactor = reactor
        self._grid = grid
        self._records = records
        self._gate = gate
        self._verify = verify
        self._repair = repair
        self._add_lease = add_lease
        self._expected = expected_objects
        self._checks_in_flight = checks_in_flight
        self._started = reactor.seconds()
        self._phase = "preparing"
        self._pass: PassState | None = None
        self._listed = self._pending_dirs = self._found = self._checked = 0
        self._verified = self._bytes_verified = self._this_run = 0
        self._results: Counter[str] = Counter()
        self._unrecoverable: list[str] = []
        self._run: Deferred[MaintenanceResult] | None = None
        self._cancelled = False
        self.checks = 0
        """Checks this run asked the grid for (a repair counts as one more)."""

    # -- the walker interface ------------------------------------------------------

    def run(self) -> Deferred[MaintenanceResult]:
        """Go on with the pass until it ends; fires with the completed pass."""
        self._run = ensureDeferred(self._walk())
        return self._run

    def cancel(self) -> None:
        """End the run now (see the module doc)."""
        self._cancelled = True
        if self._run is not None and not self._run.called:
            self._phase = "cancelled"
            self._run.cancel()

    def _check_cancelled(self) -> None:
        """Raise once cancelled: what a step learnt after the cancel is never recorded."""
        if self._cancelled:
            raise CancelledError()

    def progress(self) -> MaintenancePass:
        elapsed = self._reactor.seconds() - self._started
        expected = max(self._expected or 0, self._found) if (
            self._expected is not None or self._pending_dirs == 0) and self._pass else None
        eta = None
        if expected is not None and self._this_run and elapsed > 0:
            eta = max(0, expected - self._checked) * elapsed / self._this_run
        return MaintenancePass(
            phase=self._phase, suspended=self._gate.suspended, elapsed_seconds=elapsed,
            pass_number=self._pass.number if self._pass else 0,
            directories_listed=self._listed, directories_pending=self._pending_dirs,
            objects_found=self._found, objects_checked=self._checked,
            checked_this_run=self._this_run, verified=self._verified,
            results=dict(self._results), bytes_verified=self._bytes_verified,
            expected_objects=expected, eta_seconds=eta,
            private_unrecoverable=tuple(self._unrecoverable),
        )

    # -- the run ---------------------------------------------------------------------

    async def _walk(self) -> MaintenanceResult:
        lease = self._gate.lease(False)
        try:
            await self._gate.admit(lease, 0)
            root = await _detached(ensureDeferred(self._grid.open_target()))
            state = self._records.current_pass()
            if state is None or state.ended is not None:
                state = self._records.start_pass(root, self._reactor.seconds())
            self._load(state)
            while await self._step(lease):
                pass
            self._records.end_pass(self._pass.number, self._reactor.seconds())  # type: ignore[union-attr]
            self._phase = "finished"
            return MaintenanceResult(self.progress())
        except CancelledError:
            self._phase = "cancelled"
            raise
        except BaseException:
            self._phase = "failed"
            raise
        finally:
            self._gate.release(lease)

    def _load(self, state: PassState) -> None:
        """Take the pass's counts from the database (once a run; then kept in memory)."""
        self._pass = state
        counts = self._records.pass_counts(state.number)
        self._listed, self._pending_dirs = counts.directories_listed, counts.directories_pending
        self._found, self._checked = counts.objects_found, counts.objects_checked
        self._verified, self._bytes_verified = counts.verified, counts.bytes_verified
        self._results = Counter(counts.results)
        self._unrecoverable = self._records.paths_with_result(state.number, "unrecoverable")

    async def _step(self, lease: Any) -> bool:
        """One step of the pass; ``False`` once there is none left."""
        await self._gate.admit(lease, 0)
        self._check_cancelled()
        state = self._pass
        assert state is not None
        directory = self._records.next_directory()
        if directory is not None:
            self._phase = "listing"
            try:
                children = await _detached(ensureDeferred(
                    self._grid.list_directory(directory.cap, directory.path)))
            except UnreadableDirectory as e:
                # Its own check reports it; what is below it cannot be reached this pass.
                log.warn("maintenance: a directory cannot be read ({error}); its subtree "
                         "is skipped this pass", error=e)
                children = []
            self._check_cancelled()
            self._found, self._pending_dirs = self._records.directory_listed(
                directory.id, state.number, children)
            self._listed += 1
            return True
        if not state.verify_chosen:
            chosen = self._records.choose_verify(state.number, self._verify)
            self._pass = attrs.evolve(state, verify_chosen=True)
            log.info("maintenance: pass {n} found {found} objects; {chosen} to verify",
                     n=state.number, found=self._found, chosen=chosen)
            return True
        self._phase = "checking"
        await self._check_objects(lease, state.number)
        return False

    async def _check_objects(self, lease: Any, number: int) -> None:
        """Check every object of the pass not checked yet, ``checks_in_flight`` at once
        (each started only once the gate admits it), each recorded as it ends; the first
        check that fails fails the run."""
        in_flight: set[Deferred[None]] = set()
        failures: list[Failure] = []
        wake: list[Deferred[None]] = []

        def ended(result: Any, d: Deferred[None]) -> None:
            in_flight.discard(d)
            if isinstance(result, Failure):
                failures.append(result)
            # Take the waiters first: firing one runs the loop on, which may wait again.
            waiters, wake[:] = list(wake), []
            for waiting in waiters:
                if not waiting.called:
                    waiting.callback(None)

        cursor = 0  # the last object handed out, by id
        while True:
            room = self._checks_in_flight - len(in_flight)
            for pending in self._records.pending_objects(number, cursor, room) if room else ():
                if failures:
                    break
                cursor = pending.id
                await self._gate.admit(lease, 0)
                self._check_cancelled()
                d = ensureDeferred(self._check_and_record(lease, number, pending))
                in_flight.add(d)
                d.addBoth(ended, d)
            if failures:
                failures[0].raiseException()
            if not in_flight:
                return
            waiting: Deferred[None] = Deferred()  # fired by the next check to end
            wake.append(waiting)
            await waiting

    async def _check_and_record(self, lease: Any, number: int, pending: PendingObject) -> None:
        finding = await self._check(lease, pending)
        self._check_cancelled()
        self._records.record_check(pending.id, number, finding, self._reactor.seconds())
        self._checked += 1
        self._this_run += 1
        self._results[finding.result] += 1
        if finding.verified:
            self._verified += 1
            self._bytes_verified += pending.size or 0
        if finding.result == "unrecoverable":
            self._unrecoverable.append(pending.path)

    async def _check(self, lease: Any, pending: PendingObject) -> Finding:
        entry = GridEntry(key=pending.key, cap=pending.cap, path=pending.path,
                          kind=pending.kind, size=pending.size, expansion=pending.expansion)
        wire = int((pending.size or 0) * pending.expansion)
        if pending.verify:
            await self._gate.admit(lease, wire)
        self.checks += 1
        finding: Finding = await _detached(ensureDeferred(self._grid.check(
            entry, verify=pending.verify, add_lease=self._add_lease)))
        if finding.result != "unhealthy" or not self._repair:
            return finding
        await self._gate.admit(lease, wire)
        self.checks += 1
        repaired: Finding = await _detached(ensureDeferred(self._grid.repair(
            entry, verify=pending.verify, add_lease=self._add_lease)))
        return repaired
