"""The limits engine: each combination rule on its own, at fixed instants."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tahoe_governor.policy.config import Policy, parse_policy_text
from tahoe_governor.policy.engine import BUSY_FLOOR_BYTES, limits_at
from tahoe_governor.policy.measurements import Measurements
from tahoe_governor.policy.overrides import LimitKey, Overrides
from tahoe_governor.policy.peers import KnownPeer
from tahoe_governor.policy.units import parse_rate
from tahoe_governor.throttle import UNLIMITED

UTC = ZoneInfo("UTC")


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# 2026-11-23 is a Monday.
MONDAY_NOON = at("2026-11-23T12:00+00:00")
MONDAY_NIGHT = at("2026-11-23T23:00+00:00")


def policy(bandwidth: str = "", backups: str = "") -> Policy:
    return parse_policy_text(f"[backups]\n{backups}\n[bandwidth]\n{bandwidth}\n", UTC)


def job(name: str, extra: str = "") -> str:
    return (
        f"{name}.source = /data/{name}\n{name}.target = backup:{name}\n"
        f"{name}.frequency = 1day\n{extra}\n"
    )


def test_nothing_configured_is_unlimited() -> None:
    """Without [bandwidth] every limit is unlimited and nothing ever changes."""
    limits = limits_at(policy(), MONDAY_NOON)
    assert limits.node_up.bytes_per_second == UNLIMITED and limits.node_up.source == "none"
    assert limits.node_down.bytes_per_second == UNLIMITED
    assert limits.peers == () and limits.jobs == () and limits.next_change is None


def test_plain_limit() -> None:
    """limit.up is the node's upload cap in bytes/s."""
    limits = limits_at(policy("limit.up = 600kbps"), MONDAY_NOON)
    assert limits.node_up.bytes_per_second == 75_000 and limits.node_up.source == "limit.up"
    assert limits.node_down.bytes_per_second == UNLIMITED


def test_schedule_entry_replaces_the_plain_limit() -> None:
    """While an entry is in force its rate replaces limit.* — even when it is higher."""
    p = policy("limit.up = 600kbps\nschedule.up = Mon-Fri 0800-1800 100kbps; * 2200-0800 unlimited")
    noon = limits_at(p, MONDAY_NOON)
    assert noon.node_up.bytes_per_second == 12_500
    assert noon.node_up.source.startswith("schedule.up")
    assert noon.next_change == at("2026-11-23T18:00+00:00")
    evening = limits_at(p, at("2026-11-23T19:00+00:00"))
    assert evening.node_up.bytes_per_second == 75_000 and evening.node_up.source == "limit.up"
    night = limits_at(p, MONDAY_NIGHT)
    assert night.node_up.bytes_per_second == UNLIMITED
    assert night.next_change == at("2026-11-24T08:00+00:00")


def test_override_replaces_the_configured_limit() -> None:
    """A live override wins over limit.* and schedule.*, and reports what it replaces."""
    p = policy("limit.up = 600kbps")
    overrides = Overrides().with_limit(LimitKey("node", "", "up"), parse_rate("1Mbps"))
    limits = limits_at(p, MONDAY_NOON, overrides)
    assert limits.node_up.bytes_per_second == 125_000
    assert (limits.node_up.source, limits.node_up.overridden, limits.node_up.override) == (
        "override", "600kbps", "1Mbps"
    )
    busy = policy("capacity.up = 1Mbps\nbusy.up = 10%\nlimit.up = 600kbps")
    limits = limits_at(busy, MONDAY_NOON, overrides)
    assert limits.node_up.source == "busy.up" and limits.node_up.override == "1Mbps"


def test_percent_resolves_against_configured_or_estimated_capacity() -> None:
    """N% uses capacity.* when configured, the estimate with auto, and waits without one."""
    configured = limits_at(policy("capacity.up = 1Mbps\nlimit.up = 60%"), MONDAY_NOON)
    assert configured.node_up.bytes_per_second == pytest.approx(75_000)
    auto = policy("capacity.up = auto\nlimit.up = 60%")
    estimated = limits_at(auto, MONDAY_NOON, measurements=Measurements(capacity_up=200_000))
    assert estimated.node_up.bytes_per_second == pytest.approx(120_000)
    assert estimated.capacity_up == 200_000
    unknown = limits_at(auto, MONDAY_NOON)
    assert unknown.node_up.bytes_per_second == UNLIMITED
    assert unknown.node_up.unapplied == ("limit.up = 60%",)
    # A configured capacity is not replaced by the estimate.
    fixed = limits_at(
        policy("capacity.up = 1Mbps\nlimit.up = 60%"), MONDAY_NOON,
        measurements=Measurements(capacity_up=1.0),
    )
    assert fixed.node_up.bytes_per_second == pytest.approx(75_000)


BUSY = [
    # other traffic (bytes/s), expected node limit, why
    (None, 100_000, "nothing measured yet counts as no other traffic"),
    (0, 100_000, "idle link: the whole busy share"),
    (30_000, 70_000, "others use 30 kB/s: we get the rest of the 80 % share"),
    (99_000, 6_250, "others use almost all: the floor, 5 % of capacity"),
    (500_000, 6_250, "others exceed the link: still the floor"),
]


@pytest.mark.parametrize(("other", "expected", "why"), BUSY)
def test_busy_yields_to_other_traffic(other: float | None, expected: float, why: str) -> None:
    """busy.up: governed traffic gets busy * capacity - other, never below the floor."""
    p = policy("capacity.up = 1Mbps\nbusy.up = 80%")
    limits = limits_at(p, MONDAY_NOON, measurements=Measurements(other_up=other))
    assert limits.node_up.bytes_per_second == pytest.approx(expected), why
    assert limits.node_up.source == "busy.up", why


def test_busy_floor_minimum_and_smallest_cap() -> None:
    """On a slow link the floor is 1 kB/s; a smaller limit.* still wins over busy."""
    slow = policy("capacity.up = 64kbps\nbusy.up = 80%")
    limits = limits_at(slow, MONDAY_NOON, measurements=Measurements(other_up=8_000))
    assert limits.node_up.bytes_per_second == BUSY_FLOOR_BYTES
    capped = policy("capacity.up = 1Mbps\nbusy.up = 80%\nlimit.up = 100kbps")
    limits = limits_at(capped, MONDAY_NOON, measurements=Measurements(other_up=10_000))
    assert limits.node_up.bytes_per_second == 12_500 and limits.node_up.source == "limit.up"


def test_busy_waits_for_capacity() -> None:
    """busy with capacity auto and no estimate is reported as not applied."""
    limits = limits_at(policy("capacity.down = auto\nbusy.down = 50%"), MONDAY_NOON)
    assert limits.node_down.bytes_per_second == UNLIMITED
    assert limits.node_down.unapplied == ("busy.down = 50%",)


def test_peer_caps_and_resolution() -> None:
    """A peer's cap is its own, never above the node's; selectors resolve when known."""
    p = policy(
        "limit.up = 1Mbps\npeer.parents.up = 200kbps\npeer.parents.down = 1MB/s\n"
        "peer.fast.up = 10Mbps"
    )
    known = [KnownPeer("a" * 32, "v0-" + "a" * 52, "parents"), KnownPeer("b" * 32, None, "fast")]
    limits = limits_at(p, MONDAY_NOON, known_peers=known)
    parents, fast = limits.peers
    assert parents.tubids == ("a" * 32,) and parents.up.bytes_per_second == 25_000
    assert parents.down.bytes_per_second == 1_000_000
    assert fast.up.bytes_per_second == 125_000 and fast.up.source.startswith("node limit")
    assert limits.peer_rates_by_tubid() == {
        "a" * 32: (25_000, 1_000_000),
        "b" * 32: (125_000, UNLIMITED),
    }
    unknown = limits_at(p, MONDAY_NOON)
    assert unknown.peers[0].tubids == () and "no known peer" in str(unknown.peers[0].resolution)
    # Until they resolve, the smallest unresolved caps are what an unnamed peer must hold.
    assert unknown.unresolved_peer_rates() == (25_000, 1_000_000)
    assert limits.unresolved_peer_rates() == (UNLIMITED, UNLIMITED)


def test_a_nickname_announced_twice_caps_both_servers() -> None:
    """A second server announcing the capped nickname is capped too; the first stays capped."""
    p = policy("peer.parents.up = 200kbps")
    known = [KnownPeer("a" * 32, None, "parents"), KnownPeer("b" * 32, None, "parents")]
    limits = limits_at(p, MONDAY_NOON, known_peers=known)
    assert limits.peer_rates_by_tubid() == {
        "a" * 32: (25_000, UNLIMITED), "b" * 32: (25_000, UNLIMITED)}


def test_two_selectors_of_one_peer_combine_by_the_smallest_cap() -> None:
    """A TubID cap and a nickname cap of the same server: the smaller one applies."""
    p = policy(f"peer.{'a' * 32}.up = 1Mbps\npeer.parents.up = 200kbps")
    limits = limits_at(p, MONDAY_NOON, known_peers=[KnownPeer("a" * 32, None, "parents")])
    assert limits.peer_rates_by_tubid() == {"a" * 32: (25_000, UNLIMITED)}


def test_peer_override_without_configuration() -> None:
    """An override for a peer tahoe.cfg does not name still yields a limit."""
    overrides = Overrides().with_limit(LimitKey("peer", "c" * 32, "down"), parse_rate("50kB/s"))
    (peer,) = limits_at(policy(), MONDAY_NOON, overrides).peers
    assert peer.tubids == ("c" * 32,) and peer.down.bytes_per_second == 50_000
    assert peer.down.overridden == "unlimited" and peer.down.override == "50kB/s"
    assert peer.up.bytes_per_second == UNLIMITED


def test_job_rate_smallest_of_bandwidth_upstream_and_share() -> None:
    """A job's cap is the smallest of bandwidth, upstream % and its weighted share."""
    p = policy(
        "capacity.up = 1Mbps\nlimit.up = 800kbps",
        job("a", "a.bandwidth = 200kbps\na.weight = 3")
        + job("b", "b.upstream = 10%")
        + job("c"),
    )
    limits = limits_at(p, MONDAY_NOON, running_jobs=["a", "b", "c"])
    # share of 100 kB/s: a 3/5 = 60 kB/s, b 1/5 = 20 kB/s, c 1/5 = 20 kB/s
    assert limits.job("a").rate.bytes_per_second == 25_000
    assert limits.job("a").rate.source == "a.bandwidth"
    assert limits.job("b").rate.bytes_per_second == 12_500
    assert limits.job("b").rate.source == "b.upstream"
    assert limits.job("c").rate.bytes_per_second == pytest.approx(20_000)
    assert limits.job("c").rate.source.startswith("share of the node limit")


def test_share_counts_the_job_itself() -> None:
    """A job not running yet is given the share it would have if it started."""
    p = policy("limit.up = 800kbps", job("a", "a.weight = 3") + job("b"))
    limits = limits_at(p, MONDAY_NOON, running_jobs=["a"])
    assert limits.job("a").rate.bytes_per_second == pytest.approx(100_000)
    assert limits.job("b").rate.bytes_per_second == pytest.approx(25_000)
    alone = limits_at(p, MONDAY_NOON)
    assert alone.job("b").rate.bytes_per_second == pytest.approx(100_000)


def test_job_override_and_unlimited_node() -> None:
    """A job override replaces bandwidth; without a node limit there is no share cap."""
    p = policy("", job("a", "a.bandwidth = 200kbps"))
    overrides = Overrides().with_limit(LimitKey("job", "a", "up"), parse_rate("unlimited"))
    rate = limits_at(p, MONDAY_NOON, overrides).job("a").rate
    assert rate.bytes_per_second == UNLIMITED and rate.override == "unlimited"
    assert rate.overridden == "200kbps"


ADMISSION = [
    # last completed, now, due, may_start, next_start, why
    (None, MONDAY_NIGHT, True, True, MONDAY_NIGHT, "never run: due at once, inside the window"),
    (None, MONDAY_NOON, True, False, at("2026-11-23T22:00+00:00"), "due, waits for the window"),
    (at("2026-11-23T06:00+00:00"), MONDAY_NIGHT, False, False,
     at("2026-11-24T06:00+00:00"), "ran this morning: due tomorrow 06:00, still in the window"),
    (at("2026-11-23T09:00+00:00"), MONDAY_NIGHT, False, False,
     at("2026-11-24T22:00+00:00"), "due at 09:00 tomorrow, outside: the next window start"),
    (at("2026-11-22T23:00+00:00"), MONDAY_NIGHT, True, True, MONDAY_NIGHT,
     "exactly one frequency ago: due now"),
]


@pytest.mark.parametrize(("last", "now", "due", "may_start", "next_start", "why"), ADMISSION)
def test_admission(
    last: float | None, now: float, due: bool, may_start: bool, next_start: float, why: str
) -> None:
    """Frequency since the last completed run, and allowed times, decide admission."""
    p = policy("", job("a", "a.allowed_times = 2200-0800"))
    limits = limits_at(p, now, last_completed={} if last is None else {"a": last})
    admission = limits.job("a").admission
    assert (admission.due, admission.may_start, admission.next_start) == (
        due, may_start, next_start
    ), why
    if admission.in_window:
        assert admission.until == at("2026-11-24T08:00+00:00"), why


def test_paused_job_and_next_change() -> None:
    """A paused job may not run and has no next start; due_at counts as a change."""
    p = policy("", job("a", "a.allowed_times = 2200-0800"))
    paused = limits_at(p, MONDAY_NIGHT, Overrides(paused={"a"})).job("a").admission
    assert (paused.paused, paused.may_run, paused.next_start, paused.until) == (
        True, False, None, None
    )
    last = {"a": at("2026-11-23T06:00+00:00")}
    limits = limits_at(p, MONDAY_NOON, last_completed=last)
    # the window opens at 22:00, before the job is due (tomorrow 06:00)
    assert limits.next_change == at("2026-11-23T22:00+00:00")
    later = limits_at(p, at("2026-11-24T05:00+00:00"), last_completed=last)
    assert later.next_change == at("2026-11-24T06:00+00:00")


def test_cpu_budget() -> None:
    """The CPU budget is passed through with the measured use and an over-budget flag."""
    p = policy("", job("a", "a.cpu = 25%") + job("b"))
    limits = limits_at(p, MONDAY_NOON, measurements=Measurements(job_cpu={"a": 0.4, "b": 0.9}))
    assert limits.job("a").cpu_budget == 0.25 and limits.job("a").cpu_over_budget
    assert limits.job("b").cpu_budget is None and not limits.job("b").cpu_over_budget


def test_cpu_idle_budget() -> None:
    """While the measurements say the machine is idle, cpu.idle is the budget in force;
    without cpu.idle the idle budget is cpu's, and unknown idleness counts as in use."""
    p = policy("", job("a", "a.cpu = 25%\na.cpu.idle = 75%") + job("b", "b.cpu = 25%"))
    used = {"a": 0.5, "b": 0.5}
    busy = limits_at(p, MONDAY_NOON, measurements=Measurements(job_cpu=used))
    idle = limits_at(p, MONDAY_NOON, measurements=Measurements(job_cpu=used, machine_idle=True))
    a, b = busy.job("a"), busy.job("b")
    assert (a.cpu_budget, a.cpu_idle_budget, a.machine_idle) == (0.25, 0.75, False)
    assert a.cpu_budget_in_force == 0.25 and a.cpu_over_budget
    assert (b.cpu_budget, b.cpu_idle_budget) == (0.25, 0.25)
    assert idle.job("a").cpu_budget_in_force == 0.75 and not idle.job("a").cpu_over_budget
    assert idle.job("b").cpu_budget_in_force == 0.25 and idle.job("b").cpu_over_budget
    assert busy != idle, "idleness changes the limits, so the service re-publishes them"
    unlimited = policy("", job("c", "c.cpu = 10%\nc.cpu.idle = unlimited"))
    c = limits_at(unlimited, MONDAY_NOON, measurements=Measurements(
        job_cpu={"c": 3.0}, machine_idle=True)).job("c")
    assert c.cpu_budget_in_force is None and not c.cpu_over_budget


def test_inputs_are_checked() -> None:
    """Running jobs must exist; measurements refuse negative or NaN rates."""
    with pytest.raises(ValueError, match="not in the policy"):
        limits_at(policy(), MONDAY_NOON, running_jobs=["ghost"])
    with pytest.raises(ValueError):
        Measurements(other_up=-1)
    with pytest.raises(ValueError):
        Measurements(capacity_down=math.nan)
    with pytest.raises(ValueError):
        Measurements(job_cpu={"a": -0.1})
    with pytest.raises(TypeError):
        Measurements(machine_idle="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="direction must be 'up'"):
        LimitKey("job", "a", "down")


def test_equal_limits_ignore_the_instant() -> None:
    """Limits at two instants with the same outcome compare equal (no spurious change)."""
    p = policy("limit.up = 1Mbps")
    assert limits_at(p, MONDAY_NOON) == limits_at(p, MONDAY_NOON + 60)
    assert limits_at(p, MONDAY_NOON) != limits_at(policy("limit.up = 2Mbps"), MONDAY_NOON)


rates = st.floats(min_value=2_400, max_value=1e9)  # above the node upload floor at 3-of-10


@settings(max_examples=100, deadline=None)
@given(
    capacity=rates,
    busy=st.integers(1, 100),
    limit=rates,
    other=st.floats(min_value=0, max_value=2e9),
    more_other=st.floats(min_value=0, max_value=1e9),
)
def test_busy_never_starves_and_never_exceeds(
    capacity: float, busy: int, limit: float, other: float, more_other: float
) -> None:
    """With busy.*: the node limit is at most every cap, at least the floor (or the limit),
    and more traffic from others never raises it."""
    p = policy(f"capacity.up = {capacity:.0f}B/s\nbusy.up = {busy}%\nlimit.up = {limit:.0f}B/s")
    cap, lim = float(f"{capacity:.0f}"), float(f"{limit:.0f}")
    share = busy / 100 * cap
    floor = min(share, max(0.05 * cap, BUSY_FLOOR_BYTES))
    node = limits_at(p, MONDAY_NOON, measurements=Measurements(other_up=other)).node_up
    assert node.bytes_per_second <= min(lim, share) * (1 + 1e-12)
    assert node.bytes_per_second >= min(lim, floor) * (1 - 1e-12)
    busier = limits_at(p, MONDAY_NOON, measurements=Measurements(other_up=other + more_other))
    assert busier.node_up.bytes_per_second <= node.bytes_per_second


@settings(max_examples=50, deadline=None)
@given(
    limit=rates,
    weights=st.lists(st.integers(1, 10), min_size=1, max_size=5),
    running=st.data(),
)
def test_running_shares_add_up_to_the_node_limit(
    limit: float, weights: list[int], running: st.DataObject
) -> None:
    """The running jobs' shares of the node limit add up to it, in proportion to weight."""
    jobs = "".join(job(f"j{i}", f"j{i}.weight = {w}") for i, w in enumerate(weights))
    p = policy(f"limit.up = {limit:.0f}B/s", jobs)
    names = [f"j{i}" for i in range(len(weights))]
    chosen = running.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    limits = limits_at(p, MONDAY_NOON, running_jobs=chosen)
    total = sum(limits.job(name).rate.bytes_per_second for name in chosen)
    assert total == pytest.approx(float(f"{limit:.0f}"))
    first, *rest = chosen
    for name in rest:
        ratio = limits.job(name).rate.bytes_per_second / limits.job(first).rate.bytes_per_second
        assert ratio == pytest.approx(weights[names.index(name)] / weights[names.index(first)])


def test_an_automatic_cap_takes_each_peers_controller_rate_under_the_node_cap() -> None:
    """``peer.parents.up = auto``: each server the nickname names gets the rate its own
    delay controller chose (measured), or the starting rate before it has one; the node
    cap still bounds it; an unresolved selector holds the starting rate."""
    p = policy("limit.up = 600kbps\npeer.parents.up = auto\npeer.parents.target_delay = 50ms")
    a, b = "a" * 32, "b" * 32
    known = [KnownPeer(a, None, "parents"), KnownPeer(b, None, "parents")]
    limits = limits_at(p, MONDAY_NOON, measurements=Measurements(auto_up={a: 40_000.0,
                                                                          b: 90_000.0}),
                       known_peers=known)
    (peer,) = limits.peers
    assert peer.target_delay == 0.05
    assert limits.peer_rates_by_tubid() == {a: (40_000.0, UNLIMITED), b: (75_000.0, UNLIMITED)}
    unmeasured = limits_at(p, MONDAY_NOON, known_peers=known)
    assert unmeasured.peer_rates_by_tubid()[a] == (32_000.0, UNLIMITED)
    assert limits_at(p, MONDAY_NOON).unresolved_peer_rates() == (32_000.0, UNLIMITED)


def test_an_override_replaces_an_automatic_cap() -> None:
    """A live override of an automatic cap is a fixed cap until cleared."""
    p = policy("peer.parents.up = auto")
    overrides = Overrides().with_limit(LimitKey("peer", "parents", "up"), parse_rate("100kbps"))
    known = [KnownPeer("a" * 32, None, "parents")]
    limits = limits_at(p, MONDAY_NOON, overrides,
                       measurements=Measurements(auto_up={"a" * 32: 40_000.0}), known_peers=known)
    assert limits.peers[0].auto_up is None
    assert limits.peer_rates_by_tubid() == {"a" * 32: (12_500.0, UNLIMITED)}
