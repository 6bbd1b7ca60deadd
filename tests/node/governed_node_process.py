"""A governed node in a process of its own, with a recording shaper: for the pidfile tests.

``python -m tests.node.governed_node_process NODEDIR REPORT_DIR`` runs
``run_governed_node`` like ``tahoe-governor run`` does, writes
``REPORT_DIR/started`` once the node runs, and from its stop hook writes
``REPORT_DIR/stopped.json`` (how many Tubs were shaped, how many storage
servers were connected while the hook ran).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tahoe_governor.node import GovernedClient
from tahoe_governor.node.process import run_governed_node
from tests.node.recording_shaper import RecordingShaper


def main(nodedir: str, report_dir: str) -> int:
    """Run the node until a signal; the exit status of ``run_governed_node``."""
    from twisted.internet import reactor

    report = Path(report_dir)
    shaper = RecordingShaper()

    def on_started(client: GovernedClient) -> None:
        def write_report() -> None:
            stopped = {
                "tubs_shaped": len(shaper.installed),
                "servers_connected": len(client.storage_broker.get_connected_servers()),
            }
            (report / "stopped.json").write_text(json.dumps(stopped))

        client.add_stop_hook("report", write_report)
        (report / "started").write_text("")

    def make_shaper(_reactor: Any) -> RecordingShaper:
        return shaper

    return run_governed_node(nodedir, make_shaper, reactor, sys.stdout, sys.stderr, on_started)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
