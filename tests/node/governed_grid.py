"""Helpers for end-to-end tests of a governed node on the session's local grid."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import treq
from foolscap.eventual import flushEventualQueue
from twisted.internet import reactor, task

from tahoe_governor.app import govern
from tahoe_governor.node import create_governed_client, read_governed_config
from tahoe_governor.node.governor import Governor
from tahoe_governor.throttle import Shaper
from tests.grid import LocalGrid

UTC = ZoneInfo("UTC")


@pytest.fixture(scope="class")
def grid_on_class(request: pytest.FixtureRequest, local_grid: LocalGrid) -> None:
    """Give a trial TestCase class the session's grid as ``self.grid``."""
    request.cls.grid = local_grid


def make_tree(root: Path, files: int, size: int) -> None:
    """``files`` files of ``size`` random bytes in a few directories."""
    for i in range(files):
        folder = root / f"d{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.bin").write_bytes(os.urandom(size))


async def get_body(url: str) -> bytes:
    """GET ``url`` on a connection that is not kept (the reactor stays clean)."""
    response = await treq.get(url, persistent=False)
    body: bytes = await treq.content(response)
    return body


async def wait_for(predicate: Any, timeout: float, what: str, state: Any = None) -> None:
    """Poll ``predicate`` on the reactor every 0.1 s until true, or fail after
    ``timeout`` (with ``state()`` in the message, when given)."""
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            seen = f"; saw {state()}" if state is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{seen}")
        await task.deferLater(reactor, 0.1, lambda: None)
        waited += 0.1


async def start_governed_node(
    nodedir: Path, aliases: tuple[str, ...] = ("backup",), tz: ZoneInfo = UTC
) -> tuple[Any, Governor]:
    """Run the governed node in ``nodedir`` in this process, connected to all 3
    servers, with its governor and pages; first create a fresh directory on the
    grid for each alias in ``aliases`` (as ``tahoe create-alias`` does)."""
    client = await create_governed_client(
        read_governed_config(str(nodedir)), Shaper(reactor), reactor
    )
    client.startService()
    connected = client.storage_broker.when_connected_enough(3)
    connected.addTimeout(30, reactor)
    await connected
    if aliases:
        lines = []
        for alias in aliases:
            root = await client.create_dirnode()
            lines.append(f"{alias}: {root.get_uri().decode()}\n")
        (nodedir / "private" / "aliases").write_text("".join(lines))
    return client, govern(reactor, client, tz)


async def stop_node(client: Any) -> None:
    """Stop a governed node and let Foolscap's eventual queue drain."""
    await client.stopService()
    await flushEventualQueue()


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of an sqlite file: "ok" when intact."""
    with sqlite3.connect(path) as db:
        result: str = db.execute("PRAGMA integrity_check").fetchone()[0]
    return result
