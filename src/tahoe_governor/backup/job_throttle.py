"""A backup job's source-side gate: its byte bucket, suspension, abort, and the CPU-budget seam.

Every piece of work a job does passes :meth:`JobThrottle.admit` first: each
read that hands plaintext to Tahoe's encoder (charged in *wire* bytes, the
plaintext times the erasure expansion N/k), each piece of the convergent-key
hash pass, and each step of the walk (charged nothing). ``admit`` is the one
place where the job waits:

1. while the job is suspended (:meth:`JobThrottle.suspend`) — so once
   suspended, no read completes and no new byte reaches the encoder until
   :meth:`JobThrottle.resume`;
2. for the CPU gate, if one is installed (``cpu_gate``: a callable returning a
   Deferred that fires when the job may do more work; the CPU budget of a later
   issue plugs in here, the default lets everything through at once);
3. for the job's :class:`~tahoe_governor.throttle.TokenBucket`, whose rate is
   the job's cap in wire bytes per second. A request larger than the burst is
   taken in pieces as the bucket refills, and granted only when whole, so over
   any interval the wire bytes granted never exceed ``burst + rate * seconds``.
   Requests are served by the age of their lease, oldest first: under a low
   cap a job has several files in flight, each reading a whole segment (Tahoe's
   1 MiB, in 50 KiB reads) before it sends any of it, and sharing the bucket
   among them kept every file reading for minutes with nothing on the wire
   (measured: 32 kB/s node cap, nine 1 MB files, nothing sent for four
   minutes). Oldest first, one file sends its segment while the next one reads.
   A wait that ends late (a busy reactor) is owed what the bucket accrued
   meanwhile, as the shaper's releases are
   (:data:`~tahoe_governor.throttle.release_scheduler.LATE_CREDIT_SECONDS`):
   clipped at its burst, the job ran at two thirds of its cap.

Charging ``plaintext * N / k`` wire tokens against a bucket of ``cap`` bytes/s
is the same as a plaintext bucket of ``cap * k / N`` bytes/s, with one
difference that matters: the expansion is each upload's own (a job's files may
be encoded with different parameters), not a guess fixed at start.

Leases
------
Each activity that may wait holds a :class:`Lease`. :meth:`JobThrottle.abort_in_flight`
fails every *abortable* lease (one per in-flight upload) with
:class:`InFlightAborted`: a waiting ``admit`` fails at once, later ones fail
immediately, and Tahoe's encoder then aborts the upload, so the storage
servers drop the partial shares. :meth:`Lease.fail` fails one lease with any
error (the walker uses it to cancel a run).

Time comes only from the injected reactor (a ``ReactorClock``); tests drive it
with ``twisted.internet.task.Clock``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from tahoe_governor.throttle import UNLIMITED, TokenBucket
from tahoe_governor.throttle.backlog_gate import BacklogGate
from tahoe_governor.throttle.reactor_clock import ReactorClock
from tahoe_governor.throttle.release_scheduler import LATE_CREDIT_SECONDS, LATE_IS_A_JUMP_SECONDS

CpuGate = Callable[[], "Deferred[None]"]
"""Returns a Deferred that fires (with anything) when the job may do more work."""


class InFlightAborted(Exception):
    """The job's in-flight work was aborted (:meth:`JobThrottle.abort_in_flight`)."""


def _nothing() -> None:
    pass


class _Wait:
    """One pending wait of a lease: a Deferred and maybe the timer that ends it."""

    __slots__ = ("deferred", "timer")

    def __init__(self) -> None:
        self.deferred: Deferred[None] = Deferred()
        self.timer: IDelayedCall | None = None

    def end(self) -> Deferred[None] | None:
        """Stop the timer; the Deferred to fire, or None if already ended."""
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        return None if self.deferred.called else self.deferred


class Lease:
    """One activity's standing with a :class:`JobThrottle` (see the module doc).

    ``error`` is None while the lease is good; once failed, every wait on it
    fails with that error. Several waits may be pending on one lease at once.
    """

    __slots__ = ("abortable", "age", "error", "_waits")

    def __init__(self, abortable: bool, age: int = 0) -> None:
        self.abortable = abortable
        self.age = age
        """Its rank among the throttle's leases, oldest first (whose requests go first)."""
        self.error: BaseException | None = None
        self._waits: set[_Wait] = set()

    def fail(self, error: BaseException) -> None:
        """Fail this lease: pending waits errback with ``error`` now, later ones at once."""
        if self.error is None:
            self.error = error
        waits, self._waits = self._waits, set()
        for wait in waits:
            deferred = wait.end()
            if deferred is not None:
                deferred.errback(self.error)

    def check(self) -> None:
        """Raise the lease's error, if it has failed."""
        if self.error is not None:
            raise self.error


class JobThrottle:
    """The gate every byte and every work step of one backup job passes.

    ``wire_rate`` is the job's cap in bytes per second on the wire (share data
    sent to storage servers), ``UNLIMITED`` for none, 0 to hold everything;
    ``burst`` (bytes) defaults to the throttle core's default for the rate.
    ``cpu_gate`` is the seam for a CPU budget (see the module doc);
    ``backlog_gate`` holds each new upload while a capped peer's queue is long
    (:meth:`wait_to_start_upload`).
    """

    def __init__(
        self,
        reactor: ReactorClock,
        wire_rate: float = UNLIMITED,
        burst: int | None = None,
        cpu_gate: CpuGate | None = None,
        backlog_gate: BacklogGate | None = None,
    ) -> None:
        self._reactor = reactor
        self._bucket = TokenBucket(wire_rate, burst, now=reactor.seconds())
        self._cpu_gate = cpu_gate
        self._backlog_gate = backlog_gate
        self._suspended = False
        self._parked: dict[_Wait, Lease] = {}
        self._leases: set[Lease] = set()
        self._starting: dict[Lease, Callable[[], None]] = {}
        self._turns: list[tuple[int, int]] = []
        """The requests waiting for wire bytes, as (lease age, request number); only
        the smallest takes tokens."""
        self._counter = itertools.count()
        self.granted_wire_bytes = 0
        """Wire bytes granted since creation (each admit's charge, once whole)."""

    # -- reading -------------------------------------------------------------

    @property
    def wire_rate(self) -> float:
        """The cap, in wire bytes per second (``UNLIMITED`` or >= 0)."""
        return self._bucket.rate

    @property
    def burst(self) -> int:
        """The most wire bytes granted at one instant."""
        return self._bucket.burst

    @property
    def suspended(self) -> bool:
        """True between :meth:`suspend` and :meth:`resume`."""
        return self._suspended

    # -- controls ------------------------------------------------------------

    def set_wire_rate(self, wire_rate: float, burst: int | None = None) -> None:
        """Change the cap from now on; waiting requests re-plan at once."""
        self._bucket.set_rate(wire_rate, self._reactor.seconds(), burst)
        self._wake_all()

    def set_cpu_gate(self, cpu_gate: CpuGate | None) -> None:
        """Install (or remove, with None) the CPU gate consulted by each admit."""
        self._cpu_gate = cpu_gate

    def suspend(self) -> None:
        """Hold every admit from now on: no further work or byte passes until resume."""
        self._suspended = True

    def resume(self) -> None:
        """Let work pass again after :meth:`suspend`."""
        self._suspended = False
        self._wake_all()

    def lease(self, abortable: bool) -> Lease:
        """A new lease; abortable ones are failed by :meth:`abort_in_flight`."""
        lease = Lease(abortable, next(self._counter))
        self._leases.add(lease)
        return lease

    def release(self, lease: Lease) -> None:
        """Forget a lease whose activity has ended."""
        self._leases.discard(lease)
        self._upload_started(lease)

    def _upload_started(self, lease: Lease) -> None:
        started = self._starting.pop(lease, None)
        if started is not None:
            started()

    def abort_in_flight(self) -> int:
        """Fail every abortable lease with :class:`InFlightAborted`; return how many."""
        aborted = [lease for lease in self._leases if lease.abortable and lease.error is None]
        for lease in aborted:
            lease.fail(InFlightAborted("in-flight upload aborted"))
        return len(aborted)

    # -- the seam ------------------------------------------------------------

    async def wait_to_start_upload(
        self, lease: Lease, upload_bytes: int = 0
    ) -> Callable[[], None]:
        """Wait, before a new upload starts, until no capped peer's queue is over its
        bound (the backlog gate's), so the bytes in flight to a slow peer stay a few
        seconds of its cap and files finish one after another. Raises the lease's
        error if it fails meanwhile. ``upload_bytes`` (the file's size) is what the
        gate reserves room for. Returns what :meth:`upload_starting` takes: the
        reservation lasts until this upload has admitted wire bytes."""
        lease.check()
        gate = self._backlog_gate
        if gate is None:
            return _nothing
        while (started := gate.admit(upload_bytes)) is None:
            await self._wait_gate(lease, lambda: gate.wait(upload_bytes))
        return started

    def upload_starting(self, lease: Lease, started: Callable[[], None]) -> None:
        """The upload under ``lease`` was admitted by :meth:`wait_to_start_upload`
        (which gave ``started``): it counts as starting, holding the next, until it
        admits its first wire bytes or ``lease`` is released."""
        self._starting[lease] = started

    async def admit(self, lease: Lease, wire_bytes: int = 0) -> None:
        """Wait until ``wire_bytes`` may pass now (0: a work step that sends nothing).

        Returns at an instant when the job is not suspended, the CPU gate has
        let this request through, and the bucket has granted all of
        ``wire_bytes``. Raises the lease's error if it fails meanwhile.
        """
        lease.check()
        if wire_bytes > 0 and self._starting:
            self._upload_started(lease)
        if (not self._suspended and self._cpu_gate is None
                and (wire_bytes <= 0 or self._bucket.rate == UNLIMITED)):
            self.granted_wire_bytes += max(wire_bytes, 0)
            return
        gated = self._cpu_gate is None
        taken = 0
        turn = (lease.age, next(self._counter))
        if wire_bytes > 0:
            self._turns.append(turn)
        try:
            while True:
                if self._suspended:
                    await self._park(lease, math.inf)
                    continue
                if not gated:
                    gated = True
                    gate = self._cpu_gate
                    if gate is not None:
                        await self._wait_gate(lease, gate)
                        continue  # the job may have been suspended meanwhile
                if wire_bytes > 0 and min(self._turns) != turn:
                    if taken:  # an older upload came first: what was taken waits no longer
                        self._bucket.give_back(taken, self._reactor.seconds())
                        taken = 0
                    await self._park(lease, math.inf)  # woken when the turn before ends
                    continue
                now = self._reactor.seconds()
                taken += self._bucket.take(wire_bytes - taken, now)
                if taken >= wire_bytes:
                    break
                # Wake when half a burst is there.
                piece = min(wire_bytes - taken, max(1, self._bucket.burst // 2))
                delay = self._bucket.delay(piece, now)  # at least a millisecond
                await self._park(lease, delay)
                woke, due = self._reactor.seconds(), now + delay
                if due < woke <= due + LATE_IS_A_JUMP_SECONDS:  # late, not a clock jump
                    self._bucket.catch_up(max(due, woke - LATE_CREDIT_SECONDS), woke)
        finally:
            if wire_bytes > 0:
                first = min(self._turns) == turn
                self._turns.remove(turn)
                if first and self._turns:
                    self._wake_all()  # the next request's turn
        self.granted_wire_bytes += max(wire_bytes, 0)

    # -- internals -----------------------------------------------------------

    def _park(self, lease: Lease, delay: float) -> Deferred[None]:
        """Wait ``delay`` seconds (inf: until woken), or until woken or the lease fails."""
        lease.check()
        wait = _Wait()  # ended by its timer, a resume, a rate change or a failure
        lease._waits.add(wait)
        self._parked[wait] = lease
        if not math.isinf(delay):
            wait.timer = self._reactor.callLater(max(delay, 0.0), self._wake, wait)
        return wait.deferred

    def _wake(self, wait: _Wait) -> None:
        lease = self._parked.pop(wait, None)
        if lease is not None:
            lease._waits.discard(wait)
        deferred = wait.end()
        if deferred is not None:
            deferred.callback(None)

    def _wake_all(self) -> None:
        for wait in list(self._parked):
            self._wake(wait)

    async def _wait_gate(self, lease: Lease, gate: CpuGate) -> None:
        """Wait for the CPU gate; a lease failure interrupts the wait."""
        gate_result = gate()
        if gate_result.called:
            await gate_result
            return
        wait = _Wait()  # ended only by the gate or a failure
        lease._waits.add(wait)

        def passed(result: object) -> None:
            lease._waits.discard(wait)
            deferred = wait.end()
            if deferred is None:
                return  # the lease failed meanwhile; that error was delivered
            if isinstance(result, Failure):
                deferred.errback(result)
            else:
                deferred.callback(None)

        gate_result.addBoth(passed)
        await wait.deferred
