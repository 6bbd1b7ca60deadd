"""JobThrottle: the job's bucket, suspension, abort and CPU-gate seam, on a task.Clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from tahoe_governor.backup import InFlightAborted, JobThrottle
from tahoe_governor.throttle import UNLIMITED
from tahoe_governor.throttle.backlog_gate import BacklogGate


def admit(throttle: JobThrottle, lease, n: int = 0) -> Deferred:
    return Deferred.fromCoroutine(throttle.admit(lease, n))


def test_unlimited_passes_at_once():
    """With no cap and no gate, any request passes at the instant it is made."""
    clock = Clock()
    throttle = JobThrottle(clock, UNLIMITED)
    d = admit(throttle, throttle.lease(abortable=True), 10**9)
    assert d.called
    assert throttle.granted_wire_bytes == 10**9


def test_large_request_waits_for_the_bucket():
    """A request bigger than the burst is granted whole only when rate*t + burst covers it."""
    clock = Clock()
    throttle = JobThrottle(clock, wire_rate=10_000, burst=4096)
    d = admit(throttle, throttle.lease(abortable=True), 24_096)
    assert not d.called
    clock.pump([0.01] * 190)  # 4096 + 19_000 < 24_096
    assert not d.called
    clock.pump([0.01] * 11)  # a little slack for whole-token rounding
    assert d.called
    assert throttle.granted_wire_bytes == 24_096


def test_suspension_holds_requests_that_have_tokens():
    """Suspended, nothing passes even with a full bucket; resume lets it through."""
    clock = Clock()
    throttle = JobThrottle(clock, wire_rate=10_000, burst=4096)
    throttle.suspend()
    lease = throttle.lease(abortable=True)
    d = admit(throttle, lease, 100)
    step = admit(throttle, throttle.lease(abortable=False))
    clock.advance(3600)
    assert not d.called and not step.called
    assert throttle.granted_wire_bytes == 0
    throttle.resume()
    assert d.called and step.called
    assert throttle.granted_wire_bytes == 100


def test_suspension_during_a_partial_grant():
    """A request half-way through its tokens is held when suspended and finishes after resume."""
    clock = Clock()
    throttle = JobThrottle(clock, wire_rate=1000, burst=1000)
    d = admit(throttle, throttle.lease(abortable=True), 3000)
    clock.advance(1.0)
    throttle.suspend()
    clock.advance(10.0)
    assert not d.called
    throttle.resume()
    clock.advance(1.0)
    assert d.called


def test_abort_in_flight_fails_abortable_leases_only():
    """abort_in_flight fails uploads' waits with InFlightAborted; walk steps keep waiting."""
    clock = Clock()
    throttle = JobThrottle(clock, wire_rate=10, burst=4096)
    throttle.suspend()
    upload = throttle.lease(abortable=True)
    walk = throttle.lease(abortable=False)
    upload_d, walk_d = admit(throttle, upload, 5000), admit(throttle, walk)
    failures = []
    upload_d.addErrback(lambda f: failures.append(f.check(InFlightAborted)))
    assert throttle.abort_in_flight() == 1
    assert failures == [InFlightAborted]
    assert not walk_d.called
    later = []
    admit(throttle, upload, 1).addErrback(lambda f: later.append(f.check(InFlightAborted)))
    assert later == [InFlightAborted], "an aborted lease fails every later admit at once"
    throttle.resume()
    assert walk_d.called


def test_lease_fail_interrupts_every_wait():
    """Several waits on one lease all fail with the lease's error."""
    clock = Clock()
    throttle = JobThrottle(clock)
    throttle.suspend()
    lease = throttle.lease(abortable=False)
    waits = [admit(throttle, lease) for _ in range(3)]
    errors = []
    for d in waits:
        d.addErrback(lambda f: errors.append(f.value))
    boom = RuntimeError("stop")
    lease.fail(boom)
    assert errors == [boom, boom, boom]


def test_cpu_gate_is_consulted_before_every_request():
    """The CPU gate seam: each admit waits for the gate's Deferred, then for tokens."""
    clock = Clock()
    gates: list[Deferred] = []

    def gate() -> Deferred:
        gates.append(Deferred())
        return gates[-1]

    throttle = JobThrottle(clock, UNLIMITED, cpu_gate=gate)
    d = admit(throttle, throttle.lease(abortable=True), 10)
    assert len(gates) == 1 and not d.called
    gates[0].callback(None)
    assert d.called
    d2 = admit(throttle, throttle.lease(abortable=False))
    assert len(gates) == 2 and not d2.called
    throttle.set_cpu_gate(None)
    gates[1].callback(None)
    assert d2.called
    assert admit(throttle, throttle.lease(abortable=False)).called, "no gate: immediate"


def test_gate_wait_interrupted_by_abort():
    """An upload waiting at the CPU gate is aborted at once; the late gate firing is harmless."""
    clock = Clock()
    pending: Deferred = Deferred()
    throttle = JobThrottle(clock, UNLIMITED, cpu_gate=lambda: pending)
    d = admit(throttle, throttle.lease(abortable=True), 10)
    errors = []
    d.addErrback(lambda f: errors.append(f.check(InFlightAborted)))
    throttle.abort_in_flight()
    assert errors == [InFlightAborted]
    pending.callback(None)  # must not raise AlreadyCalledError


def test_zero_rate_holds_until_the_rate_rises():
    """Rate 0 holds everything (no timer); raising the rate re-plans waiting requests at once."""
    clock = Clock()
    throttle = JobThrottle(clock, wire_rate=0, burst=4096)
    d = admit(throttle, throttle.lease(abortable=True), 100)
    clock.advance(1e6)
    assert not d.called
    assert clock.getDelayedCalls() == []
    throttle.set_wire_rate(UNLIMITED)
    assert d.called


@given(
    rate=st.integers(min_value=1_000, max_value=200_000),
    burst=st.integers(min_value=4096, max_value=65_536),
    steps=st.lists(
        st.tuples(st.integers(min_value=1, max_value=300_000),
                  st.floats(min_value=0.0, max_value=2.0)),
        min_size=1, max_size=30),
)
def test_granted_never_exceeds_burst_plus_rate_times_time(rate, burst, steps):
    """Over any run of requests and clock steps, granted wire bytes <= burst + rate * elapsed."""
    clock = Clock()
    throttle = JobThrottle(clock, wire_rate=rate, burst=burst)
    pending = []
    for size, advance in steps:
        pending.append(admit(throttle, throttle.lease(abortable=True), size))
        clock.advance(advance)
        assert throttle.granted_wire_bytes <= burst + rate * clock.seconds() + 1e-6
    # and everything is eventually granted
    while not all(d.called for d in pending):
        clock.advance(1.0)
        assert throttle.granted_wire_bytes <= burst + rate * clock.seconds() + 1e-6
    assert throttle.granted_wire_bytes == sum(size for size, _ in steps)


class FakeQueues:
    """A shaper's capped upload queues, as the backlog gate reads them."""

    def __init__(self, queued: int, limit: float) -> None:
        self.queued, self.limit = queued, limit

    def outbound_backlog(self) -> list[tuple[int, float | None]]:
        return [(0, None), (self.queued, self.limit)]


def test_a_new_upload_waits_while_a_capped_peers_queue_is_long():
    """With 500 kB queued to a 100 kB/s peer (bound 2 s: 200 kB) a new upload waits;
    it starts once the queue is down to the bound."""
    clock = Clock()
    queues = FakeQueues(500_000, 100_000)
    throttle = JobThrottle(clock, backlog_gate=BacklogGate(queues, clock, seconds=2.0))
    d = Deferred.fromCoroutine(throttle.wait_to_start_upload(throttle.lease(abortable=True)))
    clock.advance(1.0)
    assert not d.called
    queues.queued = 150_000
    clock.advance(0.1)
    assert d.called


def test_a_held_upload_start_fails_with_its_lease():
    """Aborting in-flight work interrupts a start held by the backlog gate."""
    clock = Clock()
    throttle = JobThrottle(clock, backlog_gate=BacklogGate(FakeQueues(10**7, 1000), clock))
    d = Deferred.fromCoroutine(throttle.wait_to_start_upload(throttle.lease(abortable=True)))
    assert throttle.abort_in_flight() == 1
    failures = []
    d.addErrback(failures.append)
    assert failures[0].check(InFlightAborted)


def test_without_a_backlog_gate_uploads_start_at_once():
    """No gate (a throttle of its own, as in the walker's unit tests): nothing waits."""
    clock = Clock()
    throttle = JobThrottle(clock)
    d = Deferred.fromCoroutine(throttle.wait_to_start_upload(throttle.lease(abortable=True)))
    assert d.called


def test_the_next_upload_starts_once_the_one_before_hands_bytes_to_the_encoder():
    """Behind a capped queue with room for one reservation (uploads of 200 kB reserve
    100 kB: the bound), the second waits until the first admits wire bytes (its
    servers are chosen, its bytes queue), or until its lease ends."""
    clock = Clock()
    queues = FakeQueues(0, 100_000)
    throttle = JobThrottle(clock, backlog_gate=BacklogGate(queues, clock))

    def start():
        lease = throttle.lease(abortable=True)
        waiting = Deferred.fromCoroutine(
            throttle.wait_to_start_upload(throttle.lease(False), 200_000))
        waiting.addCallback(lambda started: throttle.upload_starting(lease, started))
        return waiting, lease

    first, first_lease = start()
    second, second_lease = start()
    assert first.called and not second.called
    Deferred.fromCoroutine(throttle.admit(first_lease, 0))  # hashing: no bytes out yet
    clock.advance(0.1)
    assert not second.called
    Deferred.fromCoroutine(throttle.admit(first_lease, 16_384))
    clock.advance(0.1)
    assert second.called
    third, _ = start()
    clock.advance(0.1)
    assert not third.called
    throttle.release(second_lease)  # the second upload ended (failed) before any byte
    clock.advance(0.1)
    assert third.called



def test_the_oldest_upload_reads_first_so_its_segment_is_sent_while_the_next_reads():
    """Two uploads read a 1 MiB segment each in Tahoe's 50 KiB reads, asking in turn:
    the older one has its whole segment after its own bytes' time, not after both
    (shared, neither would send anything until the end); a step that charges
    nothing never waits for a turn."""
    clock = Clock()
    throttle = JobThrottle(clock, wire_rate=32_000)
    chunk, chunks = 170_000, 20  # 50 KiB of plaintext, times 10/3
    finished: dict[str, float] = {}

    async def read_segment(name: str, lease) -> None:
        for _ in range(chunks):
            await throttle.admit(lease, chunk)
        finished[name] = clock.seconds()

    older, younger = throttle.lease(abortable=True), throttle.lease(abortable=True)
    Deferred.fromCoroutine(read_segment("older", older))
    Deferred.fromCoroutine(read_segment("younger", younger))
    assert admit(throttle, throttle.lease(abortable=False)).called
    clock.pump([0.01] * 25_000)
    own_time = chunk * chunks / 32_000
    assert finished["older"] <= own_time * 1.05
    assert finished["younger"] <= 2 * own_time * 1.05


def test_a_late_wake_up_is_owed_what_the_bucket_accrued():
    """A reactor that wakes the waiting request 0.2 s late each time (busy) still grants
    the cap's rate: the tokens past the 128 ms burst are not lost."""
    clock = Clock()
    throttle = JobThrottle(clock, wire_rate=32_000)
    d = admit(throttle, throttle.lease(abortable=True), 320_000)
    clock.pump([0.2] * 51)  # 10.2 s: 320_000 bytes at 32 kB/s take 10 s
    assert d.called


def test_a_failed_request_gives_its_turn_to_the_next():
    """The first in turn fails (its upload aborted): the next one is served at once."""
    clock = Clock()
    throttle = JobThrottle(clock, wire_rate=10_000, burst=1000)
    lease = throttle.lease(abortable=True)
    first = admit(throttle, lease, 50_000)
    second = admit(throttle, throttle.lease(abortable=False), 5_000)
    failures = []
    first.addErrback(failures.append)
    clock.pump([0.01] * 100)
    assert not second.called
    throttle.abort_in_flight()
    assert len(failures) == 1
    clock.pump([0.01] * 60)
    assert second.called


def test_a_bucket_short_by_float_dust_waits_a_real_instant():
    """At an epoch-sized time 0.01 s is 99.99990 tokens at 10 kB/s: a request for 100
    takes 99 and lacks 0.0001 token, nanoseconds that the clock cannot tell from now.
    The wait must end at a later instant, or it fires at once, finds the same tokens
    and waits again for ever."""
    clock = Clock()
    clock.advance(1_795_651_200.0)
    throttle = JobThrottle(clock, wire_rate=10_000, burst=1000)
    lease = throttle.lease(abortable=True)
    assert admit(throttle, lease, 1000).called  # the bucket is empty now
    clock.advance(0.01)
    d = admit(throttle, lease, 100)
    timers = clock.getDelayedCalls()
    assert timers and all(t.getTime() > clock.seconds() for t in timers)
    clock.advance(0.01)
    assert d.called


def test_a_request_overtaken_by_an_older_upload_keeps_no_tokens():
    """A younger upload has taken part of its request when an older one asks: it gives
    those tokens back, so the job never passes more than burst + rate * t in any t
    (kept, they were granted at once on top of fresh ones: 10 kB in 0.24 s at 10 kB/s)."""
    clock = Clock()
    throttle = JobThrottle(clock, wire_rate=10_000, burst=1000)
    older, younger = throttle.lease(abortable=True), throttle.lease(abortable=True)
    grants: list[tuple[float, int]] = []
    admit(throttle, younger, 5000).addCallback(lambda _: grants.append((clock.seconds(), 5000)))
    clock.pump([0.01] * 20)  # the younger has taken about 3000
    admit(throttle, older, 5000).addCallback(lambda _: grants.append((clock.seconds(), 5000)))
    clock.pump([0.01] * 200)
    assert len(grants) == 2
    (first, _), (second, _) = grants
    assert second - first >= (5000 - 1000) / 10_000 - 0.02, "the second grant waited for tokens"
