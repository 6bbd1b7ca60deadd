"""``tahoe-governor demo``: a governed backup on a throwaway local grid, with a summary.

See :mod:`tahoe_governor.demo.scenario` for what it does, and docs/demo.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

import attrs

from tahoe_governor.demo.sample_tree import DEFAULT_FILES, DEFAULT_SEED, DEFAULT_TOTAL_BYTES

_SIZE_UNITS = {"": 1, "B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)")


def parse_size(text: str) -> int:
    """``"20MB"`` -> 20_000_000 bytes (units B, kB, MB, GB, KiB, MiB; none means bytes)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None or match.group(2) not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            "expected a size such as 20MB, 500kB or 2000000 "
            f"(units {', '.join(list(_SIZE_UNITS)[1:])}), got {text!r}"
        )
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def parse_rate_text(text: str) -> str:
    """A rate as tahoe.cfg takes it (``200kbps``, ``25kB/s``): checked, returned as written."""
    from tahoe_governor.policy.errors import ValueSyntaxError
    from tahoe_governor.policy.units import parse_absolute_rate

    try:
        parse_absolute_rate(text)
    except ValueSyntaxError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {e.expected}") from None
    return text.strip()


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def add_demo_command(sub: Any) -> None:
    """Register the ``demo`` subcommand on ``sub`` (an argparse subparsers object)."""
    demo = sub.add_parser(
        "demo",
        help="back up a sample tree on a throwaway local grid",
        description=(
            "Start a local grid on 127.0.0.1 (an introducer and three storage servers, one of "
            "them the parents' DSL server 'parents-dsl'), a governed node with a backup job and "
            "a cap on that peer, and back up a generated sample tree twice (full, then "
            "incremental), showing progress live and a summary of each peer's achieved rate "
            "against its cap. Everything is removed at exit. Exit status 0 when both runs "
            "completed and every check passed."
        ),
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="a small tree and a short run (for CI): well under a minute",
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="after the summary, keep the grid and the node running until Ctrl-C",
    )
    demo.add_argument(
        "--files",
        type=positive_int,
        metavar="N",
        help=f"files in the sample tree (default {DEFAULT_FILES})",
    )
    demo.add_argument(
        "--size",
        type=parse_size,
        metavar="SIZE",
        help=f"total size of the sample tree, e.g. 50MB (default {DEFAULT_TOTAL_BYTES // 10**6}MB)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        metavar="N",
        help="seed of the sample tree's names and bytes",
    )
    demo.add_argument(
        "--modify",
        type=int,
        metavar="N",
        help="files changed before the incremental run (default 5; 3 with --quick)",
    )
    demo.add_argument(
        "--dsl-up",
        type=parse_rate_text,
        metavar="RATE",
        help="the cap on the DSL peer (peer.parents-dsl.up), e.g. 800kbps; default: "
        "sized so the first run takes about --run-seconds",
    )
    demo.add_argument(
        "--run-seconds",
        type=positive_seconds,
        metavar="S",
        help="how long the first run's bytes should take at a sized cap "
        "(default 45; 8 with --quick)",
    )
    demo.set_defaults(func=demo_command)


def options_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~tahoe_governor.demo.scenario.DemoOptions` the command line asks for."""
    from tahoe_governor.demo.scenario import QUICK, DemoOptions

    base = DemoOptions(**QUICK) if args.quick else DemoOptions()  # type: ignore[arg-type]
    given = {
        "files": args.files,
        "total_bytes": args.size,
        "modify": args.modify,
        "dsl_up": args.dsl_up,
        "run_seconds": args.run_seconds,
    }
    return attrs.evolve(
        base,
        seed=args.seed,
        keep=args.keep,
        **{name: value for name, value in given.items() if value is not None},
    )


def demo_command(args: argparse.Namespace) -> int:
    """Run the demo; its exit status."""
    from twisted.internet import reactor

    from tahoe_governor.demo.sample_tree import LITERAL_MAX_BYTES, plan_sample_tree
    from tahoe_governor.demo.scenario import run_demo

    options = options_from_args(args)
    try:  # bad sizes are reported before anything starts
        plan = plan_sample_tree(options.seed, options.files, options.total_bytes)
    except ValueError as e:
        print(f"tahoe-governor demo: {e}", file=sys.stderr)
        return 2
    modifiable = sum(1 for f in plan if f.size > LITERAL_MAX_BYTES)
    if not 0 <= options.modify <= modifiable:
        print(
            f"tahoe-governor demo: --modify must be 0 to {modifiable} "
            f"(the tree's files above {LITERAL_MAX_BYTES} bytes), got {options.modify}",
            file=sys.stderr,
        )
        return 2
    return run_demo(options, sys.stdout, reactor)
