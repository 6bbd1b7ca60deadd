"""Where the command finds the node directory, as ``tahoe`` does: NODEDIR, ``-d`` or ``~/.tahoe``.

``tahoe run [NODEDIR]`` and ``tahoe -d NODEDIR <command>`` are the habits this
follows: the positional NODEDIR may be left out, ``-d/--node-directory`` is
accepted before or after the subcommand, and with neither the default is
Tahoe-LAFS's own (``~/.tahoe``). Giving both is refused, as ``tahoe`` refuses it.
"""

from __future__ import annotations

import argparse
import os

DEFAULT_NODE_DIRECTORY = "~/.tahoe"
"""Tahoe-LAFS's default (``allmydata.scripts.default_nodedir``, outside Windows)."""

NODE_DIRECTORY_HELP = f"the Tahoe-LAFS node directory (default: {DEFAULT_NODE_DIRECTORY})"


class NodeDirectoryError(Exception):
    """NODEDIR was given twice (exit status 2)."""


def add_node_directory_option(parser: argparse.ArgumentParser) -> None:
    """``-d/--node-directory`` on ``parser`` (the main parser and every subcommand's).

    ``SUPPRESS`` keeps a subcommand's absent option from hiding one given before it.
    """
    parser.add_argument("-d", "--node-directory", dest="node_directory", metavar="NODEDIR",
                        default=argparse.SUPPRESS, help=NODE_DIRECTORY_HELP)


def add_node_directory(parser: argparse.ArgumentParser) -> None:
    """The optional positional NODEDIR and ``-d`` on a subcommand that works on a node."""
    parser.add_argument("nodedir", metavar="NODEDIR", nargs="?", default=None,
                        help=NODE_DIRECTORY_HELP)
    add_node_directory_option(parser)


def resolve_node_directory(positional: str | None, option: str | None) -> str:
    """The absolute node directory from the positional NODEDIR and ``-d``, else the default."""
    if positional is not None and option is not None:
        raise NodeDirectoryError(
            f"the node directory was given twice ({option!r} with -d and {positional!r} as "
            f"NODEDIR): expected one of them")
    chosen = positional if positional is not None else option
    return os.path.abspath(os.path.expanduser(chosen or DEFAULT_NODE_DIRECTORY))
