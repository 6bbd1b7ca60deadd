"""Building (not starting) a governed client: every storage Tub shaped at the right moment.

The node is built on a MemoryReactorClock and never started, so nothing
connects; the checks are about which Tubs reach the shaper, in what state,
and what the node then holds.
"""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path
from typing import Any

from allmydata.storage_client import ANONYMOUS_STORAGE_NURLS, NativeStorageServer
from foolscap.eventual import flushEventualQueue
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import TestCase
from twisted.web.static import Data

from tahoe_governor.node import (
    GovernedClient,
    MountError,
    create_governed_client,
    read_governed_config,
)
from tests.grid import free_loopback_port
from tests.node.recording_shaper import RecordingShaper, temp_dir

STATIC_SERVER = """\
storage:
  v0-static-1:
    ann:
      anonymous-storage-FURL: pb://abcde@tcp:127.0.0.1:1/fake
      nickname: static-one
      permutation-seed-base32: aaaaaaaaaaaaaaaaaaaaaaaa
"""


def storage_node_dir(root: Path, web: bool = True) -> Path:
    """A storage node (Tub listening on loopback) with one static storage server."""
    d = root / "node"
    (d / "private").mkdir(parents=True)
    port = free_loopback_port()
    web_line = "web.port = tcp:0:interface=127.0.0.1" if web else ""
    (d / "tahoe.cfg").write_text(
        textwrap.dedent(
            f"""
            [node]
            nickname = builder
            tub.port = tcp:{port}:interface=127.0.0.1
            tub.location = tcp:127.0.0.1:{port}
            {web_line}

            [storage]
            enabled = true
            reserved_space = 0

            [backups]
            b1.source = /data
            """
        )
    )
    (d / "private" / "servers.yaml").write_text(STATIC_SERVER)
    return d


class BuildGovernedClientTests(TestCase):
    """What ``create_governed_client`` builds, before anything starts."""

    def build(self, web: bool = True) -> tuple[GovernedClient, RecordingShaper]:
        """A governed node on a memory reactor, and the shaper it was given."""
        self.addCleanup(flushEventualQueue)
        shaper = RecordingShaper()
        config = read_governed_config(str(storage_node_dir(temp_dir(self), web)))
        built = create_governed_client(config, shaper, MemoryReactorClock())
        client: Any = self.successResultOf(built)
        return client, shaper

    def test_main_tub_shaped_before_it_listens(self) -> None:
        """The main Tub reaches the shaper with its hint handlers, before listenOn and start."""
        client, shaper = self.build()
        self.assertIs(client.shaper, shaper)
        first = shaper.installed[0]
        self.assertIs(first.tub, client.tub)
        self.assertEqual((first.running, first.listeners), (False, 0))
        self.assertIn("tcp", first.hint_types)
        self.assertEqual(len(client.tub.getListeners()), 1, "it listens after install")

    def test_main_tub_is_plain_foolscap(self) -> None:
        """No HTTPS storage beside Foolscap on the main Tub: nothing there escapes the shaper."""
        client, _ = self.build()
        self.assertFalse(hasattr(client.tub.negotiationClass, "add_storage_server"))
        self.assertIsNone(client.storage_nurls)
        self.assertTrue(client.config.get_config("client", "force_foolscap", boolean=True))

    def test_per_server_tubs_shaped_before_they_connect(self) -> None:
        """The static server's Tub, made through the broker's tub maker, is shaped unstarted."""
        client, shaper = self.build()
        server = client.storage_broker.servers[b"v0-static-1"]
        self.assertEqual(server.get_nickname(), "static-one")
        self.assertTrue(shaper.saw(server._tub))
        record = next(r for r in shaper.installed if r.tub is server._tub)
        self.assertEqual((record.running, record.listeners), (False, 0))
        self.assertIn("tcp", record.hint_types)
        later = client.storage_broker._tub_maker({})
        self.assertTrue(shaper.saw(later), "servers announced later get shaped Tubs too")
        self.assertEqual(len(shaper.installed), 3)

    def test_server_offering_https_still_reached_over_foolscap(self) -> None:
        """A server announcing HTTPS storage (NURLs) gets a Foolscap, shaped connection."""
        client, shaper = self.build()
        announcement = {
            "anonymous-storage-FURL": "pb://abcde@tcp:127.0.0.1:1/fake",
            ANONYMOUS_STORAGE_NURLS: ["pb://abcde@tcp:127.0.0.1:1/fake#v=1"],
            "permutation-seed-base32": "aaaaaaaaaaaaaaaaaaaaaaaa",
        }
        server = client.storage_broker._make_storage_server(b"v0-https", {"ann": announcement})
        self.assertIsInstance(server, NativeStorageServer)
        server.start_connecting(lambda: None)
        self.assertTrue(shaper.saw(server._tub))

    def test_log_tub_bound_to_loopback(self) -> None:
        """The log Tub's socket is bound to 127.0.0.1, not to every interface."""
        client, shaper = self.build()
        self.assertFalse(shaper.saw(client.log_tub), "local flogtool traffic is not shaped")
        (listener,) = client.log_tub.getListeners()
        fd = listener._ep._wrapped.fileno
        with socket.socket(fileno=os.dup(fd)) as sock:
            host, port = sock.getsockname()
        self.assertEqual(host, "127.0.0.1")
        self.assertEqual(client.log_tub.locationHints, [f"127.0.0.1:{port}"])

    def test_sections_and_mount(self) -> None:
        """The raw sections ride on the node, and a mounted page joins the web root."""
        client, _ = self.build()
        self.assertEqual(dict(client.sections.backups), {"b1.source": "/data"})
        self.assertTrue(client.has_web_server)
        page = Data(b"ok", "text/plain")
        client.mount("governor", page)
        self.assertIs(client.getServiceNamed("webish").root.children[b"governor"], page)

    def test_mount_without_web_port(self) -> None:
        """Without [node] web.port, mounting says what to set."""
        client, _ = self.build(web=False)
        self.assertFalse(client.has_web_server)
        with self.assertRaisesRegex(MountError, r"set \[node\] web.port"):
            client.mount("governor", Data(b"ok", "text/plain"))
