"""CPU budgets: the duty cycle's arithmetic, the reactor gate, attribution between jobs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from tahoe_governor.throttle.cpu_budget import (
    UNLIMITED,
    CpuDutyCycle,
    CpuGate,
    JobCpuBudgets,
    attribute_cpu,
)
from tahoe_governor.throttle.meters import IdleRule, Meters, MeterTick
from tahoe_governor.throttle.testing import FakeCounters

# A transcript at 25 % of one core: (now, CPU seconds charged at now, expected
# delay at now, reason).
TRANSCRIPT = [
    (0.0, 0.0, 0.0, "a new job starts with a zero balance and may work"),
    (0.25, 0.25, 0.75, "0.25 s of CPU in 0.25 s: 0.1875 s debt, paid back at 0.25/s"),
    (0.5, 0.0, 0.5, "waiting pays the debt back"),
    (1.0, 0.0, 0.0, "paid: work again"),
    (3.0, 0.0, 0.0, "idle time saves at most 1 s of budget (0.25 s of CPU)"),
    (3.0, 0.5, 1.0, "so 0.5 s of CPU now leaves a 0.25 s debt"),
    (3.0, 5.0, 10.0, "a debt never exceeds 10 s of budget (2.5 s of CPU)"),
    (13.0, 0.0, 0.0, "paid after those 10 s"),
]


def test_duty_cycle_transcript():
    """The balance follows the budget, the credit cap and the debt cap, step by step."""
    duty = CpuDutyCycle(0.25)
    for now, charged, expected, reason in TRANSCRIPT:
        duty.charge(charged, now)
        assert duty.delay(now) == pytest.approx(expected), reason


def test_special_budgets():
    """Unlimited never waits; zero holds the loop until the budget is raised."""
    duty = CpuDutyCycle(UNLIMITED)
    duty.charge(100.0, 1.0)
    assert duty.delay(1.0) == 0.0
    duty = CpuDutyCycle(0.0)
    assert duty.delay(5.0) == math.inf, "a zero budget holds the loop"
    duty.charge(0.1, 5.0)
    duty.set_budget(0.5, 100.0)
    assert duty.delay(100.0) == 0.0, "a raised budget starts from a zero balance"
    duty.charge(0.1, 100.0)
    assert duty.delay(100.0) == pytest.approx(0.2)


def test_budget_change_applies_from_now():
    """Time before a change earns at the old budget, time after it at the new one."""
    duty = CpuDutyCycle(0.5)
    duty.charge(2.0, 0.0)  # debt 2.0 (cap: 5 s of CPU)
    duty.set_budget(0.1, 2.0)  # paid 1.0 at 0.5/s; the cap is now 1.0: debt 1.0
    assert duty.delay(2.0) == pytest.approx(10.0)
    assert duty.balance(12.0) == pytest.approx(0.0)


def test_time_going_backwards_earns_nothing_then_earns_from_the_new_time():
    """An earlier ``now`` (the clock stepped back) earns nothing and keeps the debt;
    from then on the job earns from that earlier instant instead of stalling until the
    clock is back at the old one."""
    duty = CpuDutyCycle(0.25, now=10.0)
    duty.charge(0.5, 10.0)
    assert duty.delay(5.0) == pytest.approx(2.0)
    assert duty.delay(6.0) == pytest.approx(1.0)
    assert duty.delay(7.0) == pytest.approx(0.0)


@pytest.mark.parametrize("budget", [-0.1, math.nan, "25%", True])
def test_bad_budget(budget):
    """Budgets are numbers >= 0 (shares of one core); anything else says so."""
    with pytest.raises(ValueError, match="share of one core"):
        CpuDutyCycle(budget)


def test_bad_charge():
    """A negative CPU time is an error."""
    with pytest.raises(ValueError, match="cpu_seconds"):
        CpuDutyCycle(0.25).charge(-1.0, 0.0)


def test_gate_fires_after_the_delay():
    """gate() fires from the reactor: at once within budget, after the wait in debt."""
    clock = Clock()
    gate = CpuGate(clock, CpuDutyCycle(0.5))
    fired: list[float] = []
    gate.gate().addCallback(lambda _: fired.append(clock.seconds()))
    assert fired == [], "never synchronously: the reactor gets to run"
    clock.advance(0)
    assert fired == [0.0]
    gate.duty_cycle.charge(1.0, 0.0)
    gate.gate().addCallback(lambda _: fired.append(clock.seconds()))
    clock.advance(1.9)
    assert fired == [0.0]
    clock.advance(0.1)
    assert fired == [0.0, 2.0]


def test_gate_rechecks_charges_made_while_waiting():
    """CPU charged during a wait extends it."""
    clock = Clock()
    gate = CpuGate(clock, CpuDutyCycle(0.5))
    gate.duty_cycle.charge(0.5, 0.0)
    fired: list[float] = []
    gate.gate().addCallback(lambda _: fired.append(clock.seconds()))
    clock.advance(0.5)
    gate.duty_cycle.charge(0.5, 0.5)
    clock.advance(0.5)
    assert fired == []
    clock.advance(1.0)
    assert fired == [2.0]


def test_gate_set_budget_reschedules_waiting_loops():
    """Raising the budget (the machine went idle) shortens a wait in progress."""
    clock = Clock()
    gate = CpuGate(clock, CpuDutyCycle(0.1))
    gate.duty_cycle.charge(0.4, 0.0)
    fired: list[float] = []
    gate.gate().addCallback(lambda _: fired.append(clock.seconds()))
    clock.advance(1.0)  # debt 0.3
    gate.set_budget(1.0)
    clock.advance(0.3)
    assert fired == [pytest.approx(1.3)]


def test_gate_at_zero_budget_waits_until_raised():
    """A zero budget holds the loop with no timer; a raise releases it."""
    clock = Clock()
    gate = CpuGate(clock, CpuDutyCycle(0.0))
    gate.duty_cycle.charge(0.1, 0.0)
    d = gate.gate()
    clock.advance(1000)
    assert not d.called and gate.waiting() == 1 and clock.getDelayedCalls() == []
    gate.set_budget(0.1)
    clock.advance(1.0)
    assert d.called and gate.waiting() == 0


def test_gate_cancel():
    """Cancelling a wait removes its timer and fails the Deferred with CancelledError."""
    clock = Clock()
    gate = CpuGate(clock, CpuDutyCycle(0.25))
    gate.duty_cycle.charge(1.0, 0.0)
    d = gate.gate()
    d.cancel()
    assert clock.getDelayedCalls() == [] and gate.waiting() == 0
    failures: list[object] = []
    d.addErrback(failures.append)
    assert failures[0].check(CancelledError)


@pytest.mark.parametrize(
    "cpu, work, expected, reason",
    [
        (1.0, {"a": 3, "b": 1}, {"a": 0.75, "b": 0.25}, "by share of the work"),
        (1.0, {"a": 5, "b": 0}, {"a": 1.0}, "no work, no CPU"),
        (1.0, {}, {}, "no job: nobody's"),
        (1.0, {"a": 0}, {}, "no work at all: nobody's"),
        (0.0, {"a": 1}, {"a": 0.0}, "no CPU"),
    ],
)
def test_attribute_cpu(cpu, work, expected, reason):
    """CPU seconds are split by each job's share of the work in the interval."""
    assert attribute_cpu(cpu, work) == pytest.approx(expected), reason


@settings(max_examples=100, deadline=None)
@given(
    cpu=st.floats(0, 100),
    work=st.dictionaries(st.text(max_size=3), st.floats(0, 1e9), max_size=5),
)
def test_attribution_conserves_cpu(cpu, work):
    """All the CPU is attributed whenever some job worked, none otherwise."""
    shares = attribute_cpu(cpu, work)
    if sum(work.values()) > 0:
        assert sum(shares.values()) == pytest.approx(cpu, rel=1e-9, abs=1e-12)
    else:
        assert shares == {}


def test_attribute_cpu_rejects_negative_work():
    """Negative work is an error naming the job."""
    with pytest.raises(ValueError, match="'b'"):
        attribute_cpu(1.0, {"a": 1, "b": -1})


# A synthetic CPU-bound workload: every job whose gate has fired burns one full
# core for one step of the clock, reports its work, and asks the gate again.

STEP = 0.01


class SyntheticWorkload:
    def __init__(self, budgets_by_job, idle_budgets=None, cpu_count=4, others=0.0):
        self.clock = Clock()
        self.counters = FakeCounters(cpu_count=cpu_count)
        self.others = others  # cores used by other processes
        self.meters = Meters(self.clock, self.counters, [], idle_rule=IdleRule(hold_seconds=5.0))
        self.budgets = JobCpuBudgets(self.clock, self.meters.tick_seconds)
        self.meters.subscribe(self._charge)
        self.ready: dict[str, bool] = {}
        self.cpu: dict[str, float] = {}
        idle_budgets = idle_budgets or {}
        for job, budget in budgets_by_job.items():
            self.budgets.add_job(job, budget, idle_budgets.get(job))
            self.cpu[job] = 0.0
            self._arm(job)
        self.meters.start()

    def _charge(self, tick: MeterTick) -> None:
        self.budgets.charge_tick(tick.process_cpu_seconds, tick.machine_idle)

    def _arm(self, job: str) -> None:
        self.ready[job] = False
        self.budgets.gate(job).gate().addCallback(lambda _: self.ready.__setitem__(job, True))

    def run(self, seconds: float) -> dict[str, float]:
        """CPU share of one core each job used during ``seconds``."""
        before = dict(self.cpu)
        for _ in range(round(seconds / STEP)):
            for job, ready in list(self.ready.items()):
                if ready:
                    self.counters.run_process(STEP)
                    self.cpu[job] += STEP
                    self.budgets.record_work(job, STEP * 1e6)
                    self._arm(job)
            self.counters.run_others(self.others * STEP)
            self.clock.advance(STEP)
        return {job: (self.cpu[job] - before[job]) / seconds for job in self.cpu}


@pytest.mark.parametrize("budget", [0.1, 0.25, 0.5])
def test_duty_cycle_holds_a_cpu_bound_job_to_its_budget(budget):
    """A CPU-bound loop gated at 10/25/50 % uses that share of one core over 60 s."""
    workload = SyntheticWorkload({"b1": budget})
    share = workload.run(60.0)["b1"]
    assert share == pytest.approx(budget, rel=0.03)
    assert workload.budgets.usage("b1") == pytest.approx(budget, rel=0.1)


def test_duty_cycle_never_exceeds_the_budget_over_10_s():
    """In every 10 s window the job stays within its budget plus the credit and one tick."""
    workload = SyntheticWorkload({"b1": 0.25})
    shares = [workload.run(10.0)["b1"] for _ in range(6)]
    assert max(shares) <= 0.25 + (0.25 * 1.0 + 0.25) / 10.0
    assert min(shares[1:]) >= 0.25 * 0.9


def test_two_jobs_each_get_their_own_budget():
    """Attribution by work lets two CPU-bound jobs each use their own budget."""
    workload = SyntheticWorkload({"b1": 0.1, "b2": 0.3})
    shares = workload.run(60.0)
    assert shares["b1"] == pytest.approx(0.1, rel=0.05)
    assert shares["b2"] == pytest.approx(0.3, rel=0.05)


def test_idle_budget_applies_while_the_machine_is_idle():
    """cpu.idle takes over after the machine has been idle, and gives way when it is busy."""
    workload = SyntheticWorkload({"b1": 0.1}, idle_budgets={"b1": 0.5}, others=0.0)
    workload.run(6.0)  # hold time of 5 s
    assert workload.budgets.budget_in_force("b1") == 0.5
    assert workload.run(30.0)["b1"] == pytest.approx(0.5, rel=0.05)
    workload.others = 2.0  # half of the 4 cores busy elsewhere
    workload.run(2.0)
    assert workload.budgets.budget_in_force("b1") == 0.1
    assert workload.run(30.0)["b1"] == pytest.approx(0.1, rel=0.1)


def test_cpu_of_ticks_without_work_goes_to_the_last_workers():
    """CPU in a tick with no reported work is charged by the last shares, for 10 s."""
    clock = Clock()
    budgets = JobCpuBudgets(clock, 0.25)
    budgets.add_job("a", 1.0)
    budgets.add_job("b", 1.0)
    budgets.record_work("a", 3)
    budgets.record_work("b", 1)
    assert budgets.charge_tick(0.2) == pytest.approx({"a": 0.15, "b": 0.05})
    clock.advance(10.0)
    assert budgets.charge_tick(0.4) == pytest.approx({"a": 0.3, "b": 0.1})
    clock.advance(10.25)
    assert budgets.charge_tick(0.4) == {}


def test_job_registry_errors():
    """Duplicate and unknown jobs, and bad budgets, are clear errors naming the job."""
    budgets = JobCpuBudgets(Clock(), 0.25)
    budgets.add_job("b1", 0.25)
    with pytest.raises(ValueError, match="'b1' already"):
        budgets.add_job("b1", 0.5)
    with pytest.raises(KeyError, match="'b9'"):
        budgets.record_work("b9", 1)
    with pytest.raises(ValueError, match="idle CPU budget of job 'b2'"):
        budgets.add_job("b2", 0.25, idle_budget=-1)
    budgets.remove_job("b1")
    assert budgets.jobs() == []
    budgets.add_job("b1", 0.25)  # may come back after it ended
    budgets.set_budget("b1", 0.5)
    assert budgets.budget_in_force("b1") == 0.5


@settings(max_examples=200, deadline=None)
@given(
    budget=st.floats(0.01, 1.0),
    pieces=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=200),
)
def test_a_loop_that_obeys_the_gate_uses_exactly_its_budget(budget, pieces):
    """Working only when delay() is 0, a loop uses budget × T, plus at most its last piece.

    Each piece of work costs up to 1 s of CPU but never more than the 10 s debt
    cap, at one core; the loop is always ready, so no credit is ever saved or
    wasted. (Budgets above one core cannot bind a single-threaded loop.)
    """
    duty = CpuDutyCycle(budget)
    now = charged = 0.0
    largest = 0.0
    for fraction in pieces:
        wait = duty.delay(now)
        if wait > 0:
            now += wait
        piece = fraction * min(1.0, budget * 10.0)
        now += piece
        duty.charge(piece, now)
        charged += piece
        largest = max(largest, piece)
    assert budget * now - 1e-6 <= charged <= budget * now + largest + 1e-6
