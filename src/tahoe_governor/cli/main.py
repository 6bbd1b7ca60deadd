"""Entry point of the ``tahoe-governor`` command: parses arguments, runs a subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tahoe_governor.cli.archives import add_archives_command
from tahoe_governor.cli.check import add_check_command
from tahoe_governor.cli.controls import add_control_commands
from tahoe_governor.cli.demo import add_demo_command
from tahoe_governor.cli.maintenance import add_maintenance_command
from tahoe_governor.cli.node_directory import (
    NodeDirectoryError,
    add_node_directory_option,
    resolve_node_directory,
)
from tahoe_governor.cli.recovery_sheet import add_recovery_sheet_command
from tahoe_governor.cli.restore import add_restore_command
from tahoe_governor.cli.run import add_run_parser
from tahoe_governor.cli.status import add_status_command
from tahoe_governor.cli.versions import versions


class _VersionAction(argparse.Action):
    """``--version``: print :func:`versions` and exit (read only when asked)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0,
                         help="print the versions of this program, Tahoe-LAFS and Foolscap")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(versions())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tahoe-governor",
        description="Scheduled, governed backups inside a Tahoe-LAFS node.",
    )
    parser.add_argument("--version", action=_VersionAction)
    add_node_directory_option(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_demo_command(sub)
    add_check_command(sub)
    add_run_parser(sub)
    add_status_command(sub)
    add_control_commands(sub)
    add_archives_command(sub)
    add_recovery_sheet_command(sub)
    add_maintenance_command(sub)
    add_restore_command(sub)
    return parser


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line, its node directory (if it takes one) made absolute."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "nodedir"):
        try:
            args.nodedir = resolve_node_directory(args.nodedir,
                                                  getattr(args, "node_directory", None))
        except NodeDirectoryError as e:
            parser.error(str(e))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = parse_arguments(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
