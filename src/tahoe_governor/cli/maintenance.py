"""``tahoe-governor maintenance [NODEDIR] [--task TASK]``: each task's pass and findings.

Prints, for each ``[maintenance]`` task of the running node (or the one
named), its state, its pass in progress (objects checked of those expected,
directories still to list, what the checks found, what was verified), its
last completed pass, and the names of the files found unrecoverable. The
names are private (paths in the owner's archive): they are read from the
private JSON with the token in ``NODEDIR/private``, as the controls are, and
never shown by ``status`` or the public page, which show the count only.
Exit status 0, or 2 when a task has found an unrecoverable file (for scripts
and cron mails), 1 on error.

:func:`maintenance_status_row` is also the row ``status`` shows for a task.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from tahoe_governor.cli.node_api import CommandError, GovernorClient, HttpFunction, urllib_http
from tahoe_governor.cli.node_directory import add_node_directory
from tahoe_governor.status.display_names import display_name
from tahoe_governor.status.maintenance_progress import CHECK_RESULTS
from tahoe_governor.web.human_units import format_bytes, format_seconds, format_speed

UNRECOVERABLE_EXIT = 2


def findings_text(results: dict[str, int]) -> str:
    """``"6 healthy, 1 repaired, 0 unrecoverable"`` (the unrecoverable count always)."""
    return ", ".join(f"{results.get(r, 0)} {r}" for r in CHECK_RESULTS
                     if results.get(r, 0) or r == "unrecoverable")


def maintenance_status_row(job: dict[str, Any]) -> tuple[str, str, str, str]:
    """A task's FILES, DONE, RATE and ETA cells in ``status``'s job table (public fields)."""
    run = job.get("progress")
    cap = format_speed(job["limit_bytes_per_second"])
    if run is None:
        totals = job.get("files_total", {})
        return (f"{sum(totals.values())} checked", "-", f"- / {cap}", "-")
    expected = run.get("expected_objects")
    done = f"{run['objects_checked']}" + (f" of {expected}" if expected is not None else "")
    eta = format_seconds(run["eta_seconds"]) if run.get("eta_seconds") is not None else "-"
    return (f"pass {run['pass_number']}: {findings_text(run['results'])}",
            f"{done} checked", f"- / {cap}", eta)


def task_lines(job: dict[str, Any]) -> list[str]:
    """What the command prints of one task (``job`` from the private JSON)."""
    lines = [f"{display_name(job['name'])}: {job['state']}"
             f" (target {display_name(job.get('target') or '?')})"]
    run, last = job.get("progress"), job.get("last_pass")
    if run is not None:
        expected = run.get("expected_objects")
        lines.append(
            f"  pass {run['pass_number']} ({run['phase']}): {run['objects_checked']}"
            + (f" of about {expected}" if expected is not None else "")
            + f" objects checked, {run['checked_this_run']} in this run; "
            f"{run['directories_pending']} directories to list")
        lines.append(f"  found: {findings_text(run['results'])}")
        lines.append(f"  verified: {run['verified']} objects, "
                     f"{format_bytes(run['bytes_verified'])}")
    if last is not None:
        lines.append(f"  last completed pass {last['pass_number']}: {last['objects_checked']} "
                     f"objects, {findings_text(last['results'])}")
    names = (run or {}).get("private_unrecoverable") or (last or {}).get(
        "private_unrecoverable") or []
    if names:
        lines.append(f"  unrecoverable ({len(names)}; restore them from another copy):")
        lines.extend(f"    {display_name(name)}" for name in names)
    if job.get("last_failure"):
        lines.append(f"  failure: {job['last_failure']}")
    return lines


def run_maintenance(nodedir: str, task: str | None, out: TextIO, err: TextIO,
                    http: HttpFunction = urllib_http) -> int:
    """The whole command; returns the exit status."""
    try:
        status = GovernorClient(nodedir, http).private_status()
    except CommandError as e:
        print(f"tahoe-governor maintenance: {e}", file=err)
        return 1
    tasks = [job for job in status["jobs"] if job.get("kind") == "maintenance"]
    if task is not None:
        tasks = [job for job in tasks if job["name"] == task]
        if not tasks:
            known = ", ".join(j["name"] for j in status["jobs"] if j.get("kind") == "maintenance")
            print(f"tahoe-governor maintenance: unknown task {task!r}: expected one of "
                  f"{known or 'none (tahoe.cfg has no [maintenance] task)'}", file=err)
            return 1
    if not tasks:
        print("No maintenance tasks are configured ([maintenance] in tahoe.cfg).", file=out)
        return 0
    for job in tasks:
        out.write("\n".join(task_lines(job)) + "\n")
    lost = any((p or {}).get("private_unrecoverable")
               for job in tasks for p in (job.get("progress"), job.get("last_pass")))
    return UNRECOVERABLE_EXIT if lost else 0


def add_maintenance_command(
        commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``maintenance`` on the ``tahoe-governor`` subcommand parser."""
    command = commands.add_parser(
        "maintenance",
        help="show each maintenance task's pass and findings, naming unrecoverable files")
    add_node_directory(command)
    command.add_argument("--task", metavar="TASK", help="only this task")
    command.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return run_maintenance(args.nodedir, args.task, sys.stdout, sys.stderr)
