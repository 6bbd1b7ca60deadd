"""``tahoe-governor recovery-sheet NODEDIR``: what a new machine needs to find the backups again.

The capabilities of the backup targets live in ``NODEDIR/private/aliases``
(or in tahoe.cfg), on the very disk being backed up: lose it and the backups
are on the grid with no way to reach them. The sheet puts on one page, for
the owner to print or keep elsewhere: the introducer fURL(s), each job's
target (the directory cap of its alias and the path below it), the encoding
parameters (``shares.needed``/``happy``/``total``), the versions of
tahoe-governor and Tahoe-LAFS, each job's ``[backups]`` lines, and the
commands that restore on a new machine.

The sheet is read from the node directory alone (the node need not run).
Printing it is remembered in the state database, with the jobs it covered;
until then the private page and ``tahoe-governor status`` remind the owner
(:mod:`tahoe_governor.policy.recovery_reminder`). The sheet goes to standard
output only: never to a log, never to the node.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

import attrs

from tahoe_governor.cli.node_directory import add_node_directory
from tahoe_governor.cli.versions import package_version
from tahoe_governor.policy.recovery_reminder import recovery_sheet_reminder
from tahoe_governor.policy.state_db import StateDatabase, StateDatabaseError, state_db_path


class SheetError(Exception):
    """The node directory cannot give a sheet (the message says why)."""


@attrs.frozen
class JobRecovery:
    """How to reach one job's target from a new machine."""

    name: str
    alias: str
    """The alias to add on the new machine (the job's own, or the job's name for a cap target)."""
    alias_cap: str
    """The directory cap the alias names (secret)."""
    path: str
    """The target's path below the alias ("" for the alias's directory itself)."""
    config_lines: tuple[str, ...]
    """The job's ``[backups]`` lines, its target written as ``alias:path``."""

    @property
    def target(self) -> str:
        """The job's target as a new machine names it: ``alias:path``."""
        return f"{self.alias}:{self.path}"


@attrs.frozen
class RecoverySheet:
    """Everything on the sheet."""

    nickname: str
    introducers: tuple[tuple[str, str], ...]
    """``(petname, fURL)`` of each introducer."""
    shares_needed: int
    shares_happy: int
    shares_total: int
    governor_version: str
    tahoe_version: str
    jobs: tuple[JobRecovery, ...]


def read_recovery_sheet(nodedir: str) -> RecoverySheet:
    """The sheet of the node in ``nodedir`` (:class:`SheetError` if it cannot be read)."""
    # Importing Tahoe takes seconds: only when a sheet is asked for.
    from tahoe_governor.backup.target import TargetError, resolve_target_in_nodedir
    from tahoe_governor.node.config import (
        CONFIGURATION_ERRORS,
        describe_configuration_error,
        read_governed_node,
    )

    try:
        config, policy = read_governed_node(nodedir, UTC)
        introducers = config.tahoe.get_introducer_configuration()
    except CONFIGURATION_ERRORS as e:
        raise SheetError(f"{os.path.join(nodedir, 'tahoe.cfg')}: "
                         f"{describe_configuration_error(e)}") from None
    except (OSError, TypeError) as e:
        raise SheetError(f"{os.path.join(nodedir, 'private', 'introducers.yaml')}: {e}") \
            from None
    tahoe = config.tahoe
    jobs = []
    named: dict[str, str] = {}  # alias -> the cap it names on the new machine
    for job in policy.jobs:
        try:
            target = resolve_target_in_nodedir(job.target, nodedir)
        except TargetError as e:
            raise SheetError(f"job {job.name}: {e}") from None
        cap = target.private_rootcap.decode("ascii")
        alias = job.target.split(":", 1)[0] if not job.target.startswith("URI:") else job.name
        while named.setdefault(alias, cap) != cap:  # a cap target's alias is new: make it so
            alias += "-target"
        path = "/".join(target.path)
        lines = tuple(
            f"{key} = {alias}:{path}" if key == f"{job.name}.target" else f"{key} = {value}"
            for key, value in config.sections.backups.items()
            if key.split(".", 1)[0] == job.name)
        jobs.append(JobRecovery(job.name, alias, cap, path, lines))
    return RecoverySheet(
        nickname=tahoe.get_config("node", "nickname", ""),
        introducers=tuple(sorted((name, furl) for name, (furl, _cache) in introducers.items())),
        shares_needed=int(tahoe.get_config("client", "shares.needed", "3")),
        shares_happy=int(tahoe.get_config("client", "shares.happy", "7")),
        shares_total=int(tahoe.get_config("client", "shares.total", "10")),
        governor_version=package_version("tahoe-governor"),
        tahoe_version=package_version("tahoe-lafs"),
        jobs=tuple(jobs),
    )


def sheet_lines(sheet: RecoverySheet, printed: float) -> list[str]:
    """The sheet as text, dated ``printed`` (POSIX seconds, shown in UTC)."""
    when = datetime.fromtimestamp(printed, UTC).strftime("%Y-%m-%d %H:%M UTC")
    node = f"node {sheet.nickname!r}" if sheet.nickname else "this node"
    lines = [
        f"tahoe-governor recovery sheet of {node}, printed {when}",
        f"tahoe-governor {sheet.governor_version}, Tahoe-LAFS {sheet.tahoe_version}",
        "",
        "KEEP THIS SHEET PRIVATE, AND AWAY FROM THE MACHINE IT DESCRIBES: whoever reads it",
        "can read and change the backups.",
        "",
        "Grid",
    ]
    if sheet.introducers:
        lines += [f"  introducer {name}: {furl}" for name, furl in sheet.introducers]
    else:
        lines.append("  no introducer configured (this node finds its servers through "
                     "private/servers.yaml: keep a copy of that file with this sheet)")
    lines.append(f"  encoding: shares.needed = {sheet.shares_needed}, shares.happy = "
                 f"{sheet.shares_happy}, shares.total = {sheet.shares_total}")
    lines += ["", "Jobs"]
    if not sheet.jobs:
        lines.append("  none ([backups] is empty)")
    for job in sheet.jobs:
        lines += [
            f"  {job.name}: {job.target}",
            f"    directory cap of alias {job.alias!r}: {job.alias_cap}",
            f"    path below it: {job.path or '(the directory itself)'}",
            "    tahoe.cfg [backups] lines:",
            *(f"      {line}" for line in job.config_lines),
        ]
    lines += ["", *restore_steps(sheet)]
    return lines


def restore_steps(sheet: RecoverySheet) -> list[str]:
    """The commands that restore on a new machine, as the sheet prints them."""
    introducer = f" --introducer={sheet.introducers[0][1]}" if sheet.introducers else ""
    lines = [
        f"To restore on a new machine (install Tahoe-LAFS {sheet.tahoe_version} and "
        f"tahoe-governor {sheet.governor_version} first; NEWNODE is the new node's directory):",
        f"  1. tahoe create-client{introducer} --shares-needed={sheet.shares_needed} "
        f"--shares-happy={sheet.shares_happy} --shares-total={sheet.shares_total} NEWNODE",
    ]
    lines += [
        "     and add '[client] force_foolscap = true' to NEWNODE/tahoe.cfg",
        "  2. tahoe-governor run NEWNODE   (with no [backups] yet: nothing may back up a",
        "     half-restored folder; leave it running, e.g. in another terminal)",
    ]
    aliases = {job.alias: job.alias_cap for job in sheet.jobs}
    lines += [f"  3. tahoe -d NEWNODE add-alias {alias} {cap}" for alias, cap in aliases.items()]
    lines += [f"  4. tahoe-governor restore NEWNODE {job.target} DEST   (job {job.name})"
              for job in sheet.jobs]
    lines += [
        "  5. once the files are back: add the [backups] lines above to NEWNODE/tahoe.cfg",
        "     (with each source where the files now are), then 'tahoe-governor reload NEWNODE'.",
    ]
    if len(sheet.introducers) > 1:
        lines.append("  The other introducers go into NEWNODE/private/introducers.yaml.")
    return lines


def stored_reminder(nodedir: str, jobs: Sequence[str]) -> str | None:
    """The reminder the state database calls for (``None`` when it cannot be read)."""
    path = state_db_path(nodedir)
    if not os.path.exists(path):
        return recovery_sheet_reminder(None, jobs)
    try:
        with StateDatabase(path, read_only=True) as db:
            printed = db.recovery_sheet()
    except (StateDatabaseError, sqlite3.Error):
        return None
    return recovery_sheet_reminder(printed, jobs)


def run_recovery_sheet(nodedir: str, out: TextIO, err: TextIO, now: float) -> int:
    """The whole command; returns the exit status."""
    try:
        sheet = read_recovery_sheet(nodedir)
    except SheetError as e:
        print(f"tahoe-governor recovery-sheet: {e}", file=err)
        return 1
    out.write("\n".join(sheet_lines(sheet, now)) + "\n")
    out.flush()
    try:
        with StateDatabase(state_db_path(nodedir)) as db:
            db.record_recovery_sheet(now, tuple(job.name for job in sheet.jobs))
    except (StateDatabaseError, sqlite3.Error) as e:
        print(f"tahoe-governor recovery-sheet: printed, but the state database could not "
              f"remember it ({e}): the reminder stays until it can", file=err)
        return 1
    return 0


def add_recovery_sheet_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``recovery-sheet`` on the ``tahoe-governor`` subcommand parser."""
    sheet = commands.add_parser(
        "recovery-sheet",
        help="print what a new machine needs to restore the backups (private: holds caps)")
    add_node_directory(sheet)
    sheet.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return run_recovery_sheet(args.nodedir, sys.stdout, sys.stderr, time.time())
