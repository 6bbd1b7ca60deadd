"""Runtime overrides: limits and job settings changed live, and jobs paused by hand.

An override replaces the tahoe.cfg value of one cap (or of one job's allowed
times, frequency or CPU budget, see :mod:`tahoe_governor.policy.job_settings`)
until it is cleared; it
is kept in the job-state database so that a restart keeps it. Displays show
it as an override of the configured value, never as the configured value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Literal

import attrs

from tahoe_governor.policy.units import Rate

Scope = Literal["node", "peer", "job"]
SCOPES: tuple[Scope, ...] = ("node", "peer", "job")


def _check_key(instance: LimitKey, _attribute: object, _value: object) -> None:
    if instance.scope not in SCOPES:
        raise ValueError(f"override scope must be one of {SCOPES}, got {instance.scope!r}")
    if instance.direction not in ("up", "down"):
        raise ValueError(f"override direction must be 'up' or 'down', got {instance.direction!r}")
    if instance.scope == "node" and instance.name:
        raise ValueError("a node override has no name")
    if instance.scope != "node" and not instance.name:
        raise ValueError(f"a {instance.scope} override needs a name")
    if instance.scope == "job" and instance.direction != "up":
        raise ValueError("a job's cap is on its uploads: direction must be 'up'")


@attrs.frozen
class LimitKey:
    """Which cap an override replaces: the node's, a peer selector's or a job's, one direction.

    For ``scope="peer"`` the name is the selector as written in tahoe.cfg
    (``peer.<selector>.*``) or a TubID.
    """

    scope: Scope = attrs.field(validator=_check_key)
    name: str
    direction: Literal["up", "down"]

    def __str__(self) -> str:
        if self.scope == "node":
            return f"node {self.direction}"
        return f"{self.scope} {self.name} {self.direction}"


def _frozen_limits(limits: Mapping[LimitKey, Rate]) -> Mapping[LimitKey, Rate]:
    return MappingProxyType(dict(limits))


def _frozen_settings(settings: Mapping[tuple[str, str], str]) -> Mapping[tuple[str, str], str]:
    return MappingProxyType(dict(settings))


def _frozen_names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(names)


@attrs.frozen
class Overrides:
    """Every override in force; the empty value means "tahoe.cfg as written"."""

    limits: Mapping[LimitKey, Rate] = attrs.field(
        factory=dict,
        converter=_frozen_limits,
        eq=attrs.cmp_using(eq=lambda a, b: dict(a) == dict(b)),
    )
    paused: frozenset[str] = attrs.field(factory=frozenset, converter=_frozen_names)
    job_settings: Mapping[tuple[str, str], str] = attrs.field(
        factory=dict,
        converter=_frozen_settings,
        eq=attrs.cmp_using(eq=lambda a, b: dict(a) == dict(b)),
    )
    """``(job, setting) -> value as written in tahoe.cfg`` (allowed_times, frequency, cpu)."""

    def limit(self, key: LimitKey) -> Rate | None:
        return self.limits.get(key)

    def with_limit(self, key: LimitKey, rate: Rate | None) -> Overrides:
        """A copy with ``key`` overridden by ``rate``, or cleared when ``rate`` is None."""
        limits: dict[LimitKey, Rate] = dict(self.limits)
        if rate is None:
            limits.pop(key, None)
        else:
            limits[key] = rate
        return attrs.evolve(self, limits=limits)

    def with_job_setting(self, job: str, setting: str, text: str | None) -> Overrides:
        """A copy with ``job``'s ``setting`` overridden by ``text``, or cleared (None)."""
        settings = dict(self.job_settings)
        if text is None:
            settings.pop((job, setting), None)
        else:
            settings[(job, setting)] = text
        return attrs.evolve(self, job_settings=settings)

    def with_paused(self, job: str, paused: bool) -> Overrides:
        jobs = self.paused | {job} if paused else self.paused - {job}
        return attrs.evolve(self, paused=jobs)
