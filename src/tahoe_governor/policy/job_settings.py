"""A job's settings changed live (allowed times, frequency, CPU budget), as overrides of tahoe.cfg.

The owner may change three of a job's settings from the private page without
editing tahoe.cfg. Each is written as in tahoe.cfg and parsed by the same
parser (so a value ``check`` would refuse is refused with the same words), kept
as an override in the state database until cleared, and applied on top of the
file: :func:`with_job_settings` is the policy the node runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal
from zoneinfo import ZoneInfo

import attrs

from tahoe_governor.policy.allowed_times import AllowedTimes
from tahoe_governor.policy.config import Job, Policy, parse_cpu
from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.policy.units import parse_duration

JobSetting = Literal["allowed_times", "frequency", "cpu"]
JOB_SETTINGS: tuple[JobSetting, ...] = ("allowed_times", "frequency", "cpu")

EXPECTED = {
    "allowed_times": "times as in tahoe.cfg, e.g. 2200-0600 or Mon-Fri 2200-0800",
    "frequency": "a duration, e.g. 1day or 1week",
    "cpu": "a share of one core, e.g. 25%, or unlimited",
}


def check_setting(setting: str) -> JobSetting:
    """``setting`` if it is one of :data:`JOB_SETTINGS`; ``ValueError`` naming them otherwise."""
    if setting not in JOB_SETTINGS:
        raise ValueError(f"unknown job setting {setting!r}: expected one of "
                         f"{', '.join(JOB_SETTINGS)}")
    return setting


def _parser(setting: JobSetting, tz: ZoneInfo) -> Callable[[str], object]:
    return {
        "allowed_times": lambda text: AllowedTimes.parse(text, tz),
        "frequency": parse_duration,
        "cpu": parse_cpu,
    }[setting]


def parse_job_setting(setting: str, text: str, tz: ZoneInfo) -> object:
    """``text`` parsed as tahoe.cfg's ``bN.<setting>``; ValueSyntaxError says what was expected."""
    try:
        return _parser(check_setting(setting), tz)(text)
    except ValueSyntaxError as e:
        raise ValueSyntaxError(f"{setting} = {text.strip()!r}: expected {e.expected}") from None


def _apply(job: Job, setting: JobSetting, value: object) -> Job:
    if setting == "allowed_times":
        assert isinstance(value, AllowedTimes)
        return attrs.evolve(job, allowed_times=value)
    if setting == "frequency":
        assert isinstance(value, float)
        return attrs.evolve(job, frequency=value)
    assert value is None or isinstance(value, float)
    # A cpu.idle of tahoe.cfg above cpu stays (never below the new cpu); else it follows.
    idle = job.cpu_idle if job.cpu_idle is not None and job.cpu_idle != job.cpu else None
    return attrs.evolve(job, cpu=value,
                        cpu_idle=None if value is None else max(idle or value, value))


def with_job_settings(policy: Policy, settings: Mapping[tuple[str, str], str]) -> Policy:
    """``policy`` with each ``(job, setting) -> text`` override applied; overrides of jobs
    the policy no longer has are left out (kept, for when the job comes back)."""
    if not settings:
        return policy
    jobs = []
    for job in policy.jobs:
        for setting in JOB_SETTINGS:
            text = settings.get((job.name, setting))
            if text is not None:
                job = _apply(job, setting, parse_job_setting(setting, text, policy.tz))
        jobs.append(job)
    return attrs.evolve(policy, jobs=tuple(jobs))
