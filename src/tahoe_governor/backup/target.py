"""Where a job's snapshots go: ``alias:path`` or a directory cap, and the layout under it.

The layout is ``tahoe backup``'s. Under the target directory::

    Archives/2026-11-26_22:00:05Z   one immutable snapshot per completed run
    Latest                          the newest snapshot

Missing directories on the target's path, and ``Archives``, are created as
mutable directories (as ``tahoe backup``'s ``POST ...Archives?t=mkdir``
does). The target string is read as ``tahoe backup`` reads its ``TO``
argument, with ``allmydata.scripts.common.get_alias``: ``alias:path`` through
``NODEDIR/private/aliases`` (and ``root_dir.cap`` as the ``tahoe`` alias), a
bare path under the default ``tahoe`` alias, or a directory cap with an
optional ``/path``.

Error messages name the alias and path, never the capability.
"""

from __future__ import annotations

from typing import Any

import attrs
from allmydata import uri
from allmydata.interfaces import IDirectoryNode, NoSuchChildError
from allmydata.scripts.common import DEFAULT_ALIAS, UnknownAliasError, get_alias, get_aliases
from allmydata.util import time_format

from tahoe_governor.status import private_field

ARCHIVES = "Archives"
LATEST = "Latest"


class TargetError(Exception):
    """The backup target is unknown, is not a directory, or cannot be written."""


@attrs.frozen
class BackupTarget:
    """A resolved target: a directory cap (private) and a path of names below it."""

    private_rootcap: bytes = private_field(repr=False)
    """Private: the directory cap the path starts from."""
    path: tuple[str, ...]
    """Directory names from the root to the target (may be empty)."""
    label: str
    """How to name the target in messages: ``alias:path``, or ``<dircap>/path``."""


def resolve_target(target: str, aliases: dict[str, Any]) -> BackupTarget:
    """Resolve ``target`` as ``tahoe backup ... TO`` would, given the node's ``get_aliases``."""
    if not isinstance(target, str) or not target.strip():
        raise TargetError(f"backup target must be 'alias:path' or a directory cap, got {target!r}")
    is_cap = uri.has_uri_prefix(target.strip().encode("utf-8"))
    try:
        rootcap, path_bytes = get_alias(aliases, target, DEFAULT_ALIAS)
    except UnknownAliasError as e:
        raise TargetError(f"backup target {target!r}: {e.msg.removeprefix('error: ')}") from None
    except AssertionError:
        # get_alias's from_string_dirnode asserts when an alias holds a file cap
        alias = target.split(":", 1)[0] if ":" in target else DEFAULT_ALIAS
        raise TargetError(f"backup target: alias {alias!r} does not name a directory") from None
    path = tuple(name for name in path_bytes.decode("utf-8").split("/") if name)
    if any(name in (".", "..") for name in path):
        raise TargetError("backup target path may not contain '.' or '..'")
    if is_cap:
        label = "/".join(("<dircap>",) + path)
    else:
        label = target.strip()
    if not isinstance(rootcap, bytes):
        rootcap = rootcap.encode("utf-8")
    return BackupTarget(private_rootcap=rootcap, path=path, label=label)


def resolve_target_in_nodedir(target: str, nodedir: str) -> BackupTarget:
    """:func:`resolve_target` with the aliases of the node in ``nodedir``."""
    return resolve_target(target, get_aliases(nodedir))


def archive_name(seconds: float) -> str:
    """The ``Archives/`` name of a snapshot linked at ``seconds`` (POSIX), as tahoe backup's."""
    return time_format.iso_utc(int(seconds), sep="_") + "Z"


@attrs.frozen
class TargetDirectories:
    """The opened target: the directory holding ``Latest`` and its ``Archives``."""

    target: Any
    archives: Any


async def open_target(client: Any, target: BackupTarget) -> TargetDirectories:
    """Find (creating what is missing) the target directory and its ``Archives``."""
    node = client.create_node_from_uri(target.private_rootcap)
    _check_writeable_directory(node, target.label, "the target's root")
    where: list[str] = []
    for name in target.path:
        where.append(name)
        node = await _subdirectory(node, name, target.label, "/".join(where))
    archives = await _subdirectory(node, ARCHIVES, target.label, "/".join([*where, ARCHIVES]))
    return TargetDirectories(target=node, archives=archives)


async def link_snapshot(client: Any, dirs: TargetDirectories, dircap: bytes, name: str) -> None:
    """Link the snapshot ``dircap`` as ``Archives/<name>`` and as ``Latest``.

    Like ``tahoe backup``'s two ``PUT ...?t=uri``: replacing an existing entry.
    """
    await dirs.archives.set_node(name, client.create_node_from_uri(dircap, None, name=name),
                                 overwrite=True)
    await dirs.target.set_node(LATEST, client.create_node_from_uri(dircap, None, name=LATEST),
                               overwrite=True)


async def _subdirectory(parent: Any, name: str, label: str, where: str) -> Any:
    try:
        child = await parent.get(name)
    except NoSuchChildError:
        child = await parent.create_subdirectory(name, overwrite=False)
    _check_writeable_directory(child, label, where)
    return child


def _check_writeable_directory(node: Any, label: str, where: str) -> None:
    if not IDirectoryNode.providedBy(node):
        raise TargetError(f"backup target {label}: {where} is not a directory")
    if node.is_readonly():
        raise TargetError(f"backup target {label}: {where} is a read-only directory")
