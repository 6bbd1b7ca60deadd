"""``tahoe-governor run NODEDIR``: a governed node in the foreground, replacing ``tahoe run``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tahoe_governor.cli.node_directory import add_node_directory


def add_run_parser(sub: Any) -> None:
    """Register the ``run`` subcommand on ``sub`` (an argparse subparsers object)."""
    run = sub.add_parser(
        "run",
        help="run a governed Tahoe-LAFS node (replaces 'tahoe run')",
        description=(
            "Run the Tahoe-LAFS node in NODEDIR in the foreground, governed: Foolscap "
            "storage connections shaped by [bandwidth], the [backups] jobs run on their "
            "schedule. SIGINT or SIGTERM stops it cleanly: a run in progress stops and is "
            "recorded as interrupted, and the next start continues it, skipping every "
            "file already uploaded."
        ),
    )
    add_node_directory(run)
    run.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Run the node until a signal stops it; the exit status."""
    from twisted.internet import reactor

    # Importing Tahoe takes seconds: only when running.
    from tahoe_governor.app import govern, make_shaper
    from tahoe_governor.node.process import run_governed_node
    from tahoe_governor.node.reload import reload_on_sighup

    def started(client: Any) -> None:
        governor = govern(reactor, client)
        reload_on_sighup(reactor, governor.controls.reload)

    return run_governed_node(
        args.nodedir, make_shaper, reactor, out=sys.stdout, err=sys.stderr, on_started=started,
    )
