"""Benchmark of the budgets: CPU share under a budget, and the yield loop's step response.

Prints JSON.

- CPU: a CPU-bound loop (SHA-256 over a 64 KiB buffer, the hashing step of a
  backup) gated at 10 %, 25 % and 50 % of one core on the real reactor and
  psutil; the measured process CPU share is reported as a ratio to the
  budget (target 0.9-1.05). The baseline, measured in the same run, is the
  same loop ungated: the share of a core this machine gives it. (The full
  version, a backup of a local tree into a local grid, comes with the backup
  walker.)
- Cost of one meter tick with the real psutil reader, as a ratio to reading
  the process's CPU time once (the cheapest psutil call).
- Yield: the closed loop simulated on a task.Clock (real meters and
  estimators, a fake interface carrying our governed flow plus a competing
  flow that starts at 20 s and stops at 40 s): reaction times, steady-state
  wobble, and the link's total over the busy threshold.

    python benchmarks/bench_budgets.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Generator
from typing import Any

from twisted.internet import defer, reactor

from tahoe_governor.throttle.counters import PsutilCounters
from tahoe_governor.throttle.meters import Meters
from tahoe_governor.throttle.testing import YieldScenario, run_gated_hashing, simulate_yield


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
        figures[f"competing_noise_{noise:.0%}"] = simulate_yield(scenario).figures()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per CPU budget run")
    args = parser.parse_args()
    out: dict[str, object] = {}

    @defer.inlineCallbacks
    def run() -> Generator[Any, Any, Any]:
        try:
            out["meter_tick"] = meter_tick_cost()
            out["yield_simulation"] = yield_figures()
            out["cpu"] = yield cpu_figures(args.seconds)
        finally:
            reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
