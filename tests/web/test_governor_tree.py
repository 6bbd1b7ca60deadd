"""Building and mounting the /governor tree on a Tahoe web server."""

from __future__ import annotations

import os

from allmydata.webish import TahoeLAFSSite, _logFormatter, anonymous_tempfile_factory
from twisted.application.service import MultiService
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from tahoe_governor.web.governor_tree import (
    GovernorResource,
    governor_resource,
    mount_governor_pages,
)
from tests.web.controls_double import NOW, InMemoryControls
from tests.web.web_client import TOKEN


class FakeWebish(MultiService):
    """What mount_governor_pages uses of allmydata.webish.WebishServer: root, site, a service."""

    def __init__(self, tempdir: str) -> None:
        super().__init__()
        self.root = Resource()
        self.site = TahoeLAFSSite(anonymous_tempfile_factory(tempdir), self.root)


class MountTests(SynchronousTestCase):
    def test_mount_puts_the_tree_censors_the_log_and_runs_the_history(self) -> None:
        """One call: /governor on the root, the log censored, the charts sampling."""
        clock = Clock()
        clock.advance(NOW)
        tempdir = self.mktemp()
        os.makedirs(tempdir)
        webish = FakeWebish(tempdir)
        webish.startService()
        self.addCleanup(webish.stopService)
        resource = mount_governor_pages(webish, InMemoryControls(), TOKEN, clock)
        self.assertIs(webish.root.children[b"governor"], resource)
        self.assertIsNot(webish.site._logFormatter, _logFormatter)
        self.assertTrue(resource.history.running)
        clock.advance(5)
        self.assertEqual(len(list(resource.history.samples(clock.seconds()))), 2)
        webish.stopService()
        self.assertFalse(resource.history.running)

    def test_a_short_token_is_refused(self) -> None:
        """The tree will not guard the private page with fewer than 128 bits."""
        with self.assertRaises(ValueError):
            governor_resource(InMemoryControls(), "short", Clock())
        with self.assertRaises(ValueError):
            GovernorResource(InMemoryControls(), "a" * 25 + "/", Clock())
