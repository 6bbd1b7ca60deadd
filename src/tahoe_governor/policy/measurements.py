"""What the meters measured: the inputs of the policy engine that are not configuration.

The meters (interface counters, the shaper's own byte counts, the process CPU
meter) produce a new :class:`Measurements` whenever their smoothed values
change; the engine only reads them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from tahoe_governor.policy.quotas import QuotaKey, QuotaUsage


def _rate_or_none(
    _instance: object, attribute: attrs.Attribute[float | None], value: object
) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{attribute.name} must be bytes/s or None, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{attribute.name} must be finite and >= 0 bytes/s, got {value!r}")


def _cpu_shares(value: Mapping[str, float]) -> Mapping[str, float]:
    shares = dict(value)
    for job, share in shares.items():
        if isinstance(share, bool) or not isinstance(share, int | float):
            raise ValueError(f"job_cpu[{job!r}] must be a share of one core, got {share!r}")
        if not math.isfinite(share) or share < 0:
            raise ValueError(f"job_cpu[{job!r}] must be finite and >= 0, got {share!r}")
    return MappingProxyType(shares)


def _auto_rates(value: Mapping[str, float]) -> Mapping[str, float]:
    rates = dict(value)
    for tubid, rate in rates.items():
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0 \
                or not math.isfinite(rate):
            raise ValueError(
                f"automatic rate of {tubid!r} must be finite bytes/s > 0, got {rate!r}")
    return MappingProxyType(rates)


def _frozen_usage(value: Mapping[QuotaKey, QuotaUsage]) -> Mapping[QuotaKey, QuotaUsage]:
    return MappingProxyType(dict(value))


@attrs.frozen
class Measurements:
    """Smoothed measurements at one moment. ``None`` means "not measured yet".

    ``capacity_up`` / ``capacity_down``
        Estimated capacity of the network link, bytes/s, per direction: a high
        percentile of the link's observed total rate over a long window (the
        ``auto`` of ``capacity.*``). Used only when ``capacity.*`` is ``auto``.
    ``other_up`` / ``other_down``
        Traffic on the link that is not this node's governed Foolscap
        traffic, bytes/s, smoothed: interface counters minus our own bytes,
        never below zero. Used by ``busy.*``; ``None`` counts as zero.
    ``job_cpu``
        Job name -> measured CPU use attributed to the job, as a share of one
        core (0.25 = a quarter of one core), averaged over 10 s.
    ``machine_idle``
        Whether the machine is idle by the meters' rule
        (:class:`tahoe_governor.throttle.meters.IdleRule`): jobs then get
        their ``cpu.idle`` budget. ``None`` counts as not idle.
    """

    capacity_up: float | None = attrs.field(default=None, validator=_rate_or_none)
    capacity_down: float | None = attrs.field(default=None, validator=_rate_or_none)
    other_up: float | None = attrs.field(default=None, validator=_rate_or_none)
    other_down: float | None = attrs.field(default=None, validator=_rate_or_none)
    job_cpu: Mapping[str, float] = attrs.field(
        factory=dict, converter=_cpu_shares, eq=attrs.cmp_using(eq=lambda a, b: dict(a) == dict(b))
    )
    machine_idle: bool | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(bool))
    )
    auto_up: Mapping[str, float] = attrs.field(
        factory=dict, converter=_auto_rates,
        eq=attrs.cmp_using(eq=lambda a, b: dict(a) == dict(b)),
    )
    """TubID -> the upload rate (bytes/s) the delay controller of an automatic cap
    (``peer.<selector>.up = auto``) chose for that peer."""
    auto_down: Mapping[str, float] = attrs.field(
        factory=dict, converter=_auto_rates,
        eq=attrs.cmp_using(eq=lambda a, b: dict(a) == dict(b)),
    )
    """The same for downloads (``peer.<selector>.down = auto``)."""
    auto_node_up: float | None = attrs.field(default=None, validator=_rate_or_none)
    auto_node_down: float | None = attrs.field(default=None, validator=_rate_or_none)
    """The rate (bytes/s) the delay controller of ``limit.up = auto`` (``limit.down``)
    chose for the whole node; ``None`` before it has chosen (the start rate holds)."""
    quota_usage: Mapping[QuotaKey, QuotaUsage] = attrs.field(
        factory=dict, converter=_frozen_usage,
        eq=attrs.cmp_using(eq=lambda a, b: dict(a) == dict(b)),
    )
    """The wire bytes counted for each quota in its period (see
    :class:`~tahoe_governor.policy.quota_ledger.QuotaLedger`)."""

    def capacity(self, direction: str) -> float | None:
        return self.capacity_up if direction == "up" else self.capacity_down

    def other(self, direction: str) -> float | None:
        return self.other_up if direction == "up" else self.other_down

    def auto_peer(self, direction: str) -> Mapping[str, float]:
        return self.auto_up if direction == "up" else self.auto_down

    def auto_node(self, direction: str) -> float | None:
        return self.auto_node_up if direction == "up" else self.auto_node_down
