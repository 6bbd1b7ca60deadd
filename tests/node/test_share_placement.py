"""An upload repeated after an interruption keeps the shares servers already hold.

On Tahoe's in-process test grid (real storage servers, real shares on disk):
a file is uploaded, one server loses its shares (as an upload killed before
that server's shares were complete leaves it), and the same file is uploaded
again. Tahoe's own placement sends shares the other servers hold to new homes
as well; the governed node's placement sends only the missing ones.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from typing import Any

import pytest
from allmydata.immutable import upload as tahoe_upload
from allmydata.immutable.upload import Data
from allmydata.test.no_network import GridTestMixin
from twisted.trial import unittest

from tahoe_governor.node import share_placement
from tahoe_governor.node.share_placement import keep_existing_shares

A, B, C = b"a" * 20, b"b" * 20, b"c" * 20


@pytest.mark.parametrize(
    ("placement", "existing", "expected", "why"),
    [
        ({0: A, 1: B, 2: C}, {A: {0}, B: {1}}, {0: A, 1: B, 2: C}, "already on their holders"),
        ({0: A, 1: B, 2: C, 3: A}, {B: {1, 3}, C: {2}}, {0: A, 1: B, 2: C, 3: B},
         "share 3 held by B stays on B instead of a second copy on A"),
        ({0: A, 1: B, 2: C}, {B: {0, 1}, C: {2}}, {0: A, 1: B, 2: C},
         "moving share 0 to B would leave A without a share: happiness would drop"),
        ({0: A, 1: B, 2: None}, {C: {2}}, {0: A, 1: B, 2: C}, "a homeless share has a holder"),
        ({0: A, 1: B}, {C: {1}}, {0: A, 1: B}, "B holds share 1 only if C is unusable (below)"),
    ],
)
def test_keep_existing_shares(placement: dict[int, Any], existing: dict[Any, set[int]],
                              expected: dict[int, Any], why: str) -> None:
    """Each row: Tahoe's placement and what servers hold; the corrected placement."""
    unusable = {C} if "unusable" in why else frozenset()
    assert keep_existing_shares(placement, existing, {A, B}, unusable) == expected, why


class RepeatedUploadTests(GridTestMixin, unittest.TestCase):
    """Three servers, k=3 happy=3 n=10: each server holds three or four shares."""

    def setUp(self) -> Any:
        self.basedir = tempfile.mkdtemp(prefix="tahoe-governor-placement-")
        d = super().setUp()
        self.set_up_grid(num_clients=1, num_servers=3)
        self.client = self.get_client(0)
        self.client.encoding_params.update({"k": 3, "happy": 3, "n": 10})
        self.addCleanup(setattr, tahoe_upload, "PeerSelector", tahoe_upload.PeerSelector)
        return d

    def tearDown(self) -> Any:
        return super().tearDown().addBoth(lambda r: (shutil.rmtree(self.basedir, True), r)[1])

    async def _copies_after_a_lost_server(self, data: bytes) -> Counter[int]:
        cap = (await self.client.upload(Data(data, convergence=b""))).get_uri()
        first = self.find_uri_shares(cap)
        assert {shnum for shnum, _, _ in first} == set(range(10))
        lost = sorted({serverid for _, serverid, _ in first})[0]
        for share in first:
            if share[1] == lost:
                self.delete_share(share)
        again = (await self.client.upload(Data(data, convergence=b""))).get_uri()
        assert again == cap
        return Counter(shnum for shnum, _, _ in self.find_uri_shares(cap))

    async def test_tahoes_own_placement_stores_shares_twice(self) -> None:
        """The baseline this module exists for: stock Tahoe uploads held shares again."""
        # A governed node made earlier in this process installed the placement: undo it
        # here (the cleanup of setUp puts back whatever was there).
        tahoe_upload.PeerSelector = share_placement.KeepingPeerSelector.__mro__[1]
        copies = await self._copies_after_a_lost_server(b"stock " * 20_000)
        assert set(copies) == set(range(10))
        assert sum(copies.values()) > 10, copies

    async def test_the_governed_placement_stores_each_share_once(self) -> None:
        """With the node's placement the grid holds each of the 10 shares exactly once."""
        share_placement.install()
        copies = await self._copies_after_a_lost_server(b"governed " * 20_000)
        assert copies == Counter(range(10)), copies
