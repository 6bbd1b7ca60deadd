"""A governed node for command tests: a NODEDIR whose node.url leads to the
/governor tree in memory, through an injected HTTP function."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.pages import notFound

from tahoe_governor.cli.node_api import HttpResponse
from tahoe_governor.web.governor_tree import GovernorResource
from tests.web.controls_double import NOW, InMemoryControls
from tests.web.web_client import TOKEN, root_with_governor

NODE_URL = "http://127.0.0.1:3456/"


def _result(d):  # type: ignore[no-untyped-def]
    results: list[object] = []
    d.addBoth(results.append)
    assert results, "the in-memory request did not complete"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


class StubNode:
    """NODEDIR files as a running governed node leaves them, and its web API in memory."""

    def __init__(self, nodedir: Path, token: str | None = TOKEN, governed: bool = True) -> None:
        self.nodedir = str(nodedir)
        (nodedir / "private").mkdir(parents=True, exist_ok=True)
        (nodedir / "node.url").write_text(NODE_URL + "\n")
        if token is not None:
            (nodedir / "private" / "governor.token").write_text(token + "\n")
        self.clock = Clock()
        self.clock.advance(NOW)
        self.controls = InMemoryControls()
        # A node run by plain `tahoe run` has no /governor: every path is 404 here.
        self.stub = StubTreq(
            root_with_governor(GovernorResource(self.controls, TOKEN, self.clock))
            if governed else notFound())
        self.requests: list[tuple[str, str]] = []

    def http(self, method: str, url: str, body: bytes | None,
             headers: Mapping[str, str]) -> HttpResponse:
        """The command's HTTP function, answered by the in-memory tree."""
        self.requests.append((method, url))
        d = self.stub.request(method, url, data=body, allow_redirects=False,
                              headers={k: [v] for k, v in headers.items()})
        self.stub.flush()
        response = _result(d)
        return HttpResponse(response.code, _result(self.stub.content(response)))


def refused(method: str, url: str, body: bytes | None, headers: Mapping[str, str]) -> HttpResponse:
    """An HTTP function for a node that is not running."""
    raise ConnectionRefusedError(111, "Connection refused")
