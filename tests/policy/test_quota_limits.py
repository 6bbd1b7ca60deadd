"""The policy engine with quotas: a used-up quota is a limit of 0 and holds the jobs it needs.

Pure: :func:`limits_at` at fixed instants with the usage given as measurements.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.policy.engine import limits_at
from tahoe_governor.policy.measurements import Measurements
from tahoe_governor.policy.peers import KnownPeer
from tahoe_governor.policy.quotas import QuotaKey, QuotaUsage
from tahoe_governor.throttle import UNLIMITED

UTC = ZoneInfo("UTC")
DAY = 86400.0
NOV = 1793491200.0  # 2026-11-01 00:00 UTC
DEC = NOV + 30 * DAY
PARENTS = "a" * 32
OTHER = "b" * 32

CONFIG = f"""
[backups]
b1.source = /srv/a
b1.target = backup:a
b1.frequency = 1day
b1.quota = 1MB/month
b2.source = /srv/b
b2.target = backup:b
b2.frequency = 1day
b2.allowed_times = 2200-2400
[maintenance]
m1.target = backup:a
m1.frequency = 1week
[bandwidth]
limit.up = 1MB/s
quota.up = 10MB/month
peer.{PARENTS}.quota.down = 2MB/week
"""
POLICY = parse_policy_text(CONFIG, UTC)
NOW = NOV + 10 * DAY + 12 * 3600  # Wednesday 11 November, noon


def limits(**usage: QuotaUsage):
    keys = {"node_up": QuotaKey("node", "", "up"), "b1": QuotaKey("job", "b1", "up"),
            "parents_down": QuotaKey("peer", PARENTS, "down")}
    return limits_at(POLICY, NOW, measurements=Measurements(
        quota_usage={keys[name]: u for name, u in usage.items()}),
        known_peers=[KnownPeer(PARENTS), KnownPeer(OTHER)])


def test_nothing_used_up_changes_nothing() -> None:
    """Quotas under their limit: the caps are the rates', every job may run."""
    result = limits(b1=QuotaUsage(999_999, NOV), node_up=QuotaUsage(5, NOV))
    assert result.node_up.bytes_per_second == 1e6
    assert result.job("b1").admission.held_by == ()
    assert result.used_up == ()
    assert [(str(q.key), q.used_bytes) for q in result.quotas] == [
        ("quota.up", 5), (f"peer.{PARENTS}.quota.down", 0), ("b1.quota", 999_999)]


def test_a_jobs_quota_holds_that_job_until_the_month_ends() -> None:
    """b1 used its 1MB: it is held with the reason, its next start is 1 December; b2 is not."""
    result = limits(b1=QuotaUsage(1_000_000, NOV))
    b1 = result.job("b1").admission
    assert not b1.may_run and b1.in_window
    assert b1.held_by == ("b1.quota = 1MB/month used up (1000000 of 1000000 bytes)",)
    assert b1.held_until == b1.next_start == DEC
    assert result.job("b2").admission.held_by == ()
    assert result.node_up.bytes_per_second == 1e6  # a job's quota is no node limit
    assert result.next_change is not None and result.next_change <= DEC


def test_a_held_job_starts_at_the_first_allowed_time_after_the_reset() -> None:
    """A node quota holds b2 too; b2 may start only in its window, 22:00 on 1 December."""
    result = limits(node_up=QuotaUsage(10_000_000, NOV))
    assert result.job("b2").admission.next_start == DEC + 22 * 3600


def test_a_used_up_node_quota_stops_the_direction_and_holds_every_job() -> None:
    """quota.up used up: the node's upload limit is 0 (its source named), so is every peer's,
    and every job and task is held until the month ends."""
    result = limits(node_up=QuotaUsage(10_000_001, NOV))
    assert result.node_up.bytes_per_second == 0
    assert result.node_up.source == "quota.up"
    assert result.node_down.bytes_per_second == UNLIMITED
    assert {name: rates[0] for name, rates in result.peer_rates_by_tubid().items()} == {
        PARENTS: 0}
    for name in ("b1", "b2", "m1"):
        admission = result.job(name).admission
        assert not admission.may_run and admission.held_until == DEC
        assert admission.held_by[0].startswith("quota.up = 10MB/month used up")
    assert result.used_up == ((QuotaKey("node", "", "up"), DEC),)


def test_a_used_up_peer_quota_stops_that_peer_only_until_monday() -> None:
    """The parents' weekly download quota: their download limit is 0 until Monday 16th
    00:00, the other peer is not capped, and the jobs wait for Monday."""
    week_end = NOV + 15 * DAY  # Monday 16 November 2026 00:00 UTC
    result = limits(parents_down=QuotaUsage(2_000_000, NOV + 8 * DAY))
    assert result.peer_rates_by_tubid() == {PARENTS: (1e6, 0)}
    assert result.job("b1").admission.held_until == week_end
    assert result.used_up == ((QuotaKey("peer", PARENTS, "down"), week_end),)


def test_limits_compare_by_what_is_used_up_not_by_usage() -> None:
    """Usage moves with every byte; the limits (and their listeners) change only when a
    quota becomes used up."""
    assert limits(b1=QuotaUsage(10, NOV)) == limits(b1=QuotaUsage(20, NOV))
    assert limits(b1=QuotaUsage(10, NOV)) != limits(b1=QuotaUsage(1_000_000, NOV))


def test_a_live_override_does_not_lift_a_used_up_quota() -> None:
    """`limit node up unlimited` replaces limit.up, not the quota: the limit stays 0."""
    from tahoe_governor.policy.overrides import LimitKey, Overrides
    from tahoe_governor.policy.units import Rate

    overrides = Overrides().with_limit(LimitKey("node", "", "up"), Rate.unlimited())
    result = limits_at(POLICY, NOW, overrides, Measurements(
        quota_usage={QuotaKey("node", "", "up"): QuotaUsage(10_000_000, NOV)}))
    assert (result.node_up.bytes_per_second, result.node_up.source) == (0, "quota.up")
    assert result.node_up.override == "unlimited"
