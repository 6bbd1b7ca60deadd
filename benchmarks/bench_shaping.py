"""Benchmark of shaping on real Foolscap connections (loopback, TLS on).

Prints JSON. Every figure comes from this one run, with its baseline measured
in the same run (these machines are shared). Both Tubs of each run live in
this process, on one reactor, talking over 127.0.0.1.

- overhead: uncapped payload throughput with a Shaper installed on both Tubs
  divided by raw Foolscap throughput (target >= 0.95), from alternating
  short segments on two pairs of connected Tubs: the ratio of totals, the
  median of the per-round ratios, and the ratio of bytes per CPU-second.
- accuracy: a client capped (per peer, upload) at 64 KiB/s, 1 MiB/s and
  8 MiB/s: achieved / cap over ``--seconds`` after a 1 s warm-up (target
  0.97-1.00), and burstiness, the most bytes seen in any 250 ms window
  (from the start) / (cap * 0.25 s + burst) (target <= 1.0). Bytes are
  counted as they reach the receiving protocol. The same for a cap on the
  receiving side (``down``).
- baseline: the same accuracy figures for Twisted's ThrottlingFactory put
  under the connection the same way: ``writeLimit`` on the sender, and
  ``readLimit`` on the receiver.
- isolation: one client, three servers, the first capped at 64 KiB/s in
  alternate phases (set and lifted live): the capped server's received rate
  / cap (target <= 1.02), and the others' throughput in capped phases
  relative to uncapped phases (target >= 0.9).

    python benchmarks/bench_shaping.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from foolscap.api import Referenceable, Tub
from foolscap.connections.tcp import DefaultTCP
from foolscap.eventual import flushEventualQueue
from foolscap.ipb import IConnectionHintHandler
from foolscap.util import allocate_tcp_port
from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import AlreadyCalled
from twisted.internet.interfaces import IStreamClientEndpoint, IStreamServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.protocols.policies import ThrottlingFactory, WrappingFactory
from zope.interface import implementer

from tahoe_governor.throttle import Shaper, ShapingFactory, default_burst

KiB = 1024
MiB = 1024 * 1024
CAPS = {"64KiB/s": 64 * KiB, "1MiB/s": 1 * MiB, "8MiB/s": 8 * MiB}
WARMUP_SECONDS = 1.0


class Sink(Referenceable):
    def remote_take(self, data: bytes) -> int:
        return len(data)


class Meter:
    """Times and sizes of the bytes a server's protocol receives (via a
    Shaper with no limits, through its observer hook)."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.shaper = Shaper(reactor)
        self.events: list[tuple[float, int]] = []
        self.shaper.add_observer(self._observe)

    def _observe(self, direction: str, tubid: str | None, n: int) -> None:
        if direction == "down":
            self.events.append((self.reactor.seconds(), n))

    def bytes_between(self, start: float, end: float) -> int:
        return sum(n for t, n in self.events if start <= t < end)

    def max_in_window(self, window: float) -> int:
        events, best, total, j = self.events, 0, 0, 0
        for i in range(len(events)):
            while j < len(events) and events[j][0] <= events[i][0] + window:
                total += events[j][1]
                j += 1
            best = max(best, total)
            total -= events[i][1]
        return best


# -- ThrottlingFactory put under a Foolscap connection, the same way as ours --

class TeardownSafeThrottlingFactory(ThrottlingFactory):
    """ThrottlingFactory, except that closing cannot fail.

    With ``writeLimit`` and no producer registered (Foolscap registers none)
    its timer dies the first second the limit is exceeded (AttributeError on
    ``None.pauseProducing``); the last connection's close then cancels that
    dead timer, raising AlreadyCalled out of ``connectionLost`` so Foolscap
    never learns the connection closed. We tolerate only that, to finish the run.
    """

    def unregisterProtocol(self, p: Any) -> None:
        try:
            super().unregisterProtocol(p)
        except AlreadyCalled:
            pass


@implementer(IStreamClientEndpoint)
class ThrottledClientEndpoint:
    def __init__(self, endpoint: Any, **limits: int) -> None:
        self.endpoint, self.limits = endpoint, limits

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = self.endpoint.connect(
            TeardownSafeThrottlingFactory(factory, **self.limits))
        return d.addCallback(lambda wrapper: wrapper.wrappedProtocol)


@implementer(IConnectionHintHandler)
class ThrottledTCP:
    def __init__(self, **limits: int) -> None:
        self.limits = limits

    def hint_to_endpoint(self, hint: str, reactor: Any, update_status: Any) -> Any:
        endpoint, host = DefaultTCP().hint_to_endpoint(hint, reactor, update_status)
        return ThrottledClientEndpoint(endpoint, **self.limits), host

    def describe(self) -> str:
        return "tcp"


@implementer(IStreamServerEndpoint)
class ThrottledServerEndpoint:
    def __init__(self, endpoint: Any, **limits: int) -> None:
        self.endpoint, self.limits = endpoint, limits
        self.factories: list[ThrottlingFactory] = []

    def listen(self, factory: Any) -> defer.Deferred[Any]:
        throttling = TeardownSafeThrottlingFactory(factory, **self.limits)
        self.factories.append(throttling)
        d: defer.Deferred[Any] = self.endpoint.listen(throttling)
        return d

    def resume_reading(self) -> None:
        """Let paused reads go on, so the server sees the client close
        (after a burst, ThrottlingFactory pauses reading for a long time)."""
        for factory in self.factories:
            if factory.unthrottleReadsID is not None and factory.unthrottleReadsID.active():
                factory.unthrottleReadsID.cancel()
                factory.unthrottleReads()


# -- one transfer --------------------------------------------------------------

class Grid:
    """Tubs made for one run, stopped together at the end."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.tubs: list[Tub] = []
        self.before_stop: list[Callable[[], None]] = []

    def server(self, shaper: Shaper | None, meter: Meter | None,
               wrap: Callable[[Any], Any] | None = None) -> tuple[Tub, str]:
        tub = Tub()
        port = allocate_tcp_port()
        endpoint: Any = TCP4ServerEndpoint(self.reactor, port, interface="127.0.0.1")
        if wrap is not None:
            endpoint = wrap(endpoint)
            if hasattr(endpoint, "resume_reading"):
                self.before_stop.append(endpoint.resume_reading)
        if shaper is not None:
            shaper.install(tub)
            tub.listenOn(endpoint)
        elif meter is not None:
            meter.shaper.listen_on(tub, endpoint)
        else:
            tub.listenOn(endpoint)
        tub.setLocation(f"tcp:127.0.0.1:{port}")
        tub.startService()
        self.tubs.append(tub)
        return tub, tub.registerReference(Sink())

    def client(self, shaper: Shaper | None, handler: Any = None) -> Tub:
        tub = Tub()
        if handler is not None:
            tub.removeAllConnectionHintHandlers()
            tub.addConnectionHintHandler("tcp", handler)
        if shaper is not None:
            shaper.install(tub)
        tub.startService()
        self.tubs.append(tub)
        return tub

    @defer.inlineCallbacks
    def stop(self) -> Any:
        for hook in self.before_stop:
            hook()
        for tub in self.tubs:
            d = tub.stopService()
            d.addTimeout(10, self.reactor)  # bounded, whatever a baseline does
            d.addErrback(lambda f: print(f"stopping a Tub: {f.value!r}", file=sys.stderr))
            yield d
        yield flushEventualQueue()


def pump(reactor: Any, rref: Any, blob: bytes, window: int, until: float) -> dict[str, Any]:
    """Keep ``window`` calls carrying ``blob`` in flight until ``until``.

    The returned dict counts the calls completed before ``until`` and all
    calls completed; its "drained" Deferred fires once the last call has
    answered after ``until`` (not if the connection is closed first).
    """
    state: dict[str, Any] = {"completed_in_time": 0, "completed": 0, "outstanding": 0,
                             "drained": defer.Deferred()}

    def launch() -> None:
        if reactor.seconds() >= until:
            if state["outstanding"] == 0 and not state["drained"].called:
                state["drained"].callback(reactor.seconds())
            return
        state["outstanding"] += 1
        rref.callRemote("take", blob).addCallbacks(done, failed)

    def done(_: Any) -> None:
        state["outstanding"] -= 1
        state["completed"] += 1
        if reactor.seconds() < until:
            state["completed_in_time"] += 1
        launch()

    def failed(_: Any) -> None:
        state["outstanding"] -= 1  # connection closed at teardown

    for _ in range(window):
        launch()
    return state


def blob_for(cap: float | None) -> bytes:
    size = 256 * KiB if cap is None else int(min(256 * KiB, max(16 * KiB, cap / 4)))
    return bytes(range(256)) * (size // 256)


@defer.inlineCallbacks
def overhead(reactor: Any, rounds: int, segment: float) -> Any:
    """Uncapped payload throughput, raw Foolscap against shapers on both Tubs.

    Both pairs of Tubs are connected first; then ``rounds`` times each pair
    moves data for ``segment`` seconds (which goes first alternates), and
    each segment lasts until its last call has answered. Totals are summed
    per mode, so slow spells of this shared machine hit both modes alike.
    Process CPU time is summed too: bytes per CPU-second is the figure
    least disturbed by other processes.
    """
    grid = Grid(reactor)
    rrefs = {}
    for mode in ("raw", "shaped"):
        _, furl = grid.server(Shaper(reactor) if mode == "shaped" else None, None)
        client = grid.client(Shaper(reactor) if mode == "shaped" else None)
        rrefs[mode] = yield client.getReference(furl)
        yield rrefs[mode].callRemote("take", b"warm")
    blob = blob_for(None)
    totals: dict[str, Any] = {
        mode: {"bytes": 0, "seconds": 0.0, "cpu_seconds": 0.0, "rates": []} for mode in rrefs
    }
    for i in range(rounds):
        for mode in (("raw", "shaped") if i % 2 == 0 else ("shaped", "raw")):
            start, cpu = reactor.seconds(), time.process_time()
            state = pump(reactor, rrefs[mode], blob, 4, start + segment)
            end = yield state["drained"]
            moved = state["completed"] * len(blob)
            totals[mode]["bytes"] += moved
            totals[mode]["seconds"] += end - start
            totals[mode]["cpu_seconds"] += time.process_time() - cpu
            totals[mode]["rates"].append(moved / (end - start))
    yield grid.stop()
    return totals


@defer.inlineCallbacks
def capped_run(reactor: Any, cap: int, seconds: float, how: str) -> Any:
    """One capped transfer; ``how``: shaper-up, shaper-down, tf-write, tf-read."""
    grid = Grid(reactor)
    meter = Meter(reactor)
    client_shaper = Shaper(reactor) if how == "shaper-up" else None
    wrap = None
    if how == "shaper-down":
        meter.shaper.set_node_limit(down=cap)
    if how == "tf-read":
        def wrap(endpoint: Any) -> Any:
            return ThrottledServerEndpoint(endpoint, readLimit=cap)
    server, furl = grid.server(None, meter, wrap)
    handler = ThrottledTCP(writeLimit=cap) if how == "tf-write" else None
    client = grid.client(client_shaper, handler)
    if client_shaper is not None:
        client_shaper.set_peer_limit(server.getTubID(), up=cap)
    rref = yield client.getReference(furl)
    start = reactor.seconds()
    pump(reactor, rref, blob_for(cap), 4, start + WARMUP_SECONDS + seconds)
    yield task.deferLater(reactor, WARMUP_SECONDS + seconds, lambda: None)
    achieved = meter.bytes_between(start + WARMUP_SECONDS, start + WARMUP_SECONDS + seconds)
    achieved_rate = achieved / seconds
    burst = default_burst(cap)
    result = {
        "achieved_bytes_per_second": round(achieved_rate),
        "accuracy": round(achieved_rate / cap, 4),
        "bytes_in_first_second": meter.bytes_between(start, start + 1.0),
        "max_bytes_in_250ms": meter.max_in_window(0.25),
        "burstiness": round(meter.max_in_window(0.25) / (cap * 0.25 + burst), 3),
    }
    yield grid.stop()
    return result


@defer.inlineCallbacks
def isolation(reactor: Any, rounds: int, segment: float) -> Any:
    """One client feeding three servers at once, the first capped at 64 KiB/s
    in every other phase (the cap is set and lifted live, on the same
    connections; the order alternates per round, and each phase starts with
    a 0.5 s settling time that is not measured).

    Returns bytes and seconds per phase ("free", "capped") and server.
    """
    cap, settle = 64 * KiB, 0.5
    grid = Grid(reactor)
    meters = [Meter(reactor) for _ in range(3)]
    servers = [grid.server(None, meter) for meter in meters]
    shaper = Shaper(reactor)
    client = grid.client(shaper)
    capped_tubid = servers[0][0].getTubID()
    rrefs = []
    for _, furl in servers:
        rrefs.append((yield client.getReference(furl)))
    end = reactor.seconds() + rounds * 2 * (settle + segment) + 60
    pump(reactor, rrefs[0], blob_for(cap), 4, end)
    for rref in rrefs[1:]:
        pump(reactor, rref, blob_for(None), 4, end)
    moved = {phase: {"bytes": [0, 0, 0], "seconds": 0.0} for phase in ("free", "capped")}
    for i in range(rounds):
        for phase in (("free", "capped") if i % 2 == 0 else ("capped", "free")):
            shaper.set_peer_limit(capped_tubid, up=cap if phase == "capped" else None)
            yield task.deferLater(reactor, settle, lambda: None)
            start = reactor.seconds()
            yield task.deferLater(reactor, segment, lambda: None)
            stop = reactor.seconds()
            moved[phase]["seconds"] += stop - start
            for k, meter in enumerate(meters):
                moved[phase]["bytes"][k] += meter.bytes_between(start, stop)
    print(f"isolation {moved}", file=sys.stderr)
    yield grid.stop()
    return moved


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass


def wrapper_cost_ns(calls: int = 200_000) -> dict[str, float]:
    """ns per write (100 bytes, like Foolscap's small token writes) and per
    read (16 KiB, one TLS record) through an unlimited ShapedProtocol, through
    Twisted's plain ProtocolWrapper, and straight to the transport/protocol.
    Best of 5; the machine's load hardly disturbs these."""
    small, record = b"x" * 100, b"y" * 16384

    def shaped() -> Any:
        factory = ShapingFactory(  # a connection whose peer is known, as in steady state
            Shaper(Clock()), Factory.forProtocol(Protocol), identify=lambda p: "a" * 32)
        wrapper = factory.buildProtocol(None)
        wrapper.makeConnection(_NullTransport())
        return wrapper

    def plain() -> Any:
        wrapper = WrappingFactory(Factory.forProtocol(Protocol)).buildProtocol(None)
        wrapper.makeConnection(_NullTransport())
        return wrapper

    def best(fn: Callable[[Any], None]) -> float:
        result = float("inf")
        for _ in range(5):
            start = time.perf_counter_ns()
            fn(calls)
            result = min(result, (time.perf_counter_ns() - start) / calls)
        return round(result, 1)

    def writes(target: Any) -> Callable[[int], None]:
        def run(n: int) -> None:
            write = target.write
            for _ in range(n):
                write(small)
        return run

    def reads(target: Any) -> Callable[[int], None]:
        def run(n: int) -> None:
            receive = target.dataReceived
            for _ in range(n):
                receive(record)
        return run

    direct = Protocol()
    direct.makeConnection(_NullTransport())
    return {
        "write_direct_ns": best(writes(_NullTransport())),
        "write_protocolwrapper_ns": best(writes(plain())),
        "write_shaped_ns": best(writes(shaped())),
        "read_direct_ns": best(reads(direct)),
        "read_protocolwrapper_ns": best(reads(plain())),
        "read_shaped_ns": best(reads(shaped())),
    }


@defer.inlineCallbacks
def main(reactor: Any, seconds: float, rounds: int, segment: float) -> Any:
    began = time.monotonic()

    def progress(what: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {what}", file=sys.stderr)

    totals = yield overhead(reactor, rounds, segment)
    raw, shaped = totals["raw"], totals["shaped"]
    progress(f"overhead {totals}")
    paired = sorted(s / r for s, r in zip(shaped["rates"], raw["rates"], strict=True))
    out: dict[str, Any] = {
        "command": "python benchmarks/bench_shaping.py " + " ".join(sys.argv[1:]),
        "seconds_per_accuracy_run": seconds,
        "overhead": {
            "raw_foolscap_MBps": round(raw["bytes"] / raw["seconds"] / 1e6, 1),
            "shaped_uncapped_MBps": round(shaped["bytes"] / shaped["seconds"] / 1e6, 1),
            "ratio": round(
                (shaped["bytes"] / shaped["seconds"]) / (raw["bytes"] / raw["seconds"]), 3),
            "paired_median_ratio": round(paired[len(paired) // 2], 3),
            "raw_MB_per_cpu_second": round(raw["bytes"] / raw["cpu_seconds"] / 1e6, 1),
            "shaped_MB_per_cpu_second": round(shaped["bytes"] / shaped["cpu_seconds"] / 1e6, 1),
            "cpu_ratio": round((shaped["bytes"] / shaped["cpu_seconds"])
                               / (raw["bytes"] / raw["cpu_seconds"]), 3),
            "rounds": rounds,
            "segment_seconds": segment,
            "target": "ratio >= 0.95",
        },
    }
    for label, how in (
        ("accuracy_shaper_up", "shaper-up"),
        ("accuracy_shaper_down", "shaper-down"),
        ("baseline_throttlingfactory_writeLimit", "tf-write"),
        ("baseline_throttlingfactory_readLimit", "tf-read"),
    ):
        out[label] = {}
        for name, cap in CAPS.items():
            out[label][name] = yield capped_run(reactor, cap, seconds, how)
            progress(f"{label} {name}: {out[label][name]}")
    moved = yield isolation(reactor, 3, seconds / 5)
    free = [n / moved["free"]["seconds"] for n in moved["free"]["bytes"]]
    held = [n / moved["capped"]["seconds"] for n in moved["capped"]["bytes"]]
    out["isolation"] = {
        "capped_peer_rate_over_cap": round(held[0] / (64 * KiB), 4),
        "others_vs_uncapped_phase": [
            round(h / f, 3) for h, f in zip(held[1:], free[1:], strict=True)],
        "uncapped_phase_MBps": [round(f / 1e6, 2) for f in free],
        "capped_phase_MBps": [round(h / 1e6, 3) for h in held],
        "seconds_per_phase": round(moved["capped"]["seconds"], 1),
        "targets": {"capped_peer_rate_over_cap": "<= 1.02", "others_vs_uncapped_phase": ">= 0.9"},
    }
    out["wrapper_cost"] = wrapper_cost_ns()
    out["targets"] = {"accuracy": "0.97-1.00", "burstiness": "<= 1.0"}
    out["wall_seconds"] = round(time.monotonic() - began, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of each accuracy run, after a 1 s warm-up")
    parser.add_argument("--rounds", type=int, default=20,
                        help="overhead: alternating segments per mode")
    parser.add_argument("--segment", type=float, default=0.5,
                        help="overhead: seconds of each segment")
    args = parser.parse_args()
    task.react(main, (args.seconds, args.rounds, args.segment))
