"""What every governor page shares: the HTML skeleton, the style sheet, the
security headers, and turning a page or a JSON value into a response body.

Pages are built from :data:`twisted.web.template.tags` (which escape every
text and attribute) and flattened to bytes on the spot: they hold no
Deferreds. The headers keep the private URL out of ``Referer`` headers, keep
the pages out of frames and caches, and allow inline scripts only with the
page's nonce.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.template import Tag, flattenString, tags

STYLE = """
:root { font-family: system-ui, sans-serif; color: #222; background: #fafafa; }
body { margin: 0 auto; max-width: 72rem; padding: 0.75rem; }
h1 { font-size: 1.4rem; margin: 0.2rem 0; } h2 { font-size: 1.15rem; margin-top: 1.4rem; }
.muted { color: #666; font-size: 0.9rem; }
.cards {
  display: grid; gap: 0.75rem;
  grid-template-columns: repeat(auto-fit, minmax(min(22rem, 100%), 1fr));
}
.card {
  background: #fff; border: 1px solid #ddd; border-radius: 0.5rem; padding: 0.6rem 0.8rem;
}
.card h3 {
  margin: 0 0 0.4rem 0; font-size: 1.05rem; display: flex; justify-content: space-between;
}
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 0.8rem; margin: 0; }
dt { color: #555; } dd { margin: 0; overflow-wrap: anywhere; }
.state { border-radius: 0.8rem; padding: 0 0.5rem; font-size: 0.85rem; background: #eee; }
.state-running { background: #d4f4d4; } .state-paused { background: #ffe8b0; }
.state-failed { background: #f8d0d0; } .state-suspended { background: #dde6ff; }
.bar { height: 0.5rem; background: #eee; border-radius: 0.25rem; margin: 0.3rem 0; }
.bar span { display: block; height: 100%; background: #4a8; border-radius: 0.25rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td {
  text-align: left; padding: 0.25rem 0.5rem; border-bottom: 1px solid #eee;
  white-space: nowrap;
}
td.tubid { white-space: normal; word-break: break-all; }  /* a full TubID wraps, not the table */
figure.chart {
  margin: 0.5rem 0; background: #fff; border: 1px solid #ddd; border-radius: 0.5rem;
  padding: 0.4rem;
}
figure.chart svg { width: 100%; height: auto; }
figcaption { font-weight: 600; }
.grid { stroke: #ddd; stroke-width: 1; } .axis { font-size: 11px; fill: #666; }
.legend {
  list-style: none; padding: 0; margin: 0.2rem 0 0 0; display: flex; flex-wrap: wrap;
  gap: 0.2rem 1rem; font-size: 0.85rem;
}
.swatch {
  display: inline-block; width: 1.2rem; border-top: 3px solid; margin-right: 0.3rem;
  vertical-align: middle;
}
.swatch.dashed { border-top-style: dashed; }
form { display: inline-block; margin: 0.15rem 0.3rem 0.15rem 0; }
form.wide { display: flex; flex-wrap: wrap; gap: 0.4rem; align-items: center; }
button { font-size: 1rem; padding: 0.35rem 0.8rem; }
input, select { font-size: 1rem; padding: 0.25rem; }
code { font-size: 0.85rem; overflow-wrap: anywhere; }
.error { background: #f8d0d0; border: 1px solid #c66; padding: 0.6rem; border-radius: 0.4rem; }
"""


def new_nonce() -> str:
    """A fresh nonce for a page's inline script (Content-Security-Policy)."""
    return secrets.token_urlsafe(16)


def set_security_headers(request: IRequest, nonce: str | None = None) -> None:
    """Headers every governor response carries (see the module doc)."""
    script = f"'nonce-{nonce}'" if nonce else "'none'"
    request.setHeader(
        b"content-security-policy",
        (
            f"default-src 'none'; style-src 'unsafe-inline'; script-src {script}; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ).encode("ascii"),
    )
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"x-frame-options", b"DENY")
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"cache-control", b"no-store")


def page(
    title: str,
    *body: Any,
    refresh_seconds: int | None = None,
    script: str | None = None,
    nonce: str | None = None,
) -> Tag:
    """A whole HTML document: readable on a phone, optionally refreshing itself."""
    head = tags.head(
        tags.meta(charset="utf-8"),
        tags.meta(name="viewport", content="width=device-width, initial-scale=1"),
        tags.meta(name="referrer", content="no-referrer"),
        tags.title(title),
        tags.style(STYLE),
    )
    if refresh_seconds is not None:
        head(tags.meta(**{"http-equiv": "refresh", "content": str(refresh_seconds)}))
    document = tags.html(head, tags.body(*body), lang="en")
    if script is not None:
        document.children[-1](tags.script(script, nonce=nonce or ""))
    return document


def html_bytes(document: Tag) -> bytes:
    """``document`` flattened: the bytes of an HTML response."""
    results: list[bytes] = []
    failures: list[Any] = []
    flattenString(None, document).addCallbacks(results.append, failures.append)
    if failures:
        failures[0].raiseException()
    if not results:
        raise RuntimeError("a governor page must flatten synchronously (no Deferreds inside)")
    return b"<!DOCTYPE html>\n" + results[0]


def html_response(request: IRequest, body: bytes, nonce: str | None = None) -> bytes:
    """``body`` (from :func:`html_bytes`) as the response: headers set, bytes returned."""
    set_security_headers(request, nonce)
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    return body


def html_body(request: IRequest, document: Tag, nonce: str | None = None) -> bytes:
    """``document`` as the response: headers set, bytes returned."""
    return html_response(request, html_bytes(document), nonce)


def json_bytes(value: Any) -> bytes:
    """``value`` as the bytes of a JSON response."""
    return json.dumps(value, allow_nan=False, indent=1, sort_keys=True).encode("utf-8") + b"\n"


def json_response(request: IRequest, body: bytes, code: int = 200) -> bytes:
    """``body`` (from :func:`json_bytes`) as the response with status ``code``."""
    request.setResponseCode(code)
    set_security_headers(request)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    return body


def json_body(request: IRequest, value: Any, code: int = 200) -> bytes:
    """``value`` as a JSON response with status ``code``."""
    return json_response(request, json_bytes(value), code)


def wants_json(request: IRequest) -> bool:
    """True when the request asks for JSON: ``?t=json``, a JSON body, or ``Accept`` JSON only."""
    if request.args.get(b"t") == [b"json"]:
        return True
    content_type = request.getHeader(b"content-type") or b""
    if content_type.split(b";")[0].strip().lower() == b"application/json":
        return True
    accept = request.getHeader(b"accept") or b""
    return accept.split(b",")[0].strip().lower() == b"application/json"
