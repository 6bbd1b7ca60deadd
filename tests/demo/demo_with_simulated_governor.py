"""``tahoe-governor demo`` in a process of its own, the simulated governor in place of the real one.

``python -m tests.demo.demo_with_simulated_governor REPORT_DIR FAULT [DEMO ARGS...]`` runs
``run_demo`` on a real local grid like the command does, but ``start_governor``
is :func:`tests.demo.simulated_governor.start_simulated_governor` (``FAULT``:
``none``, ``start``, ``status``, ``job`` or ``hang``; see that module). When the
governor starts it writes ``REPORT_DIR/children.json``: the PIDs of this
process's children then (the grid's ``tahoe run`` processes), so a test can
check that every one of them is gone after the demo.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import psutil

from tahoe_governor.cli.demo import options_from_args
from tahoe_governor.cli.main import build_parser
from tahoe_governor.demo.scenario import run_demo
from tests.demo.simulated_governor import SimulatedGovernor


def main(report_dir: str, fault: str, demo_args: list[str]) -> int:
    from twisted.internet import reactor

    options = options_from_args(build_parser().parse_args(["demo", *demo_args]))

    async def start_governor(reactor: Any, nodedir: str) -> SimulatedGovernor:
        children = [p.pid for p in psutil.Process().children(recursive=True)]
        (Path(report_dir) / "children.json").write_text(json.dumps(children))
        if fault == "start":
            raise RuntimeError("simulated: the node could not start")
        return SimulatedGovernor(reactor, nodedir, fault=None if fault == "none" else fault)

    return run_demo(options, sys.stdout, reactor, start_governor)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
