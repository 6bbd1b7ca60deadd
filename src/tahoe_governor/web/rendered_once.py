"""A page or ``/metrics`` rendered once per status snapshot, for every reader of it.

Rendering is what costs under load (flattening a page's tree, encoding the
metrics), not the snapshot: a node that shares one snapshot among its readers
for a meter tick (``tahoe_governor.node.recent_snapshot``) serves every
request of that tick with one rendering. :class:`RenderedOnce` keeps the last
rendering and its *key* (the snapshot and whatever else the rendering read);
a reader whose key is equal gets the same bytes, any other renders anew. The
key is compared by value, never by age: a snapshot that changed, however it
changed and whatever the clock says, is rendered again.

What must differ per response (the private page's CSRF token and script
nonce) is rendered as a :func:`per_response_marker` and put in by :func:`fill_in` for
each request.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

Rendering = TypeVar("Rendering")

_NOTHING = object()


class RenderedOnce(Generic[Rendering]):
    """The last rendering, reused while the key it was made for is equal."""

    def __init__(self) -> None:
        self._key: object = _NOTHING
        self._rendering: Rendering | None = None

    def get(self, key: object, render: Callable[[], Rendering]) -> Rendering:
        """The rendering of ``key``: the last one if its key equals ``key``, else ``render()``."""
        if self._rendering is None or not (self._key is key or self._key == key):
            self._rendering = render()
            self._key = key
        return self._rendering


def per_response_marker() -> str:
    """A fresh marker to render where a per-response value goes (letters and digits
    only, so no escaping changes it; random, so no name from the grid can forge it)."""
    return "per-response-" + secrets.token_hex(16)


def fill_in(body: bytes, values: Mapping[str, str]) -> bytes:
    """``body`` with each placeholder of ``values`` replaced by its value.

    The values must need no escaping where the placeholders stand (CSRF
    tokens and nonces are base32 and base64url).
    """
    for marker, value in values.items():
        body = body.replace(marker.encode("ascii"), value.encode("ascii"))
    return body
