"""``tahoe-governor pause|resume|start|limit``: the controls of a running governed node.

::

    tahoe-governor pause NODEDIR JOB
    tahoe-governor resume NODEDIR JOB
    tahoe-governor start NODEDIR JOB [--force]
    tahoe-governor limit NODEDIR (peer SELECTOR | job NAME | node) (up|down) (RATE | clear)

Each goes through the private API (:mod:`tahoe_governor.cli.node_api`) and
prints what the node did. A malformed rate is refused before the node is
asked; the node refuses an unknown job or peer, and its reason is printed.
Exit status: 0 done, 1 refused or unreachable, 2 malformed command line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

import attrs

from tahoe_governor.cli.node_api import (
    CommandError,
    GovernorClient,
    HttpFunction,
    urllib_http,
)
from tahoe_governor.cli.node_directory import (
    NodeDirectoryError,
    add_node_directory,
    add_node_directory_option,
    resolve_node_directory,
)
from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.policy.units import parse_rate
from tahoe_governor.web.human_units import format_speed

CLEAR = "clear"
LIMIT_USAGE = ("tahoe-governor limit [NODEDIR] (peer SELECTOR | job NAME | node) "
               "(up|down) (RATE | clear)")
LIMIT_SCOPES = ("peer", "job", "node")


class UsageError(Exception):
    """The command line is malformed (exit status 2)."""


@attrs.frozen
class LimitRequest:
    """A parsed ``limit`` command: which cap, and the new rate or ``None`` to clear."""

    scope: str
    name: str
    direction: str
    rate: str | None

    def fields(self) -> dict[str, str]:
        fields = {"scope": self.scope, "name": self.name, "direction": self.direction}
        if self.rate is not None:
            fields["rate"] = self.rate
        return fields


def parse_limit_words(words: list[str]) -> LimitRequest:
    """``["peer", "dsl", "up", "200kbps"]`` -> a :class:`LimitRequest`; UsageError otherwise."""
    if not words or words[0] not in LIMIT_SCOPES:
        raise UsageError(f"expected peer, job or node after NODEDIR, got "
                         f"{words[0] if words else 'nothing'!r}; usage: {LIMIT_USAGE}")
    scope = words[0]
    expected = 3 if scope == "node" else 4
    if len(words) != expected:
        shape = "node (up|down) RATE" if scope == "node" else f"{scope} NAME (up|down) RATE"
        raise UsageError(f"expected '{shape}' after NODEDIR, got {' '.join(words)!r}; "
                         f"usage: {LIMIT_USAGE}")
    name = "" if scope == "node" else words[1]
    direction, rate = words[-2], words[-1]
    if direction not in ("up", "down"):
        raise UsageError(f"expected the direction up or down, got {direction!r}")
    if scope == "job" and direction != "up":
        raise UsageError("a job's cap is on its uploads: expected 'up', got 'down'")
    if rate == CLEAR:
        return LimitRequest(scope, name, direction, None)
    try:
        parse_rate(rate)
    except ValueSyntaxError as e:
        raise UsageError(f"rate {rate!r}: expected {e.expected}, or 'clear' to drop the "
                         "override") from None
    return LimitRequest(scope, name, direction, rate)


def _job_state(status: dict[str, Any], name: str) -> str | None:
    for job in status["jobs"]:
        if job["name"] == name:
            return str(job["state"])
    return None


def _limit_now(status: dict[str, Any], request: LimitRequest) -> str | None:
    """The cap in force after the change, when the snapshot shows it."""
    if request.scope == "node":
        return format_speed(status["link"][f"node_limit_{request.direction}"])
    if request.scope == "job":
        for job in status["jobs"]:
            if job["name"] == request.name:
                return format_speed(job["limit_bytes_per_second"])
        return None
    for peer in status["peers"]:
        if request.name in (peer["nickname"], peer["tubid"]):
            return format_speed(peer[f"limit_{request.direction}"])
    return None


def run_control(
    nodedir: str,
    action: str,
    fields: dict[str, Any],
    out: TextIO,
    err: TextIO,
    http: HttpFunction = urllib_http,
    limit: LimitRequest | None = None,
) -> int:
    """Carry out one control and report it; returns the exit status."""
    try:
        answer = GovernorClient(nodedir, http).control(action, fields)
    except CommandError as e:
        print(f"tahoe-governor {action if action != 'clear' else 'limit'}: {e}", file=err)
        return 1
    print(answer["message"], file=out)
    status = answer["status"]
    if "job" in fields:
        state = _job_state(status, fields["job"])
        if state is not None:
            print(f"Job {fields['job']!r} is now {state}.", file=out)
    if limit is not None:
        now = _limit_now(status, limit)
        if now is not None:
            print(f"Cap in force now: {now}.", file=out)
    return 0


def add_control_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``pause``, ``resume``, ``start``, ``limit`` and ``reload``."""
    for name, help_text in (("pause", "hold a job in any window until resumed"),
                            ("resume", "undo pause"),
                            ("start", "run a job now, regardless of its frequency")):
        parser = commands.add_parser(name, help=help_text)
        add_node_directory(parser)
        parser.add_argument("job", metavar="JOB", help="the job's name in [backups]")
        if name == "start":
            parser.add_argument("--force", action="store_true",
                                help="start even outside the job's allowed times")
        parser.set_defaults(func=_run_job_control, action=name)
    limit = commands.add_parser(
        "limit", help="change a cap live (kept until cleared)", usage=LIMIT_USAGE,
        description="Override a cap of the running node: a peer's (by TubID, server id or "
                    "nickname), a job's upload cap, or the node's. RATE as in tahoe.cfg "
                    "(200kbps, 1MB/s, 60%, unlimited); 'clear' returns to tahoe.cfg.")
    add_node_directory_option(limit)
    limit.add_argument("words", nargs="+", metavar="WORD",
                       help="[NODEDIR] (peer SELECTOR | job NAME | node) (up|down) "
                            "(RATE | clear)")
    limit.set_defaults(func=_run_limit)
    reload = commands.add_parser(
        "reload", help="read tahoe.cfg again into the running node (as SIGHUP does)",
        description="The running node reads NODEDIR/tahoe.cfg again: a valid file takes "
                    "effect at once ([backups] and [bandwidth]; running jobs go on under the "
                    "new limits), an invalid one is refused with the errors 'check' prints "
                    "and changes nothing.")
    add_node_directory(reload)
    reload.set_defaults(func=_run_reload)


def _run_job_control(args: argparse.Namespace, out: TextIO = sys.stdout,
                     err: TextIO = sys.stderr, http: HttpFunction = urllib_http) -> int:
    fields: dict[str, Any] = {"job": args.job}
    if args.action == "start":
        fields["force"] = bool(args.force)
    return run_control(args.nodedir, args.action, fields, out, err, http)


def _run_reload(args: argparse.Namespace, out: TextIO = sys.stdout,
                err: TextIO = sys.stderr, http: HttpFunction = urllib_http) -> int:
    return run_control(args.nodedir, "reload", {}, out, err, http)


def _run_limit(args: argparse.Namespace, out: TextIO = sys.stdout,
               err: TextIO = sys.stderr, http: HttpFunction = urllib_http) -> int:
    words = list(args.words)
    # The cap's words always start with a scope, so a first word that is not one is NODEDIR.
    positional = words.pop(0) if words and words[0] not in LIMIT_SCOPES else None
    try:
        nodedir = resolve_node_directory(positional, getattr(args, "node_directory", None))
        request = parse_limit_words(words)
    except (UsageError, NodeDirectoryError) as e:
        print(f"tahoe-governor limit: {e}", file=err)
        return 2
    action = "clear" if request.rate is None else "limit"
    return run_control(nodedir, action, request.fields(), out, err, http, limit=request)
