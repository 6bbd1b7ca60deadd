"""Refusals as the governor pages give them: a status code and a message that
says what was wrong and what was expected, as HTML or as JSON.

A message never repeats the request's path (it may hold the private token).
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.template import tags

from tahoe_governor.web.page_layout import html_body, json_body, page, wants_json


def requested_format(request: IRequest) -> str | None:
    """``"json"`` for ``?t=json``, ``"html"`` without ``t``, ``None`` for any other ``t``."""
    t = request.args.get(b"t")
    if t is None:
        return "html"
    if t == [b"json"]:
        return "json"
    return None


def error_body(request: IRequest, code: int, message: str, back: str | None = None) -> bytes:
    """Refuse ``request`` with ``code`` and ``message`` (JSON if it asked for JSON).

    ``back`` is a link (relative URL) offered on the HTML page.
    """
    if wants_json(request):
        return json_body(request, {"error": message, "code": code}, code)
    request.setResponseCode(code)
    heading = {400: "Not done", 403: "Refused", 404: "Not found",
               405: "Method not allowed", 413: "Too large", 415: "Unsupported body"}
    body = [tags.h1(heading.get(code, "Error")), tags.p(message, class_="error")]
    if back is not None:
        body.append(tags.p(tags.a("Back", href=back)))
    return html_body(request, page(heading.get(code, "Error"), *body))


class GovernorPage(Resource):
    """A resource that answers the methods in ``allowed_methods`` and refuses
    the others with our own 405 page (``HEAD`` goes with ``GET``)."""

    allowed_methods: tuple[bytes, ...] = (b"GET",)
    back_link: str | None = None
    """Where an error page's "Back" link leads (relative), if anywhere."""

    def method_refusal(self, method: str) -> str:
        """Why ``method`` is refused, and what is expected instead."""
        expected = " or ".join(m.decode("ascii") for m in self.allowed_methods)
        return f"Method {method} is not allowed here: expected {expected}."

    def getChild(self, name: bytes, request: IRequest) -> Resource:
        return NotFound()

    def render(self, request: IRequest) -> Any:
        method = request.method
        allowed = self.allowed_methods
        if method in allowed or (method == b"HEAD" and b"GET" in allowed):
            return super().render(request)
        request.setHeader(b"allow", b", ".join(allowed))
        return error_body(request, 405, self.method_refusal(method.decode("ascii", "replace")),
                          self.back_link)


class NotFound(Resource):
    """A 404 that names no part of the path it was asked for."""

    isLeaf = True

    def render(self, request: IRequest) -> bytes:
        return error_body(request, 404, "No such page.")
