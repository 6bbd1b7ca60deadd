"""What a backup run does on the grid: upload bytes, create an immutable directory, check a cap.

:class:`NodeGridOperations` does these through the node (``allmydata.client._Client``)
it is given; :class:`GridOperations` is the shape the walker relies on, so a
test can hand the walker a fake grid instead. Uploads pass the job's throttle
through a :class:`~tahoe_governor.backup.uploadable.GovernedUploadable`; an
upload aborted in flight is not started over here (the walker decides that).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from allmydata import uri
from allmydata.dirnode import pack_children
from allmydata.monitor import Monitor

from tahoe_governor.backup.job_throttle import JobThrottle, Lease
from tahoe_governor.backup.uploadable import (
    ByteSource,
    BytesSource,
    GovernedUploadable,
    RunBlocking,
)

Child = tuple[str, bytes, dict[str, Any]]
"""A directory entry as ``tahoe backup`` builds it: ("filenode"|"dirnode", cap, metadata)."""

ByteCount = Callable[[int], None]
"""Told of ``n`` more bytes (hashed, or handed to the encoder)."""


class UnreadableSource(Exception):
    """The local file could not be opened or read (wraps the OSError)."""


def _ignore(_n: int) -> None:
    pass


class GridOperations(Protocol):
    """The grid operations of a backup run (see :class:`NodeGridOperations`)."""

    async def upload(self, source: ByteSource, lease: Lease, *,
                     on_hashed: ByteCount = _ignore, on_read: ByteCount = _ignore) -> bytes:
        """Upload ``source`` under ``lease``; its immutable file cap.

        Raises :class:`UnreadableSource` if the source could not be read, the
        lease's error if the lease was failed, or the grid's error.
        """

    def pack_directory(self, children: Mapping[str, Child]) -> bytes:
        """The bytes of an immutable directory holding ``children``."""

    async def create_immutable_directory(self, packed: bytes, lease: Lease, *,
                                         on_hashed: ByteCount = _ignore) -> bytes:
        """Upload ``packed`` (from :meth:`pack_directory`) under ``lease``; its dircap."""

    async def check(self, cap: bytes) -> tuple[bool, Any]:
        """Whether ``cap`` is healthy on the grid, and the check results."""


class NodeGridOperations:
    """:class:`GridOperations` through the node's own uploader and checker.

    :param client: the node, or anything with ``upload(uploadable)``,
        ``create_node_from_uri(writecap, readcap=None, name=...)`` and
        ``convergence`` (the convergence secret, bytes).
    :param throttle: the job's throttle, which every byte handed to the encoder passes.
    :param run_blocking: runs the convergent-key hash off the reactor thread.
    """

    def __init__(self, client: Any, throttle: JobThrottle, run_blocking: RunBlocking) -> None:
        self._client = client
        self._throttle = throttle
        self._run_blocking = run_blocking

    async def upload(self, source: ByteSource, lease: Lease, *,
                     on_hashed: ByteCount = _ignore, on_read: ByteCount = _ignore) -> bytes:
        """Upload ``source`` through a governed uploadable (see :class:`GridOperations`)."""
        uploadable = GovernedUploadable(
            source, self._client.convergence, self._throttle, lease, self._run_blocking,
            on_hashed=on_hashed, on_read=on_read)
        try:
            results = await self._client.upload(uploadable)
        except Exception:
            # a local read error fails the upload too; tell it from a grid failure
            if uploadable.local_error is not None:
                raise UnreadableSource(uploadable.local_error) from None
            if lease.error is not None:
                raise lease.error from None
            raise
        cap: bytes = results.get_uri()
        return cap

    def pack_directory(self, children: Mapping[str, Child]) -> bytes:
        """What ``nodemaker.create_immutable_directory`` uploads for ``children``.

        ``pack_children(..., deep_immutable=True)``; uploaded with the
        convergence secret, so the dircap is the one ``tahoe backup`` would get.
        """
        nodes = {
            name: (self._client.create_node_from_uri(None, cap, name=name), metadata)
            for name, (_kind, cap, metadata) in children.items()
        }
        packed: bytes = pack_children(nodes, None, deep_immutable=True)
        return packed

    async def create_immutable_directory(self, packed: bytes, lease: Lease, *,
                                         on_hashed: ByteCount = _ignore) -> bytes:
        """Upload ``packed`` through the job's throttle and wrap its cap as a dircap."""
        source = BytesSource(packed)
        try:
            filecap = await self.upload(source, lease, on_hashed=on_hashed)
        finally:
            source.close()
        dircap: bytes = uri.wrap_dirnode_cap(uri.from_string(filecap)).to_string()
        return dircap

    async def check(self, cap: bytes) -> tuple[bool, Any]:
        """Check ``cap`` on the grid as ``tahoe backup``'s ``t=check`` does.

        A check that fails counts as unhealthy (``tahoe backup``: "can't check,
        so we must assume it's bad"); literal caps are always healthy.
        """
        try:
            node = self._client.create_node_from_uri(cap)
            results = await node.check(Monitor(), verify=False, add_lease=False)
        except Exception:
            return False, None
        return (results is None or bool(results.is_healthy())), results
