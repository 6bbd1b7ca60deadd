"""``tahoe-governor archives NODEDIR JOB``: the job's archives on the grid, newest first.

::

    tahoe-governor archives [NODEDIR] JOB [--json | --keep-preview]

NODEDIR may be left out or given with ``-d``, as for every command (default
``~/.tahoe``).
Read through the running node (its private API, :mod:`tahoe_governor.cli.node_api`),
which lists the job's ``Archives/`` with its own directory objects, so the
listing is what the grid holds now. Each archive is shown with the run that
made it where this node recorded one: files, bytes uploaded, duration and how
the run ended; archives made by ``tahoe backup`` or another node say so.
``--keep-preview`` adds, for each archive, whether the job's ``bN.keep`` rule
keeps or forgets it at the end of the next completed run, and why; nothing
is changed. ``--json`` prints the node's answer as it is.
Exit status: 0 listed, 1 refused (unknown job) or unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from tahoe_governor.cli.node_api import (
    CommandError,
    GovernorClient,
    HttpFunction,
    urllib_http,
)
from tahoe_governor.cli.node_directory import add_node_directory
from tahoe_governor.cli.status import table
from tahoe_governor.web.human_units import format_bytes, format_seconds

NOT_OURS = "unknown (not made by this node)"


def _run_columns(run: dict[str, Any] | None) -> list[str]:
    if run is None:
        return ["-", "-", "-", NOT_OURS]
    duration = None if run["ended"] is None else run["ended"] - run["started"]
    return [str(run["files_seen"]), format_bytes(run["bytes_uploaded"]),
            "-" if duration is None else format_seconds(duration), run["outcome"]]


def archive_lines(listing: dict[str, Any], keep_preview: bool = False) -> list[str]:
    """The human report of a job's archives (the node's JSON listing)."""
    archives = listing["archives"]
    job = listing["job"]
    if not archives:
        return [f"Job {job!r} has no archive on the grid yet."]
    header = ["ARCHIVE (UTC)", "", "FILES", "UPLOADED", "DURATION", "RUN"]
    rows = [[a["name"], "Latest" if a["latest"] else "", *_run_columns(a["run"])]
            for a in archives]
    lines = [f"{job}: {len(archives)} archive(s), newest first", ""]
    if not keep_preview:
        return lines + table(header, rows)
    rule = listing["keep_rule"]
    if rule is None:
        return lines + table(header, rows) + [
            "", f"No {job}.keep in tahoe.cfg: every archive is kept."]
    header.append("RULE")
    for row, archive in zip(rows, archives, strict=True):
        row.append("keep" if archive["keep"] else "forget")
    forgotten = sum(1 for a in archives if a["keep"] is False)
    lines = [f"{job}: {len(archives)} archive(s), newest first; {job}.keep = {rule} keeps "
             f"{len(archives) - forgotten} and forgets {forgotten} after the next completed "
             "run", ""]
    rendered = table(header, rows)
    lines.append(rendered[0])
    for line, archive in zip(rendered[1:], archives, strict=True):
        lines.append(line)
        lines.extend(f"    {reason}" for reason in archive["reasons"])
    return lines


def run_archives(nodedir: str, job: str, out: TextIO, err: TextIO, *, as_json: bool = False,
                 keep_preview: bool = False, http: HttpFunction = urllib_http) -> int:
    """The whole command; returns the exit status."""
    try:
        listing = GovernorClient(nodedir, http).archives(job)
    except CommandError as e:
        print(f"tahoe-governor archives: {e}", file=err)
        return 1
    if as_json:
        json.dump(listing, out, indent=1, sort_keys=True)
        out.write("\n")
    else:
        out.write("\n".join(archive_lines(listing, keep_preview)) + "\n")
    return 0


def add_archives_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``archives`` on the ``tahoe-governor`` subcommand parser."""
    archives = commands.add_parser(
        "archives", help="list a job's archives on the grid, newest first, with their runs")
    add_node_directory(archives)
    archives.add_argument("job", metavar="JOB", help="the name of a [backups] job")
    shown = archives.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print the node's listing as JSON")
    shown.add_argument("--keep-preview", action="store_true",
                       help="show what the job's keep rule would keep and forget, and why")
    archives.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return run_archives(args.nodedir, args.job, sys.stdout, sys.stderr, as_json=args.json,
                        keep_preview=args.keep_preview)
