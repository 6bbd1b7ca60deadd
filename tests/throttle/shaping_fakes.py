"""In-memory pieces for the shaping tests: a timed transport and a recording protocol."""

from __future__ import annotations

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from tahoe_governor.throttle import ConnectionShaper, ShapedProtocol, ShapingFactory

TUBID_A = "a" * 32
TUBID_B = "b" * 32
TUBID_C = "c" * 32


class TimedTransport(StringTransport):
    """A StringTransport that records when each write reached it, and TLS starts."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.writes: list[tuple[float, int]] = []
        self.tls_started_at: int | None = None  # bytes written before startTLS

    def write(self, data: bytes) -> None:
        self.writes.append((self.clock.seconds(), len(data)))
        super().write(data)

    def startTLS(self, contextFactory: object, normal: bool = True) -> None:
        self.tls_started_at = len(self.value())


class RecordingProtocol(Protocol):
    """Keeps what it receives and whether it was told the connection was lost.

    ``peer`` is the key the test's identify function hands the shaper.
    """

    def __init__(self, peer: str | None) -> None:
        self.peer = peer
        self.received: list[tuple[float, bytes]] = []
        self.lost = False
        self.received_before_lost = 0
        self.clock: Clock | None = None

    def dataReceived(self, data: bytes) -> None:
        now = self.clock.seconds() if self.clock is not None else 0.0
        self.received.append((now, data))

    def connectionLost(self, reason: object = None) -> None:
        self.lost = True
        self.received_before_lost = sum(len(d) for _, d in self.received)

    def data(self) -> bytes:
        return b"".join(d for _, d in self.received)


def connect(
    shaper: ConnectionShaper, clock: Clock, peer: str | None = TUBID_A
) -> tuple[ShapedProtocol, RecordingProtocol, TimedTransport]:
    """A shaped connection to ``peer`` over a TimedTransport."""
    inner = RecordingProtocol(peer)
    inner.clock = clock
    factory = ShapingFactory(
        shaper, Factory.forProtocol(lambda: inner), identify=lambda p: p.peer
    )
    wrapper = factory.buildProtocol(None)
    assert wrapper is not None
    transport = TimedTransport(clock)
    wrapper.makeConnection(transport)
    return wrapper, inner, transport


def max_in_window(events: list[tuple[float, int]], window: float) -> int:
    """The most bytes of ``events`` (time, bytes) within any closed window of
    ``window`` seconds (windows start at an event: that is where maxima are)."""
    best = 0
    j = 0
    total = 0
    for i in range(len(events)):
        while j < len(events) and events[j][0] <= events[i][0] + window + 1e-9:
            total += events[j][1]
            j += 1
        best = max(best, total)
        total -= events[i][1]
    return best


def run(clock: Clock, seconds: float, step: float = 0.001) -> None:
    """Advance ``clock`` by ``seconds`` in steps of ``step`` (timers fire in order)."""
    steps = int(round(seconds / step))
    for _ in range(steps):
        clock.advance(step)
