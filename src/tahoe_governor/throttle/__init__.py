"""The throttle layer: token buckets, rate estimators and transport shaping.

Generic: knows nothing of Tahoe-LAFS or tahoe.cfg, and never reads a clock
(time is an argument or an injected ``IReactorTime``).
"""

from tahoe_governor.throttle.estimators import (
    ChannelCounts,
    EwmaRate,
    PercentileRate,
    WindowRate,
)
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
    "DEFAULT_BURST_SECONDS",
    "EwmaRate",
    "MIN_BURST_BYTES",
    "PercentileRate",
    "TokenBucket",
    "UNLIMITED",
    "WindowRate",
    "default_burst",
]
