"""The throttle layer: token buckets, rate estimators, transport shaping, meters and budgets.

Generic: knows nothing of Tahoe-LAFS or tahoe.cfg, and never reads a clock
(time is an argument or an injected ``IReactorTime``).
"""

from tahoe_governor.throttle.counters import PsutilCounters, SystemCounters, choose_interfaces
from tahoe_governor.throttle.cpu_budget import CpuDutyCycle, CpuGate, JobCpuBudgets, attribute_cpu
from tahoe_governor.throttle.estimators import (
    ChannelCounts,
    EwmaRate,
    PercentileRate,
    WindowRate,
)
from tahoe_governor.throttle.foolscap_shaping import (
    ShapedClientEndpoint,
    ShapedHintHandler,
    ShapedServerEndpoint,
    Shaper,
)
from tahoe_governor.throttle.link_capacity import LinkCapacityEstimate
from tahoe_governor.throttle.meters import IdleRule, MeterReadings, Meters, MeterTick
from tahoe_governor.throttle.other_traffic import OtherTrafficEstimate
from tahoe_governor.throttle.shaped_protocol import ShapedProtocol, ShapingFactory
from tahoe_governor.throttle.shaper import KEEP, ConnectionShaper, NodeStats, PeerStats
from tahoe_governor.throttle.token_bucket import (
    DEFAULT_BURST_SECONDS,
    MIN_BURST_BYTES,
    UNLIMITED,
    BucketChain,
    TokenBucket,
    default_burst,
)

__all__ = [
    "BucketChain",
    "ChannelCounts",
    "ConnectionShaper",
    "CpuDutyCycle",
    "CpuGate",
    "DEFAULT_BURST_SECONDS",
    "EwmaRate",
    "IdleRule",
    "JobCpuBudgets",
    "LinkCapacityEstimate",
    "MIN_BURST_BYTES",
    "MeterReadings",
    "MeterTick",
    "Meters",
    "OtherTrafficEstimate",
    "PercentileRate",
    "PsutilCounters",
    "SystemCounters",
    "KEEP",
    "NodeStats",
    "PeerStats",
    "ShapedClientEndpoint",
    "ShapedHintHandler",
    "ShapedProtocol",
    "ShapedServerEndpoint",
    "Shaper",
    "ShapingFactory",
    "TokenBucket",
    "UNLIMITED",
    "WindowRate",
    "attribute_cpu",
    "choose_interfaces",
    "default_burst",
]
