"""A job's ``Archives/`` on the grid: read without changing anything, and pruned by its rule.

:func:`read_archives` finds the target's directory and its ``Archives``
through the node's own directory objects, creating nothing (a target never
backed up has no archives), and tells which archive ``Latest`` points at.
:func:`apply_retention` unlinks from ``Archives/`` every archive the job's
``bN.keep`` rule does not keep (:func:`~tahoe_governor.policy.retention.retention_verdicts`),
one entry at a time, through the same directory object the run linked its
snapshot with; its traffic goes through the node's shaped connections like
every other byte. Unlinking frees nothing at once: the archive's shares stay
on the servers until their leases expire.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

import attrs
from allmydata.interfaces import IDirectoryNode, NoSuchChildError

from tahoe_governor.backup.target import ARCHIVES, LATEST, BackupTarget, TargetError
from tahoe_governor.policy.retention import KeepRule, archive_instant, retention_verdicts


@attrs.frozen
class ArchivesOnGrid:
    """What ``Archives/`` holds now."""

    names: tuple[str, ...]
    """Every entry of ``Archives/``, as listed (any order)."""
    latest: str | None
    """The newest archive whose directory is the one ``Latest`` points at, ``None`` if none."""


async def read_archives(client: Any, target: BackupTarget) -> ArchivesOnGrid:
    """List the archives of ``target`` (nothing when the target or ``Archives`` is missing)."""
    node = client.create_node_from_uri(target.private_rootcap)
    for name in target.path:
        node = await _child_directory(node, name, target)
        if node is None:
            return ArchivesOnGrid((), None)
    archives = await _child_directory(node, ARCHIVES, target)
    if archives is None:
        return ArchivesOnGrid((), None)
    return await _listing(node, archives)


async def _listing(target_dir: Any, archives: Any) -> ArchivesOnGrid:
    children = await archives.list()
    try:
        latest_node = await target_dir.get(LATEST)
    except NoSuchChildError:
        latest_node = None
    latest_cap = None if latest_node is None else latest_node.get_readonly_uri()
    pointed = [name for name, (child, _metadata) in children.items()
               if latest_cap is not None and child.get_readonly_uri() == latest_cap]
    # An unchanged tree gives the same directory every run: the newest of them is Latest's.
    latest = max(pointed, key=lambda n: (archive_instant(n) or 0.0, n)) if pointed else None
    return ArchivesOnGrid(tuple(children), latest)


async def _child_directory(parent: Any, name: str, target: BackupTarget) -> Any:
    try:
        child = await parent.get(name)
    except NoSuchChildError:
        return None
    if not IDirectoryNode.providedBy(child):
        raise TargetError(f"backup target {target.label}: {name} is not a directory")
    return child


async def apply_retention(target_dir: Any, archives: Any, rule: KeepRule,
                          tz: tzinfo) -> tuple[str, ...]:
    """Unlink from ``archives`` (a writeable ``Archives`` directory) the archives ``rule``
    does not keep, periods in zone ``tz``; the names unlinked, newest first.

    ``Latest`` (in ``target_dir``) is read first, so its archive is kept whatever the rule.
    """
    listing = await _listing(target_dir, archives)
    forgotten = tuple(verdict.name for verdict in
                      retention_verdicts(listing.names, rule, tz, listing.latest)
                      if not verdict.keep)
    for name in forgotten:
        await archives.delete(name, must_exist=False)
    return forgotten
