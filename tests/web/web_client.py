"""Drive the /governor tree in memory (treq's StubTreq) from trial test cases."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from tahoe_governor.web.governor_tree import GovernorResource
from tests.web.controls_double import NOW, InMemoryControls

TOKEN = "q3w7tyq2bm4rh5z6xkpd2l3nve"
BASE = "http://127.0.0.1:3456"


class Response:
    """What a test looks at: status, headers, body."""

    def __init__(self, code: int, headers: Any, body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body
        self.text = body.decode("utf-8")

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        if not values:
            return None
        value = values[0]
        return value.decode("latin-1") if isinstance(value, bytes) else str(value)

    def json(self) -> Any:
        return json.loads(self.body)


def root_with_governor(resource: GovernorResource) -> Resource:
    root = Resource()
    root.putChild(b"governor", resource)
    return root


class GovernorTestCase(SynchronousTestCase):
    """A node with InMemoryControls, its /governor tree and a Clock at NOW."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.controls = InMemoryControls()
        self.resource = GovernorResource(self.controls, TOKEN, self.clock)
        self.stub = StubTreq(root_with_governor(self.resource))

    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        kwargs.setdefault("allow_redirects", False)
        d = self.stub.request(method, BASE + path, **kwargs)
        self.stub.flush()
        response = self.successResultOf(d)
        body = self.successResultOf(self.stub.content(response))
        return Response(response.code, response.headers, body)

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def csrf(self) -> str:
        token: str = self.get(f"/governor/{TOKEN}/?t=json").json()["csrf"]
        return token

    def post_form(self, action: str, fields: dict[str, str], csrf: str | None = "fresh",
                  path: str | None = None) -> Response:
        body = dict(fields)
        if csrf is not None:
            body["csrf"] = self.csrf() if csrf == "fresh" else csrf
        return self.request(
            "POST", path or f"/governor/{TOKEN}/{action}", data=urlencode(body).encode(),
            headers={"Content-Type": ["application/x-www-form-urlencoded"]},
        )

    def post_json(self, action: str, fields: dict[str, Any], csrf: str | None = "fresh"
                  ) -> Response:
        body = dict(fields)
        if csrf is not None:
            body["csrf"] = self.csrf() if csrf == "fresh" else csrf
        return self.request(
            "POST", f"/governor/{TOKEN}/{action}", data=json.dumps(body).encode(),
            headers={"Content-Type": ["application/json"]},
        )
