"""The recent rates behind the status pages' charts: a bounded history of samples.

:class:`RateHistory` asks the node for a status snapshot every
``interval_seconds`` on the injected reactor and keeps, for the last
``span_seconds``, each peer's smoothed rates (up and down), keyed by its TubID
(a nickname is the server's own choice, and two servers may announce the same
one), and each job's upload rate. It holds public values only (TubIDs,
nicknames, job names, numbers), so
the public page may draw it. Memory is bounded: at most
``span_seconds / interval_seconds + 1`` samples.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

import attrs
from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.python import log

from tahoe_governor.status import GovernorStatus, PeerStatus
from tahoe_governor.status.display_names import display_name
from tahoe_governor.throttle.reactor_clock import ReactorClock

DEFAULT_INTERVAL_SECONDS = 5.0
DEFAULT_SPAN_SECONDS = 15 * 60.0


def peer_label(peer: PeerStatus) -> str:
    """How a peer is named on the pages: its nickname escaped, else the start of its TubID."""
    return display_name(peer.nickname) or peer.tubid[:8]


@attrs.frozen
class RateSample:
    """The rates at one instant (reactor seconds), in bytes per second; peers by TubID."""

    at: float
    peers_up: dict[str, float]
    peers_down: dict[str, float]
    jobs: dict[str, float]
    peer_labels: dict[str, str] = attrs.field(factory=dict)
    """TubID -> :func:`peer_label` at that instant."""


def sample_of(status: GovernorStatus, at: float) -> RateSample:
    """The rates of ``status`` as a sample taken at ``at``."""
    return RateSample(
        at=at,
        peers_up={p.tubid: p.rate_up for p in status.peers},
        peers_down={p.tubid: p.rate_down for p in status.peers},
        jobs={
            j.name: getattr(j.progress, "rate_bytes_per_second", 0.0)  # a task's: none
            for j in status.jobs
        },
        peer_labels={p.tubid: peer_label(p) for p in status.peers},
    )


class RateHistory(Service):
    """Samples ``read_status()`` every ``interval_seconds`` while the service runs.

    ``reactor`` provides the timer and the sample times (pass the node's
    reactor, or a :class:`~twisted.internet.task.Clock` in tests).
    """

    def __init__(
        self,
        read_status: Callable[[], GovernorStatus],
        reactor: ReactorClock,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        span_seconds: float = DEFAULT_SPAN_SECONDS,
    ) -> None:
        if not interval_seconds > 0:
            raise ValueError(f"interval_seconds must be > 0, got {interval_seconds!r}")
        if not span_seconds >= interval_seconds:
            raise ValueError(
                f"span_seconds must be at least interval_seconds ({interval_seconds}), "
                f"got {span_seconds!r}"
            )
        self._read_status = read_status
        self._reactor = reactor
        self.interval_seconds = interval_seconds
        self.span_seconds = span_seconds
        self._samples: deque[RateSample] = deque(
            maxlen=int(span_seconds // interval_seconds) + 1
        )
        self._loop: LoopingCall | None = None
        self.recorded = 0
        """Samples recorded so far: a chart drawn at the same count and instant is the same."""

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.sample)
        self._loop.clock = self._reactor
        self._loop.start(self.interval_seconds, now=True)

    def stopService(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        super().stopService()

    def sample(self) -> None:
        """Take one sample now. A failing status read is logged and skipped:
        the chart shows a gap rather than the page breaking."""
        try:
            status = self._read_status()
        except Exception:
            log.err(None, "tahoe-governor: reading the status for the rate history failed")
            return
        self.record(sample_of(status, self._reactor.seconds()))

    def record(self, sample: RateSample) -> None:
        """Add ``sample`` and forget those older than the span."""
        self._samples.append(sample)
        self.recorded += 1
        horizon = sample.at - self.span_seconds
        while self._samples and self._samples[0].at < horizon:
            self._samples.popleft()

    def samples(self, now: float) -> Iterator[RateSample]:
        """The samples of the last ``span_seconds`` before ``now``, oldest first."""
        horizon = now - self.span_seconds
        return (s for s in self._samples if s.at >= horizon)
