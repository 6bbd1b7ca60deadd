"""What a maintenance pass does on the grid: open the target, list a directory, check, repair.

:class:`NodeMaintenanceGrid` does it through the node's own objects
(``client.create_node_from_uri``, a dirnode's ``list``, a node's ``check`` and
``check_and_repair`` with Tahoe's checker, verifier and repairer), so no HTTP
hop stands between the task and the storage servers and every byte crosses
the node's shaped Foolscap connections. :class:`MaintenanceGrid` is the shape
the walker relies on, so a test can hand it a fake grid instead.

A check that no storage server answered is not a finding about the object but
about the grid: it raises :class:`GridUnavailable` (the run fails and is
retried) instead of recording every object as unrecoverable.
"""

from __future__ import annotations

from typing import Any, Protocol

from allmydata import uri
from allmydata.interfaces import IDirectoryNode
from allmydata.monitor import Monitor
from allmydata.util import base32

from tahoe_governor.maintenance.records import Finding, GridEntry


class MaintenanceError(Exception):
    """A maintenance run cannot go on; ``public_summary`` says why in words fit for the
    public page (no path, no cap)."""

    public_summary = "an operation on the grid failed"


class TargetUnavailable(MaintenanceError):
    """The task's target is unknown, not a directory, or cannot be read."""

    public_summary = "the maintenance target could not be opened"


class GridUnavailable(MaintenanceError):
    """No storage server answered a check: the grid, not the object, is missing."""

    public_summary = "no storage server answered"


class UnreadableDirectory(Exception):
    """A directory's contents cannot be read (too few shares): its subtree is skipped
    this pass, and its own check reports it."""


class MaintenanceGrid(Protocol):
    """The grid operations of a maintenance pass (see :class:`NodeMaintenanceGrid`)."""

    async def open_target(self) -> GridEntry:
        """The target directory as an entry (path ``""``); :class:`TargetUnavailable`."""

    async def list_directory(self, cap: str, path: str) -> list[GridEntry]:
        """The children of directory ``cap`` (at ``path``) that have shares to check
        (literal files, whose data is in their cap, and unknown nodes are left out);
        :class:`UnreadableDirectory` when it cannot be read."""

    async def check(self, entry: GridEntry, *, verify: bool, add_lease: bool) -> Finding:
        """Ask the servers (and with ``verify`` download and verify the data); renew the
        leases with ``add_lease``. ``healthy``, ``unhealthy`` or ``unrecoverable``."""

    async def repair(self, entry: GridEntry, *, verify: bool, add_lease: bool) -> Finding:
        """Check again and repair: ``repaired``, ``unhealthy`` (repair failed: ``detail``
        says why) or ``healthy`` (already repaired meanwhile)."""


def _entry(node: Any, path: str, kind: str) -> GridEntry | None:
    """The entry of ``node``, or ``None`` when it has nothing to check."""
    storage_index = node.get_storage_index()
    if storage_index is None or node.is_unknown():
        return None  # literal (the data is in the cap) or a cap this Tahoe cannot read
    cap = node.get_uri()
    parsed = uri.from_string(cap)
    verifier = getattr(parsed, "get_verify_cap", lambda: None)()
    needed = getattr(verifier, "needed_shares", None)
    total = getattr(verifier, "total_shares", None)
    size = node.get_size() if kind == "file" else None
    return GridEntry(
        key=base32.b2a(storage_index).decode("ascii"),
        cap=cap.decode("ascii") if isinstance(cap, bytes) else cap,
        path=path, kind=kind, size=size if isinstance(size, int) else None,
        expansion=(total / needed) if needed and total else 1.0,
    )


def finding_of(results: Any, *, verified: bool) -> Finding:
    """A :class:`Finding` from Tahoe's check results (``ICheckResults``)."""
    if not results.get_servers_responding():
        raise GridUnavailable("no storage server answered the check")
    counts = dict(shares_good=results.get_share_counter_good(),
                  shares_needed=results.get_encoding_needed(),
                  shares_total=results.get_encoding_expected(), verified=verified)
    if results.is_healthy():
        return Finding("healthy", **counts)
    if not results.is_recoverable():
        return Finding("unrecoverable", **counts)
    return Finding("unhealthy", **counts)


class NodeMaintenanceGrid:
    """:class:`MaintenanceGrid` through the node.

    :param client: the node, or anything with ``create_node_from_uri(cap)``.
    :param rootcap: the directory cap the target path starts from (private).
    :param path: directory names from the root to the target.
    """

    def __init__(self, client: Any, rootcap: bytes, path: tuple[str, ...]) -> None:
        self._client = client
        self._rootcap = rootcap
        self._path = path

    async def open_target(self) -> GridEntry:
        try:
            node = self._client.create_node_from_uri(self._rootcap)
            if self._path:
                node = await node.get_child_at_path(list(self._path))
        except Exception as e:
            raise TargetUnavailable(f"the maintenance target cannot be opened: {e}") from e
        if not IDirectoryNode.providedBy(node):
            raise TargetUnavailable("the maintenance target is not a directory")
        entry = _entry(node, "", "directory")
        if entry is None:
            # A literal directory has no shares: list it, check nothing of its own.
            cap = node.get_uri()
            text = cap.decode("ascii") if isinstance(cap, bytes) else cap
            return GridEntry(key=text, cap=text, path="", kind="directory")
        return entry

    async def list_directory(self, cap: str, path: str) -> list[GridEntry]:
        node = self._client.create_node_from_uri(cap.encode("ascii"))
        try:
            children = await node.list()
        except Exception as e:
            if type(e).__name__ in ("NotEnoughSharesError", "NoSharesError",
                                    "UnrecoverableFileError"):
                raise UnreadableDirectory(str(e)) from e
            raise
        entries = []
        for name, (child, _metadata) in sorted(children.items()):
            kind = "directory" if IDirectoryNode.providedBy(child) else "file"
            child_path = f"{path}/{name}" if path else name
            entry = _entry(child, child_path, kind)
            if entry is None and kind == "directory":
                text = child.get_uri().decode("ascii")  # literal directory: list it still
                entry = GridEntry(key=text, cap=text, path=child_path, kind="directory")
            if entry is not None:
                entries.append(entry)
        return entries

    async def check(self, entry: GridEntry, *, verify: bool, add_lease: bool) -> Finding:
        node = self._client.create_node_from_uri(entry.cap.encode("ascii"))
        results = await node.check(Monitor(), verify=verify, add_lease=add_lease)
        if results is None:  # literal: nothing on the servers
            return Finding("healthy")
        return finding_of(results, verified=verify)

    async def repair(self, entry: GridEntry, *, verify: bool, add_lease: bool) -> Finding:
        node = self._client.create_node_from_uri(entry.cap.encode("ascii"))
        try:
            outcome = await node.check_and_repair(Monitor(), verify=verify, add_lease=add_lease)
        except Exception as e:
            return Finding("unhealthy", verified=verify,
                           detail=f"repair failed: {type(e).__name__}: {e}")
        before = finding_of(outcome.get_pre_repair_results(), verified=verify)
        if before.result != "unhealthy":
            return before  # healthy meanwhile, or unrecoverable: nothing was repaired
        after = outcome.get_post_repair_results()
        counts = dict(shares_good=after.get_share_counter_good(),
                      shares_needed=after.get_encoding_needed(),
                      shares_total=after.get_encoding_expected(), verified=verify)
        if outcome.get_repair_successful():
            return Finding("repaired", **counts,
                           detail=f"{before.shares_good} of {before.shares_total} shares before")
        return Finding("unhealthy", **counts, detail="repair did not restore every share")
