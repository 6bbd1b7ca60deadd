"""How the command talks to a running governed node: its web API, found through NODEDIR.

The node writes its web address to ``NODEDIR/node.url`` when it starts, and
its private token is in ``NODEDIR/private/governor.token``. Public reads go
to ``/governor?t=json``; controls fetch a CSRF token from the private JSON
and POST JSON to ``/governor/<token>/<action>``; a job's archives come from
``/governor/<token>/archives?job=JOB``.

Requests go through an injected function (:data:`HttpFunction`); the default
is a blocking :mod:`urllib` client that ignores proxy settings (the node is
local, and the private URL must not pass through a proxy). Every failure is a
:class:`CommandError` whose message says what is wrong and what to do; no
message contains the token.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from tahoe_governor.web.access_tokens import TOKEN_FILE

TIMEOUT_SECONDS = 10.0


class CommandError(Exception):
    """A failure to report to the user as it is (exit status 1)."""


@attrs.frozen
class HttpResponse:
    status: int
    body: bytes


HttpFunction = Callable[[str, str, bytes | None, Mapping[str, str]], HttpResponse]
"""``(method, url, body, headers) -> response``; raises OSError when the
server cannot be reached. Any HTTP status is a response, not an error."""


def urllib_http(
    method: str, url: str, body: bytes | None, headers: Mapping[str, str]
) -> HttpResponse:
    """The blocking default :data:`HttpFunction` (no proxies, no redirects followed)."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    request = urllib.request.Request(url, data=body, headers=dict(headers), method=method)
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return HttpResponse(response.status, response.read())
    except urllib.error.HTTPError as e:
        with e:
            return HttpResponse(e.code, e.read())
    except urllib.error.URLError as e:
        reason = e.reason
        raise reason if isinstance(reason, OSError) else OSError(str(reason)) from None


def read_node_url(nodedir: str) -> str:
    """The node's web address from ``NODEDIR/node.url`` (ending in ``/``)."""
    path = Path(nodedir) / "node.url"
    try:
        url = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if not Path(nodedir).is_dir():
            raise CommandError(f"{nodedir}: no such node directory") from None
        raise CommandError(
            f"{path} does not exist: the node is not running (start it with "
            f"'tahoe-governor run {nodedir}'), or its web server is off "
            "([node] web.port in tahoe.cfg)"
        ) from None
    except OSError as e:
        raise CommandError(f"{path}: cannot read it ({e.strerror})") from None
    if not url.startswith(("http://", "https://")):
        raise CommandError(f"{path}: expected the node's web address (http://...), got {url!r}")
    return url if url.endswith("/") else url + "/"


def read_token(nodedir: str) -> str:
    """The private token from ``NODEDIR/private/governor.token`` (never created here)."""
    path = Path(nodedir) / TOKEN_FILE
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise CommandError(
            f"{path} does not exist: the governed node creates it when it starts "
            f"('tahoe-governor run {nodedir}')"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not ASCII"
        raise CommandError(f"{path}: cannot read it ({why}); run this as the node's owner") \
            from None
    if len(token) < 26 or not token.isalnum():
        raise CommandError(f"{path}: expected a token of at least 26 letters and digits; "
                           "delete the file and restart the node to make a new one")
    return token


def _decode(response: HttpResponse, where: str) -> Any:
    try:
        return json.loads(response.body)
    except ValueError:
        raise CommandError(f"{where} answered {response.status} with something that is not "
                           "JSON: is this a tahoe-governor node?") from None


def _json_error(response: HttpResponse) -> str | None:
    """The ``error`` of a JSON refusal, ``None`` for any other body."""
    try:
        data = json.loads(response.body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) else None


class GovernorClient:
    """The governed node of ``nodedir``, through its web API."""

    def __init__(self, nodedir: str, http: HttpFunction = urllib_http) -> None:
        self.nodedir = nodedir
        self._http = http
        self.node_url = read_node_url(nodedir)

    def _request(self, method: str, url: str, body: Any = None,
                 headers: Mapping[str, str] | None = None) -> HttpResponse:
        data = None if body is None else json.dumps(body).encode("utf-8")
        all_headers = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        try:
            response = self._http(method, url, data, all_headers)
        except OSError as e:
            why = e.strerror or str(e) or type(e).__name__
            raise CommandError(
                f"cannot reach the node at {self.node_url} ({why}): is it running? "
                f"(start it with 'tahoe-governor run {self.nodedir}')"
            ) from None
        if response.status >= 500:
            reason = _json_error(response)
            if reason is not None:  # the node said why (e.g. the grid could not be read)
                raise CommandError(reason)
            log_file = Path(self.nodedir) / "logs" / "twistd.log"
            raise CommandError(f"the node at {self.node_url} failed to answer "
                               f"(HTTP {response.status}): see its log, {log_file}")
        return response

    def public_status(self) -> dict[str, Any]:
        """``GET /governor?t=json``: the public snapshot."""
        url = self.node_url + "governor?t=json"
        response = self._request("GET", url)
        if response.status == 404:
            raise CommandError(f"{self.node_url}governor is not there (404): is the node run by "
                               "'tahoe-governor run' rather than 'tahoe run'?")
        data = _decode(response, f"{self.node_url}governor")
        if response.status != 200:
            raise CommandError(f"{self.node_url}governor: {data.get('error', response.status)}")
        return dict(data)

    def private_url(self) -> str:
        """The owner's private page (holds the token: show it only when asked)."""
        return f"{self.node_url}governor/{read_token(self.nodedir)}/"

    def private_status(self) -> dict[str, Any]:
        """``GET /governor/<token>/?t=json``: the private snapshot and a CSRF token."""
        response = self._request("GET", self.private_url() + "?t=json")
        self._check_private(response)
        return dict(_decode(response, "the private page"))

    def archives(self, job: str) -> dict[str, Any]:
        """``GET /governor/<token>/archives?job=JOB``: the job's archives on the grid, newest
        first (a CommandError with the node's reason for an unknown job or an unreadable grid)."""
        query = urllib.parse.urlencode({"job": job})
        response = self._request("GET", self.private_url() + "archives?" + query)
        self._check_private(response)
        data = _decode(response, "the private page")
        if response.status != 200:
            raise CommandError(str(data.get("error", f"the node answered {response.status}")))
        return dict(data)

    def control(self, action: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """POST one control with a fresh CSRF token; the node's answer, or a CommandError
        with the node's reason."""
        csrf = self.private_status()["csrf"]
        response = self._request("POST", self.private_url() + action,
                                 body=dict(fields), headers={"X-Governor-CSRF": csrf})
        self._check_private(response)
        data = _decode(response, "the private page")
        if response.status != 200 or not data.get("ok"):
            raise CommandError(str(data.get("error", f"the node answered {response.status}")))
        return dict(data)

    def _check_private(self, response: HttpResponse) -> None:
        if response.status == 404:
            token_file = Path(self.nodedir) / TOKEN_FILE
            raise CommandError(
                f"the node at {self.node_url} does not know the token in {token_file} (404): "
                "was the file replaced after the node started (restart it), or is the node "
                "run by 'tahoe run' rather than 'tahoe-governor run'?"
            )
