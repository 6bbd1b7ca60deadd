"""Benchmark of the policy engine: one evaluation of every effective limit.

LivePolicy re-evaluates on every measurement update, so an evaluation must be
cheap. Prints JSON; timings are also given as a ratio to a baseline measured
in the same run (an evaluation of an empty policy), since these machines are
shared.

    python benchmarks/bench_policy.py
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from tahoe_governor.policy import Measurements, limits_at, parse_policy_text

STORY = Path(__file__).parents[1] / "tests" / "policy" / "configs" / "valid" / "story.cfg"
AMS = ZoneInfo("Europe/Amsterdam")
START = 1_790_000_000.0  # 2026-09-21


def best_us_per_call(fn: Callable[[int], None], calls: int, repeats: int = 5) -> float:
    """The fastest of ``repeats`` runs of ``calls`` calls, in µs per call."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn(calls)
        best = min(best, (time.perf_counter_ns() - start) / calls / 1000)
    return best


def evaluations(policy_text: str, step_seconds: float, fresh: bool) -> Callable[[int], None]:
    """``calls`` evaluations at instants ``step_seconds`` apart; ``fresh`` re-parses the
    policy every time, so no remembered window change helps."""
    policy = parse_policy_text(policy_text, AMS)
    measurements = Measurements(other_up=10_000.0, capacity_down=1e6)

    def run(calls: int) -> None:
        now = START
        for _ in range(calls):
            current = parse_policy_text(policy_text, AMS) if fresh else policy
            running = [job.name for job in current.jobs]
            limits_at(current, now, measurements=measurements, running_jobs=running)
            now += step_seconds

    return run


def main() -> None:
    story = STORY.read_text()
    empty = "[backups]\n[bandwidth]\n"
    base = best_us_per_call(evaluations(empty, 1.0, False), 2_000)
    steady = best_us_per_call(evaluations(story, 1.0, False), 2_000)
    hourly = best_us_per_call(evaluations(story, 3600.0, False), 500)
    cold = best_us_per_call(evaluations(story, 1.0, True), 100, repeats=3)
    print(
        json.dumps(
            {
                "baseline_empty_policy_us": round(base, 1),
                "story_every_second_us": round(steady, 1),
                "story_every_second_vs_baseline": round(steady / base, 1),
                "story_every_hour_us": round(hourly, 1),
                "story_every_hour_vs_baseline": round(hourly / base, 1),
                "story_parse_and_evaluate_us": round(cold, 1),
                "story_parse_and_evaluate_vs_baseline": round(cold / base, 1),
                "targets": {"story_every_second_us": "< 1000"},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
