"""Benchmark: a governed node SIGKILLed N times mid-run, against a clean run of the same tree.

Runs ``tahoe-governor run`` as a process on a fresh local grid (an introducer
and three storage servers on 127.0.0.1, one capped at 800 kbit/s), first
without a kill (the baseline), then with ``--kills`` SIGKILLs at seeded random
moments while the run uploads (``tests/node/crash_harness.py``). Prints, as
JSON, for both: the run records, whether ``Latest`` came back byte-identical,
``PRAGMA integrity_check`` of both databases, the bytes the run added to the
grid's share directories and the files the last start uploaded and reused;
then the storage ratio (killed / clean; issue 18's target is at most 1.05)
and the files re-uploaded by the last start. The same seed replays the same
kill moments.

    python benchmarks/bench_crash.py [--kills 20] [--seed 1018] [--files 48] [--size 50000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' harness

from tests.node.crash_harness import crash_and_recover  # noqa: E402

from tahoe_governor.demo.local_grid import LocalGrid  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1018)
    parser.add_argument("--files", type=int, default=48)
    parser.add_argument("--size", type=int, default=50_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    grid = LocalGrid(root / "grid")
    try:
        grid.start()
        runs = {}
        for name, kills in (("clean", 0), ("killed", args.kills)):
            work = root / name
            work.mkdir()
            report = crash_and_recover(grid, work, kills=kills, seed=args.seed,
                                       files=args.files, size=args.size)
            runs[name] = attrs.asdict(report)
            print(json.dumps({name: runs[name]}), flush=True)
        clean, killed = runs["clean"], runs["killed"]
        print(json.dumps({
            "storage_ratio_killed_to_clean": round(killed["grid_bytes"] / clean["grid_bytes"], 3),
            "files_uploaded_again_by_last_start": killed["files_uploaded_last_run"],
            "nothing_lost": killed["restored_equal"] and killed["outcomes"].count("completed") == 1
            and set(killed["integrity"].values()) == {"ok"},
        }))
    finally:
        grid.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
