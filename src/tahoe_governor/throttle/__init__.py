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
from tahoe_governor.throttle.foolscap_shaping import (
    ShapedClientEndpoint,
    ShapedHintHandler,
    ShapedServerEndpoint,
)
from tahoe_governor.throttle.shaped_protocol import ShapedProtocol, ShapingFactory
from tahoe_governor.throttle.shaper import KEEP, NodeStats, PeerStats, Shaper
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
    "KEEP",
    "NodeStats",
    "MIN_BURST_BYTES",
    "PeerStats",
    "PercentileRate",
    "ShapedClientEndpoint",
    "ShapedHintHandler",
    "ShapedProtocol",
    "ShapedServerEndpoint",
    "Shaper",
    "ShapingFactory",
    "TokenBucket",
    "UNLIMITED",
    "WindowRate",
    "default_burst",
]
