"""Benchmark of the budgets: CPU share under a budget, and the yield loop's step response.

Prints JSON.

- CPU: a CPU-bound loop (SHA-256 over a 64 KiB buffer, the hashing step of a
  backup) gated at 10 %, 25 % and 50 % of one core on the real reactor and
  psutil; the measured process CPU share is reported as a ratio to the
  budget (target 0.9-1.05). The baseline, measured in the same run, is the
  same loop ungated: the share of a core this machine gives it. (The same
  measure on a real backup into a local grid: bench_budgets_backup.py.)
- Cost of one meter tick with the real psutil reader, as a ratio to reading
  the process's CPU time once (the cheapest psutil call).
- Yield: the closed loop simulated on a task.Clock (real meters and
  estimators, a fake interface carrying our governed flow plus a competing
  flow that starts at 20 s and stops at 40 s): reaction times, steady-state
  wobble, and the link's total over the busy threshold.
- Yield on loopback (``--loopback``): the same loop with real TCP connections
  to a sink on 127.0.0.1, the real psutil counters of the loopback interface,
  our flow sent through a token bucket whose rate the rule sets every tick,
  and a competing flow that starts and stops. It runs in a private network
  namespace (``unshare --net``, with its own ``lo``) so that other programs'
  loopback traffic on this shared machine does not count; without the
  privilege to make one it says so and uses the machine's ``lo``. The "link"
  is nominal: the loopback interface has no capacity to speak of.

    python benchmarks/bench_budgets.py [--seconds 15] [--loopback]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Generator
from typing import Any

import numpy as np
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol

from tahoe_governor.policy.engine import busy_limit
from tahoe_governor.throttle.counters import PsutilCounters, choose_interfaces
from tahoe_governor.throttle.meters import Meters, MeterTick
from tahoe_governor.throttle.testing import (
    YieldScenario,
    YieldTrace,
    run_gated_hashing,
    simulate_yield,
)
from tahoe_governor.throttle.token_bucket import TokenBucket


@defer.inlineCallbacks
def cpu_figures(seconds: float) -> Generator[Any, Any, Any]:
    baseline = yield run_gated_hashing(reactor, float("inf"), min(seconds, 3.0))
    runs = {}
    for budget in (0.10, 0.25, 0.50):
        result = yield run_gated_hashing(reactor, budget, seconds)
        runs[f"{budget:.0%}"] = {
            "cpu_share": round(result["cpu_share"], 4),
            "share_over_budget": round(result["cpu_share"] / budget, 3),
            "charged_share_10s": round(result["charged_share"], 4),
            "seconds": round(result["seconds"], 2),
        }
    return {
        "ungated_baseline_cpu_share": round(baseline["cpu_share"], 3),
        "ungated_baseline_hash_MB_per_s": round(
            baseline["hashed_bytes"] / baseline["seconds"] / 1e6, 1
        ),
        "budgets": runs,
        "target_share_over_budget": "0.9-1.05",
    }


def meter_tick_cost(ticks: int = 400) -> dict[str, float]:
    counters = PsutilCounters()
    meters = Meters(reactor, counters, ["lo"])
    meters.start()
    meters.stop()
    start = time.perf_counter_ns()
    for _ in range(ticks):
        counters.process_cpu_seconds()
    base = (time.perf_counter_ns() - start) / ticks
    start = time.perf_counter_ns()
    for _ in range(ticks):
        meters._tick(1)  # one sample: every psutil read and every estimator update
    tick = (time.perf_counter_ns() - start) / ticks
    return {
        "process_cpu_read_us": round(base / 1000, 1),
        "meter_tick_us": round(tick / 1000, 1),
        "meter_tick_vs_process_cpu_read": round(tick / base, 1),
        "meter_cpu_share_at_4_hz": round(4 * tick / 1e9, 5),
    }


def yield_figures() -> dict[str, object]:
    figures: dict[str, object] = {}
    for noise in (0.0, 0.2, 0.4):
        scenario = YieldScenario(competing_noise=noise)
        figures[f"competing_noise_{noise:.0%}"] = simulate_yield(busy_limit, scenario).figures()
    s = YieldScenario()
    figures["scenario"] = {
        "capacity_bytes_per_second": s.capacity,
        "busy_fraction": s.busy_fraction,
        "competing_bytes_per_second": s.competing,
        "floor_bytes_per_second": s.floor,
        "follow_seconds": s.follow_seconds,
        "interface_delay_seconds": s.interface_delay,
        "tick_seconds": s.tick_seconds,
    }
    figures["targets"] = {
        "down_seconds": "<= 2",
        "up_seconds": "<= 5",
        "max_deviation_1s": "<= 0.10",
        "link_total_over_busy_threshold_max_1s": "<= 1.05",
    }
    return figures


class _Sink(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        pass


class _PacedSender(protocol.Protocol):
    """Writes as fast as its token bucket allows, every 10 ms, while ``active``."""

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket
        self.sent = 0
        self.active = True
        self._loop = task.LoopingCall(self._send)

    def connectionMade(self) -> None:
        self._loop.start(0.01)

    def _send(self) -> None:
        if not self.active:
            return
        n = self.bucket.take(64 * 1024, reactor.seconds())
        if n:
            self.transport.write(b"\0" * n)
            self.sent += n

    def stop(self) -> None:
        self._loop.stop()
        self.transport.loseConnection()


@defer.inlineCallbacks
def loopback_yield(
    capacity: float = 2_500_000.0, competing: float = 1_000_000.0
) -> Generator[Any, Any, Any]:
    """The yield loop on real loopback TCP and real interface counters (bounded: 30 s)."""
    scenario = YieldScenario(
        capacity=capacity,
        floor=0.05 * capacity,
        competing=competing,
        competing_noise=0.0,
        starts_at=10.0,
        stops_at=20.0,
        duration=30.0,
    )
    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        protocol.Factory.forProtocol(_Sink)
    )
    address = port.getHost()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", address.port)
    counters = PsutilCounters()
    (interface,) = choose_interfaces(counters, peers=["127.0.0.1"])
    start_limit = busy_limit(capacity, scenario.busy_fraction, 0.0, scenario.floor)
    ours = yield connectProtocol(endpoint, _PacedSender(TokenBucket(start_limit)))
    theirs = yield connectProtocol(endpoint, _PacedSender(TokenBucket(competing)))
    theirs.active = False
    meters = Meters(reactor, counters, [interface], own_bytes=lambda: (ours.sent, 0))
    start = reactor.seconds()
    rows: list[tuple[float, float, float, float, float]] = []

    def on_tick(tick: MeterTick) -> None:
        now = tick.now - start
        theirs.active = scenario.starts_at <= now < scenario.stops_at
        other = meters.readings().other_up
        limit = busy_limit(capacity, scenario.busy_fraction, other, scenario.floor)
        ours.bucket.set_rate(limit, reactor.seconds())
        rows.append(
            (
                now,
                tick.own_bytes[0] / tick.seconds,
                limit,
                other,
                tick.interface_bytes[0] / tick.seconds,
            )
        )

    meters.subscribe(on_tick)
    meters.start()
    yield task.deferLater(reactor, scenario.duration, lambda: None)
    meters.stop()
    ours.stop()
    theirs.stop()
    yield port.stopListening()
    table = np.array(rows)
    trace = YieldTrace(
        scenario=scenario,
        times=table[:, 0],
        governed=table[:, 1],
        limit=table[:, 2],
        other=table[:, 3],
        link=table[:, 4],
    )
    figures = trace.figures()
    figures["interface"] = interface
    figures["scenario"] = {
        "nominal_capacity_bytes_per_second": capacity,
        "busy_fraction": scenario.busy_fraction,
        "competing_bytes_per_second": competing,
        "competing_runs_seconds": [scenario.starts_at, scenario.stops_at],
    }
    return figures


def loopback_yield_isolated() -> dict[str, Any]:
    """Run :func:`loopback_yield` in a fresh network namespace, or here if that fails."""
    inner = shlex.join([sys.executable, __file__, "--loopback-here"])
    command = ["unshare", "--net", "sh", "-c", f"ip link set lo up && exec {inner}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
        result: dict[str, Any] = json.loads(done.stdout)
        result["network_namespace"] = "private (unshare --net)"
        return result
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        done = subprocess.run(
            [sys.executable, __file__, "--loopback-here"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        result = json.loads(done.stdout)
        result["network_namespace"] = f"the machine's (no private namespace: {e})"
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per CPU budget run")
    parser.add_argument(
        "--loopback", action="store_true", help="also run the yield loop on loopback TCP (30 s)"
    )
    parser.add_argument("--loopback-here", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    out: dict[str, object] = {}

    if args.loopback_here:  # the inner run, inside the namespace

        @defer.inlineCallbacks
        def run_loopback() -> Generator[Any, Any, Any]:
            try:
                out.update((yield loopback_yield()))
            finally:
                reactor.stop()

        reactor.callWhenRunning(run_loopback)
        reactor.run()
        print(json.dumps(out))
        return

    @defer.inlineCallbacks
    def run() -> Generator[Any, Any, Any]:
        try:
            out["meter_tick"] = meter_tick_cost()
            out["yield_simulation"] = yield_figures()
            out["cpu"] = yield cpu_figures(args.seconds)
            if args.loopback:
                out["yield_loopback"] = loopback_yield_isolated()
        finally:
            reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
