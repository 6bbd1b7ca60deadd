"""Benchmark of the throttle core: one bucket decision, one estimator tick.

Prints JSON. Timings are also given as a ratio to a baseline measured in the
same run (an empty Python method call), since these machines are shared.

    python benchmarks/bench_throttle.py
"""

from __future__ import annotations

import json
import time

import numpy as np

from tahoe_governor.throttle import (
    BucketChain,
    ChannelCounts,
    EwmaRate,
    PercentileRate,
    TokenBucket,
    WindowRate,
)


def best_ns_per_call(fn, calls: int, repeats: int = 5) -> float:
    """The fastest of ``repeats`` runs of ``calls`` calls, in ns per call."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn(calls)
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


class _Empty:
    def method(self, n: int, now: float) -> int:
        return n


def baseline(calls: int) -> None:
    obj = _Empty()
    now = 0.0
    for _ in range(calls):
        obj.method(100, now)
        now += 1e-6


def bucket_decision(calls: int) -> None:
    bucket = TokenBucket(1_000_000.0)
    now = 0.0
    for _ in range(calls):
        if bucket.delay(1500, now) == 0.0:
            bucket.take(1500, now)
        now += 1e-6


def chain_decision(calls: int) -> None:
    chain = BucketChain([TokenBucket(10_000_000.0), TokenBucket(1_000_000.0)])
    now = 0.0
    for _ in range(calls):
        chain.take(1500, now)
        now += 1e-6


def estimator_tick_ns(channels: int, ticks: int = 200) -> float:
    """Fastest of ``ticks`` ticks of all three estimators over ``channels`` channels.

    The window lengths are the shaper's: EWMA with a 2 s half-life, a 10 s
    window and a one-minute percentile window, at 4 ticks per second.
    """
    counts = ChannelCounts(
        [EwmaRate(0.25, 2.0), WindowRate(0.25, 40), PercentileRate(0.25, 240, 95.0)]
    )
    for i in range(channels):
        counts.channel(i)
    rng = np.random.default_rng(1)
    best = float("inf")
    for _ in range(ticks):
        for i in rng.integers(0, channels, size=min(channels, 64)):
            counts.add(int(i), 1500)
        start = time.perf_counter_ns()
        counts.tick()
        best = min(best, time.perf_counter_ns() - start)
    return best


def main() -> None:
    calls = 200_000
    base = best_ns_per_call(baseline, calls)
    bucket = best_ns_per_call(bucket_decision, calls)
    chain = best_ns_per_call(chain_decision, calls)
    ticks = {n: estimator_tick_ns(n) for n in (10, 1_000, 10_000)}
    print(
        json.dumps(
            {
                "baseline_empty_method_ns": round(base, 1),
                "bucket_decision_ns": round(bucket, 1),
                "bucket_decision_vs_baseline": round(bucket / base, 2),
                "chain_of_two_take_ns": round(chain, 1),
                "estimator_tick_us": {str(n): round(ns / 1000, 1) for n, ns in ticks.items()},
                "targets": {"bucket_decision_ns": "< 2000", "estimator_tick_us[10000]": "< 1000"},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
