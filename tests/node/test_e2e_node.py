"""End to end on the real local grid: the governed node in-process, shaped Tubs, a round trip."""

from __future__ import annotations

import os
from typing import Any

import psutil
import pytest
import treq
from allmydata.immutable.upload import Data as UploadData
from allmydata.storage_client import NativeStorageServer
from foolscap.eventual import flushEventualQueue
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.static import Data as WebData

from tahoe_governor.node import create_governed_client, read_governed_config
from tests.grid import LocalGrid
from tests.node.recording_shaper import RecordingShaper, temp_dir

#: Seconds the node may take to connect to every storage server.
CONNECT_TIMEOUT = 20


@pytest.fixture(scope="class")
def grid_on_class(request: pytest.FixtureRequest, local_grid: LocalGrid) -> None:
    """Give a trial TestCase class the session's grid as ``self.grid``."""
    request.cls.grid = local_grid


@pytest.mark.e2e
@pytest.mark.usefixtures("grid_on_class")
class GovernedNodeOnGridTests(TestCase):
    """One governed client node against the introducer and 3 storage servers."""

    grid: LocalGrid
    timeout = 60

    @defer.inlineCallbacks
    def test_upload_download_through_shaped_foolscap(self) -> Any:
        """All 3 servers over Foolscap, every Tub shaped, a file round-trips, stop is clean."""
        nodedir = self.grid.make_client_dir(temp_dir(self) / "client")
        shaper = RecordingShaper()
        client = yield create_governed_client(read_governed_config(str(nodedir)), shaper, reactor)
        seen_at_stop: list[int] = []
        client.add_stop_hook(
            "count servers",
            lambda: seen_at_stop.append(len(client.storage_broker.get_connected_servers())),
        )
        client.mount("governor", WebData(b"governed here", "text/plain"))
        client.startService()
        stopped = False
        try:
            broker = client.storage_broker
            connected = broker.when_connected_enough(3)
            connected.addTimeout(CONNECT_TIMEOUT, reactor)
            yield connected

            servers = broker.get_connected_servers()
            self.assertEqual(
                sorted(s.get_nickname() for s in servers), ["storage0", "storage1", "storage2"]
            )
            self.assertTrue(all(isinstance(s, NativeStorageServer) for s in servers), "Foolscap")
            self.assertIs(shaper.installed[0].tub, client.tub)
            for server in servers:
                self.assertTrue(shaper.saw(server._tub), server.get_nickname())
            self.assertFalse(any(r.running or r.listeners for r in shaper.installed))

            data = os.urandom(150_000)
            results = yield client.upload(UploadData(data, convergence=None))
            filenode = client.create_node_from_uri(results.get_uri())
            downloaded = yield filenode.download_best_version()
            self.assertEqual(downloaded, data)

            self.assert_log_tub_on_loopback(client)
            yield client.getServiceNamed("webish")._started
            body = yield self.get(client.getServiceNamed("webish").getURL() + "governor")
            self.assertEqual(body, b"governed here")

            # The shutdown trigger and a second caller may both ask: one stop, hooks once.
            yield defer.gatherResults([client.stopService(), client.stopService()])
            stopped = True
            self.assertEqual(seen_at_stop, [3], "stop hooks run once, while the node is whole")
            self.assertFalse(client.running)
        finally:
            if not stopped:
                yield client.stopService()
            yield flushEventualQueue()

    def assert_log_tub_on_loopback(self, client: Any) -> None:
        """Every listening socket on the log Tub's port is bound to 127.0.0.1."""
        (listener,) = client.log_tub.getListeners()
        port = listener._lp.getHost().port
        sockets = [
            c
            for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        ]
        self.assertTrue(sockets)
        self.assertEqual({c.laddr.ip for c in sockets}, {"127.0.0.1"})

    @defer.inlineCallbacks
    def get(self, url: str) -> Any:
        """GET ``url`` over a connection that is not kept afterwards (a clean reactor)."""
        response = yield treq.get(url, persistent=False)
        return (yield treq.content(response))
