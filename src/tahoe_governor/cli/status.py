"""``tahoe-governor status NODEDIR``: the jobs and peers of a running governed node.

Prints a table of jobs (state, files, bytes, rate against cap, ETA, last
completed run, next start, and why a used-up quota holds one), one of peers
(rates against caps, backlog) and one of the per-period quotas (used, limit, reset),
read from the node's public ``/governor?t=json``. ``--watch`` redraws it every
``--interval`` seconds with a progress bar per job until Ctrl-C; ``--json``
prints the snapshot for scripts; ``--private-url`` prints the owner's private
page address (the only output that shows the token). ``--history`` reads the
private snapshot instead and adds each job's last runs (start, outcome, files,
bytes uploaded, duration, archive or error).

While the recovery sheet has not been printed (or was printed before a job
existed), the report ends with a reminder, read from the state database
(never from the public snapshot, which does not carry it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from tahoe_governor.cli.maintenance import maintenance_status_row
from tahoe_governor.cli.node_api import (
    CommandError,
    GovernorClient,
    HttpFunction,
    urllib_http,
)
from tahoe_governor.cli.node_directory import add_node_directory
from tahoe_governor.status.display_names import display_name
from tahoe_governor.web.human_units import (
    auto_note,
    format_bytes,
    format_seconds,
    format_speed,
    fraction_done,
    node_caps,
)

BAR_WIDTH = 30
CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _relative(instant: float | None, now: float, never: str = "never") -> str:
    if instant is None:
        return never
    delta = instant - now
    if abs(delta) < 1:
        return "now"
    return f"in {format_seconds(delta)}" if delta > 0 else f"{format_seconds(delta)} ago"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]


def progress_bar(fraction: float | None, width: int = BAR_WIDTH) -> str:
    """``[#########.....]  58.0%``; unknown totals read ``[?]``."""
    if fraction is None:
        return "[" + "?".center(width) + "]"
    filled = int(round(fraction * width))
    return "[" + "#" * filled + "." * (width - filled) + f"] {fraction * 100:5.1f}%"


_NO_NEXT_START = {"running": "running now", "paused": "paused", "suspended": "next window"}


def job_rows(status: dict[str, Any]) -> list[list[str]]:
    now = status["at"]
    rows = []
    for job in status["jobs"]:
        progress = job.get("progress")
        if job.get("kind") == "maintenance":  # a task's pass, not a backup run
            files, done, rate_and_cap, eta = maintenance_status_row(job)
            rows.append([display_name(job["name"]), job["state"], files, done, rate_and_cap, eta,
                         _relative(job.get("last_success"), now),
                         _relative(job.get("next_start"), now,
                                   never=_NO_NEXT_START.get(job["state"], "not scheduled"))])
            continue
        if progress is not None:
            files = "/".join(str(progress[k]) for k in (
                "files_seen", "files_uploaded", "files_reused", "files_skipped", "files_failed"))
            total = progress.get("estimated_bytes")
            done = format_bytes(progress["bytes_done"]) + (
                f" of {format_bytes(total)}" if total is not None else "")
            rate = format_speed(progress["rate_bytes_per_second"])
            eta = format_seconds(progress["eta_seconds"]) if progress["eta_seconds"] is not None \
                else "-"
        else:
            totals = job.get("files_total", {})
            files = "-/" + "/".join(str(totals.get(k, 0))
                                    for k in ("uploaded", "reused", "skipped", "failed"))
            done, rate, eta = "-", format_speed(0), "-"
        rows.append([
            display_name(job["name"]), job["state"], files, done,
            f"{rate} / {format_speed(job['limit_bytes_per_second'])}", eta,
            _relative(job.get("last_success"), now),
            _relative(job.get("next_start"), now,
                      never=_NO_NEXT_START.get(job["state"], "not scheduled")),
        ])
    return rows


def status_lines(status: dict[str, Any], bars: bool = False) -> list[str]:
    """The human report of a public (or private) status snapshot."""
    lines = [f"{display_name(status.get('nickname')) or 'node'}: {len(status['jobs'])} job(s), "
             f"{len(status['peers'])} peer(s)"]
    lines.append("")
    if status["jobs"]:
        header = ["JOB", "STATE", "FILES seen/up/reused/skip/fail", "DONE", "RATE / CAP",
                  "ETA", "LAST COMPLETED", "NEXT START"]
        rendered = table(header, job_rows(status))
        lines.append(rendered[0])
        for job, line in zip(status["jobs"], rendered[1:], strict=True):
            lines.append(line)
            progress = job.get("progress")
            if bars and progress is not None and "bytes_done" in progress:
                fraction = fraction_done(progress["bytes_done"], progress.get("estimated_bytes"))
                lines.append("  " + progress_bar(fraction))
            if job.get("last_failure"):
                retry = (f"; retry {_relative(job['retry_at'], status['at'])}"
                         if job["state"] == "failed" and job.get("retry_at") is not None else "")
                lines.append(f"  {job['name']}: {job['last_failure']}{retry}")
            if job.get("held_by"):
                lines.append(f"  {display_name(job['name'])}: held: {job['held_by']}; resets "
                             f"{_relative(job.get('held_until'), status['at'])}")
    else:
        lines.append("No backup jobs are configured.")
    lines.append("")
    if status["peers"]:
        rows = [[
            display_name(peer.get("nickname")) or "-", display_name(peer["tubid"][:8]),
            f"{format_speed(peer['rate_up'])} / {format_speed(peer['limit_up'])}"
            + auto_note(peer.get("auto_rate"), peer.get("queueing_delay_seconds")),
            f"{format_speed(peer['rate_down'])} / {format_speed(peer['limit_down'])}"
            + auto_note(peer.get("auto_rate_down"), peer.get("queueing_delay_down_seconds")),
            format_bytes(peer["queued_up"] + peer["queued_down"]),
            "yes" if peer["connected"] else "no",
        ] for peer in status["peers"]]
        lines.extend(table(["PEER", "TUBID", "UP rate / cap", "DOWN rate / cap", "QUEUED",
                            "CONNECTED"], rows))
    else:
        lines.append("No storage server contacted yet.")
    lines.extend(quota_lines(status))
    link = status["link"]
    lines.append("")
    lines.append(f"Node cap: {node_caps(link)}")
    return lines


def quota_lines(status: dict[str, Any]) -> list[str]:
    """The quotas' table (none without a configured quota)."""
    quotas = status.get("quotas") or []
    if not quotas:
        return []
    rows = [[
        display_name(quota["directive"]),
        f"{format_bytes(quota['used_bytes'])} of {format_bytes(quota['limit_bytes'])}"
        + (" (used up)" if quota["exhausted"] else ""),
        f"per {quota['period']}",
        _relative(quota["resets_at"], status["at"]),
    ] for quota in quotas]
    return ["", *table(["QUOTA", "USED", "PERIOD", "RESETS"], rows)]


def history_lines(status: dict[str, Any]) -> list[str]:
    """Each job's last runs, newest first, from a private snapshot."""
    now = status["at"]
    lines = []
    for job in status["jobs"]:
        lines.append("")
        runs = job.get("recent_runs", [])
        lines.append(f"Last runs of {display_name(job['name'])}"
                     + ("" if runs else ": none recorded yet"))
        rows = []
        for run in runs:
            duration = None if run["ended"] is None else run["ended"] - run["started"]
            rows.append([
                _relative(run["started"], now), run["outcome"], str(run["files_seen"]),
                format_bytes(run["bytes_uploaded"]),
                "-" if duration is None else format_seconds(duration),
                display_name(run["detail"] or ""),
            ])
        if rows:
            lines.extend("  " + line for line in table(
                ["STARTED", "OUTCOME", "FILES", "UPLOADED", "DURATION", "ARCHIVE OR ERROR"],
                rows))
    return lines


def _reminder(nodedir: str, status: dict[str, Any]) -> str | None:
    if "recovery_sheet_reminder" in status:  # a private snapshot carries it
        reminder = status["recovery_sheet_reminder"]
        return str(reminder) if reminder else None
    from tahoe_governor.cli.recovery_sheet import stored_reminder

    return stored_reminder(nodedir, [job["name"] for job in status["jobs"]])


def run_status(
    nodedir: str,
    out: TextIO,
    err: TextIO,
    *,
    as_json: bool = False,
    watch: bool = False,
    interval: float = 2.0,
    private_url: bool = False,
    history: bool = False,
    http: HttpFunction = urllib_http,
    sleep: Callable[[float], None] = time.sleep,
    rounds: int | None = None,
) -> int:
    """The whole command; returns the exit status. ``rounds`` bounds ``--watch`` (tests)."""
    try:
        client = GovernorClient(nodedir, http)
        if private_url:
            print("Keep this address to yourself: it can pause backups and change limits.",
                  file=err)
            print(client.private_url(), file=out)
            return 0
        if not watch:
            if history:
                status = client.private_status()
                status.pop("csrf", None)
            else:
                status = client.public_status()
            if as_json:
                json.dump(status, out, indent=1, sort_keys=True)
                out.write("\n")
                return 0
            lines = status_lines(status) + (history_lines(status) if history else [])
            reminder = _reminder(nodedir, status)
            if reminder:
                lines += ["", "Warning: " + reminder]
            out.write("\n".join(lines) + "\n")
            return 0
    except CommandError as e:
        print(f"tahoe-governor status: {e}", file=err)
        return 1
    return _watch(client, out, interval, sleep, rounds)


def _watch(client: GovernorClient, out: TextIO, interval: float,
           sleep: Callable[[float], None], rounds: int | None) -> int:
    done = 0
    try:
        while rounds is None or done < rounds:
            try:
                lines = status_lines(client.public_status(), bars=True)
            except CommandError as e:
                lines = [f"tahoe-governor status: {e}", "(retrying)"]
            lines.append("")
            lines.append(f"Refreshing every {interval:g} s; Ctrl-C to stop.")
            out.write(CLEAR_SCREEN + "\n".join(lines) + "\n")
            out.flush()
            done += 1
            if rounds is None or done < rounds:
                sleep(interval)
    except KeyboardInterrupt:
        out.write("\n")
    return 0


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.2 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds between 0.2 and 3600, got {text!r}")
    return value


def add_status_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``status`` on the ``tahoe-governor`` subcommand parser."""
    status = commands.add_parser("status", help="show the jobs and peers of the running node")
    add_node_directory(status)
    shown = status.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print the public snapshot as JSON")
    shown.add_argument("--watch", action="store_true",
                       help="redraw with progress bars until Ctrl-C")
    shown.add_argument("--private-url", action="store_true",
                       help="print the private page's address (contains the secret token)")
    shown.add_argument("--history", action="store_true",
                       help="add each job's last runs and how they ended (reads the private API)")
    status.add_argument("--interval", type=_interval, default=2.0, metavar="SECONDS",
                        help="seconds between redraws with --watch (default 2)")
    status.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return run_status(args.nodedir, sys.stdout, sys.stderr, as_json=args.json, watch=args.watch,
                      interval=args.interval, private_url=args.private_url,
                      history=args.history)
