"""Helpers for walker tests on Tahoe's in-process test grid (``allmydata.test.no_network``).

``NoNetworkGrid`` gives real storage servers (real shares on disk) and a real
client node in one process, reached through loopback references instead of
Foolscap connections; each client also runs its web server on a loopback
port, which the real ``tahoe backup`` CLI talks to.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from allmydata.scripts.tahoe_add_alias import add_line_to_aliasfile
from allmydata.test.no_network import GridTestMixin
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThreadPool

from tahoe_governor.backup import (
    BackupWalker,
    backupdb_path,
    open_backupdb,
    resolve_target_in_nodedir,
)

START = 1_800_000_000.0  # 2027-01-15: a fixed clock start, so archive names are known


def run_in_real_pool(f, *args) -> Deferred:
    """run_blocking for walkers whose reactor is a Clock: the real reactor's thread pool."""
    return deferToThreadPool(global_reactor, global_reactor.getThreadPool(), f, *args)


def write_tree(root: str, files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> None:
    """Create ``files`` (relative path -> content) and empty ``dirs`` under ``root``."""
    for rel in dirs:
        os.makedirs(os.path.join(root, rel), exist_ok=True)
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


async def read_tree(dirnode: Any) -> dict[str, Any]:
    """A grid directory as {relative path: bytes} for files and {path/: None} for directories."""
    out: dict[str, Any] = {}

    async def walk(node: Any, prefix: str) -> None:
        children = await node.list()
        for name, (child, _metadata) in sorted(children.items()):
            if child.is_unknown() or not hasattr(child, "list"):
                out[prefix + name] = await child.download_best_version()
            else:
                out[prefix + name + "/"] = None
                await walk(child, prefix + name + "/")

    await walk(dirnode, "")
    return out


def local_tree(root: str) -> dict[str, Any]:
    """The same shape as :func:`read_tree`, for a local directory (regular files only)."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel + "/"
        for d in dirnames:
            out[prefix + d + "/"] = None
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as f:
                out[prefix + name] = f.read()
    return out


async def spin(turns: int = 1) -> None:
    """Let the real reactor run ``turns`` iterations (the grid's eventual sends)."""
    for _ in range(turns):
        await deferLater(global_reactor, 0, lambda: None)


class WalkerGridMixin(GridTestMixin):
    """A test grid (10 servers, k=3 happy=7 n=10), a ``tahoe`` alias, and a source tree."""

    def setUp(self) -> Any:
        self.basedir = tempfile.mkdtemp(prefix="tahoe-governor-walker-")
        d = super().setUp()
        self.set_up_grid(num_clients=1, num_servers=10)
        self.client = self.get_client(0)
        self.nodedir = self.get_clientdir(0)
        self.source = os.path.join(self.basedir, "home")
        os.makedirs(self.source)
        self.clock = Clock()
        self.clock.advance(START)
        return d

    def tearDown(self) -> Any:
        # trial runs cleanups before tearDown: remove the grid's files only
        # once its services (which save state on stop) have stopped.
        d = super().tearDown()

        def remove(result: Any) -> Any:
            shutil.rmtree(self.basedir, True)
            return result

        return d.addBoth(remove)

    async def make_alias(self, alias: str = "tahoe") -> bytes:
        node = await self.client.create_dirnode()
        cap = node.get_uri()
        add_line_to_aliasfile(os.path.join(self.nodedir, "private", "aliases"), alias,
                              cap.decode("ascii"))
        return cap

    def walker(self, target: str = "tahoe:backups", **kw: Any) -> BackupWalker:
        kw.setdefault("reactor", self.clock)
        if kw["reactor"] is self.clock:
            kw.setdefault("run_blocking", run_in_real_pool)
        return BackupWalker(
            client=self.client,
            source=self.source,
            target=resolve_target_in_nodedir(target, self.nodedir),
            backupdb=open_backupdb(backupdb_path(self.nodedir)),
            **kw,
        )

    async def target_dir(self, target: str = "tahoe:backups") -> Any:
        resolved = resolve_target_in_nodedir(target, self.nodedir)
        node = self.client.create_node_from_uri(resolved.private_rootcap)
        for name in resolved.path:
            node = await node.get(name)
        return node
