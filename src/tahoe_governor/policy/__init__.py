"""The policy layer: tahoe.cfg directives, time windows, the limits engine, job state.

Knows Tahoe's configuration file but no network; never reads the wall
clock (instants are arguments or come from an injected ``IReactorTime``).
"""

from tahoe_governor.policy.allowed_times import AllowedTimes
from tahoe_governor.policy.config import (
    DIRECTIVES,
    Job,
    LinkPolicy,
    PeerLimits,
    Policy,
    load_policy,
    parse_policy_text,
)
from tahoe_governor.policy.engine import (
    Admission,
    EffectiveLimit,
    JobLimits,
    Limits,
    PeerLimit,
    limits_at,
)
from tahoe_governor.policy.errors import ConfigError, ConfigProblem
from tahoe_governor.policy.measurements import Measurements
from tahoe_governor.policy.overrides import LimitKey, Overrides
from tahoe_governor.policy.peers import KnownPeer, PeerResolution, PeerSelector, resolve_selector
from tahoe_governor.policy.schedule import Schedule, ScheduleEntry
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.policy.state_db import Run, StateDatabase, StateDatabaseError, state_db_path
from tahoe_governor.policy.units import Rate, parse_duration, parse_rate

__all__ = [
    "Admission",
    "AllowedTimes",
    "ConfigError",
    "ConfigProblem",
    "DIRECTIVES",
    "EffectiveLimit",
    "Job",
    "JobLimits",
    "KnownPeer",
    "LimitKey",
    "Limits",
    "LinkPolicy",
    "LivePolicy",
    "Measurements",
    "Overrides",
    "PeerLimit",
    "PeerLimits",
    "PeerResolution",
    "PeerSelector",
    "Policy",
    "Rate",
    "Run",
    "Schedule",
    "ScheduleEntry",
    "StateDatabase",
    "StateDatabaseError",
    "limits_at",
    "load_policy",
    "parse_duration",
    "parse_policy_text",
    "parse_rate",
    "resolve_selector",
    "state_db_path",
]
