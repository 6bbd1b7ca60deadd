"""Mounting resources under the node's web root: one segment, never over one of Tahoe's pages."""

from __future__ import annotations

import pytest
from twisted.web.resource import Resource
from twisted.web.static import Data
from twisted.web.test.requesthelper import DummyRequest

from tahoe_governor.node import MountError
from tahoe_governor.node.webroot import mount_on_root


def tahoe_like_root() -> Resource:
    """A root with some of the children Tahoe's ``Root`` has."""
    root = Resource()
    for name in (b"uri", b"private", b"status", b"static"):
        root.putChild(name, Resource())
    return root


def test_mount_serves_below_the_segment() -> None:
    """A mounted resource answers at /<segment> and is what the request reaches."""
    root = tahoe_like_root()
    page = Data(b"governed", "text/plain")
    mount_on_root(root, "governor", page)
    request = DummyRequest([b"governor"])
    assert root.getChildWithDefault(b"governor", request) is page


@pytest.mark.parametrize(
    "segment",
    ["", "a/b", "..", ".hidden", "-x", "gov ernor", "métrics", None],
)
def test_bad_segments_refused(segment: object) -> None:
    """Only a single plain path segment can be mounted."""
    with pytest.raises(MountError, match="expected one path segment"):
        mount_on_root(tahoe_like_root(), segment, Resource())  # type: ignore[arg-type]


@pytest.mark.parametrize("segment", ["uri", "private", "status", "storage", "helper_status"])
def test_tahoe_pages_never_hidden(segment: str) -> None:
    """A segment Tahoe serves (as a child or made per request) cannot be mounted over."""
    with pytest.raises(MountError, match="already serves"):
        mount_on_root(tahoe_like_root(), segment, Resource())


def test_second_mount_refused() -> None:
    """Mounting twice at one segment is an error, not a silent replacement."""
    root = tahoe_like_root()
    mount_on_root(root, "metrics", Resource())
    with pytest.raises(MountError, match="already serves"):
        mount_on_root(root, "metrics", Resource())


def test_non_resource_refused() -> None:
    """Only twisted.web resources can be mounted."""
    with pytest.raises(MountError, match="not a twisted.web resource"):
        mount_on_root(tahoe_like_root(), "governor", object())  # type: ignore[arg-type]
