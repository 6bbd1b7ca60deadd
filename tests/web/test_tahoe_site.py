"""The pages behind Tahoe's own site and request classes, in memory.

Tahoe's request class leaves a form body out of ``request.args`` and its site
writes the access log with its own formatter: the controls and the censoring
must work with both, not only with Twisted's defaults.
"""

from __future__ import annotations

import io
import os
import re

from allmydata.webish import TahoeLAFSSite, anonymous_tempfile_factory
from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from tahoe_governor.web.governor_tree import mount_governor_pages
from tests.web.controls_double import NOW, InMemoryControls
from tests.web.web_client import TOKEN


class TahoeSiteTests(SynchronousTestCase):
    def setUp(self) -> None:
        tempdir = self.mktemp()
        os.makedirs(tempdir)
        self.webish = MultiService()
        self.webish.root = Resource()  # type: ignore[attr-defined]
        self.webish.site = TahoeLAFSSite(  # type: ignore[attr-defined]
            anonymous_tempfile_factory(tempdir), self.webish.root)  # type: ignore[attr-defined]
        self.clock = Clock()
        self.clock.advance(NOW)
        self.controls = InMemoryControls()
        mount_governor_pages(self.webish, self.controls, TOKEN, self.clock)
        self.site = self.webish.site  # type: ignore[attr-defined]
        self.site._logFile = io.StringIO()
        self.site._logDateTime = "ts"

    def exchange(self, raw: bytes) -> bytes:
        """One HTTP/1.0 request through Tahoe's site on an in-memory transport."""
        protocol = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 50000))
        protocol.makeConnection(transport)
        protocol.dataReceived(raw)
        return bytes(transport.value())

    def get(self, path: str) -> bytes:
        return self.exchange(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())

    def post_form(self, path: str, body: bytes) -> bytes:
        return self.exchange(
            f"POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    def test_form_post_through_tahoes_request_class(self) -> None:
        """A browser's form POST pauses the job through Tahoe's request class, and its
        access log shows the control but not the token."""
        page = self.get(f"/governor/{TOKEN}/")
        self.assertTrue(page.startswith(b"HTTP/1.0 200"), page[:100])
        match = re.search(rb'name="csrf" value="([^"]+)"', page)
        assert match is not None
        response = self.post_form(f"/governor/{TOKEN}/pause",
                                  b"csrf=" + match.group(1) + b"&job=photos")
        self.assertTrue(response.startswith(b"HTTP/1.0 303"), response[:200])
        self.assertIn(b"\r\nLocation: ./\r\n", response)
        self.assertEqual(self.controls.jobs["photos"].state, "paused")
        log = self.site._logFile.getvalue()
        self.assertIn("web: 127.0.0.1 POST /governor/[CENSORED]/pause 303", log)
        self.assertIn("web: 127.0.0.1 GET /governor/[CENSORED]/ 200", log)
        self.assertNotIn(TOKEN, log)

    def test_forged_form_post_through_tahoes_request_class(self) -> None:
        """Without the CSRF field the POST is 403 and the job keeps running."""
        response = self.post_form(f"/governor/{TOKEN}/pause", b"job=photos")
        self.assertTrue(response.startswith(b"HTTP/1.0 403"), response[:200])
        self.assertEqual(self.controls.jobs["photos"].state, "running")
        self.assertNotIn(TOKEN, self.site._logFile.getvalue())

    def test_tahoe_security_headers_stay(self) -> None:
        """Tahoe's own X-Frame-Options and Referrer-Policy are on our pages too."""
        response = self.get("/governor")
        self.assertIn(b"X-Frame-Options: DENY", response)
        self.assertIn(b"Referrer-Policy: no-referrer", response)
