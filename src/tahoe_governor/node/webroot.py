"""Mounting the governor's pages (``/governor``, ``/metrics``) under the node's web server root.

Tahoe's ``WebishServer`` serves ``allmydata.web.root.Root``, a twisted.web
resource whose children are Tahoe's own pages. A governed node adds its own
children beside them; a name Tahoe already serves is refused so a mount can
never hide one of Tahoe's pages.
"""

from __future__ import annotations

import re

from twisted.web.resource import IResource, Resource

#: Children ``Root.getChild`` makes on each request (not in ``Root.children``).
TAHOE_DYNAMIC_CHILDREN = frozenset({"helper_status", "storage"})

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class MountError(Exception):
    """A resource cannot be mounted at the path segment asked for."""


def mount_on_root(root: Resource, segment: str, resource: IResource) -> None:
    """Serve ``resource`` at ``/<segment>`` (and below) of ``root``.

    ``segment`` is one path segment (letters, digits, ``.``, ``_``, ``-``; not
    starting with a punctuation mark), not already served.
    """
    if not isinstance(segment, str) or not _SEGMENT.match(segment):
        raise MountError(
            f"cannot mount at {segment!r}: expected one path segment of letters, digits, "
            "'.', '_' or '-' (such as 'governor' or 'metrics')"
        )
    if not IResource.providedBy(resource):
        raise MountError(
            f"cannot mount {resource!r} at /{segment}: it is not a twisted.web resource"
        )
    name = segment.encode("ascii")
    if name in root.children or segment in TAHOE_DYNAMIC_CHILDREN:
        raise MountError(f"cannot mount at /{segment}: the node already serves that path")
    root.putChild(name, resource)
